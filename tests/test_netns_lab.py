"""The namespace imaging lab, and discovery and scanning on it (real peers, real packets).

One lab per module (built once from fixtures/labs/imaging.yaml): a bridge in a switch
namespace, one namespace per device, the scanner in its own namespace, all on
198.18.0.0/24 with no route out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.lab.netns import NetnsLab, lab_namespaces, running_lab
from scanner.lab.netns_spec import LabSpec, LabSpecError, load_lab_spec
from tests.conftest import namespace_lab_marks

pytestmark = namespace_lab_marks("nft")

SPEC_FILE = Path(__file__).parent.parent / "fixtures" / "labs" / "imaging.yaml"


def _root_view() -> tuple[str, str, str]:
    """What the root namespace looks like: links, routes, firewall."""
    def sh(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout

    return sh("ip", "-o", "link"), sh("ip", "route", "show", "table", "all"), sh(
        "nft", "list", "ruleset")


@pytest.fixture(scope="module")
def root_before() -> tuple[str, str, str]:
    return _root_view()


@pytest.fixture(scope="module")
def lab(root_before: tuple[str, str, str]) -> Iterator[NetnsLab]:
    with running_lab(load_lab_spec(SPEC_FILE)) as running:
        yield running
    assert lab_namespaces("imaging") == []


def test_lab_is_isolated(lab: NetnsLab, root_before: tuple[str, str, str]) -> None:
    assert len(lab.namespaces()) == 2 + len(lab.spec.devices)
    for ns in lab.namespaces():
        assert lab.exec(ns, ["ip", "route", "show", "default"]).strip() == ""
        routes = lab.exec(ns, ["ip", "-4", "route"]).split()
        assert not [r for r in routes if "/" in r and not r.startswith("198.18.0.")]
    # Nothing of the lab exists in the root namespace.
    assert _root_view() == root_before


def test_device_macs_and_listeners(lab: NetnsLab) -> None:
    dev = lab.spec.devices[1]
    assert dev.mac is not None
    assert dev.mac in lab.exec(lab.ns_of(dev.name), ["ip", "-br", "link", "show", "eth0"])
    assert ":104 " in lab.exec(lab.ns_of(dev.name), ["ss", "-ltnH"])


def test_spec_refuses_addresses_outside_the_benchmark_range() -> None:
    scanner = {"name": "scanner", "address": "10.0.0.250"}
    with pytest.raises(ValueError, match="not inside"):
        LabSpec.model_validate({"name": "bad", "subnet": "10.0.0.0/24", "scanner": scanner,
                                "devices": []})
    with pytest.raises(LabSpecError):
        load_lab_spec(SPEC_FILE.with_name("missing.yaml"))


# ------------------------------------------------------------------ scanning the lab

SUBNET = "198.18.0.0/24"
# Registrants of the lab's MACs, as the IEEE/Wireshark data names them.
VENDORS = {
    "198.18.0.10": "GE Healthcare",
    "198.18.0.11": "Siemens AG, Healthcare Sector",
    "198.18.0.12": "Philips Medical Systems - Cardiac and Monitoring Systems (CM",
    "198.18.0.13": "Carestream Health, Inc.",
}
DICOM = {("198.18.0.10", 4242), ("198.18.0.11", 104), ("198.18.0.12", 11112),
         ("198.18.0.13", 104), ("198.18.0.13", 2762)}


def scan(lab: NetnsLab, *args: str, prefix: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """``dicomscan scan 198.18.0.0/24 ARGS`` run inside the scanner's namespace."""
    argv = [*prefix, sys.executable, "-m", "scanner", "scan", SUBNET, "--format", "json",
            "--fail-on", "never", "--profile", "fast", "--connect-timeout", "1", *args]
    out = subprocess.run(lab.in_scanner(argv), capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout), out.stderr


def alive(doc: dict[str, Any]) -> set[str]:
    return {h["address"] for h in doc["hosts"]}


def live_addresses(lab: NetnsLab) -> set[str]:
    return {d.address for d in lab.spec.devices} | {lab.spec.scanner.address}


