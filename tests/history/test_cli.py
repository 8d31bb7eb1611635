"""The history from the command line against real peers on loopback: two scans with a
change in between give exactly that drift; a scan killed with SIGKILL stays partial;
site configuration and the timers it prints. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scanner.lab.peers import free_port, start_storescp
from tests.conftest import needs_dcmtk, plain_listener

pytestmark = pytest.mark.peers


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                         text=True, timeout=timeout)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def scan_into(store: str, ports: list[int], *extra: str) -> None:
    out = cli("scan", "127.0.0.1", "-p", ",".join(map(str, ports)), "--discovery", "none",
              "--fail-on", "never", "-q", "--format", "json", "--history", store,
              "--job", "lab", *extra)
    assert out.returncode == 0, out.stderr


@needs_dcmtk
def test_a_peer_stopped_and_a_listener_added_is_exactly_the_drift(store_location: str) -> None:
    stays, stops = start_storescp(), start_storescp()
    added = free_port("127.0.0.1")
    ports = [stays.info.port, stops.info.port, added]
    try:
        scan_into(store_location, ports)
        stops.stop()
        with plain_listener("127.0.0.1", added):
            scan_into(store_location, ports)
    finally:
        stays.stop()
        stops.stop()
    out = cli("diff", "--history", store_location, "--job", "lab", "--format", "json")
    assert out.returncode == 0, out.stderr
    changes = json.loads(out.stdout)["changes"]
    ports_changed = sorted((c["kind"], c["port"]) for c in changes
                           if c["kind"].startswith(("port-", "device-")))
    assert ports_changed == sorted([("port-closed", stops.info.port), ("port-opened", added)])
    # The only other changes are findings of the new listener; nothing on the peer that stayed.
    rest = [c for c in changes if not c["kind"].startswith(("port-", "device-"))]
    assert all(c["kind"] == "finding-new" and c["port"] == added for c in rest), rest
    assert all(c["first_seen"] and c["last_seen"] for c in changes)

    events = cli("diff", "--history", store_location, "--job", "lab", "--format", "jsonl")
    lines = [json.loads(x) for x in events.stdout.splitlines()]
    assert len(lines) == len(changes) and {e["event_type"] for e in lines} == {"drift"}
    assert len({e["event_id"] for e in lines}) == len(lines)

    gate = cli("diff", "--history", store_location, "--job", "lab",
               "--fail-on-drift", "port-opened")
    assert gate.returncode == 1 and "port-opened" in gate.stderr
    assert cli("diff", "--history", store_location, "--job", "lab",
               "--fail-on-drift", "device-appeared,tls-changed").returncode == 0
    bad = cli("diff", "--history", store_location, "--fail-on-drift", "port-wobbled")
    assert bad.returncode == 2 and "unknown drift kind" in bad.stderr

    listed = json.loads(cli("history", "list", "--history", store_location, "--format",
                            "json").stdout)
    assert [s["status"] for s in listed] == ["complete", "complete"]
    shown = json.loads(cli("history", "show", listed[0]["scan_id"][:8], "--history",
                           store_location, "--format", "json").stdout)
    [device] = shown["devices"]
    when = datetime.fromisoformat
    assert when(device["first_seen"]) == when(listed[1]["started_at"])  # the older scan
    assert when(device["last_seen"]) == when(listed[0]["started_at"])
    assert {f["port"] for f in shown["findings"]} >= {stays.info.port, added}


class _Silent:
    """Accepts connections and never answers, so a scan waits on it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_scan_killed_with_sigkill_stays_partial_and_the_store_readable(
        store_location: str) -> None:
    silent = _Silent()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p", str(silent.port),
         "--discovery", "none", "--timeout", "120", "-q", "--history", store_location,
         "--job", "killed"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not silent.held:  # the scan is under way: its A-ASSOCIATE-RQ is waiting
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.close()
    listed = cli("history", "list", "--history", store_location, "--job", "killed",
                 "--format", "json")
    [row] = json.loads(listed.stdout)
    assert (row["status"], row["partial"]) == ("running", True)
    assert "(partial)" in cli("history", "list", "--history", store_location).stdout
    diff = cli("diff", "--history", store_location, "--job", "killed")
    assert diff.returncode == 2 and "0 complete scan" in diff.stderr


