"""No patient data and no secret anywhere: a real Orthanc holds a study, and a scan with
--intrusive, -v, a client key and every output format must not carry the study's patient
name or ID, nor the key's path, in any output file, stdout or stderr (the log)."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from probes.dicom.store import object_uids, synthetic_object
from scanner.lab import peers
from tests.conftest import needs_orthanc

pytestmark = [pytest.mark.peers, needs_orthanc]

PATIENT_NAME = "SAFETYLEAK^PATIENT"
PATIENT_ID = "SAFETYLEAKID4711"
CERTS = Path(__file__).parent.parent / "fixtures" / "certs"
# The documented default login, so the intrusive web check is tried and accepted.
ORTHANC = {"AuthenticationEnabled": True, "RegisteredUsers": {"orthanc": "orthanc"},
           "RemoteAccessAllowed": True}


def put_study(http: int) -> None:
    import urllib.request

    ds = synthetic_object(object_uids(f"2.25.{uuid.uuid4().int}", "127.0.0.1", http))
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    request = urllib.request.Request(f"http://127.0.0.1:{http}/instances",
                                     data=buf.getvalue(), method="POST")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"orthanc:orthanc").decode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{http}/patients?expand", headers={
                "Authorization": request.headers["Authorization"]}), timeout=10) as answer:
        assert PATIENT_ID.encode() in answer.read()  # the archive really holds it


def test_no_patient_data_or_secret_in_any_output_or_log(tmp_path: Path) -> None:
    key = tmp_path / "SAFETY-SECRET-KEY-PATH.key"
    shutil.copy(CERTS / "client.key", key)
    texts: dict[str, str] = {}
    with peers.start_orthanc(ORTHANC) as peer:
        http = peer.info.extra_ports["http"]
        put_study(http)
        for fmt in ("json", "jsonl", "table"):
            out = tmp_path / f"scan.{fmt}"
            run = subprocess.run(
                [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p",
                 f"{peer.info.port},{http}", "--profile", "fast", "--intrusive", "-v",
                 "--client-cert", str(CERTS / "client.pem"), "--client-key", str(key),
                 "--format", fmt, "-o", str(out), "--fail-on", "never"],
                capture_output=True, text=True, timeout=180,
            )
            assert run.returncode == 0, run.stderr
            texts[f"{fmt} file"] = out.read_text()
            texts[f"{fmt} stdout"] = run.stdout
            texts[f"{fmt} stderr"] = run.stderr
    # The scan really did the intrusive things: a store and the default login.
    assert "default-credentials" in texts["json file"]
    assert "C-STORE" in texts["json file"]
    assert "scan settings" in texts["json stderr"] and "[redacted]" in texts["json stderr"]
    for where, text in texts.items():
        for secret in (PATIENT_NAME, PATIENT_NAME.split("^")[0], PATIENT_ID, key.name):
            assert secret not in text, f"{secret!r} found in {where}"
