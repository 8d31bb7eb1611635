"""Three imaging VLANs, one centre, in network namespaces (198.18.0.0/15 only).

``sensors-wan`` holds nats-server and the central process; each ``sensors-vlan-X`` holds
a sensor, joined by ``lan0`` to the VLAN's device ``sensors-dev-X`` (198.19.N.0/24, a
real DCMTK storescp, no route beyond its VLAN). The VLANs reach the centre over a /30
link each; the centre does not forward, has no route into any VLAN, and each VLAN's
nftables input policy drops everything inbound but replies. The sensors dial out;
nothing dials in.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.fleet.ledger import JobState
from scanner.history.store import HistoryStore
from tests.conftest import namespace_lab_marks
from tests.fleet_harness import Fleet, dicomscan

pytestmark = namespace_lab_marks("nft", "storescp", "Orthanc", "nats-server")

WAN = "sensors-wan"
VLANS = {"a": 1, "b": 2, "c": 3}
CENTRE = "198.18.1.1"  # wan's end of VLAN a's link; every VLAN reaches it via its gateway
FIREWALL = """table inet fw {
  chain in {
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    iifname "lan0" accept
    ct state established,related accept
  }
}
"""

CUT = """table inet cut {
  chain in { type filter hook input priority -10; policy accept; iifname "up-b" drop; }
  chain out { type filter hook output priority -10; policy accept; oifname "up-b" drop; }
}
"""


def vlan(s: str) -> str:
    return f"sensors-vlan-{s}"


def device(s: str) -> str:
    return f"sensors-dev-{s}"


def target(s: str) -> str:
    return f"198.19.{VLANS[s]}.10"


def namespaces() -> list[str]:
    return [WAN, *(vlan(s) for s in VLANS), *(device(s) for s in VLANS)]


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")
    return out


def remove_namespaces() -> None:
    for ns in namespaces():
        with contextlib.suppress(RuntimeError):
            sh("ip", "netns", "pids", ns)
            for pid in sh("ip", "netns", "pids", ns).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    import os
                    import signal

                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns)


def start_orthanc(work: Path, ns: str) -> subprocess.Popen[bytes]:
    """Orthanc's DICOM side on 4242 in VLAN c's device (HTTP off)."""
    (work / "db").mkdir(parents=True)
    config = {"Name": "sensors-orthanc", "DicomAet": "ORTHANC_C", "DicomPort": 4242,
              "HttpServerEnabled": False, "Plugins": [], "SaveJobs": False,
              "StorageDirectory": str(work / "db"), "IndexDirectory": str(work / "db")}
    (work / "orthanc.json").write_text(json.dumps(config))
    with (work / "log").open("wb") as log:
        return subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/Orthanc",
                                 str(work / "orthanc.json")], cwd=work, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_listening(ns: str, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while f":{port} " not in sh("ip", "netns", "exec", ns, "ss", "-ltnH").stdout:
        assert time.monotonic() < deadline, f"nothing listens on {port} in {ns}"
        time.sleep(0.2)


def build() -> None:
    remove_namespaces()  # a run killed before its cleanup leaves these behind
    for ns in namespaces():
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", WAN, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    for s, i in VLANS.items():
        sh("ip", "-n", vlan(s), "link", "add", f"up-{s}", "type", "veth", "peer", "name",
           f"wan-{s}", "netns", WAN)
        sh("ip", "-n", WAN, "addr", "add", f"198.18.{i}.1/30", "dev", f"wan-{s}")
        sh("ip", "-n", WAN, "link", "set", f"wan-{s}", "up")
        sh("ip", "-n", vlan(s), "addr", "add", f"198.18.{i}.2/30", "dev", f"up-{s}")
        sh("ip", "-n", vlan(s), "link", "set", f"up-{s}", "up")
        sh("ip", "-n", vlan(s), "route", "add", "default", "via", f"198.18.{i}.1")
        sh("ip", "-n", vlan(s), "link", "add", "lan0", "type", "veth", "peer", "name",
           "eth0", "netns", device(s))
        sh("ip", "-n", vlan(s), "addr", "add", f"198.19.{i}.1/24", "dev", "lan0")
        sh("ip", "-n", vlan(s), "link", "set", "lan0", "up")
        sh("ip", "-n", device(s), "addr", "add", f"{target(s)}/24", "dev", "eth0")
        sh("ip", "-n", device(s), "link", "set", "eth0", "up")
        subprocess.run(["ip", "netns", "exec", vlan(s), "nft", "-f", "-"], input=FIREWALL,
                       text=True, check=True, timeout=30)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    build()
    root = Path(tempfile.mkdtemp(prefix="dicomscan-sensors-netns-"))
    peers: list[subprocess.Popen[bytes]] = []
    f = Fleet(root, ack_wait=4, max_deliver=4, central_ns=WAN, address=CENTRE)
    try:
        for s in VLANS:
            incoming = root / f"incoming-{s}"
            incoming.mkdir()
            with (root / f"storescp-{s}.log").open("wb") as log:
                peers.append(subprocess.Popen(
                    ["ip", "netns", "exec", device(s), "/usr/bin/storescp", "--aetitle",
                     f"PACS_{s.upper()}", "-od", str(incoming), "11112"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            f.add_sensor(f"sensor-{s}", f"198.19.{VLANS[s]}.0/24")
        peers.append(start_orthanc(root / "orthanc-c", device("c")))
        for s in VLANS:
            wait_listening(device(s), 11112)
        wait_listening(device("c"), 4242)
        f.start_central()
        for s in VLANS:
            f.start_sensor(f"sensor-{s}", vlan(s))
        for s in VLANS:
            f.wait_sensor_ready(f"sensor-{s}", timeout=60)
        yield f
    finally:
        f.stop()
        for p in peers:
            p.terminate()
            p.wait(10)
        remove_namespaces()
        shutil.rmtree(root, ignore_errors=True)


def test_each_sensor_reports_its_own_vlan_only(fleet: Fleet) -> None:
    jobs = {s: fleet.submit(f"sensor-{s}", f"198.19.{i}.8/29", "-p", "11112,4242",
                            "--discovery", "tcp", "--job", "pacs")
            for s, i in VLANS.items()}
    for s, job_id in jobs.items():
        row = fleet.wait_job(job_id, timeout=180)
        assert row.state is JobState.DONE, (row, fleet.log(f"sensor-sensor-{s}"))
        shown = dicomscan("history", "show", row.scan_id or "", "--history",
                          str(fleet.dir / "history.sqlite"), "--format", "json")
        assert shown.returncode == 0, shown.stderr
        assert f'"{target(s)}"' in shown.stdout  # its own storescp, found
        for other in set(VLANS) - {s}:
            assert target(other) not in shown.stdout
        store = HistoryStore.open(fleet.dir / "history.sqlite")
        result = store.load(row.scan_id or "")
        store.close()
        assert {h.address for h in result.hosts} == {target(s)}
        products = {v.port: v.product for h in result.hosts for v in h.services}
        # storescp everywhere, Orthanc (a DCMTK-based DICOM side, HTTP off) only in VLAN c.
        assert 11112 in products and (4242 in products) == (s == "c"), (s, products)
    # A submit for another VLAN's network is refused by central before anything is queued.
    out = dicomscan("submit", str(fleet.dir), "--sensor", "sensor-a", target("b"),
                    ns=WAN)
    assert out.returncode == 2 and "scope" in out.stderr


def connect_from(ns: str, host: str, port: int) -> str:
    """'open', 'refused' or 'timeout' for a TCP connection made inside namespace ``ns``."""
    code = ("import socket,sys\ns=socket.socket();s.settimeout(2)\n"
            "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('open')\n"
            "except ConnectionRefusedError:print('refused')\n"
            "except OSError as e:print('timeout' if isinstance(e,TimeoutError) else 'unreach')")
    return sh("ip", "netns", "exec", ns, "python3", "-c", code, host, str(port)).stdout.strip()


def test_centre_cannot_reach_into_a_vlan(fleet: Fleet) -> None:
    assert sh("ip", "netns", "exec", WAN, "ip", "route", "get", target("a"),
              check=False).returncode != 0  # no route: "Network is unreachable"
    assert connect_from(WAN, target("a"), 11112) == "unreach"
    # The sensor's uplink address answers nothing inbound (dropped, not refused).
    assert connect_from(WAN, "198.18.1.2", 11112) == "timeout"
    # No path between VLANs either, while the sensor reaches its own storescp.
    assert connect_from(vlan("a"), target("b"), 11112) in ("timeout", "unreach")
    assert connect_from(vlan("a"), target("a"), 11112) == "open"
    assert connect_from(vlan("a"), CENTRE, 4222) == "open"


def test_link_cut_longer_than_the_lease_loses_and_duplicates_nothing(fleet: Fleet) -> None:
    # 150 closed ports at the safe profile's spacing: about 15 s of scanning.
    job_id = fleet.submit("sensor-b", target("b"), "-p", "20000-20149,11112",
                          "--discovery", "none")
    fleet.wait_job(job_id, state="running", timeout=60)
    # A silent cut, both ways (this kernel has no netem; nftables drops are just as silent:
    # no RST, no ICMP, so only the missed pings reveal it).
    subprocess.run(["ip", "netns", "exec", vlan("b"), "nft", "-f", "-"], input=CUT,
                   text=True, check=True, timeout=30)
    try:
        time.sleep(16)  # four leases (4 s), and past the sensor's stale-ping limit (9 s)
    finally:
        sh("ip", "netns", "exec", vlan("b"), "nft", "delete", "table", "inet", "cut")
    row = fleet.wait_job(job_id, timeout=240)
    said = fleet.log("sensor-sensor-b")
    assert row.state is JobState.DONE, (row, said)
    # The connection was found dead and replaced (nats-py only says so once the link is
    # back: it waits for the dead TLS transport to close first).
    assert "link to central lost" in said and "link to central back" in said, said
    scans = [s for s in fleet.history_scans() if s["scan_id"] == row.scan_id]
    assert len(scans) == 1
    # Nothing else for that job was stored: one scan of these targets in the store.
    assert sum(1 for s in fleet.history_scans() if s.get("job") == "sensor-b") == 1


def test_central_history_feeds_diff(fleet: Fleet) -> None:
    """Two scans of one VLAN's job land in the central history; diff compares them."""
    for _ in range(2):
        job_id = fleet.submit("sensor-a", target("a"), "-p", "11112", "--discovery", "none",
                              "--job", "nightly")
        assert fleet.wait_job(job_id, timeout=120).state is JobState.DONE
    out = dicomscan("diff", "--job", "sensor-a/nightly", "--history",
                    str(fleet.dir / "history.sqlite"), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) is not None


def test_sensor_killed_mid_scan_in_its_vlan_stored_once(fleet: Fleet) -> None:
    job_id = fleet.submit("sensor-c", target("c"), "-p", "20000-20079,11112",
                          "--discovery", "none", "--job", "killed")
    fleet.wait_job(job_id, state="running", timeout=60)
    time.sleep(1)
    fleet.kill_sensor("sensor-c")
    fleet.start_sensor("sensor-c")
    row = fleet.wait_job(job_id, timeout=180)
    assert row.state is JobState.DONE and row.delivery >= 2, row
    assert sum(1 for s in fleet.history_scans() if s.get("job") == "sensor-c/killed") == 1
