"""SIGTERM is handled like Ctrl-C: a real DICOM peer is kept busy inside a C-STORE, the
scanner is sent SIGTERM, and the association is aborted (the peer sees the A-ABORT), the
partial result is written, and the exit code is 130.

DCMTK's storescp (``--sleep-during``) is the realistic peer, but it writes its response
before reading again and so only sees a broken pipe; pynetdicom reads PDUs on a thread of
its own while its handler is busy, so it is the one that can witness the A-ABORT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scanner.lab.peers import start_storescp
from tests.conftest import needs_dcmtk

pytestmark = [pytest.mark.peers]


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def scan_then_sigterm(port: int, started, out: Path) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    scan = subprocess.Popen(
        [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p", str(port),
         "--intrusive", "--profile", "fast", "--timeout", "120", "--format", "json",
         "-o", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_for(started, 60)
        scan.send_signal(signal.SIGTERM)
        _, err = scan.communicate(timeout=20)
    finally:
        scan.kill()
    return scan.returncode, err


def test_sigterm_mid_store_sends_a_abort_to_pynetdicom(tmp_path: Path) -> None:
    import threading

    from pynetdicom import AE, evt
    from pynetdicom.pdu import A_ABORT_RQ
    from pynetdicom.sop_class import SecondaryCaptureImageStorage, Verification

    in_store, aborted = threading.Event(), threading.Event()

    def on_store(event: evt.Event) -> int:
        in_store.set()
        time.sleep(5)
        return 0x0000

    def on_pdu(event: evt.Event) -> None:
        # An A-ABORT PDU itself: EVT_ABORTED would also fire on a bare connection close.
        if isinstance(event.pdu, A_ABORT_RQ):
            aborted.set()

    ae = AE(ae_title="BUSYSCP")
    ae.add_supported_context(Verification)
    ae.add_supported_context(SecondaryCaptureImageStorage)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[
        (evt.EVT_C_STORE, on_store), (evt.EVT_PDU_RECV, on_pdu)])
    try:
        port = server.server_address[1]
        out = tmp_path / "scan.json"
        code, err = scan_then_sigterm(port, in_store.is_set, out)
        assert code == 130, err
        assert aborted.wait(10), "the peer never saw an A-ABORT"
    finally:
        server.shutdown()
    assert json.loads(out.read_text())["scan"]["interrupted"] is True


@needs_dcmtk
def test_sigterm_mid_store_writes_partial_results_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    with start_storescp(["-v", "--sleep-during", "6"]) as peer:
        code, err = scan_then_sigterm(
            peer.info.port, lambda: "Received Store Request" in peer.log(), out)
        assert code == 130, err
        assert "interrupted; partial results written" in err
    doc = json.loads(out.read_text())
    assert doc["scan"]["interrupted"] is True
    assert doc["hosts"][0]["services"][0]["name"] == "dicom"
