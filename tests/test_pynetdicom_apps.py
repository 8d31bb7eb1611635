"""pynetdicom's own applications (``python -m pynetdicom echoscp | storescp | qrscp``), as
their users run them, scanned by the real CLI on loopback.

Each answers differently for an unknown peer: echoscp offers Verification only, storescp
Verification and Storage, qrscp Verification, Storage, Query/Retrieve and Modality
Worklist, all of them for any calling and called AE title. qrscp also holds a real
patient's study in the last test, to show what a scan leaves of it: nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pynetdicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from scanner.lab import peers
from tests.conftest import run_scan

pytestmark = pytest.mark.peers

OPEN_TO_ANYONE = {
    "dicom-cleartext": "fail",
    "dicom-called-ae-not-enforced": "fail",
    "dicom-calling-ae-not-validated": "fail",
    "dicom-echo-open": "fail",
    "dicom-version-disclosed": "fail",
    "software-vulnerable-version": "pass",
    "port-not-allowed": "fail",  # the lab's free port is in no baseline
}


def _fingerprinted(run_observations: list[dict[str, object]]) -> tuple[object, object]:
    [fingerprint] = run_observations
    return fingerprint["product"], fingerprint["version"]


def test_echoscp_answers_echo_and_nothing_else() -> None:
    with peers.start_pynetdicom_app("echoscp") as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", str(port))
    assert run.service(port)["name"] == "dicom"
    assert _fingerprinted(run.observations(port, "fingerprint")) == (
        "pynetdicom", pynetdicom.__version__)
    ops = run.operations(port)
    assert set(ops) == {"C-ECHO"}  # no other context was accepted, so nothing else was tried
    assert (ops["C-ECHO"]["outcome"], ops["C-ECHO"]["status"]) == ("authorised", 0)
    assert run.verdicts(port) == {**OPEN_TO_ANYONE, "dicom-query-open": "pass",
                                  "dicom-retrieve-open": "pass", "dicom-store-open": "pass"}


def test_storescp_accepts_storage_and_stores_only_with_intrusive() -> None:
    with peers.start_pynetdicom_app("storescp") as peer:
        port = peer.info.port
        received = peer.tmpdir / "received"
        safe = run_scan("127.0.0.1", str(port))
        after_safe = sorted(received.iterdir())
        intrusive = run_scan("127.0.0.1", str(port), "--intrusive")
        after_intrusive = sorted(received.iterdir())
    store = safe.operations(port)["C-STORE"]
    assert (store["outcome"], store["confidence"]) == ("not-tested", "inferred")
    assert safe.verdicts(port) == {**OPEN_TO_ANYONE, "dicom-query-open": "pass",
                                   "dicom-retrieve-open": "pass", "dicom-store-open": "fail"}
    assert after_safe == []  # the default scan wrote nothing
    store = intrusive.operations(port)["C-STORE"]
    assert (store["outcome"], store["status"], store["confidence"]) == (
        "authorised", 0, "confirmed")
    assert len(after_intrusive) == 1  # the one synthetic object, nothing more


def _patient_study(folder: Path) -> Path:
    """A Secondary Capture instance of a made-up patient whose names must never reach a
    scan's results."""
    ds = Dataset()
    ds.PatientName, ds.PatientID = "SENTINEL^PATIENT", "SENTINEL-ID-4711"
    ds.StudyDescription = "SENTINEL STUDY"
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / "patient.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_qrscp_with_a_patient_study_is_judged_without_reading_it(tmp_path: Path) -> None:
    with peers.start_pynetdicom_app("qrscp", args=["-v"]) as peer:
        port = peer.info.port
        # pynetdicom's own storescu puts the study into qrscp, as a modality would.
        sent = subprocess.run(
            [sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(port),
             str(_patient_study(tmp_path)), "-aec", "QRSCP"],
            capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        instances = peer.tmpdir / "instances"
        assert len(list(instances.rglob("*"))) >= 1
        before = {p: p.stat().st_mtime_ns for p in instances.rglob("*")}
        run = run_scan("127.0.0.1", str(port))
        after = {p: p.stat().st_mtime_ns for p in instances.rglob("*")}
        # qrscp -v logs each request it serves and each response status it sends.
        scan_log = peer.log_path.read_text(errors="replace").split("Instance added")[-1]
    ops = run.operations(port)
    assert (ops["C-FIND"]["outcome"], ops["C-FIND"]["status"]) == ("authorised", 0)
    # A permitted C-GET of a study that does not exist, and a C-MOVE to a destination
    # qrscp does not know (its one configured destination is STORESCP).
    assert (ops["C-GET"]["outcome"], ops["C-GET"]["status"]) == ("authorised", 0)
    assert (ops["C-MOVE"]["outcome"], ops["C-MOVE"]["status"]) == ("refused", 0xA801)
    assert run.verdicts(port) == {**OPEN_TO_ANYONE, "dicom-query-open": "fail",
                                  "dicom-retrieve-open": "fail", "dicom-store-open": "fail"}
    # The study is where it was, unread by the scan: qrscp matched nothing (no Pending
    # response, which would carry a match), sent and stored nothing, and no name or ID of
    # the patient is in the results or on the terminal.
    assert "Received C-FIND request" in scan_log and "Received C-GET request" in scan_log
    assert "Pending" not in scan_log and "C-STORE" not in scan_log
    assert after == before
    for text in (run.stderr, json.dumps(run.doc)):
        assert "SENTINEL" not in text


def test_qrscp_on_ipv6_loopback_is_judged_as_on_ipv4() -> None:
    with peers.start_pynetdicom_app("qrscp", host="::1") as peer:
        port = peer.info.port
        run = run_scan("::1", str(port))
    [host] = run.doc["hosts"]
    assert host["address"] == "::1"
    [service] = host["services"]
    assert service["name"] == "dicom" and service["product"] == "pynetdicom"
    assert run.verdicts(port) == {**OPEN_TO_ANYONE, "dicom-query-open": "fail",
                                  "dicom-retrieve-open": "fail", "dicom-store-open": "fail"}
