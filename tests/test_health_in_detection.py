"""The detection association gives the health check before the follow-up probes, so a
DICOM service costs the device three connections in a default scan, not four: counted
on the wire by a forwarder in front of a real peer (tests/forwarder.py) and in the
peer's own log. The check before keeps its meaning: a C-ECHO answered in the
detection, or the refusal of a peer that rejects our calling AE (read exactly as the
engine's own check after reads it), and a device that dies right after its detection
is still reported by ``device-unresponsive-after-scan``. Where the detection shows
nothing (accepted without Verification), and for DICOM inside TLS, the check before
keeps an association of its own."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from scanner.lab.peers import RunningPeer, start_dcmqrscp, start_pynetdicom_scp, start_storescp
from tests.conftest import needs_dcmtk, run_scan
from tests.forwarder import forwarding

pytestmark = [pytest.mark.peers]
ASSOCIATE_RQ = b"\x01\x00"  # PDU type 1: every connection starts with an A-ASSOCIATE-RQ
RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04"


def _checks(svc: dict[str, Any]) -> dict[str, tuple[str, bool, str]]:
    return {o["phase"]: (o["method"], o["answered"], o["detail"])
            for o in svc["observations"] if o["kind"] == "health-check"}


@needs_dcmtk
def test_default_scan_of_storescp_costs_three_connections_and_keeps_its_echo_before() -> None:
    with start_storescp(["-v"]) as peer, forwarding(peer.info.port) as fwd:
        run = run_scan("127.0.0.1", str(fwd.port))
        log = peer.log()
    assert run.returncode == 0, run.stderr
    # Detection (with the C-ECHO before in it), the follow-up checks, the check after.
    assert fwd.connections == 3, fwd.first_bytes
    assert all(first.startswith(ASSOCIATE_RQ) for first in fwd.first_bytes), fwd.first_bytes
    assert log.count("Association Received") == 3, log
    # In the detection (the check before), the unknown-peer echo check, the check after.
    assert log.count("Received Echo Request") == 3, log
    [svc] = run.doc["hosts"][0]["services"]
    assert svc["name"] == "dicom"
    assert _checks(svc) == {"before": ("c-echo", True, "C-ECHO answered: success"),
                            "after": ("c-echo", True, "C-ECHO answered: success")}
    kinds = [(o["kind"], o.get("purpose"), o.get("phase")) for o in svc["observations"]]
    # The check before sits with the detection, ahead of every follow-up association.
    assert kinds[:2] == [("dicom-association", "detect,called-ae", None),
                         ("health-check", None, "before")], kinds
    [detect] = [o for o in svc["observations"] if o.get("purpose") == "detect,called-ae"]
    assert detect["outcome"] == "accepted" and detect["released"] is True
    before, after = (o["at"] for o in svc["observations"] if o["kind"] == "health-check")
    assert before < after


Starter = Callable[[], AbstractContextManager[RunningPeer]]
REJECTING = [
    # pynetdicom with require_calling_aet: A-ASSOCIATE-RJ, calling AE not recognised.
    pytest.param(lambda: start_pynetdicom_scp(require_calling_aet=["ONLY_THIS_SCU"]), (),
                 "calling AE title not recognised", id="pynetdicom"),
    # DCMTK dcmqrscp lets in one calling AE; ours is refused (it says "called AE").
    pytest.param(start_dcmqrscp, ("--ae-title", "DCMQRSCP"), "called AE title not recognised",
                 id="dcmqrscp", marks=needs_dcmtk),
]


@pytest.mark.parametrize(("start", "extra", "reason"), REJECTING)
def test_peer_rejecting_our_calling_ae_is_answered_before_without_a_connection_of_its_own(
    start: Starter, extra: tuple[str, ...], reason: str
) -> None:
    with start() as peer, forwarding(peer.info.port) as fwd:
        run = run_scan("127.0.0.1", str(fwd.port), *extra)
    assert run.returncode == 0, run.stderr
    [svc] = run.doc["hosts"][0]["services"]
    detect = run.association(fwd.port, "detect")
    assert detect["outcome"] == "rejected" and detect["reject"]["reason_text"] == reason
    checks = _checks(svc)
    assert checks["before"] == ("tcp-connect", True, "connected; association rejected")
    # The same reading as the engine's own check after, made in an association of its own.
    assert checks["before"] == checks["after"]
    # Every association of the scan, one a connection: none is a separate check before.
    associations = [o for o in svc["observations"] if o["kind"] == "dicom-association"]
    assert fwd.connections == len(associations) + 1, (fwd.first_bytes, associations)
    assert all(first.startswith(ASSOCIATE_RQ) for first in fwd.first_bytes)
    assert not [f for f in run.doc["findings"] if f["rule_id"] == "device-unresponsive-after-scan"]


@needs_dcmtk
def test_device_dying_right_after_its_detection_is_still_reported() -> None:
    """storescp answers the detection (and its C-ECHO), then goes down as the detection is
    released: its port refuses every connection after. Before the change the check before
    was a connection of its own, refused, so the device never counted as answering."""
    with start_storescp(["-v"]) as peer:
        state: dict[str, Any] = {}

        def on_data(index: int, data: bytes) -> None:
            if index == 0 and RELEASE_RQ in data:
                state["fwd"].die()  # nothing more gets in; the release itself still passes

        def on_closed(index: int) -> None:
            if index == 0:
                peer.process.kill()

        with forwarding(peer.info.port, on_closed, on_data) as fwd:
            state["fwd"] = fwd
            run = run_scan("127.0.0.1", str(fwd.port))
        log = peer.log()
    assert run.returncode == 0, run.stderr
    found = [f for f in run.doc["findings"] if f["rule_id"] == "device-unresponsive-after-scan"]
    assert [(f["status"], f["port"]) for f in found] == [("fail", fwd.port)], found
    timeline = found[0]["evidence"]["timeline"]
    assert any("before: c-echo answered (C-ECHO answered: success)" in t for t in timeline)
    assert any("after: tcp-connect no answer" in t for t in timeline), timeline
    assert fwd.connections == 1, fwd.first_bytes  # the rest were refused: the device was down
    assert log.count("Received Echo Request") == 1, log



@needs_dcmtk
def test_dicom_inside_tls_keeps_its_check_before_over_tls_after_the_tls_stage() -> None:
    """DICOM inside TLS is left as it was: its check before is a TLS connection of its
    own once the TLS probe has found DICOM there (between stages, where the checks can
    stop a host; see scanner/engine/health.py)."""
    certs = Path(__file__).resolve().parent.parent / "fixtures" / "certs"
    tls = ["+tls", str(certs / "server.key"), str(certs / "server.pem"), "--profile-bcp195",
           "-ic"]
    with start_storescp(["-v", *tls]) as peer, forwarding(peer.info.port) as fwd:
        run = run_scan("127.0.0.1", str(fwd.port))
        log = peer.log()
    assert run.returncode == 0, run.stderr
    [svc] = run.doc["hosts"][0]["services"]
    assert svc["name"] == "dicom-tls"
    assert _checks(svc) == {"before": ("c-echo", True, "C-ECHO answered: success"),
                            "after": ("c-echo", True, "C-ECHO answered: success")}
    kinds = [(o["kind"], o.get("purpose")) for o in svc["observations"]]
    assert kinds.index(("health-check", None)) < kinds.index(("dicom-association", "called-ae"))
    # On the wire: the TLS probe's own connections (its detection inside one of them),
    # one for each other association (the cleartext detection, the DICOM checks inside
    # TLS), and one each for the checks before and after.
    [summary] = [o for o in svc["observations"] if o["kind"] == "tls-summary"]
    others = [o for o in svc["observations"] if o["kind"] == "dicom-association"
              and not o["purpose"].startswith("detect-tls")]
    assert fwd.connections == summary["connections"] + len(others) + 2, fwd.connections
    # storescp logs those that got through TLS: the ones accepted, and the two checks.
    accepted = [o for o in svc["observations"] if o["kind"] == "dicom-association"
                and o["outcome"] == "accepted"]
    assert log.count("Association Received") == len(accepted) + 2, log

def test_detection_without_verification_keeps_a_check_before_of_its_own() -> None:
    """A peer that accepts the detection but not Verification gives no echo to read there:
    the check before stays an association of its own, with the meaning it always had."""
    with start_pynetdicom_scp(echo=False) as peer, forwarding(peer.info.port) as fwd:
        run = run_scan("127.0.0.1", str(fwd.port))
    assert run.returncode == 0, run.stderr
    [svc] = run.doc["hosts"][0]["services"]
    detect = run.association(fwd.port, "detect")
    assert detect["outcome"] == "accepted"
    assert [c["result_text"] for c in detect["contexts"] if c["name"] == "Verification"] != [
        "acceptance"]
    checks = _checks(svc)
    assert checks["before"] == ("tcp-connect", True, "connected; C-ECHO context-rejected")
    assert checks["before"] == checks["after"]
    associations = [o for o in svc["observations"] if o["kind"] == "dicom-association"]
    assert fwd.connections == len(associations) + 2, fwd.first_bytes  # before and after
