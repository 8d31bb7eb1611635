"""Known default and test certificates (``scanner/data/default_certificates.yaml``).

Data, not code: a new default certificate is one entry in that file. Used by the TLS
rules to raise ``tls-cert-default``.
"""

from dataclasses import dataclass
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scanner.model.base import empty_dict
from scanner.model.data_cache import shipped_yaml
from scanner.model.observations import Confidence
from scanner.model.tls_observations import TlsCertificate


class DefaultCertificate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    product: str
    description: str
    sha1: str | None = Field(default=None, description="leaf SHA-1 fingerprint, hex")
    subject: dict[str, str] = Field(default_factory=empty_dict)
    issuer: dict[str, str] = Field(default_factory=empty_dict)
    source: str
    tag: str = Field(pattern="^(confirmed|secondary|unconfirmed)$")

    @field_validator("sha1")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.replace(":", "").lower()
        if len(digits) != 40 or any(c not in "0123456789abcdef" for c in digits):
            raise ValueError("sha1 must be 40 hex digits (colons allowed)")
        return digits


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificates: list[DefaultCertificate]


@dataclass(frozen=True)
class Match:
    entry: DefaultCertificate
    by: str
    confidence: Confidence


@cache
def known() -> tuple[DefaultCertificate, ...]:
    text = (resources.files("scanner") / "data" / "default_certificates.yaml").read_text()
    return tuple(_File.model_validate(shipped_yaml(text)).certificates)


def _attributes(dn: str) -> set[tuple[str, str]]:
    """RFC 4514 string to (name, value) pairs; values here never contain escaped commas."""
    pairs = set()
    for part in dn.split(","):
        name, sep, value = part.partition("=")
        if sep:
            pairs.add((name.strip().upper(), value.strip()))
    return pairs


def _names_match(wanted: dict[str, str], dn: str) -> bool:
    have = _attributes(dn)
    return bool(wanted) and all((k.upper(), v) in have for k, v in wanted.items())


def match(cert: TlsCertificate) -> Match | None:
    for entry in known():
        if entry.sha1 is not None and cert.sha1_fingerprint == entry.sha1:
            return Match(entry, "SHA-1 fingerprint", Confidence.CONFIRMED)
    for entry in known():
        if _names_match(entry.subject, cert.subject) and (
            not entry.issuer or _names_match(entry.issuer, cert.issuer)
        ):
            return Match(entry, "subject and issuer names", Confidence.INFERRED)
    return None
