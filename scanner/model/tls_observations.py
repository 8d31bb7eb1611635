"""Typed observations of the TLS probe: what was measured, with no verdict.

Kept apart from ``scanner.model.observations`` (which adds these classes to its
``Observation`` union) and importing nothing from it, so there is no import cycle.
"""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scanner.model.base import empty_list


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionOutcome(StrEnum):
    ACCEPTED = "accepted"  # ServerHello selected exactly this version
    REFUSED = "refused"  # alert (protocol_version, handshake_failure) or a lower version chosen
    CLOSED = "closed"  # connection closed without a ServerHello
    NO_ANSWER = "no-answer"  # nothing (or a stalled handshake) within the timeout
    NOT_TLS = "not-tls"  # the answer was not a TLS record
    ERROR = "error"  # connection failed


class CipherSuite(_Frozen):
    code: str = Field(description="IANA value, e.g. 0xC02F")
    name: str = Field(description="IANA name")
    kex: str
    auth: str
    cipher: str
    bits: int
    mode: str = Field(description="aead, cbc, stream or null")
    weaknesses: list[str] = Field(
        default_factory=empty_list,
        description="null-cipher, export, rc4, des, 3des, anonymous, no-forward-secrecy, "
        "below-112-bit, cbc, dhe, md5-mac",
    )
    grade: str = Field(description="RFC 9325: insecure, weak, discouraged, acceptable, recommended")


class TlsVersion(_Frozen):
    """One protocol version, offered on its own, and the suites the server accepted with it."""

    kind: Literal["tls-version"] = "tls-version"
    version: str = Field(description="SSLv3, TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3")
    outcome: VersionOutcome
    selected_version: str | None = Field(
        default=None, description="what the ServerHello chose, when it was another version"
    )
    alert: int | None = None
    alert_text: str | None = None
    detail: str = ""
    suites: list[CipherSuite] = Field(
        default_factory=empty_list, description="accepted suites in the order the server chose them"
    )
    enumeration_complete: bool = Field(
        default=False, description="the last offer ended in 'no shared suite', so the list is full"
    )
    certificate_requested: bool | None = Field(
        default=None, description="a CertificateRequest came in the server's flight (TLS <= 1.2)"
    )
    connections: int = 0
    elapsed_ms: float = 0.0


class TlsCertificate(_Frozen):
    kind: Literal["tls-certificate"] = "tls-certificate"
    source: str = Field(description="how it was read: TLSv1.2 handshake (clear), TLSv1.3 handshake")
    subject: str
    issuer: str
    serial: str
    sans: list[str] = Field(default_factory=empty_list)
    not_before: datetime
    not_after: datetime
    days_left: int
    self_signed: bool
    expired: bool
    not_yet_valid: bool
    expiring_soon: bool = Field(description="expires within 30 days")
    key_type: str = Field(description="RSA, EC, DSA, Ed25519, Ed448 or unknown")
    key_bits: int
    key_curve: str | None = None
    signature_algorithm: str
    signature_hash: str | None = Field(description="e.g. sha256; None for Ed25519/Ed448")
    sha256_fingerprint: str
    sha1_fingerprint: str | None = Field(
        default=None, description="hex; how vendors publish their default certificates"
    )
    chain_length: int = 1
    chain_subjects: list[str] = Field(default_factory=empty_list)
    ca_verified: bool | None = Field(
        default=None, description="chains to the --ca bundle (None when no bundle was given)"
    )


class HandshakeOutcome(StrEnum):
    COMPLETED = "completed"
    CLIENT_CERT_REQUIRED = "client-cert-required"  # refused: we sent no certificate
    CLIENT_CERT_REJECTED = "client-cert-rejected"  # refused: ours was not accepted
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    ERROR = "error"


class TlsHandshake(_Frozen):
    """A full handshake (a real TLS client), used for the certificate under TLS 1.3,
    mutual TLS and the DICOM association inside TLS."""

    kind: Literal["tls-handshake"] = "tls-handshake"
    with_client_cert: bool
    outcome: HandshakeOutcome
    version: str | None = None
    cipher: str | None = None
    alert: int | None = None
    alert_text: str | None = None
    detail: str = ""
    elapsed_ms: float


class ProfileCheck(_Frozen):
    profile: str = Field(description="PS3.15 Annex B section, e.g. B.12")
    name: str
    current: bool = Field(description="false for retired profiles")
    conforms: bool
    reasons: list[str] = Field(default_factory=empty_list, description="why it does not conform")
    notes: list[str] = Field(default_factory=empty_list, description="SHOULD-level deviations")
    unmeasured: list[str] = Field(
        default_factory=empty_list,
        description="what the profile depends on but was not measured; never claimed then",
    )


class TlsSummary(_Frozen):
    """The TLS verdict-free summary of one port: spoken or not, and what it adds up to."""

    kind: Literal["tls-summary"] = "tls-summary"
    speaks_tls: bool
    outcome: str = Field(description="tls, not-tls, closed, no-answer or error")
    detail: str = ""
    first_bytes_hex: str | None = None
    versions_accepted: list[str] = Field(default_factory=empty_list)
    versions_tested: list[str] = Field(default_factory=empty_list)
    client_cert_requested: bool | None = None
    client_cert_required: bool | None = Field(
        default=None, description="a handshake without a client certificate was refused"
    )
    dicom_inside: bool | None = Field(
        default=None, description="an A-ASSOCIATE-RQ sent inside TLS got a DICOM answer"
    )
    profiles: list[ProfileCheck] = Field(default_factory=empty_list)
    best_profile: str | None = Field(
        default=None, description="most current DICOM TLS profile the observations conform to"
    )
    meets_b12: bool | None = None
    connections: int = 0
    elapsed_ms: float = 0.0


TLS_OBSERVATIONS = (TlsSummary, TlsVersion, TlsCertificate, TlsHandshake)
