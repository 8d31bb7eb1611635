"""Certificate details from the DER the server sent, read with ``cryptography``.

Nothing here trusts the certificate: it is described, and (when the user gave a CA
bundle) checked for a chain to it, but a scanner must report on bad certificates,
so nothing is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from scanner.model.tls_observations import TlsCertificate

EXPIRY_WARNING = timedelta(days=30)
MAX_CHAIN = 16  # certificates described per chain; a real chain has 2-4
# What ``cryptography`` raises on a certificate it parses but will not interpret: an
# unknown key or signature algorithm, a duplicated extension, a malformed field.
REFUSED = (
    ValueError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType
)


class CertificateRefused(ValueError):
    """The server's certificate does not parse; the message says why."""


def load_bundle(path: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle (the ``--ca`` option)."""
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``cert``. RSA and ECDSA are checked by hand because
    ``verify_directly_issued_by`` refuses SHA-1 signatures, which must still be seen to
    chain (their weakness is reported on its own)."""
    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            pss = cert.signature_algorithm_parameters
            pad = pss if isinstance(pss, padding.PSS) else padding.PKCS1v15()
            key.verify(cert.signature, cert.tbs_certificate_bytes, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def chains_to(chain: list[x509.Certificate], bundle: list[x509.Certificate]) -> bool:
    """Whether the leaf reaches a bundle certificate through the presented chain.

    Signatures only: validity dates and extensions are reported separately.
    """
    current = chain[0]
    pool = chain[1:]
    for _ in range(len(chain) + 1):
        if any(current == anchor or _issued_by(current, anchor) for anchor in bundle):
            return True
        parent = next((c for c in pool if _issued_by(current, c)), None)
        if parent is None:
            return False
        pool.remove(parent)
        current = parent
    return False


def _key(cert: x509.Certificate) -> tuple[str, int, str | None]:
    try:
        key = cert.public_key()
    except REFUSED:
        return "unsupported", 0, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    return "unknown", 0, None


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, *REFUSED):
        return []
    labels: tuple[tuple[type[x509.GeneralName], str], ...] = (
        (x509.DNSName, "DNS"),
        (x509.IPAddress, "IP"),
        (x509.UniformResourceIdentifier, "URI"),
        (x509.RFC822Name, "email"),
    )
    out: list[str] = []
    for general in ext:
        label = next((name for cls, name in labels if isinstance(general, cls)), "other")
        out.append(f"{label}:{general.value}")
    return out


def _chains(chain: list[x509.Certificate], bundle: list[x509.Certificate]) -> bool | None:
    try:
        return chains_to(chain, bundle)
    except REFUSED:
        return None  # could not be checked: never reported as a chain that holds


def _self_signed(cert: x509.Certificate) -> bool:
    try:
        return cert.issuer == cert.subject and _issued_by(cert, cert)
    except REFUSED:
        return False


def _name(read: object) -> str:
    """A distinguished name in RFC 4514 form, or a placeholder when it will not parse."""
    try:
        return str(read.rfc4514_string())  # type: ignore[attr-defined]
    except REFUSED:
        return "(unreadable name)"


def load_chain(der_chain: list[bytes]) -> list[x509.Certificate]:
    """The certificates, capped at ``MAX_CHAIN``. Raises ``CertificateRefused`` when one
    does not parse (bad DER, an X.509 version other than 1 or 3)."""
    try:
        return [x509.load_der_x509_certificate(d) for d in der_chain[:MAX_CHAIN]]
    except (x509.InvalidVersion, *REFUSED) as exc:
        raise CertificateRefused(f"{type(exc).__name__}: {exc}"[:200]) from exc


def describe(
    der_chain: list[bytes],
    source: str,
    bundle: list[x509.Certificate] | None = None,
    now: datetime | None = None,
) -> TlsCertificate:
    """The leaf certificate (first in the chain) as an observation. Raises ValueError on
    DER that does not parse."""
    chain = load_chain(der_chain)
    leaf = chain[0]
    now = now or datetime.now(UTC)
    try:
        not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    except REFUSED as exc:
        raise CertificateRefused(f"validity unreadable: {type(exc).__name__}") from exc
    key_type, key_bits, curve = _key(leaf)
    try:
        sig_hash = leaf.signature_hash_algorithm
    except REFUSED:  # an algorithm cryptography does not know: named by its OID below
        sig_hash = None
    try:
        sig_name = leaf.signature_algorithm_oid._name
    except AttributeError:  # pragma: no cover - private attribute, keep the dotted OID then
        sig_name = leaf.signature_algorithm_oid.dotted_string
    return TlsCertificate(
        source=source,
        subject=_name(leaf.subject),
        issuer=_name(leaf.issuer),
        serial=f"{leaf.serial_number:x}",
        sans=_sans(leaf),
        not_before=not_before,
        not_after=not_after,
        days_left=(not_after - now).days,
        self_signed=_self_signed(leaf),
        expired=now > not_after,
        not_yet_valid=now < not_before,
        expiring_soon=now <= not_after < now + EXPIRY_WARNING,
        key_type=key_type,
        key_bits=key_bits,
        key_curve=curve,
        signature_algorithm=sig_name,
        signature_hash=sig_hash.name if sig_hash else None,
        sha256_fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        sha1_fingerprint=leaf.fingerprint(hashes.SHA1()).hex(),
        chain_length=len(chain),
        chain_subjects=[_name(c.subject) for c in chain[1:]],
        ca_verified=None if bundle is None else _chains(chain, bundle),
    )