SITE = """\
version: 1
jobs:
  lab:
    targets: [127.0.0.1]
    ports: [{port}]
    discovery: none
    fail_on: never
    outputs:
      - {{format: json, path: out/lab.json}}
"""


@needs_dcmtk
def test_scan_runs_a_configured_job_and_files_it_under_its_name(tmp_path: Path) -> None:
    with start_storescp() as peer:
        site = tmp_path / "site.yaml"
        site.write_text(SITE.format(port=peer.info.port))
        (tmp_path / "out").mkdir()
        store = str(tmp_path / "h.sqlite")
        out = cli("scan", "--config", str(site), "-q", "--history", store, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "out" / "lab.json").read_text())
    assert [s["port"] for h in doc["hosts"] for s in h["services"]] == [peer.info.port]
    [row] = json.loads(cli("history", "list", "--history", store, "--format", "json").stdout)
    assert row["job"] == "lab" and row["scan_id"] == doc["scan"]["id"]


def test_config_check_names_file_line_and_key(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("jobs:\n  lab:\n    targets: [127.0.0.1]\n    profile: turbo\n"
                    "    client_cert: missing.pem\n    client_key: missing.key\n"
                    "  'bad name':\n    targets: [127.0.0.1]\n")
    out = cli("config", "check", str(site))
    assert out.returncode == 2
    assert f"{site}:4: jobs.lab.profile:" in out.stderr
    site.write_text("jobs:\n  lab:\n    targets: [127.0.0.1]\n    client_cert: missing.pem\n"
                    "    client_key: missing.key\n    colour: blue\n")
    out = cli("config", "check", str(site))
    assert out.returncode == 2 and f"{site}:6: jobs.lab.colour: Extra inputs" in out.stderr
    site.write_text("jobs:\n  lab:\n    targets: [127.0.0.1]\n    client_cert: missing.pem\n"
                    "    client_key: missing.key\n")
    out = cli("config", "check", str(site))
    assert out.returncode == 2 and f"{site}:4: jobs.lab.client_cert: no such file" in out.stderr
    site.write_text("jobs:\n  lab:\n    targets: [127.0.0.1\n")
    out = cli("config", "check", str(site))
    assert out.returncode == 2 and "not valid YAML" in out.stderr
    site.write_text("jobs:\n  lab:\n    targets: [127.0.0.1]\n")
    assert cli("config", "check", str(site)).returncode == 0
    assert cli("scan", "--config", str(site), "--job", "nope").returncode == 2


def _units(tmp_path: Path, job: dict[str, Any]) -> tuple[str, str]:
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps({"jobs": {"night": job}}))  # JSON is YAML
    units = tmp_path / "units"
    out = cli("schedule", "--print", "systemd", "--config", str(site), "--job", "night",
              "--write", str(units))
    assert out.returncode == 0, out.stderr
    verify = subprocess.run(["systemd-analyze", "verify", str(units / "dicomscan-night.service"),
                             str(units / "dicomscan-night.timer")], capture_output=True,
                            text=True, timeout=60)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    return ((units / "dicomscan-night.service").read_text(),
            (units / "dicomscan-night.timer").read_text())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed")
def test_systemd_units_verify_and_are_hardened(tmp_path: Path) -> None:
    # A real pair: schedule refuses a job whose scan would refuse its certificate.
    certs = Path(__file__).resolve().parents[2] / "fixtures" / "certs"
    cert = tmp_path / "c.pem"
    cert.write_bytes((certs / "client.pem").read_bytes())
    key = tmp_path / "c.key"
    key.write_bytes((certs / "client.key").read_bytes())
    service, timer = _units(tmp_path, {"targets": ["198.18.0.0/24"], "discovery": "auto",
                                       "client_cert": "c.pem", "client_key": "c.key",
                                       "schedule": {"on_calendar": "Mon *-*-* 02:00:00"}})
    lines = set(service.splitlines())
    assert {"NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=dicomscan",
            "CapabilityBoundingSet=CAP_NET_RAW", "AmbientCapabilities=CAP_NET_RAW",
            f"LoadCredential=client_key:{key}"} <= lines
    assert not any(x.startswith("ReadWritePaths") for x in lines)
    assert "--client-key %d/client_key" in service
    assert "OnCalendar=Mon *-*-* 02:00:00" in timer
    service, _ = _units(tmp_path, {"targets": ["198.18.0.0/24"], "discovery": "tcp"})
    assert {"CapabilityBoundingSet=", "AmbientCapabilities="} <= set(service.splitlines())
    # an output outside the state directory could not be written under ProtectSystem=strict
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps({"jobs": {"night": {"targets": ["198.18.0.1"], "outputs": [
        {"format": "json", "path": "/srv/report.json"}]}}}))
    out = cli("schedule", "--print", "systemd", "--config", str(site))
    assert out.returncode == 2 and "outside /var/lib/dicomscan" in out.stderr