def states(doc: dict[str, Any]) -> dict[tuple[str, int], str]:
    return {(h["address"], p["port"]): p["state"] for h in doc["hosts"] for p in h["ports"]}


@pytest.fixture(scope="module")
def embedded(lab: NetnsLab) -> dict[str, Any]:
    return scan(lab)[0]


@pytest.fixture(scope="module")
def nmap_engine(lab: NetnsLab) -> dict[str, Any]:
    return scan(lab, "--engine", "nmap")[0]


@pytest.mark.parametrize("method", ["arp", "icmp", "tcp"])
def test_each_method_finds_exactly_the_live_devices(lab: NetnsLab, method: str) -> None:
    doc, err = scan(lab, "--discovery", method, "-p", "104")
    assert alive(doc) == live_addresses(lab)
    info = doc["scan"]["discovery"]
    assert (info["used"], info["probed"], info["alive"]) == (method, 254, 5)
    found = {h["address"]: h["discovery"] for h in doc["hosts"]}
    assert found[lab.spec.scanner.address]["method"] == "local"
    for dev in lab.spec.devices:
        assert found[dev.address]["method"] == method
    if method == "arp":
        assert {found[d.address]["mac"] for d in lab.spec.devices} == {
            d.mac for d in lab.spec.devices}
    assert f"discovery {method}" in err


def test_auto_picks_arp_on_the_local_link_and_says_why(embedded: dict[str, Any]) -> None:
    info = embedded["scan"]["discovery"]
    assert (info["requested"], info["used"]) == ("auto", "arp")
    assert "directly attached" in info["why"]


def test_without_raw_sockets_arp_is_skipped_with_a_note(lab: NetnsLab) -> None:
    no_raw = ("setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw")
    doc, err = scan(lab, "--discovery", "arp", "-p", "104", prefix=no_raw)
    info = doc["scan"]["discovery"]
    assert info["used"] == "tcp" and "ARP needs raw sockets" in info["notes"][0]
    assert "ARP needs raw sockets" in err
    assert alive(doc) == live_addresses(lab)


def test_open_closed_and_filtered_told_apart(embedded: dict[str, Any]) -> None:
    st = states(embedded)
    assert st[("198.18.0.12", 3389)] == st[("198.18.0.12", 445)] == "filtered"
    assert st[("198.18.0.12", 22)] == st[("198.18.0.13", 3389)] == "open"
    assert st[("198.18.0.12", 104)] == st[("198.18.0.11", 11112)] == "closed"
    filtered = {k for k, v in st.items() if v == "filtered"}
    assert filtered == {("198.18.0.12", 3389), ("198.18.0.12", 445)}


def test_mac_vendor_of_each_device(embedded: dict[str, Any]) -> None:
    got = {h["address"]: (h["mac"], h["mac_vendor"]) for h in embedded["hosts"]}
    for dev_addr, vendor in VENDORS.items():
        assert got[dev_addr][1] == vendor
    assert got["198.18.0.11"][0] == "88:4b:39:00:00:11"


def test_dicom_services_found_tls_included(embedded: dict[str, Any]) -> None:
    found = {(h["address"], s["port"]) for h in embedded["hosts"] for s in h["services"]
             if s["name"] in ("dicom", "dicom-tls")}
    assert found == DICOM


def test_mac_vendor_is_a_role_signal(embedded: dict[str, Any]) -> None:
    [ct] = [h for h in embedded["hosts"] if h["address"] == "198.18.0.11"]
    assert ct["role"] == "modality"
    assert any("Siemens Healthineers" in r for r in ct["role_reasons"])
    # It only tips a tie: remote desktop still makes the Carestream host a workstation.
    [ws] = [h for h in embedded["hosts"] if h["address"] == "198.18.0.13"]
    assert ws["role"] == "workstation"


def test_nmap_and_embedded_engines_agree(
    embedded: dict[str, Any], nmap_engine: dict[str, Any]
) -> None:
    assert nmap_engine["scan"]["engine"] == "nmap"
    assert alive(nmap_engine) == alive(embedded)
    assert states(nmap_engine) == states(embedded)
    methods = {p["method"] for h in nmap_engine["hosts"] for p in h["ports"]}
    assert methods == {"nmap-syn"}
    found = {(h["address"], s["port"]) for h in nmap_engine["hosts"] for s in h["services"]
             if s["name"] in ("dicom", "dicom-tls")}
    assert found == DICOM
    vendors = {h["address"]: h["mac_vendor"] for h in nmap_engine["hosts"]}
    assert all(vendors[a] == v for a, v in VENDORS.items())


