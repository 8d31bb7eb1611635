"""--intrusive: one synthetic Secondary Capture object proves (or disproves) C-STORE.

Real peers on loopback, the real CLI. What each peer did was measured first:
storescp stores the object in its incoming folder; Orthanc with DicomAlwaysAllowStore
false (and Echo allowed, so the unknown AE still associates) aborts the association on
the C-STORE-RQ and stores nothing; Orthanc with Echo and Store both false and no
DicomModalities rejects the association itself ("calling AE title not recognised").
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from pydicom import dcmread

from probes.dicom import codes
from probes.dicom.store import DESCRIPTION, PATIENT_ID, PATIENT_NAME, object_uids
from scanner.lab import peers
from tests.conftest import ScanRun, needs_dcmtk, needs_orthanc, run_scan

pytestmark = pytest.mark.peers


def _sent_uids(sent: str) -> dict[str, str]:
    """The UIDs the report says were sent: what a site would use to delete the object."""
    return dict(re.findall(r"(StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID)=([0-9.]+)", sent))


def _store(run: ScanRun, port: int) -> dict[str, Any]:
    return run.operations(port)["C-STORE"]


def _orthanc_get(peer: peers.RunningPeer, path: str) -> Any:
    url = f"http://127.0.0.1:{peer.info.extra_ports['http']}{path}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def test_object_uids_are_valid_fresh_and_per_target() -> None:
    a = object_uids("2.25.1", "127.0.0.1", 104)
    assert a == object_uids("2.25.1", "127.0.0.1", 104)  # reproducible from the report
    uids = {a.study, a.series, a.instance}
    assert len(uids) == 3
    assert all(u.startswith("2.25.") and len(u) <= 64 for u in uids)
    assert object_uids("2.25.2", "127.0.0.1", 104).instance != a.instance  # another scan
    assert object_uids("2.25.1", "127.0.0.1", 105).instance != a.instance  # another port


@needs_dcmtk
def test_storescp_stores_the_test_object() -> None:
    with peers.start_storescp() as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", str(port), "--intrusive")
        stored = [dcmread(p) for p in sorted((peer.tmpdir / "incoming").iterdir())]
    op = _store(run, port)
    assert op["outcome"] == "authorised" and op["confidence"] == "confirmed"
    assert op["status"] == 0 and op["sop_class"] == codes.SC_STORAGE
    assert run.association(port, "operation C-STORE")["released"] is True
    # Exactly one object arrived, and it is the one the report names.
    [ds] = stored
    sent = _sent_uids(op["sent"])
    assert sent == {
        "StudyInstanceUID": ds.StudyInstanceUID,
        "SeriesInstanceUID": ds.SeriesInstanceUID,
        "SOPInstanceUID": ds.SOPInstanceUID,
    }
    assert ds.SOPClassUID == codes.SC_STORAGE
    assert (ds.PatientID, str(ds.PatientName)) == (PATIENT_ID, PATIENT_NAME)
    assert ds.StudyDescription == ds.SeriesDescription == ds.ImageComments == DESCRIPTION
    assert (ds.ConversionType, ds.Manufacturer) == ("WSD", "dicomscan")
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, len(ds.PixelData)) == (8, 8, 8, 64)
    finding = run.finding(port, "dicom-store-open")
    assert (finding["status"], finding["confidence"]) == ("fail", "confirmed")
    evidence = json.dumps(finding["evidence"])
    assert all(uid in evidence for uid in sent.values()) and PATIENT_ID in evidence


@needs_dcmtk
def test_without_intrusive_nothing_is_stored() -> None:
    with peers.start_storescp() as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", str(port))
        incoming = list((peer.tmpdir / "incoming").iterdir())
    assert incoming == []
    op = _store(run, port)
    assert (op["outcome"], op["confidence"], op["sent"]) == ("not-tested", "inferred", "")
    assert not [
        a for a in run.observations(port, "dicom-association") if "C-STORE" in a["purpose"]
    ]
    finding = run.finding(port, "dicom-store-open")
    assert (finding["status"], finding["confidence"]) == ("fail", "inferred")


@needs_dcmtk
def test_storescp_abort_after_store_request_is_a_refusal() -> None:
    # storescp --abort-after aborts once the C-STORE-RQ is in, and keeps nothing.
    with peers.start_storescp(["--abort-after"]) as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", str(port), "--intrusive")
        incoming = list((peer.tmpdir / "incoming").iterdir())
    assert incoming == []
    op = _store(run, port)
    assert (op["outcome"], op["confidence"]) == ("aborted", "confirmed")
    assert "SOPInstanceUID=2.25." in op["sent"]  # named all the same: it was sent
    assert run.verdicts(port)["dicom-store-open"] == "pass"


@needs_orthanc
def test_orthanc_default_stores_the_test_object() -> None:
    with peers.start_orthanc() as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", str(port), "--intrusive")
        instances = _orthanc_get(peer, "/instances")
        tags = [_orthanc_get(peer, f"/instances/{i}/simplified-tags") for i in instances]
    op = _store(run, port)
    assert (op["outcome"], op["confidence"], op["status"]) == ("authorised", "confirmed", 0)
    [tag] = tags
    assert tag["PatientID"] == PATIENT_ID and tag["PatientName"] == PATIENT_NAME
    assert tag["SOPInstanceUID"] == _sent_uids(op["sent"])["SOPInstanceUID"]
    assert tag["StudyInstanceUID"] == _sent_uids(op["sent"])["StudyInstanceUID"]
    finding = run.finding(port, "dicom-store-open")
    assert (finding["status"], finding["confidence"]) == ("fail", "confirmed")


@needs_orthanc
def test_orthanc_store_refused_to_unknown_peer() -> None:
    # Echo stays open, so the unknown calling AE associates; only storage is closed.
    config = {"DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": False}
    with peers.start_orthanc(config) as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", str(port), "--intrusive")
        instances = _orthanc_get(peer, "/instances")
        log = peer.log()
    assert run.association(port, "calling-ae")["outcome"] == "accepted"
    assert run.association(port, "operation C-STORE")["outcome"] == "accepted"
    op = _store(run, port)
    # Orthanc's refusal is an A-ABORT, as for a refused C-FIND, never a status.
    assert (op["outcome"], op["confidence"], op["status"]) == ("aborted", "confirmed", None)
    assert "Rejected Store request" in log
    assert instances == []
    finding = run.finding(port, "dicom-store-open")
    assert (finding["status"], finding["confidence"]) == ("pass", "confirmed")


@needs_orthanc
def test_orthanc_closed_to_unknown_peers_gets_no_store() -> None:
    # Echo and Store both off and no DicomModalities: Orthanc rejects the association.
    config = {"DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False}
    with peers.start_orthanc(config) as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", str(port), "--intrusive")
        instances = _orthanc_get(peer, "/instances")
    detect = run.association(port, "detect")
    assert detect["reject"]["reason_text"] == "calling AE title not recognised"
    assert "C-STORE" not in run.operations(port)
    assert instances == []
    finding = run.finding(port, "dicom-store-open")
    assert (finding["status"], finding["confidence"]) == ("pass", "confirmed")
