"""Fingerprints, honeypot tells and role guesses, on values measured from real peers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pynetdicom
import pytest
import yaml

from probes.context import HostState, ServiceState
from probes.dicom.pdu import FIRST_BYTES
from probes.identify import printable
from scanner.identify.fingerprint import identify
from scanner.identify.host_analysis import analyse_host, guess_role
from scanner.identify.product_table import FingerprintTableError, load_table, parse_table
from scanner.model import PortObservation, PortState
from scanner.model.observations import (
    Association,
    AssociationOutcome,
    Banner,
    ContextResult,
    Fingerprint,
    PeerIdentity,
    RejectInfo,
)

DCMTK_UID = "1.2.276.0.7230010.3.0.3.6.7"  # measured: Debian 12 storescp and Orthanc 1.10.1
DCMTK_NAME = "OFFIS_DCMTK_367"
PYNETDICOM_304_UID = "1.2.826.0.1.3680043.9.3811.3.0.4"  # measured: pynetdicom 3.0.4 storescp
CTN_UID = "1.2.840.113654.2.3.1995.3.0.6"  # measured: Debian ctn simple_storage
CTN_NAME = "MIRCTN11MAR2003"

DCMTK_SRC = (
    "DCMTK/dcmtk dcmdata/include/dcmtk/dcmdata/dcuid.h (FP 1a); DCMTK 3.6.7 measured "
    "(REF: 1.2.276.0.7230010.3.0.3.6.7 / OFFIS_DCMTK_367)"
)
PYNETDICOM_SRC = (
    "pydicom/pynetdicom pynetdicom/__init__.py (FP 1a: digits joined with no separator); "
    "pynetdicom3 0.1.0 legacy identity from a public log (FP 1a, obs)"
)
DCMTK_NOTE = (
    "note: Orthanc and other servers built on DCMTK send this same identity; the DICOM "
    "handshake alone cannot tell them apart"
)

# What Orthanc 1.10.1 (Debian 12, /usr/sbin/Orthanc, HttpPort on 127.0.0.1) sent back,
# byte for byte, when its HTTP port was sent a pynetdicom-built A-ASSOCIATE-RQ. Note: no
# Server header. The connection was closed right after.
ORTHANC_HTTP_REPLY = bytes.fromhex(
    "485454502f312e30203430302042616420526571756573740d0a43616368652d436f6e74726f6c3a"
    "206e6f2d63616368652c206e6f2d73746f72652c206d7573742d726576616c69646174652c2070"
    "7269766174652c206d61782d6167653d300d0a457870697265733a20300d0a507261676d613a20"
    "6e6f2d63616368650d0a436f6e74656e742d547970653a20746578742f706c61696e3b20636861"
    "727365743d7574662d380d0a446174653a205765642c203235204e6f7620323032362030343a35"
    "303a323220474d540d0a436f6e6e656374696f6e3a20636c6f73650d0a0d0a4572726f72203430"
    "303a2042616420526571756573740a4d616c666f726d6564206d657373616765"
)

VERIFICATION = "1.2.840.10008.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MWL_FIND = "1.2.840.10008.5.1.4.31"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
COMMITMENT = "1.2.840.10008.1.20.1"
GRAYSCALE_PRINT = "1.2.840.10008.5.1.1.9"

# Presentation-context results measured against the real peers with one association
# proposing all nine abstract syntaxes (0 accepted, 3 abstract syntax not supported).
ORTHANC_RESULTS = {
    VERIFICATION: 0, STUDY_FIND: 0, STUDY_MOVE: 0, STUDY_GET: 0, CT_STORAGE: 0,
    SC_STORAGE: 0, COMMITMENT: 0, MWL_FIND: 3, GRAYSCALE_PRINT: 3,
}  # fmt: skip
STORESCP_RESULTS = {
    VERIFICATION: 0, CT_STORAGE: 0, SC_STORAGE: 0, STUDY_FIND: 3, STUDY_MOVE: 3,
    STUDY_GET: 3, MWL_FIND: 3, COMMITMENT: 3, GRAYSCALE_PRINT: 3,
}  # fmt: skip


def _association(
    purpose: str,
    peer: PeerIdentity | None,
    results: dict[str, int] | None = None,
    outcome: AssociationOutcome = AssociationOutcome.ACCEPTED,
    reject: RejectInfo | None = None,
) -> Association:
    contexts = [
        ContextResult(
            abstract_syntax=uid,
            name=uid,
            result=res,
            result_text="acceptance" if res == 0 else "abstract syntax not supported",
        )
        for uid, res in (results or {}).items()
    ]
    return Association(
        purpose=purpose,
        calling_ae="DICOMSCAN",
        called_ae="ANY-SCP",
        outcome=outcome,
        peer=peer,
        contexts=contexts,
        reject=reject,
        elapsed_ms=1.0,
    )


def _dicom_service(port: int, peer: PeerIdentity | None, results: dict[str, int]) -> ServiceState:
    svc = ServiceState(port=port, name="dicom")
    svc.observations.append(_association("detect", peer, {VERIFICATION: 0}))
    svc.observations.append(_association("services", peer, results))
    return svc


def _host(*services: ServiceState, extra_open: tuple[int, ...] = ()) -> HostState:
    state = HostState(address="127.0.0.1", hostname=None)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for port in sorted({*(s.port for s in services), *extra_open}):
        state.ports[port] = PortObservation(
            port=port, state=PortState.OPEN, method="tcp-connect", reason="connected",
            observed_at=now,
        )  # fmt: skip
    for svc in services:
        state.services[svc.port] = svc
    return state


def _banner(reply: bytes) -> Banner:
    # Stored the way service identification stores it: the first FIRST_BYTES bytes only.
    first = reply[:FIRST_BYTES]
    return Banner(first_bytes_hex=first.hex(), text=printable(first))


def _orthanc_http_service(port: int = 8042) -> ServiceState:
    svc = ServiceState(port=port, name="http")
    svc.observations.append(_banner(ORTHANC_HTTP_REPLY))
    return svc


DCMTK_PEER = PeerIdentity(
    implementation_class_uid=DCMTK_UID, implementation_version_name=DCMTK_NAME,
    max_pdu_length=16384,
)  # fmt: skip


# --- the table ------------------------------------------------------------------------------


def test_every_table_entry_has_a_source_and_certainty() -> None:
    table = load_table()
    entries: list[Any] = [*table.products, *table.http_signals]
    assert len(entries) > 20
    for entry in entries:
        assert entry.source.strip(), entry.id
        assert entry.certainty in {"src", "obs", "tbl", "unconfirmed"}, entry.id


def test_table_file_is_plain_yaml_with_unique_ids() -> None:
    from importlib import resources

    raw = yaml.safe_load((resources.files("scanner") / "data" / "fingerprints.yaml").read_text())
    ids = [e["id"] for e in raw["products"] + raw["http_signals"]]
    assert len(ids) == len(set(ids))
    assert parse_table(raw) == load_table()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "x", "product": "X", "certainty": "src", "version_name_regex": "^X"}, "source"),
        ({"id": "x", "product": "X", "certainty": "src", "source": " ", "uid": ["1.2"]}, "empty"),
        ({"id": "x", "product": "X", "certainty": "src", "source": "s", "version_name_regex": "("},
         "regular expression"),
        ({"id": "x", "product": "X", "certainty": "maybe", "source": "s", "uid": ["1.2"]},
         "certainty"),
        ({"id": "x", "product": "X", "certainty": "src", "source": "s", "uid": ["1.2.x"]},
         "not a DICOM UID"),
        ({"id": "x", "product": "X", "certainty": "src", "source": "s"}, "at least one matcher"),
        ({"id": "x", "vendor": "V", "product": "X", "certainty": "tbl", "source": "s",
          "uid_prefix": "1.2"}, "org root"),
    ],
)  # fmt: skip
def test_malformed_entry_is_named_in_the_error(entry: dict[str, Any], message: str) -> None:
    good = {"id": "ok", "product": "OK", "certainty": "src", "source": "s", "uid": ["1.2.3"]}
    with pytest.raises(FingerprintTableError) as err:
        parse_table({"products": [good, entry]})
    assert "products[1] (id 'x')" in str(err.value)
    assert message in str(err.value)


def test_duplicate_ids_and_unknown_keys_are_rejected() -> None:
    good = {"id": "ok", "product": "OK", "certainty": "src", "source": "s", "uid": ["1.2.3"]}
    with pytest.raises(FingerprintTableError, match="'ok' is defined twice"):
        parse_table({"products": [good, good]})
    with pytest.raises(FingerprintTableError, match="unknown top-level key"):
        parse_table({"products": [good], "extra": []})


# --- identify -------------------------------------------------------------------------------


def test_dcmtk_367_as_measured() -> None:
    assert identify(DCMTK_PEER) == Fingerprint(
        product="DCMTK",
        version="3.6.7",
        vendor="OFFIS",
        confidence="high",
        matched_by=[
            "implementation_version_name=OFFIS_DCMTK_367",
            f"implementation_class_uid={DCMTK_UID}",
            DCMTK_NOTE,
        ],
        source=DCMTK_SRC,
    )


def test_dcmtk_version_from_either_field_alone() -> None:
    by_name = identify(PeerIdentity(implementation_version_name=DCMTK_NAME))
    by_uid = identify(PeerIdentity(implementation_class_uid=DCMTK_UID))
    assert (by_name.product, by_name.version, by_name.confidence) == ("DCMTK", "3.6.7", "medium")
    assert (by_uid.product, by_uid.version, by_uid.confidence) == ("DCMTK", "3.6.7", "medium")
    assert by_uid.matched_by == [f"implementation_class_uid={DCMTK_UID}", DCMTK_NOTE]


def test_mir_ctn_as_measured() -> None:
    fp = identify(
        PeerIdentity(implementation_class_uid=CTN_UID, implementation_version_name=CTN_NAME)
    )
    assert fp == Fingerprint(
        product="MIR CTN",
        version="11MAR2003",
        vendor="Mallinckrodt Institute of Radiology",
        confidence="high",
        matched_by=[
            f"implementation_version_name={CTN_NAME}",
            f"implementation_class_uid={CTN_UID}",
        ],
        source=(
            'REF "Implementation class UIDs seen": Debian ctn 3.2.0 simple_storage, measured '
            "(1.2.840.113654.2.3.1995.3.0.6 / MIRCTN11MAR2003)"
        ),
    )


def test_pynetdicom_304_as_measured() -> None:
    peer = PeerIdentity(
        implementation_class_uid=PYNETDICOM_304_UID,
        implementation_version_name="PYNETDICOM_304",
        max_pdu_length=16382,
    )
    assert identify(peer) == Fingerprint(
        product="pynetdicom",
        version="3.0.4",
        confidence="high",
        matched_by=[
            "implementation_version_name=PYNETDICOM_304",
            f"implementation_class_uid={PYNETDICOM_304_UID}",
        ],
        source=PYNETDICOM_SRC,
    )


def test_installed_pynetdicom_identity() -> None:
    peer = PeerIdentity(
        implementation_class_uid=str(pynetdicom.PYNETDICOM_IMPLEMENTATION_UID),
        implementation_version_name=pynetdicom.PYNETDICOM_IMPLEMENTATION_VERSION,
    )
    fp = identify(peer)
    expected = ".".join(pynetdicom.__version__.split(".")[:3])
    assert (fp.product, fp.version, fp.confidence) == ("pynetdicom", expected, "high")
    assert not fp.honeypot_suspected


def test_pynetdicom_multi_digit_version_comes_from_the_uid() -> None:
    # 3.0.10 would send PYNETDICOM_3010, which cannot be split reliably.
    peer = PeerIdentity(
        implementation_class_uid="1.2.826.0.1.3680043.9.3811.3.0.10",
        implementation_version_name="PYNETDICOM_3010",
    )
    fp = identify(peer)
    assert (fp.product, fp.version, fp.confidence) == ("pynetdicom", "3.0.10", "high")


@pytest.mark.parametrize(
    ("uid", "name", "product", "version"),
    [
        ("1.2.40.0.13.1.3", "dcm4che-5.31.0", "dcm4che", "5.31.0"),
        ("1.3.6.1.4.1.30071.8", "fo-dicom 5.1.2", "fo-dicom", "5.1.2"),
        ("1.2.826.0.1.3680043.2.1143.107.104.103.115.2.8.4", "GDCM 2.8.4", "GDCM", "2.8.4"),
        ("1.2.276.0.7238010.5.0.3.5.4", "OSIRIX", "Horos/OsiriX", None),
        ("1.2.826.0.1.3680043.2.135.1066.101", "1.5.0/OTHER", "Conquest DICOM server (dgate)",
         None),
        ("2.16.840.1.113669.2.1.1", "MergeCOM3_410", "MergeCOM-3", "4.1.0"),
    ],
)  # fmt: skip
def test_sourced_toolkits(uid: str, name: str, product: str, version: str | None) -> None:
    fp = identify(PeerIdentity(implementation_class_uid=uid, implementation_version_name=name))
    assert (fp.product, fp.version, fp.confidence) == (product, version, "high")
    assert fp.matched_by[:2] == [
        f"implementation_version_name={name}",
        f"implementation_class_uid={uid}",
    ]
    assert not fp.honeypot_suspected


def test_mergecom_oem_root_names_the_oem() -> None:
    uid = "1.2.246.352.70.2.1.120.1"
    fp = identify(
        PeerIdentity(implementation_class_uid=uid, implementation_version_name="MergeCOM3_410")
    )
    assert (fp.product, fp.version, fp.vendor, fp.confidence) == (
        "MergeCOM-3", "4.1.0", "Varian (believed)", "medium",
    )  # fmt: skip
    assert fp.matched_by == [
        "implementation_version_name=MergeCOM3_410",
        f"implementation_class_uid={uid} (org root 1.2.246.352)",
    ]


def test_org_root_alone_gives_only_a_weak_vendor() -> None:
    uid = "1.3.12.2.1107.5.8.1"
    fp = identify(PeerIdentity(implementation_class_uid=uid))
    assert fp == Fingerprint(
        product=None,
        version=None,
        vendor="Siemens",
        confidence="low",
        matched_by=[f"implementation_class_uid={uid} (org root 1.3.12.2.1107)"],
        source="FP 1b (live MR under 1.3.12.2.1107) and FP 1c (both public tables)",
    )


def test_unknown_identity() -> None:
    fp = identify(
        PeerIdentity(implementation_class_uid="1.2.3.4.5", implementation_version_name="X")
    )
    assert fp == Fingerprint(product=None, version=None, confidence="low")
    assert identify(PeerIdentity()) == Fingerprint(product=None, version=None, confidence="low")


# --- honeypots and contradictions -----------------------------------------------------------

DICOMPOT_REASON = (
    "identity matches the dicompot honeypot: dicompot is built on grailbio go-netdicom and "
    "keeps its default identity and 4 MiB maximum PDU; a genuine go-netdicom server looks "
    "the same"
)
DICOMPOT_SRC = (
    "REF honeypots (1.2.826.0.1.3680043.9.7133.1.1 / GODICOM_1_1, 4 MiB max PDU); "
    "nsmfoo/dicompot contextmanager.go and pdu/pdu.go (built on grailbio go-netdicom)"
)


def test_dicompot_identity() -> None:
    peer = PeerIdentity(
        implementation_class_uid="1.2.826.0.1.3680043.9.7133.1.1",
        implementation_version_name="GODICOM_1_1",
        max_pdu_length=4 * 1024 * 1024,
    )
    assert identify(peer) == Fingerprint(
        product="go-netdicom (grailbio)",
        version=None,
        vendor="grailbio",
        confidence="high",
        matched_by=[
            "implementation_version_name=GODICOM_1_1",
            "implementation_class_uid=1.2.826.0.1.3680043.9.7133.1.1",
            "max_pdu_length=4194304",
        ],
        source=DICOMPOT_SRC,
        honeypot_suspected=True,
        honeypot_reasons=[DICOMPOT_REASON],
    )


def test_dicompot_acceptor_shape_without_identity() -> None:
    # dicompot's A-ASSOCIATE-AC carries only the max-length item (contextmanager.go).
    fp = identify(PeerIdentity(max_pdu_length=4194304))
    assert fp == Fingerprint(
        product="go-netdicom (grailbio)",
        version=None,
        vendor="grailbio",
        confidence="medium",
        matched_by=["max_pdu_length=4194304 with no implementation class UID or version name"],
        source=DICOMPOT_SRC,
        honeypot_suspected=True,
        honeypot_reasons=[DICOMPOT_REASON],
    )
    assert not identify(PeerIdentity(max_pdu_length=16384)).honeypot_suspected


def test_dicomhawk_default_claims_orthanc_on_pynetdicom_root() -> None:
    uid = "1.2.826.0.1.3680043.9.3811.2.0.1"
    fp = identify(PeerIdentity(implementation_class_uid=uid, implementation_version_name="ORTHANC"))
    assert (fp.product, fp.confidence, fp.honeypot_suspected) == (
        "DICOMHawk (pynetdicom)", "low", True,
    )  # fmt: skip
    assert fp.honeypot_reasons == [
        "identity matches the DICOMHawk honeypot: real Orthanc never names itself in the "
        "handshake (it sends DCMTK's identity); DICOMHawk's default does, on pynetdicom's UID "
        "root",
        f"implementation version name 'ORTHANC' says Orthanc but implementation class UID "
        f"{uid} is pynetdicom's",
    ]


def test_dcmtk_name_on_pynetdicom_uid_is_a_contradiction() -> None:
    peer = PeerIdentity(
        implementation_class_uid=PYNETDICOM_304_UID, implementation_version_name=DCMTK_NAME
    )
    assert identify(peer) == Fingerprint(
        product="DCMTK",
        version="3.6.7",
        vendor="OFFIS",
        confidence="low",
        matched_by=[
            "implementation_version_name=OFFIS_DCMTK_367",
            f"implementation_class_uid={PYNETDICOM_304_UID}",
        ],
        source=f"{DCMTK_SRC}; {PYNETDICOM_SRC}",
        honeypot_suspected=True,
        honeypot_reasons=[
            "implementation version name 'OFFIS_DCMTK_367' says DCMTK but implementation "
            f"class UID {PYNETDICOM_304_UID} is pynetdicom's"
        ],
    )


def test_pynetdicom_name_on_dcmtk_uid_is_a_contradiction() -> None:
    peer = PeerIdentity(
        implementation_class_uid=DCMTK_UID, implementation_version_name="PYNETDICOM_304"
    )
    fp = identify(peer)
    assert (fp.product, fp.version, fp.confidence) == ("pynetdicom", "3.0.4", "low")
    assert fp.honeypot_reasons == [
        f"implementation version name 'PYNETDICOM_304' says pynetdicom but implementation "
        f"class UID {DCMTK_UID} is DCMTK's"
    ]


def test_dcmtk_uid_version_differing_from_name_is_a_contradiction() -> None:
    # DCMTK 3.6.2's UID is what nmap's dicom-ping sends; here it is paired with 3.6.7's name.
    peer = PeerIdentity(
        implementation_class_uid="1.2.276.0.7230010.3.0.3.6.2",
        implementation_version_name=DCMTK_NAME,
    )
    fp = identify(peer)
    assert (fp.product, fp.version, fp.confidence, fp.honeypot_suspected) == (
        "DCMTK", "3.6.7", "low", True,
    )  # fmt: skip
    assert fp.honeypot_reasons == [
        "implementation version name 'OFFIS_DCMTK_367' says DCMTK 3.6.7 but implementation "
        "class UID 1.2.276.0.7230010.3.0.3.6.2 encodes 3.6.2"
    ]


# --- host analysis: Orthanc via HTTP, roles -------------------------------------------------

ORTHANC_SIGNAL_SRC = (
    "measured: Orthanc 1.10.1 (Debian 12) HTTP port answering an A-ASSOCIATE-RQ with "
    '"HTTP/1.0 400 Bad Request", CivetWeb\'s no-cache headers, no Server header'
)


def test_orthanc_is_named_from_its_http_answer() -> None:
    state = _host(_dicom_service(4242, DCMTK_PEER, ORTHANC_RESULTS), _orthanc_http_service())
    analyse_host(state)
    svc = state.services[4242]
    fingerprints = [o for o in svc.observations if isinstance(o, Fingerprint)]
    assert fingerprints == [
        Fingerprint(
            product="Orthanc (built on DCMTK 3.6.7)",
            version=None,
            vendor=None,
            confidence="medium",
            matched_by=[
                "implementation_version_name=OFFIS_DCMTK_367",
                f"implementation_class_uid={DCMTK_UID}",
                'http_banner port 8042: CivetWeb-style "400 Bad Request" answer (no-cache '
                "header first), as Orthanc's HTTP server sends",
                "dcmtk_version=3.6.7",
                "note: other CivetWeb-based servers answer alike; only trusted next to a DCMTK "
                "identity on the same host",
            ],
            source=f"{DCMTK_SRC}; {ORTHANC_SIGNAL_SRC}",
        )
    ]
    assert (svc.product, svc.version) == ("Orthanc (built on DCMTK 3.6.7)", None)
    assert state.services[8042].observations[1:] == []  # the HTTP service is left alone
    assert (state.role, state.role_confidence) == ("pacs", 0.95)
    assert state.role_reasons == [
        "port 4242 accepts Query/Retrieve (3 contexts)",
        "port 4242 also accepts Storage (2 SOP classes)",
        "port 4242 accepts Storage Commitment",
        "port 4242 runs Orthanc (built on DCMTK 3.6.7), a PACS/archive",
        "HTTP port 8042 open next to DICOM (PACS web/REST defaults)",
    ]


@pytest.mark.parametrize("kept", [FIRST_BYTES, len(ORTHANC_HTTP_REPLY)])
def test_orthanc_signal_matches_raw_bytes_or_printable_text(kept: int) -> None:
    first = ORTHANC_HTTP_REPLY[:kept]
    for banner in (
        Banner(first_bytes_hex=first.hex(), text=""),
        Banner(first_bytes_hex="zz", text=printable(first, limit=kept)),
    ):
        http = ServiceState(port=8042, name="http")
        http.observations.append(banner)
        state = _host(_dicom_service(4242, DCMTK_PEER, ORTHANC_RESULTS), http)
        analyse_host(state)
        assert state.services[4242].product == "Orthanc (built on DCMTK 3.6.7)"


def test_other_http_400_answers_are_not_orthanc() -> None:
    for reply in (
        b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 04:50:22 GMT\r\n",
        b"HTTP/1.1 400 Bad Request\r\nDate: Wed, 25 Nov 2026 04:50:22 GMT\r\nServer: Apache\r\n",
    ):
        http = ServiceState(port=8080, name="http")
        http.observations.append(_banner(reply))
        state = _host(_dicom_service(11112, DCMTK_PEER, STORESCP_RESULTS), http)
        analyse_host(state)
        assert state.services[11112].product == "DCMTK"


def test_http_answer_that_names_orthanc_is_high_confidence() -> None:
    # Orthanc 1.10.1 sends no Server header; this covers an answer that does name it.
    reply = b"HTTP/1.1 400 Bad Request\r\nServer: Orthanc\r\n"
    http = ServiceState(port=8042, name="http")
    http.observations.append(_banner(reply))
    state = _host(_dicom_service(4242, DCMTK_PEER, ORTHANC_RESULTS), http)
    analyse_host(state)
    fp = next(o for o in state.services[4242].observations if isinstance(o, Fingerprint))
    assert (fp.product, fp.confidence) == ("Orthanc (built on DCMTK 3.6.7)", "high")
    assert "http_banner port 8042: the HTTP answer names Orthanc" in fp.matched_by


def test_dcmtk_without_http_signal_stays_dcmtk_with_a_note() -> None:
    other_http = ServiceState(port=8080, name="http")
    other_http.observations.append(_banner(b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n"))
    state = _host(_dicom_service(11112, DCMTK_PEER, STORESCP_RESULTS), other_http)
    analyse_host(state)
    svc = state.services[11112]
    assert (svc.product, svc.version) == ("DCMTK", "3.6.7")
    fp = next(o for o in svc.observations if isinstance(o, Fingerprint))
    assert fp.matched_by[-1] == DCMTK_NOTE


def test_analyse_host_twice_does_not_duplicate() -> None:
    state = _host(_dicom_service(11112, DCMTK_PEER, STORESCP_RESULTS))
    analyse_host(state)
    analyse_host(state)
    fps = [o for o in state.services[11112].observations if isinstance(o, Fingerprint)]
    assert len(fps) == 1


def test_rejected_association_has_no_identity_and_is_skipped() -> None:
    # MIR CTN enforces its called AE title: an A-ASSOCIATE-RJ carries no user information.
    reject = RejectInfo(
        result=1, result_text="rejected-permanent", source=1, source_text="service-user",
        reason=7, reason_text="called AE title not recognised",
    )  # fmt: skip
    svc = ServiceState(port=104, name="dicom")
    svc.observations.append(
        _association("detect", None, outcome=AssociationOutcome.REJECTED, reject=reject)
    )
    state = _host(svc)
    analyse_host(state)
    assert svc.observations[1:] == []
    assert (svc.product, svc.version) == (None, None)
    assert (state.role, state.role_confidence, state.role_reasons) == (
        "unknown", 0.0, ["no accepted presentation contexts or product to judge the role by"],
    )  # fmt: skip


def test_host_without_dicom_has_no_role() -> None:
    state = _host(_orthanc_http_service())
    analyse_host(state)
    assert (state.role, state.role_confidence, state.role_reasons) == (None, None, [])


def test_modality_like_host() -> None:
    # A Siemens MR identity (FP 1b, obs) answering as a storage-only SCP.
    peer = PeerIdentity(
        implementation_class_uid="1.3.12.2.1107.5.2", implementation_version_name="MR_VB19A"
    )
    state = _host(_dicom_service(104, peer, STORESCP_RESULTS))
    analyse_host(state)
    assert (state.services[104].product, state.services[104].version) == ("Siemens MR", "VB19A")
    assert (state.role, state.role_confidence) == ("modality", 0.95)
    assert state.role_reasons == [
        "port 104 runs Siemens MR, a modality",
        "port 104 accepts Storage only (no Query/Retrieve, Worklist or Print)",
        "port 104: UID under Siemens's root, a modality vendor",
    ]


def test_storage_only_behind_remote_desktop_is_a_workstation() -> None:
    state = _host(_dicom_service(11112, DCMTK_PEER, STORESCP_RESULTS), extra_open=(3389,))
    assert guess_role(state) == (
        "workstation",
        0.65,
        [
            "port 11112 accepts Storage only (no Query/Retrieve, Worklist or Print)",
            "remote desktop open (RDP 3389)",
        ],
    )


def test_storage_only_without_other_evidence_is_unknown() -> None:
    state = _host(_dicom_service(11112, DCMTK_PEER, STORESCP_RESULTS))
    assert guess_role(state) == (
        "unknown",
        0.0,
        [
            "port 11112 accepts Storage only (no Query/Retrieve, Worklist or Print)",
            "not enough evidence to single out one role",
        ],
    )


def test_pacs_like_host_from_contexts_alone() -> None:
    # Orthanc's measured context results, with no HTTP port and no product hint.
    state = _host(_dicom_service(4242, DCMTK_PEER, ORTHANC_RESULTS))
    assert guess_role(state) == (
        "pacs",
        0.75,
        [
            "port 4242 accepts Query/Retrieve (3 contexts)",
            "port 4242 also accepts Storage (2 SOP classes)",
            "port 4242 accepts Storage Commitment",
        ],
    )


def test_print_and_worklist_servers() -> None:
    printer = _host(_dicom_service(104, DCMTK_PEER, {VERIFICATION: 0, GRAYSCALE_PRINT: 0}))
    assert guess_role(printer) == (
        "print",
        0.8,
        ["port 104 accepts Basic Print Management", "port 104 offers no Storage or Query/Retrieve"],
    )
    worklist = _host(_dicom_service(104, DCMTK_PEER, {VERIFICATION: 0, MWL_FIND: 0}))
    assert guess_role(worklist)[:2] == ("worklist", 0.8)


def test_contexts_accepted_under_another_purpose_count_too() -> None:
    # The DICOM checks propose the service contexts in their "calling-ae" association.
    svc = ServiceState(port=4242, name="dicom")
    svc.observations.append(_association("detect", DCMTK_PEER, {VERIFICATION: 0}))
    svc.observations.append(_association("calling-ae", DCMTK_PEER, ORTHANC_RESULTS))
    assert guess_role(_host(svc))[:2] == ("pacs", 0.75)
