"""Certificates that ``cryptography`` refuses are described as far as they parse, or
recorded as refused: never an exception out of the TLS probe."""

from __future__ import annotations

import pytest
from cryptography import x509

from probes.tls import certificate
from tests.bad_certs import bad_ders, good_der

BAD = bad_ders()


def test_patches_really_are_refused() -> None:
    """The fixtures do what they say: cryptography itself raises on each."""
    with pytest.raises(x509.InvalidVersion):
        x509.load_der_x509_certificate(BAD["version"])
    cert = x509.load_der_x509_certificate(BAD["key-algorithm"])
    with pytest.raises(Exception, match=r"(?i)unknown|unsupported|not supported"):
        cert.public_key()
    with pytest.raises(Exception):  # noqa: B017  (any refusal will do)
        _ = x509.load_der_x509_certificate(BAD["signature-algorithm"]).signature_hash_algorithm
    with pytest.raises(x509.DuplicateExtension):
        _ = x509.load_der_x509_certificate(BAD["duplicate-extension"]).extensions


@pytest.mark.parametrize("name", ["key-algorithm", "signature-algorithm", "duplicate-extension"])
def test_refused_field_is_described_as_unknown(name: str) -> None:
    cert = certificate.describe([BAD[name]], "test")
    assert cert.subject == "CN=hostile"
    if name == "key-algorithm":
        assert (cert.key_type, cert.key_bits) == ("unsupported", 0)
    if name == "signature-algorithm":
        assert cert.signature_hash is None
    if name == "duplicate-extension":
        assert cert.sans == []


def test_unparsable_certificate_is_refused_with_a_reason() -> None:
    with pytest.raises(certificate.CertificateRefused, match="InvalidVersion"):
        certificate.describe([BAD["version"]], "test")


def test_chain_is_capped() -> None:
    der = good_der()
    cert = certificate.describe([der] * 100, "test")
    assert cert.chain_length == certificate.MAX_CHAIN
