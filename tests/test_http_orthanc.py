"""The HTTP probe against real Orthanc (Debian's 1.10.1) on loopback, without plugins
and with Debian's DICOMweb plugin (orthanc-dicomweb 1.7).

Measured: from loopback Orthanc serves its REST API whatever RemoteAccessAllowed says;
with AuthenticationEnabled it answers 401 realm "Orthanc Secure Area" to every path,
loopback included. Without plugins DICOMweb answers 404; with the plugin QIDO-RS
answers application/dicom+json, and 401 like the rest when authentication is on.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from probes.dicom.store import object_uids, synthetic_object
from scanner.lab import peers
from tests.conftest import IN_CI, ScanRun, needs_orthanc, run_scan

pytestmark = pytest.mark.peers

OPEN = {"RemoteAccessAllowed": True, "AuthenticationEnabled": False}
AUTH = {"AuthenticationEnabled": True, "RegisteredUsers": {"admin": "secret-pass"}}
DEFAULT_USER = {"AuthenticationEnabled": True, "RegisteredUsers": {"orthanc": "orthanc"}}
REALM = 'Basic realm="Orthanc Secure Area"'
GENERIC = [
    ("/", "root"),
    ("/system", "product"),
    ("/dicom-web/studies?limit=1", "dicomweb"),
    ("/wado", "dicomweb"),
    ("/dcm4chee-arc/aets/DCM4CHEE/rs/studies?limit=1", "dicomweb"),
    ("/patients?since=0&limit=1", "rest-api"),
    ("/studies?since=0&limit=1", "rest-api"),
]


@pytest.fixture
def orthanc(request: pytest.FixtureRequest) -> Iterator[peers.RunningPeer]:
    overrides: dict[str, Any] = request.param
    with peers.start_orthanc(overrides) as peer:
        yield peer


def _scan(peer: peers.RunningPeer, *extra: str) -> tuple[ScanRun, int, int]:
    port, http = peer.info.port, peer.info.extra_ports["http"]
    return run_scan("127.0.0.1", f"{port},{http}", "--profile", "fast", *extra), port, http


def _statuses(run: ScanRun, http: int) -> list[tuple[str, str, int | None]]:
    return [(c["path"], c["purpose"], c["status"]) for c in run.observations(http, "http-check")]


def _http_verdicts(run: ScanRun, port: int) -> dict[str, str]:
    return {k: v for k, v in run.verdicts(port).items() if k.startswith(("http-", "software-"))}


@needs_orthanc
@pytest.mark.parametrize("orthanc", [OPEN], indirect=True)
def test_orthanc_without_authentication(orthanc: peers.RunningPeer) -> None:
    run, port, http = _scan(orthanc)
    svc = run.service(http)
    assert (svc["name"], svc["product"], svc["version"]) == ("http", "Orthanc", "1.10.1")
    statuses = [200 if p == "/system" else 301 if p == "/" else 404 for p, _ in GENERIC[:5]]
    assert _statuses(run, http) == [
        *((p, purpose, s) for (p, purpose), s in zip(GENERIC[:5], statuses, strict=True)),
        ("/patients?since=0&limit=1", "rest-api", 200),
        ("/studies?since=0&limit=1", "rest-api", 200),
    ]
    rest = [c for c in run.observations(http, "http-check") if c["purpose"] == "rest-api"]
    assert [c["items"] for c in rest] == [0, 0]  # empty archive; entries are never stored
    [summary] = run.observations(http, "http-summary")
    assert summary["product"] == "Orthanc" and summary["version"] == "1.10.1"
    assert summary["identified_by"] == "GET /system: Version, Name, ApiVersion"
    assert summary["tls"] is False and summary["auth_challenge"] is False
    assert summary["default_credentials_accepted"] is None
    assert _http_verdicts(run, http) == {
        "http-unauthenticated": "fail",
        "http-cleartext": "fail",
        "software-vulnerable-version": "fail",  # 1.10.1 < 1.12.0: CVE-2023-33466
    }
    exposed = run.finding(http, "http-unauthenticated")["evidence"]
    assert exposed["answered_without_credentials"] == [
        {"path": "/patients?since=0&limit=1", "status": 200, "items": 0},
        {"path": "/studies?since=0&limit=1", "status": 200, "items": 0},
    ]
    assert "CVE-2023-33466" in run.finding(http, "software-vulnerable-version")["evidence"]["cves"]
    # The DICOM port never got an HTTP request: no HTTP observation there.
    assert run.observations(port, "http-check") == []
    assert run.service(port)["name"] == "dicom"


@needs_orthanc
@pytest.mark.parametrize("orthanc", [AUTH], indirect=True)
def test_orthanc_with_authentication(orthanc: peers.RunningPeer) -> None:
    run, _, http = _scan(orthanc, "--intrusive")
    svc = run.service(http)
    assert (svc["product"], svc["version"]) == ("Orthanc", None)
    checks = run.observations(http, "http-check")
    anonymous = [c for c in checks if not c["with_credentials"]]
    assert [(c["path"], c["purpose"], c["status"]) for c in anonymous] == [
        (p, purpose, 401) for p, purpose in GENERIC
    ]
    assert {c["auth_realm"] for c in anonymous} == {REALM}
    [tried] = [c for c in checks if c["with_credentials"]]
    assert (tried["path"], tried["purpose"], tried["status"]) == (
        "/system",
        "default-credentials",
        401,
    )
    [summary] = run.observations(http, "http-summary")
    assert summary["auth_challenge"] is True
    assert summary["default_credentials_tried"] is True
    assert summary["default_credentials_accepted"] is False
    assert _http_verdicts(run, http) == {
        "http-unauthenticated": "pass",
        "http-cleartext": "fail",
        "http-default-credentials": "pass",
    }


@needs_orthanc
@pytest.mark.parametrize("orthanc", [AUTH], indirect=True)
def test_default_credentials_not_tried_without_intrusive(orthanc: peers.RunningPeer) -> None:
    run, _, http = _scan(orthanc)
    assert not [c for c in run.observations(http, "http-check") if c["with_credentials"]]
    [summary] = run.observations(http, "http-summary")
    assert summary["default_credentials_tried"] is False
    assert "http-default-credentials" not in run.verdicts(http)


@needs_orthanc
@pytest.mark.parametrize("orthanc", [DEFAULT_USER], indirect=True)
def test_orthanc_default_credentials_accepted(orthanc: peers.RunningPeer) -> None:
    run, _, http = _scan(orthanc, "--intrusive")
    [summary] = run.observations(http, "http-summary")
    assert summary["default_credentials_accepted"] is True
    # Read with the default user, so the advisories can still match.
    assert (summary["product"], summary["version"]) == ("Orthanc", "1.10.1")
    assert summary["identified_by"] == (
        "GET /system with the default credentials: Version, Name, ApiVersion"
    )
    assert _http_verdicts(run, http) == {
        "http-unauthenticated": "pass",
        "http-cleartext": "fail",
        "http-default-credentials": "fail",
        "software-vulnerable-version": "fail",
    }
    evidence = run.finding(http, "http-default-credentials")["evidence"]
    assert "orthanc" not in str(evidence["tried"])  # the user name and password are not echoed


# --------------------------------------------------------------- DICOMweb plugin

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
needs_dicomweb = pytest.mark.skipif(
    not DICOMWEB_PLUGIN.is_file() and not IN_CI, reason="orthanc-dicomweb not installed"
)
DICOMWEB = {
    "Plugins": [str(DICOMWEB_PLUGIN)],
    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    "RemoteAccessAllowed": True,
}
MARKER = "DICOMSCAN^LEAK^CHECK"


def _put_study(http: int, auth: tuple[str, str] | None = None) -> None:
    """One synthetic instance in the archive (through its REST API, by the test), so the
    queries have something to match; its patient name must never reach the results."""
    ds = synthetic_object(object_uids(f"2.25.{uuid.uuid4().int}", "127.0.0.1", http))
    ds.PatientName = MARKER
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    request = urllib.request.Request(
        f"http://127.0.0.1:{http}/instances", data=buf.getvalue(), method="POST"
    )
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@needs_dicomweb
@pytest.mark.parametrize("orthanc", [{**DICOMWEB, "AuthenticationEnabled": False}], indirect=True)
def test_dicomweb_plugin_open(orthanc: peers.RunningPeer) -> None:
    http = orthanc.info.extra_ports["http"]
    _put_study(http)
    run, _, _ = _scan(orthanc)
    statuses = {c["path"]: (c["status"], c["items"]) for c in run.observations(http, "http-check")}
    # QIDO-RS answers with one study (limit=1), counted and discarded.
    assert statuses["/dicom-web/studies?limit=1"] == (200, 1)
    assert statuses["/studies?since=0&limit=1"] == (200, 1)
    exposed = run.finding(http, "http-unauthenticated")
    assert exposed["status"] == "fail"
    assert {"path": "/dicom-web/studies?limit=1", "status": 200, "items": 1} in (
        exposed["evidence"]["answered_without_credentials"]
    )
    assert MARKER not in json.dumps(run.doc)  # no patient data in the results


@needs_dicomweb
@pytest.mark.parametrize("orthanc", [{**DICOMWEB, **AUTH}], indirect=True)
def test_dicomweb_plugin_with_authentication(orthanc: peers.RunningPeer) -> None:
    http = orthanc.info.extra_ports["http"]
    _put_study(http, ("admin", "secret-pass"))
    run, _, _ = _scan(orthanc)
    statuses = {c["path"]: c["status"] for c in run.observations(http, "http-check")}
    assert statuses["/dicom-web/studies?limit=1"] == 401
    assert run.verdicts(http)["http-unauthenticated"] == "pass"
    assert MARKER not in json.dumps(run.doc)