# ------------------------------------------------------------------ teardown

CRASH_LAB = """\
name: crash
scanner: {name: scanner, address: 198.18.0.250}
devices:
  - {name: box, address: 198.18.0.5, services: [{kind: listener, port: 22}]}
"""


def test_leftovers_are_removed_and_ctrl_c_tears_down(tmp_path: Path) -> None:
    import signal

    spec = tmp_path / "crash.yaml"
    spec.write_text(CRASH_LAB)
    # A crashed run left a namespace behind: the next start removes it first.
    subprocess.run(["ip", "netns", "add", "dscnlab-crash-sw"], check=True)
    proc = subprocess.Popen([sys.executable, "-m", "scanner.lab.netns", str(spec), "sleep", "60"],
                            cwd=Path(__file__).parent.parent, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        # The lab lists its devices once it is up (readline blocks until then).
        assert proc.stderr.readline().startswith("lab: box")
        assert len(lab_namespaces("crash")) == 3  # switch, scanner, box
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lab_namespaces("crash") == []


def test_nmap_engine_without_raw_sockets_and_with_version_detection(lab: NetnsLab) -> None:
    no_raw = ("setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw")
    # No DICOM or silent ports: -sV waits long on services that do not answer its probes.
    doc, _ = scan(lab, "--engine", "nmap", "--service-version", "-p", "1,22,445",
                  prefix=no_raw)
    assert alive(doc) == live_addresses(lab)
    st = states(doc)
    assert st[("198.18.0.12", 22)] == "open" and st[("198.18.0.12", 445)] == "filtered"
    assert st[("198.18.0.12", 1)] == "closed"
    [us] = [h for h in doc["hosts"] if h["address"] == "198.18.0.12"]
    assert {p["method"] for p in us["ports"]} == {"nmap-connect"}
    [ssh] = [s for s in us["services"] if s["port"] == 22]
    [seen] = [o for o in ssh["observations"] if o["kind"] == "nmap-service"]
    assert (seen["name"], seen["product"]) == ("ssh", "OpenSSH")


def test_demo_on_the_namespace_lab() -> None:
    out = subprocess.run([sys.executable, "-m", "scanner", "demo", "--netns", "--profile", "fast",
                          "--format", "json"], capture_output=True, text=True, timeout=180,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0 and "lab stopped" in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    assert doc["scan"]["discovery"]["used"] == "arp"
    vendors = {h["address"]: h["mac_vendor"] for h in doc["hosts"]}
    assert vendors == {**{a: v for a, v in VENDORS.items() if a != "198.18.0.13"},
                       "198.18.0.250": None}
    assert lab_namespaces("demo") == []


# ------------------------------------------------------------------ discovery under the cap

# Runs in the scanner's namespace: every frame the scanner sends (PACKET_OUTGOING), kept
# as (time, "arp" | "echo") for ARP requests and ICMP echo requests, until stdin closes.
_SNIFFER = """
import json, select, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
seen = []
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    if not select.select([s], [], [], 0.05)[0]:
        continue
    frame, addr = s.recvfrom(2048)
    if addr[2] != socket.PACKET_OUTGOING:
        continue
    kind = frame[12:14]
    if kind == b"\\x08\\x06" and frame[20:22] == b"\\x00\\x01":
        seen.append((time.monotonic(), "arp"))
    elif kind == b"\\x08\\x00" and frame[23] == 1 and frame[14 + (frame[14] & 15) * 4] == 8:
        seen.append((time.monotonic(), "echo"))
print(json.dumps(seen), flush=True)
"""


def _sent_during_scan(lab: NetnsLab, *args: str) -> tuple[dict[str, Any], list[float], list[float]]:
    """Scan with ``args``; the times of the ARP and echo requests the scanner sent."""
    sniffer = subprocess.Popen(lab.in_scanner([sys.executable, "-c", _SNIFFER]),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert sniffer.stdout is not None and sniffer.stdout.readline().strip() == "ready"
        doc, _ = scan(lab, *args)
        out, _ = sniffer.communicate("stop\n", timeout=30)
    finally:
        sniffer.kill()
    frames = json.loads(out)
    return (doc, [t for t, kind in frames if kind == "arp"],
            [t for t, kind in frames if kind == "echo"])


def _busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 1.0)
                for i, start in enumerate(times)), default=0)