def test_cron_line_runs_the_job(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("jobs:\n  night:\n    targets: [198.18.0.1]\n"
                    "    schedule: {cron: '30 1 * * 1-5'}\n")
    out = cli("schedule", "--print", "cron", "--config", str(site), "--exec", "/usr/bin/dicomscan")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (f"30 1 * * 1-5 /usr/bin/dicomscan scan --config {site} "
                                  "--job night --quiet")
    assert os.path.isabs(str(site))


JOB_TWICE = """\
jobs:
  nightly:
    targets: [127.0.0.1]
    ports: [{a}, {b}]
    discovery: none
    fail_on: never
    fail_on_drift: [port-closed, device-vanished]
    drift_output: drift.jsonl
"""


@needs_dcmtk
def test_a_configured_job_run_twice_reports_exactly_the_change(
        store_location: str, tmp_path: Path) -> None:
    stays, stops = start_storescp(), start_storescp()
    site = tmp_path / "site.yaml"
    site.write_text(JOB_TWICE.format(a=stays.info.port, b=stops.info.port))
    run = ("scan", "--config", str(site), "-q", "--history", store_location, "--format", "json")
    try:
        first = cli(*run)
        assert first.returncode == 0 and "nothing to compare with" in first.stderr
        assert not (tmp_path / "drift.jsonl").exists()
        stops.stop()
        second = cli(*run)
    finally:
        stays.stop()
        stops.stop()
    assert second.returncode == 1, second.stderr  # the drift gate, not the findings
    assert "drift: port-closed" in second.stderr
    [event] = [json.loads(x) for x in (tmp_path / "drift.jsonl").read_text().splitlines()]
    assert (event["event_type"], event["kind"], event["port"], event["job"]) == \
        ("drift", "port-closed", stops.info.port, "nightly")


def test_plan_says_where_the_scan_would_be_recorded_and_creates_nothing(tmp_path: Path) -> None:
    """``scan --plan --history`` opened nothing and said nothing of the store: a path the
    scan would refuse passed the plan. It now runs the scan's checks, as reads only."""
    new = tmp_path / "no" / "such" / "folder" / "h.db"
    out = cli("scan", "127.0.0.1", "-p", "9", "--plan", "--history", str(new), "--job", "n1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == f"History: {new} (new: made by the scan), job n1"
    assert not (tmp_path / "no").exists()

    store = tmp_path / "h.db"
    assert cli("scan", "127.0.0.1", "-p", "9", "-q", "--history", str(store)).returncode == 0
    before = store.read_bytes()
    out = cli("scan", "127.0.0.1", "-p", "9", "--plan", "--history", str(store),
              "--format", "json")
    assert json.loads(out.stdout)["history"] == {"store": str(store), "job": None,
                                                 "exists": True}
    assert store.read_bytes() == before

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all, but long enough to be read as one" * 100)
    out = cli("scan", "127.0.0.1", "-p", "9", "--plan", "--history", str(garbage))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (
        f"dicomscan: cannot open the history {garbage}: file is not a database")
    real = cli("scan", "127.0.0.1", "-p", "9", "--history", str(garbage))
    assert real.returncode == 2 and "file is not a database" in real.stderr

    out = cli("scan", "127.0.0.1", "-p", "9", "--plan", "--history",
              "postgresql://scanner:s3cret@127.0.0.1:9/h")
    assert out.returncode == 0 and "s3cret" not in out.stdout + out.stderr
    assert out.stdout.splitlines()[-1] == (
        "History: postgresql+psycopg://scanner:***@127.0.0.1:9/h (not connected to)")
