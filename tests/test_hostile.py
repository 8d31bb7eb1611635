"""Hostile and broken peers: each ends as a clear observation within the timeout.

The peers are scripted (tests/hostile.py) because no real product misbehaves on demand;
the real products are covered in test_dicom_peers.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import run_scan
from tests.hostile import hostile_peer

TIMEOUT = "1.5"


@pytest.mark.parametrize(
    "behaviour, name, outcome, detail",
    [
        ("garbage", "unknown", "not-dicom", "answer is not a DICOM PDU"),
        ("huge-ac", "dicom", "error", "declares 4294967280 bytes"),
        ("slow", "dicom", "no-answer", "no answer within 1.5 s"),
        ("close", "unknown", "closed", "closed the connection without answering"),
        ("http", "http", "not-dicom", "answer is not a DICOM PDU"),
        ("silent", "unknown", "no-answer", "no answer within 1.5 s"),
        ("abort", "dicom", "aborted", "service-user: reason not specified"),
        ("reject", "dicom", "rejected", "called AE title not recognised"),
    ],
)
def test_hostile_peer_is_recorded_not_fatal(
    behaviour: str, name: str, outcome: str, detail: str
) -> None:
    with hostile_peer(behaviour) as peer:
        started = time.monotonic()
        run = run_scan("127.0.0.1", str(peer.port), "--timeout", TIMEOUT, timeout=30)
        elapsed = time.monotonic() - started
        first = peer.received[0] if peer.received else b""
    assert run.returncode == 0
    svc = run.service(peer.port)
    detect = run.association(peer.port, "detect")
    assert svc["name"] == name
    assert detect["outcome"] == outcome
    assert detail in detect["detail"]
    # The first bytes every peer saw were our A-ASSOCIATE-RQ (PDU type 0x01).
    if behaviour != "close":
        assert first[:1] == b"\x01"
    assert elapsed < 15, f"{behaviour} took {elapsed:.1f} s"


def test_garbage_and_http_keep_their_first_bytes_as_evidence() -> None:
    with hostile_peer("http") as peer:
        run = run_scan("127.0.0.1", str(peer.port), "--timeout", TIMEOUT)
    [banner] = run.observations(peer.port, "banner")
    assert banner["text"].startswith("HTTP/1.1 400 Bad Request")
    assert bytes.fromhex(banner["first_bytes_hex"]).startswith(b"HTTP/1.1 400")


def test_huge_declared_length_is_not_allocated() -> None:
    with hostile_peer("huge-ac") as peer:
        run = run_scan("127.0.0.1", str(peer.port), "--timeout", TIMEOUT)
    detect = run.association(peer.port, "detect")
    assert detect["first_bytes_hex"].startswith("0200fffffff0")


def test_ctrl_c_keeps_what_was_found() -> None:
    with hostile_peer("silent") as silent, hostile_peer("reject") as reject:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p",
             f"{reject.port},{silent.port}", "--format", "json", "--timeout", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # Wait until the silent peer holds our association request, then interrupt.
        assert silent.wait_received(6, timeout=20)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    import json

    doc = json.loads(out)
    assert doc["scan"]["interrupted"] is True
    ports = {p["port"]: p["state"] for p in doc["hosts"][0]["ports"]}
    assert ports[reject.port] == "open"
    services = {s["port"]: s["name"] for s in doc["hosts"][0]["services"]}
    assert services[reject.port] == "dicom"
