"""A device that dies mid-scan: a real DCMTK storescp is killed right after the health
check before its probes. The scanner backs off on the refused connections, stops at the
limit, confirms with one check after, reports ``device-unresponsive-after-scan`` with the
timeline, and sends nothing more to the host: a second service on it (a counting
listener) hears no connection after the kill. The same holds for DICOM inside TLS, whose
checks are made over TLS once the TLS probe has found DICOM there."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scanner.engine.backoff import FAILURE_LIMIT, HostStopped, Watch
from scanner.lab.peers import start_storescp
from tests.conftest import needs_dcmtk

pytestmark = [pytest.mark.peers, needs_dcmtk]
CERTS = Path(__file__).resolve().parent.parent / "fixtures" / "certs"
TLS = ["+tls", str(CERTS / "server.key"), str(CERTS / "server.pem"), "--profile-bcp195", "-ic"]


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_device_killed_mid_scan_is_reported_and_left_alone(tmp_path: Path, tls: bool) -> None:
    accepts: list[float] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepts.append(time.monotonic())
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    other = listener.getsockname()[1]
    out = tmp_path / "scan.json"
    with start_storescp(["-v", *(TLS if tls else [])]) as peer:
        port = peer.info.port
        scan = subprocess.Popen(
            [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p", f"{port},{other}",
             "--format", "json", "-o", str(out), "-q", "--fail-on", "never"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            end = time.monotonic() + 60
            while "Received Echo Request" not in peer.log() and time.monotonic() < end:
                time.sleep(0.005)
            assert "Received Echo Request" in peer.log(), peer.log()
            peer.process.kill()  # the device dies right after its health check
            killed = time.monotonic()
            _, err = scan.communicate(timeout=120)
        finally:
            scan.kill()
            listener.close()
    assert scan.returncode == 0, err
    doc = json.loads(out.read_text())
    found = [f for f in doc["findings"] if f["rule_id"] == "device-unresponsive-after-scan"]
    assert [(f["status"], f["port"], f["severity"]) for f in found] == [("fail", port, "high")]
    timeline = found[0]["evidence"]["timeline"]
    assert any("before: c-echo answered" in t for t in timeline), timeline
    assert any("after: tcp-connect no answer" in t for t in timeline), timeline
    assert any("stopped" in t for t in timeline), timeline
    svc = next(s for s in doc["hosts"][0]["services"] if s["port"] == port)
    assert svc["name"] == ("dicom-tls" if tls else "dicom")
    backoff = [o for o in svc["observations"] if o["kind"] == "connection-backoff"]
    # The DICOM checks' connection was refused (a back-off); the check after stopped it.
    assert backoff and backoff[0]["stopped"] and backoff[0]["failures"] >= 1
    # The other service on the host was identified before the kill and never touched after.
    assert accepts and all(t < killed for t in accepts), (accepts, killed)


def test_dicom_inside_tls_is_checked_before_and_after_over_tls(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    with start_storescp(TLS) as peer:
        done = subprocess.run(
            [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p", str(peer.info.port),
             "--format", "json", "-o", str(out), "-q", "--fail-on", "never"],
            capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [svc] = json.loads(out.read_text())["hosts"][0]["services"]
    checks = [(o["phase"], o["method"], o["answered"]) for o in svc["observations"]
              if o["kind"] == "health-check"]
    assert svc["name"] == "dicom-tls"
    assert checks == [("before", "c-echo", True), ("after", "c-echo", True)], checks
    # The check before comes ahead of the DICOM checks inside TLS.
    kinds = [(o["kind"], o.get("purpose")) for o in svc["observations"]]
    before = kinds.index(("health-check", None))
    assert ("dicom-association", "called-ae") in kinds[before:], kinds


def test_back_off_doubles_is_bounded_and_stops_at_the_limit() -> None:
    import asyncio

    watch = Watch()
    waits: list[float] = []

    async def attempts() -> None:
        for _ in range(FAILURE_LIMIT):
            before = watch.waited
            await watch.before()
            waits.append(watch.waited - before)
            watch.after(ConnectionRefusedError())
        with pytest.raises(HostStopped):
            await watch.before()

    asyncio.run(attempts())
    assert waits == [0, 0.5, 1.0, 2.0]
    assert watch.stopped == f"{FAILURE_LIMIT} connection failures in a row"
    # A success in between resets the count; the wait never exceeds the bound.
    w = Watch()
    w.after(TimeoutError())
    w.after(None)
    assert w.in_a_row == 0 and w.failures == 1
