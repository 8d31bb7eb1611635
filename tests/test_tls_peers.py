"""The TLS probe and rules against real peers: DCMTK storescp +tls and Orthanc.

Facts asserted here were measured on Debian 12 (DCMTK 3.6.7 and Orthanc 1.10.1, both
on OpenSSL 3.0): which versions each DCMTK profile lets through, the suites it accepts
with an RSA certificate, and how each peer-certificate option answers a client that
has no certificate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.context import ServiceState
from probes.tls import TlsOptions
from scanner.lab import peers
from scanner.model import FindingStatus, Host, Severity
from scanner.rules.tls_rules import tls_findings
from tests.conftest import needs_dcmtk, needs_orthanc
from tests.tls_peers import dcmtk_tls, generate_certs, of_kind, orthanc_tls, run_probe, suites
from tests.tls_peers import versions as version_map

pytestmark = pytest.mark.peers

ND_SUITES = {
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
}
AES_SUITE = "TLS_RSA_WITH_AES_128_CBC_SHA"
OPENSSL_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
ALL_VERSIONS = ["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def peer(request: pytest.FixtureRequest, certs: Path) -> Iterator[peers.RunningPeer]:
    args: tuple[str, ...] = request.param
    with dcmtk_tls(certs, *args, "+cf", str(certs / "ca.pem")) as running:
        yield running


def accepted(svc: ServiceState) -> list[str]:
    return [v for v, obs in version_map(svc).items() if obs.outcome == "accepted"]


def verdicts(host: Host) -> dict[str, tuple[str, str]]:
    return {f.rule_id: (f.status.value, f.severity.value) for f in tls_findings(host)}


def conforming(svc: ServiceState) -> list[str]:
    [summary] = of_kind(svc, "tls-summary")
    return [p.profile for p in summary.profiles if p.conforms]


@needs_dcmtk
@pytest.mark.parametrize("peer", [()], indirect=True, ids=["default-nd-require"])
def test_dcmtk_default_profile_requires_client_cert(peer: peers.RunningPeer, certs: Path) -> None:
    svc, host, _ = run_probe(peer.info.port)
    v = version_map(svc)
    assert list(v) == ALL_VERSIONS
    assert accepted(svc) == ["TLSv1.2", "TLSv1.3"]
    assert (v["TLSv1.0"].outcome, v["TLSv1.0"].alert_text) == ("refused", "protocol_version")
    assert (v["TLSv1.1"].outcome, v["TLSv1.1"].alert) == ("refused", 70)
    assert v["SSLv3"].outcome == "refused"
    assert suites(svc, "TLSv1.2") == ND_SUITES and v["TLSv1.2"].enumeration_complete
    assert suites(svc, "TLSv1.3") == OPENSSL_TLS13
    assert v["TLSv1.2"].certificate_requested is True
    [summary] = of_kind(svc, "tls-summary")
    assert summary.client_cert_required is True and summary.dicom_inside is None
    assert summary.best_profile == "B.12" and summary.meets_b12 is True
    assert conforming(svc) == ["B.12", "B.10", "B.9"]
    [hs] = of_kind(svc, "tls-handshake")
    assert (hs.outcome, hs.version, hs.alert) == ("client-cert-required", "TLSv1.3", 116)
    assert svc.tls and svc.name == "tls"
    assert not of_kind(svc, "dicom-association")
    [cert] = of_kind(svc, "tls-certificate")
    assert cert.subject == "CN=dicomscan server,O=dicomscan test"
    assert "IP:127.0.0.1" in cert.sans and cert.key_bits == 2048
    assert verdicts(host) == {
        "tls-legacy-protocol": ("pass", "high"),
        "tls-weak-cipher": ("fail", "low"),  # DHE in TLS 1.2: RFC 9325 SHOULD NOT
        "tls-client-cert-not-required": ("pass", "medium"),
        "tls-cert-self-signed": ("pass", "medium"),
        "tls-cert-expired": ("pass", "high"),
        "tls-cert-expiring": ("pass", "low"),
        "tls-cert-weak-key": ("pass", "medium"),
        "tls-cert-weak-signature": ("pass", "medium"),
        "tls-cert-default": ("pass", "high"),
    }

    # With the site's client certificate the association goes through inside TLS.
    options = TlsOptions(
        str(certs / "client.pem"), str(certs / "client.key"), str(certs / "ca.pem")
    )
    svc, _, _ = run_probe(peer.info.port, options)
    anonymous, with_cert = of_kind(svc, "tls-handshake")
    assert anonymous.outcome == "client-cert-required" and with_cert.outcome == "completed"
    [assoc] = of_kind(svc, "dicom-association")
    assert (assoc.purpose, assoc.outcome) == ("detect-tls-client-cert", "accepted")
    assert assoc.peer.implementation_version_name == "OFFIS_DCMTK_367"
    assert svc.name == "dicom-tls"
    assert of_kind(svc, "tls-certificate")[0].ca_verified is True

    # A certificate from another CA is refused, and told apart from "none sent".
    options = TlsOptions(str(certs / "selfsigned.pem"), str(certs / "selfsigned.key"))
    svc, _, _ = run_probe(peer.info.port, options)
    assert [h.outcome for h in of_kind(svc, "tls-handshake")] == [
        "client-cert-required",
        "client-cert-rejected",
    ]
    assert svc.name == "tls"


@needs_dcmtk
@pytest.mark.parametrize("peer", [("--profile-bcp195", "-ic")], indirect=True, ids=["bcp195"])
def test_dcmtk_bcp195_allows_legacy_tls(peer: peers.RunningPeer) -> None:
    svc, host, _ = run_probe(peer.info.port)
    assert accepted(svc) == ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    assert suites(svc, "TLSv1.0") == suites(svc, "TLSv1.1") == {AES_SUITE}
    assert suites(svc, "TLSv1.2") == ND_SUITES | {AES_SUITE}
    [summary] = of_kind(svc, "tls-summary")
    assert summary.client_cert_required is False and summary.client_cert_requested is False
    assert summary.dicom_inside is True and svc.name == "dicom-tls"
    assert summary.best_profile == "B.9" and summary.meets_b12 is False
    assert conforming(svc) == ["B.9", "B.3"]
    [assoc] = of_kind(svc, "dicom-association")
    assert (assoc.purpose, assoc.outcome, assoc.released) == ("detect-tls", "accepted", True)
    v = verdicts(host)
    assert v["tls-legacy-protocol"] == ("fail", "high")
    assert v["tls-weak-cipher"] == ("fail", "medium")  # static RSA key exchange
    assert v["tls-client-cert-not-required"] == ("fail", "medium")
    # Fewer connections than nmap's 57 on this very service (REFERENCE.md).
    assert summary.connections == 16


@needs_dcmtk
@pytest.mark.parametrize("peer", [("--profile-bcp195-ex", "-ic")], indirect=True, ids=["ex"])
def test_dcmtk_extended_profile_is_tls12_only(peer: peers.RunningPeer) -> None:
    svc, host, _ = run_probe(peer.info.port)
    assert accepted(svc) == ["TLSv1.2"]
    assert version_map(svc)["TLSv1.3"].alert_text == "protocol_version"
    assert suites(svc, "TLSv1.2") == ND_SUITES  # the ECDSA suites need an ECDSA certificate
    assert conforming(svc) == ["B.12", "B.11", "B.10", "B.9"]
    [hs] = of_kind(svc, "tls-handshake")
    assert (hs.outcome, hs.version) == ("completed", "TLSv1.2")
    assert svc.name == "dicom-tls"
    assert verdicts(host)["tls-legacy-protocol"] == ("pass", "high")


@needs_dcmtk
@pytest.mark.parametrize("peer", [("--profile-aes", "-ic")], indirect=True, ids=["aes"])
def test_dcmtk_aes_profile(peer: peers.RunningPeer) -> None:
    svc, host, _ = run_probe(peer.info.port)
    assert accepted(svc) == ["TLSv1.0", "TLSv1.1", "TLSv1.2"]
    for version in ("TLSv1.0", "TLSv1.1", "TLSv1.2"):
        assert suites(svc, version) == {AES_SUITE}
    assert conforming(svc) == ["B.9", "B.3"]
    assert verdicts(host)["tls-weak-cipher"] == ("fail", "medium")


@needs_dcmtk
@pytest.mark.parametrize("peer", [("--profile-null", "-ic")], indirect=True, ids=["null"])
def test_dcmtk_null_profile_is_unencrypted(peer: peers.RunningPeer) -> None:
    svc, host, _ = run_probe(peer.info.port)
    assert suites(svc, "TLSv1.2") == {"TLS_RSA_WITH_NULL_SHA"}
    [summary] = of_kind(svc, "tls-summary")
    assert summary.best_profile is None and conforming(svc) == []
    [weak] = [f for f in tls_findings(host) if f.rule_id == "tls-weak-cipher"]
    assert weak.status is FindingStatus.FAIL and weak.severity is Severity.HIGH
    assert "null-cipher" in weak.evidence["weak"][0]["weaknesses"]


@needs_dcmtk
@pytest.mark.parametrize(
    ("peer", "requested"),
    [(("--verify-peer-cert",), True), (("--ignore-peer-cert",), False)],
    indirect=["peer"],
    ids=["verify-peer-cert", "ignore-peer-cert"],
)
def test_dcmtk_optional_client_cert(peer: peers.RunningPeer, requested: bool) -> None:
    svc, host, _ = run_probe(peer.info.port)
    [summary] = of_kind(svc, "tls-summary")
    assert summary.client_cert_requested is requested
    assert summary.client_cert_required is False and summary.dicom_inside is True
    [finding] = [f for f in tls_findings(host) if f.rule_id == "tls-client-cert-not-required"]
    assert finding.status is FindingStatus.FAIL
    assert ("note" in finding.evidence) is requested


@needs_dcmtk
@pytest.mark.parametrize(
    ("cert", "failing"),
    [
        ("selfsigned", {"tls-cert-self-signed"}),
        ("expired", {"tls-cert-expired"}),
        ("expiring", {"tls-cert-expiring"}),
        ("rsa1024", {"tls-cert-weak-key"}),
        ("sha1", {"tls-cert-weak-signature"}),
    ],
)
def test_certificate_rules(certs: Path, cert: str, failing: set[str]) -> None:
    with dcmtk_tls(certs, "-ic", cert=cert) as running:
        svc, host, _ = run_probe(running.info.port, TlsOptions(ca=str(certs / "ca.pem")))
    [seen] = of_kind(svc, "tls-certificate")
    assert seen.subject == f"CN=dicomscan {cert},O=dicomscan test"
    assert seen.ca_verified is (cert != "selfsigned")
    cert_rules = {
        f.rule_id: f.status for f in tls_findings(host) if f.rule_id.startswith("tls-cert-")
    }
    assert {r for r, s in cert_rules.items() if s is FindingStatus.FAIL} == failing
    if cert == "expired":
        assert cert_rules["tls-cert-expiring"] is FindingStatus.NOT_CHECKED
    if cert == "rsa1024":
        [summary] = of_kind(svc, "tls-summary")
        assert summary.meets_b12 is False and seen.key_bits == 1024
    if cert == "sha1":
        assert seen.signature_hash == "sha1"


@needs_orthanc
@pytest.mark.parametrize("required", [True, False], ids=["cert-required", "cert-optional"])
def test_orthanc_tls(certs: Path, required: bool) -> None:
    with orthanc_tls(certs, required) as orthanc:
        svc, host, _ = run_probe(orthanc.info.port)
        options = TlsOptions(str(certs / "client.pem"), str(certs / "client.key"))
        with_cert, _, _ = run_probe(orthanc.info.port, options) if required else (svc, host, 0)
    # Orthanc 1.10.1 negotiates TLS 1.0 and 1.1 (AES128-SHA) even when it then demands a
    # client certificate: legacy TLS hides behind mutual TLS unless the ServerHello is read.
    assert accepted(svc) == ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    assert suites(svc, "TLSv1.0") == suites(svc, "TLSv1.1") == {AES_SUITE}
    assert version_map(svc)["TLSv1.0"].certificate_requested is True
    [summary] = of_kind(svc, "tls-summary")
    assert summary.client_cert_required is required
    findings = {f.rule_id: f for f in tls_findings(host)}
    legacy = findings["tls-legacy-protocol"]
    assert legacy.status is FindingStatus.FAIL
    assert legacy.evidence["legacy_accepted"] == {"TLSv1.0": [AES_SUITE], "TLSv1.1": [AES_SUITE]}
    assert ("note" in legacy.evidence) is required
    expected = FindingStatus.PASS if required else FindingStatus.FAIL
    assert findings["tls-client-cert-not-required"].status is expected
    if required:
        [hs] = of_kind(svc, "tls-handshake")
        assert (hs.outcome, hs.alert_text) == ("client-cert-required", "certificate_required")
        assert svc.name == "tls"
    assert with_cert.name == "dicom-tls"
    [assoc] = of_kind(with_cert, "dicom-association")
    assert assoc.outcome == "accepted"


@needs_dcmtk
@pytest.mark.parametrize("peer", [("--profile-bcp195-ex",)], indirect=True, ids=["ex-require"])
def test_dcmtk_mutual_tls_under_tls12(peer: peers.RunningPeer, certs: Path) -> None:
    """TLS 1.2 refuses a missing client certificate inside the handshake (alert 40 after
    the CertificateRequest), unlike TLS 1.3, which refuses it after Finished."""
    svc, host, _ = run_probe(peer.info.port)
    [hs] = of_kind(svc, "tls-handshake")
    assert (hs.outcome, hs.alert_text, hs.version) == (
        "client-cert-required",
        "handshake_failure",
        None,
    )
    assert version_map(svc)["TLSv1.2"].certificate_requested is True
    assert verdicts(host)["tls-client-cert-not-required"] == ("pass", "medium")
    good = TlsOptions(str(certs / "client.pem"), str(certs / "client.key"))
    svc, _, _ = run_probe(peer.info.port, good)
    assert [(h.outcome, h.version) for h in of_kind(svc, "tls-handshake")] == [
        ("client-cert-required", None),
        ("completed", "TLSv1.2"),
    ]
    assert svc.name == "dicom-tls"
    bad = TlsOptions(str(certs / "selfsigned.pem"), str(certs / "selfsigned.key"))
    svc, _, _ = run_probe(peer.info.port, bad)
    assert [(h.outcome, h.alert_text) for h in of_kind(svc, "tls-handshake")][1] == (
        "client-cert-rejected",
        "unknown_ca",
    )
