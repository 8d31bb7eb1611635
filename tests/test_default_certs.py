"""tls-cert-default: a product's published test certificate served by a real peer.

The dcm4chee-arc test key is not ours to ship, so the real-peer test serves a
look-alike (same subject and issuer names, our own key) from DCMTK storescp: that
matches by names only, with confidence "inferred". The fingerprint match is shown on
the observation model with the published SHA-1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from scanner.model import FindingStatus
from scanner.model.observations import Confidence
from scanner.rules.default_certs import known, match
from scanner.rules.tls_rules import tls_findings
from tests.conftest import needs_dcmtk
from tests.tls_peers import dcmtk_tls, of_kind, run_probe

pytestmark = pytest.mark.peers
DCM4CHEE_SHA1 = "c6e18e523dbb329baa7e6adf545e1599a91ba843"


def _lookalike(folder: Path) -> Path:
    """A CA called "IHE Europe CA" and a leaf named like dcm4chee-arc's test certificate."""
    now = datetime.now(UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "IHE Europe CA")])
    leaf_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "AT"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dcm4che.org"),
            x509.NameAttribute(NameOID.COMMON_NAME, "dcm4che"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(leaf_name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "dcm4che.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "dcm4che.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return folder


def test_data_file_entries_are_sourced() -> None:
    entries = known()
    assert [e.id for e in entries] == ["dcm4chee-arc-test-certificate"]
    assert all(e.source and e.tag in ("confirmed", "secondary", "unconfirmed") for e in entries)
    assert entries[0].sha1 == DCM4CHEE_SHA1


@needs_dcmtk
def test_lookalike_of_dcm4chee_test_certificate_is_flagged(tmp_path: Path) -> None:
    certs = _lookalike(tmp_path)
    with dcmtk_tls(certs, "-ic", cert="dcm4che") as running:
        svc, host, _ = run_probe(running.info.port)
    [seen] = of_kind(svc, "tls-certificate")
    assert seen.subject == "CN=dcm4che,O=dcm4che.org,C=AT"
    assert seen.issuer == "CN=IHE Europe CA"
    pem = (certs / "dcm4che.pem").read_bytes()
    assert seen.sha1_fingerprint == x509.load_pem_x509_certificate(pem).fingerprint(
        hashes.SHA1()
    ).hex()
    [finding] = [f for f in tls_findings(host) if f.rule_id == "tls-cert-default"]
    assert finding.status is FindingStatus.FAIL
    assert finding.confidence is Confidence.INFERRED
    assert finding.evidence["default_certificate"] == "dcm4chee-arc-test-certificate"
    assert finding.evidence["matched_by"] == "subject and issuer names"

    # The very certificate (its published fingerprint) is a confirmed match.
    same = seen.model_copy(update={"sha1_fingerprint": DCM4CHEE_SHA1, "subject": "CN=other"})
    found = match(same)
    assert found is not None and found.confidence is Confidence.CONFIRMED
    assert found.by == "SHA-1 fingerprint"
    # Same subject from another issuer: not the test certificate.
    assert match(seen.model_copy(update={"issuer": "CN=Hospital CA"})) is None
