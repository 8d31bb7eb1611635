"""The DICOM probe against real peers: Orthanc, DCMTK storescp and dcmqrscp, MIR CTN.

Every peer runs on a free (non-standard) loopback port, so each test also shows that
DICOM is found off the usual ports. Assertions are on the JSON the real CLI prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scanner.lab import peers
from tests.conftest import needs_ctn, needs_dcmtk, needs_orthanc, run_scan

pytestmark = pytest.mark.peers

DCMTK_UID = "1.2.276.0.7230010.3.0.3.6.7"


@pytest.fixture
def orthanc(request: pytest.FixtureRequest) -> Iterator[peers.RunningPeer]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    with peers.start_orthanc(overrides) as peer:
        yield peer


@needs_orthanc
def test_orthanc_defaults(orthanc: peers.RunningPeer) -> None:
    port, http = orthanc.info.port, orthanc.info.extra_ports["http"]
    run = run_scan("127.0.0.1", f"{port},{http}", "--profile", "normal")
    assert run.service(port)["name"] == "dicom"
    assert run.service(http)["name"] == "http"
    detect = run.association(port, "detect")
    assert detect["outcome"] == "accepted" and detect["released"] is True
    assert detect["peer"]["implementation_class_uid"] == DCMTK_UID
    assert detect["peer"]["implementation_version_name"] == "OFFIS_DCMTK_367"
    accepted = {c["name"] for c in detect["contexts"] if c["result"] == 0}
    assert {"Verification", "Study Root Q/R FIND", "CT Image Storage"} <= accepted
    ops = run.operations(port)
    assert ops["C-ECHO"]["outcome"] == "authorised"
    # Orthanc accepts the FIND context from anyone but aborts the C-FIND itself.
    assert ops["C-FIND"]["outcome"] == "aborted"
    assert ops["C-GET"]["outcome"] == "aborted"
    assert ops["C-MOVE"]["outcome"] == "aborted"
    assert ops["C-STORE"]["outcome"] == "not-tested"
    assert run.verdicts(port) == {
        "dicom-cleartext": "fail",
        "dicom-called-ae-not-enforced": "fail",
        "dicom-calling-ae-not-validated": "fail",
        "dicom-echo-open": "fail",
        "dicom-query-open": "pass",
        "dicom-retrieve-open": "pass",
        "dicom-store-open": "fail",
        "dicom-version-disclosed": "fail",
        "port-not-allowed": "fail",  # the lab's free port is in no baseline
    }
    assert run.finding(port, "dicom-store-open")["confidence"] == "inferred"
    # The HTTP port got one A-ASSOCIATE-RQ and answered HTTP: recorded, not judged as DICOM.
    [banner] = run.observations(http, "banner")
    assert banner["text"].startswith("HTTP/1.0 400 Bad Request")


@needs_orthanc
@pytest.mark.parametrize(
    "orthanc",
    [{"DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "DicomCheckCalledAet": True}],
    indirect=True,
)
def test_orthanc_permissive_query_and_enforced_called_ae(orthanc: peers.RunningPeer) -> None:
    port = orthanc.info.port
    run = run_scan("127.0.0.1", str(port), "--ae-title", "ORTHANC")
    assert run.association(port, "called-ae")["reject"]["reason_text"] == (
        "called AE title not recognised"
    )
    ops = run.operations(port)
    assert ops["C-FIND"]["outcome"] == "authorised"
    assert ops["C-FIND"]["status"] == 0 and ops["C-FIND"]["confidence"] == "confirmed"
    # A permitted C-GET of a study that does not exist: 0xC000, processed, not refused.
    assert ops["C-GET"]["status"] == 0xC000 and ops["C-GET"]["outcome"] == "authorised"
    assert ops["C-GET"]["confidence"] == "inferred"
    verdicts = run.verdicts(port)
    assert verdicts["dicom-called-ae-not-enforced"] == "pass"
    assert verdicts["dicom-query-open"] == "fail"
    assert run.finding(port, "dicom-query-open")["confidence"] == "confirmed"
    assert verdicts["dicom-retrieve-open"] == "fail"
    assert run.returncode == 0  # --fail-on never


@needs_orthanc
@pytest.mark.parametrize("orthanc", [{"DicomCheckCalledAet": True}], indirect=True)
def test_orthanc_enforced_called_ae_found_by_guessing(orthanc: peers.RunningPeer) -> None:
    port = orthanc.info.port
    safe = run_scan("127.0.0.1", str(port))  # safe profile: no guessing
    assert safe.verdicts(port)["dicom-called-ae-not-enforced"] == "pass"
    assert safe.observations(port, "dicom-ae-guess") == []
    assert safe.verdicts(port)["dicom-calling-ae-not-validated"] == "not-checked"
    guessed = run_scan("127.0.0.1", str(port), "--ae-guess")
    [guess] = guessed.observations(port, "dicom-ae-guess")
    assert guess["accepted_titles"] == ["ORTHANC"] and guess["tried"] == 1
    assert guessed.verdicts(port)["dicom-ae-title-guessable"] == "fail"
    assert guessed.verdicts(port)["dicom-calling-ae-not-validated"] == "fail"


@needs_orthanc
@pytest.mark.parametrize(
    "orthanc",
    [{
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True,
        "DicomModalities": {"scanner": ["REGISTERED", "127.0.0.1", 104]},
    }],
    indirect=True,
)
def test_orthanc_locked_down_to_registered_modalities(orthanc: peers.RunningPeer) -> None:
    port = orthanc.info.port
    unknown = run_scan("127.0.0.1", str(port))
    detect = unknown.association(port, "detect")
    assert detect["outcome"] == "rejected"
    assert detect["reject"]["reason_text"] == "calling AE title not recognised"
    assert unknown.verdicts(port) == {
        "dicom-cleartext": "fail",
        "dicom-called-ae-not-enforced": "not-checked",
        "dicom-calling-ae-not-validated": "pass",
        "dicom-echo-open": "pass",
        "dicom-query-open": "pass",
        "dicom-retrieve-open": "pass",
        "dicom-store-open": "pass",
        "port-not-allowed": "fail",  # the lab's free port is in no baseline
    }
    # Presenting the registered title (as a site would register its scanner) gets in,
    # while the random calling title is still refused.
    registered = run_scan("127.0.0.1", str(port), "--calling-ae", "REGISTERED")
    assert registered.association(port, "detect")["outcome"] == "accepted"
    assert registered.association(port, "calling-ae")["outcome"] == "rejected"
    assert registered.verdicts(port)["dicom-calling-ae-not-validated"] == "pass"


@needs_dcmtk
def test_storescp_accepts_any_title() -> None:
    with peers.start_storescp() as peer:
        run = run_scan("127.0.0.1", str(peer.info.port))
    port = peer.info.port
    detect = run.association(port, "detect")
    assert detect["outcome"] == "accepted"
    assert detect["called_ae"].startswith("DSCN")  # a random title no device has
    verdicts = run.verdicts(port)
    assert verdicts["dicom-called-ae-not-enforced"] == "fail"
    assert verdicts["dicom-calling-ae-not-validated"] == "fail"
    assert verdicts["dicom-echo-open"] == "fail"
    # storescp offers no Q/R contexts at all.
    assert verdicts["dicom-query-open"] == "pass"
    assert verdicts["dicom-store-open"] == "fail"
    assert "C-FIND" not in run.operations(port)


@needs_dcmtk
def test_storescp_refuse_mode() -> None:
    with peers.start_storescp(["--refuse"]) as peer:
        run = run_scan("127.0.0.1", str(peer.info.port))
    detect = run.association(peer.info.port, "detect")
    assert detect["outcome"] == "rejected"
    assert detect["reject"] == {
        "result": 1,
        "result_text": "rejected-permanent",
        "source": 1,
        "source_text": "service-user",
        "reason": 1,
        "reason_text": "no reason given",
    }
    assert run.service(peer.info.port)["name"] == "dicom"
    assert run.verdicts(peer.info.port)["dicom-calling-ae-not-validated"] == "not-checked"


@needs_dcmtk
def test_dcmqrscp_restricted_peers() -> None:
    with peers.start_dcmqrscp() as peer:
        port = str(peer.info.port)
        blind = run_scan("127.0.0.1", port)
        known = run_scan("127.0.0.1", port, "--ae-title", peer.info.ae_title)
        registered = run_scan(
            "127.0.0.1", port, "--ae-title", peer.info.ae_title, "--calling-ae",
            peers.DCMQRSCP_ALLOWED_AE,
        )
    p = peer.info.port
    assert blind.verdicts(p)["dicom-called-ae-not-enforced"] == "pass"
    # dcmqrscp answers an unregistered calling AE with "called AE not recognised", so with
    # the right title but our unregistered calling title nothing can be told apart...
    assert known.verdicts(p)["dicom-called-ae-not-enforced"] == "not-checked"
    assert known.verdicts(p)["dicom-calling-ae-not-validated"] == "pass"
    # ...while the registered calling title gets in and the random one is refused.
    assert registered.association(p, "detect")["outcome"] == "accepted"
    assert registered.association(p, "calling-ae")["outcome"] == "rejected"
    assert registered.verdicts(p)["dicom-called-ae-not-enforced"] == "pass"
    assert registered.verdicts(p)["dicom-calling-ae-not-validated"] == "pass"
    assert registered.verdicts(p)["dicom-query-open"] == "pass"


@needs_ctn
def test_fragile_ctn_survives_the_default_scan() -> None:
    from pynetdicom import AE

    with peers.start_ctn_simple_storage() as peer:
        port = peer.info.port
        run = run_scan("127.0.0.1", f"{port},{peer.info.port + 1 if port < 65535 else 1}")
        assert peer.alive(), peer.log_tail()
        ae = AE(ae_title="ECHOSCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title=peer.info.ae_title)
        assert assoc.is_established
        status = assoc.send_c_echo()
        assoc.release()
        assert status.Status == 0
        assert peer.alive()
    detect = run.association(port, "detect")
    assert detect["reject"]["reason_text"] == "called AE title not recognised"
    assert run.verdicts(port)["dicom-called-ae-not-enforced"] == "pass"
