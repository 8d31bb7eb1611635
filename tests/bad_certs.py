"""Certificates ``cryptography`` refuses, made by patching a good one's DER.

Each patch swaps bytes of equal length, so the DER stays well formed and only the named
field becomes what a half-broken TLS stack might send.
"""

from __future__ import annotations

import datetime
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

EC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey
ECDSA_SHA256_OID = bytes.fromhex("06082a8648ce3d040302")
SAN_OID = bytes.fromhex("0603551d11")
BASIC_CONSTRAINTS_OID = bytes.fromhex("0603551d13")
VERSION_3 = bytes.fromhex("a003020102")


@functools.cache  # one key per run: property tests need the same bytes every time
def good_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=9))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hostile")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _swap(der: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    assert len(old) == len(new) and der.count(old) >= count, old.hex()
    return der.replace(old, new, count)


def bad_ders() -> dict[str, bytes]:
    der = good_der()
    return {
        # X.509 version 4 (value 3): neither 1 nor 3.
        "version": _swap(der, VERSION_3, bytes.fromhex("a003020103")),
        "key-algorithm": _swap(der, EC_KEY_OID, bytes.fromhex("06072a8648ce3d0209")),
        # Both signature algorithm fields (inside and outside the TBS) name an unknown one.
        "signature-algorithm": _swap(
            der, ECDSA_SHA256_OID, bytes.fromhex("06082a8648ce3d040309"), 2
        ),
        "duplicate-extension": _swap(der, BASIC_CONSTRAINTS_OID, SAN_OID),
    }


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def server_flight(client_hello: bytes, der: bytes) -> bytes:
    """ServerHello (the client's version, up to TLS 1.2, and one suite), Certificate
    with ``der``, ServerHelloDone: enough for a client to read the certificate."""
    version = client_hello[9:11] if len(client_hello) >= 11 else b"\x03\x03"
    version = min(version, b"\x03\x03")
    sid_len = client_hello[43] if len(client_hello) > 43 else 0
    at = 44 + sid_len
    count = int.from_bytes(client_hello[at : at + 2], "big")
    offered = client_hello[at + 2 : at + 2 + count]
    suite = b"\x00\x2f"  # TLS_RSA_WITH_AES_128_CBC_SHA only: enumeration ends at once
    if suite not in [offered[i : i + 2] for i in range(0, len(offered), 2)]:
        return b"\x15" + version + b"\x00\x02\x02\x28"  # handshake_failure alert
    hello = version + bytes(32) + b"\x00" + suite + b"\x00"
    certs = len(der).to_bytes(3, "big") + der
    body = (
        _handshake(2, hello)
        + _handshake(11, len(certs).to_bytes(3, "big") + certs)
        + _handshake(14, b"")
    )
    return b"\x16" + version + len(body).to_bytes(2, "big") + body