def test_arp_requests_keep_to_the_rate_cap(lab: NetnsLab) -> None:
    """254 who-has broadcasts reach every device on the link: at --max-rate 100 they are
    spread over 2.5 s, not sent back to back (which they were, whatever the cap)."""
    doc, arp, _ = _sent_during_scan(lab, "--discovery", "arp", "-p", "104", "--max-rate",
                                    "100")
    assert alive(doc) == live_addresses(lab)  # still every live device
    assert len(arp) >= 253  # every address of the /24 but the scanner's own
    # The kernel resolves the few live devices' MACs itself for the port scan: a handful
    # of requests of its own beside the sweep's.
    assert _busiest_second(arp) <= 100 + 8, _busiest_second(arp)
    assert max(arp) - min(arp) >= 2.3


def test_icmp_echo_requests_keep_to_the_rate_cap(lab: NetnsLab) -> None:
    """Each echo request waits for a slot of the cap (scapy's sr sent them back to back).
    Static neighbour entries for the silent addresses let every request leave at once,
    without the kernel's own ARP for it, so the wire shows when the sweep sent each."""
    live = live_addresses(lab)
    silent = [f"198.18.0.{i}" for i in range(1, 255) if f"198.18.0.{i}" not in live]
    batch = "".join(f"neigh replace {a} lladdr 02:00:5e:00:00:{i % 256:02x} nud permanent "
                    f"dev eth0\n" for i, a in enumerate(silent))
    subprocess.run(lab.in_scanner(["ip", "-batch", "-"]), input=batch, text=True, check=True)
    try:
        doc, _, echo = _sent_during_scan(lab, "--discovery", "icmp", "-p", "104",
                                         "--max-rate", "100")
    finally:
        subprocess.run(lab.in_scanner(["ip", "neigh", "flush", "nud", "permanent"]),
                       check=False)
    assert alive(doc) == live_addresses(lab)
    assert doc["scan"]["discovery"]["used"] == "icmp"
    assert len(echo) >= len(silent)
    assert _busiest_second(echo) <= 100 + 2, _busiest_second(echo)
    assert max(echo) - min(echo) >= 2.3


def test_ctrl_c_during_a_slow_arp_sweep_stops_it_at_once_and_keeps_what_answered(
        lab: NetnsLab, tmp_path: Path) -> None:
    """At --max-rate 20 the sweep of the /24 would take about 13 s; the hosts it has
    asked in the first seconds answer and are scanned. SIGINT then ends the scan within
    a moment (the sweep thread waits for no further slot), with exit 130 and the hosts
    found so far in the saved result."""
    import signal
    import time

    out = tmp_path / "partial.json"
    argv = [sys.executable, "-m", "scanner", "scan", SUBNET, "--format", "json", "-o",
            str(out), "--profile", "fast", "--connect-timeout", "1", "--discovery", "arp",
            "-p", "104", "--max-rate", "20", "-q"]
    scan_process = subprocess.Popen(lab.in_scanner(argv), cwd=Path(__file__).parent.parent,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4.0)  # the live devices are 198.18.0.10-13: asked within the first second
        stopped = time.monotonic()
        scan_process.send_signal(signal.SIGINT)
        _, err = scan_process.communicate(timeout=30)
        took = time.monotonic() - stopped
    finally:
        scan_process.kill()
    assert scan_process.returncode == 130, err
    assert "Traceback" not in err
    assert took < 5.0, took
    doc = json.loads(out.read_text())
    assert doc["scan"]["interrupted"] is True
    assert {d.address for d in lab.spec.devices} <= alive(doc)
