"""The central site's small certificate authority, with ``cryptography``.

One CA signs the server's certificate and one client certificate per sensor (and one
for the central process itself). nats-server maps a client certificate to a user by
its e-mail SAN (``verify_and_map``), so the SAN is the identity the permissions use.
Keys are ECDSA P-256: small, fast, and accepted by nats-server's Go TLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IDENTITY_DOMAIN = "dicomscan.fleet"
CA_YEARS = 10
LEAF_YEARS = 2


def identity(name: str) -> str:
    """The user name nats-server sees for a client certificate: its e-mail SAN."""
    return f"{name}@{IDENTITY_DOMAIN}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(folder: Path, common_name: str = "dicomscan fleet CA") -> None:
    """ca.pem and ca.key in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dicomscan")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    write_private(folder / "ca.key", _key_pem(key))
    write_public(folder / "ca.pem", _cert_pem(cert))


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    return cert, key


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue(ca_folder: Path, out_cert: Path, out_key: Path, common_name: str, *,
          server_hosts: list[str] | None = None, client_name: str | None = None) -> None:
    """A leaf certificate signed by the CA: a server one (SANs = ``server_hosts``) or a
    client one (e-mail SAN = ``identity(client_name)``)."""
    ca_cert, ca_key = _load_ca(ca_folder)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    if server_hosts is not None:
        sans, usage = _alt_names(server_hosts), ExtendedKeyUsageOID.SERVER_AUTH
    elif client_name is not None:
        sans = [x509.RFC822Name(identity(client_name))]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    else:
        raise ValueError("a leaf is either a server or a client certificate")
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * LEAF_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private(out_key, _key_pem(key))
    write_public(out_cert, _cert_pem(cert))


def client_problem(ca_pem: bytes, cert_pem: bytes, key_pem: bytes, name: str) -> str | None:
    """Why a sensor bundle's CA, certificate and key cannot make the client identity
    ``name`` (None when they can): not PEM, a key of another certificate, a certificate
    another CA signed (a bundle of another centre, or of a centre initialised again), or
    another sensor's certificate. Each made the sensor fail at the handshake, or dial and
    be refused for ever."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        return "ca.pem is not a PEM certificate"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "sensor.pem is not a PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "sensor.key is not an unencrypted PEM private key"
    raw = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        return "sensor.key is not the key of sensor.pem"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return ("sensor.pem was not issued by the bundle's ca.pem (a bundle of another "
                "centre, or one made before central was initialised again)")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = sans.get_values_for_type(x509.RFC822Name)
    except x509.ExtensionNotFound:
        emails = []
    if identity(name) not in emails:
        return (f"sensor.pem is the certificate of {', '.join(emails) or 'no sensor'}, not "
                f"of sensor {name!r} (sensor.json)")
    return None
