"""Typed observations: what a probe measured, with its raw evidence and no verdict.

Each observation type carries a ``kind`` literal so that a service's list of
observations is a discriminated union: a reader (or the JSON Schema) can tell
them apart without guessing, and new probes add a type here without touching
the others.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from scanner.model.base import empty_list
from scanner.model.confidence import Confidence as Confidence  # re-exported: its old home


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Banner(_Frozen):
    """The first bytes a non-DICOM service sent back after our A-ASSOCIATE-RQ."""

    kind: Literal["banner"] = "banner"
    first_bytes_hex: str
    text: str = Field(description="printable rendering of the first bytes")
    closed_without_data: bool = False


class AssociationOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ABORTED = "aborted"
    NOT_DICOM = "not-dicom"
    NO_ANSWER = "no-answer"
    CLOSED = "closed"
    ERROR = "error"


class RejectInfo(_Frozen):
    result: int
    result_text: str
    source: int
    source_text: str
    reason: int
    reason_text: str

    @property
    def by_the_device(self) -> bool:
        """Permanent and from the service user: the device's own answer to this request.
        A transient rejection (congestion, its association limit) or one from the upper
        layer is about load or the protocol, not about the titles that asked."""
        return (self.result, self.source) == (1, 1)


class AbortInfo(_Frozen):
    source: int
    reason: int
    text: str


class PeerIdentity(_Frozen):
    """User-information items of an A-ASSOCIATE-AC."""

    implementation_class_uid: str | None = None
    implementation_version_name: str | None = None
    max_pdu_length: int | None = None
    async_ops_window: tuple[int, int] | None = None
    role_selection: list[str] = Field(default_factory=empty_list)
    extended_negotiation: list[str] = Field(default_factory=empty_list)


class ContextResult(_Frozen):
    abstract_syntax: str
    name: str
    result: int
    result_text: str
    transfer_syntax: str | None = None

    @property
    def accepted(self) -> bool:
        return self.result == 0


class Association(_Frozen):
    """One A-ASSOCIATE-RQ we sent and what came back."""

    kind: Literal["dicom-association"] = "dicom-association"
    purpose: str = Field(
        description="why: detect, detect-tls, called-ae, calling-ae, ae-guess, operation ..."
    )
    calling_ae: str
    called_ae: str
    outcome: AssociationOutcome
    detail: str = ""
    reject: RejectInfo | None = None
    abort: AbortInfo | None = None
    peer: PeerIdentity | None = None
    contexts: list[ContextResult] = Field(default_factory=empty_list)
    first_bytes_hex: str | None = None
    released: bool | None = Field(
        default=None, description="true when an accepted association ended with A-RELEASE-RP"
    )
    elapsed_ms: float


class OperationOutcome(StrEnum):
    AUTHORISED = "authorised"
    REFUSED = "refused"
    CONTEXT_REJECTED = "context-rejected"
    ABORTED = "aborted"
    NO_ANSWER = "no-answer"
    NOT_TESTED = "not-tested"
    ERROR = "error"
    # A status "Refused: Out of Resources" (0xA7xx): the device is at capacity, which says
    # nothing about whether an unknown peer may do this.
    BUSY = "busy"
    # A failure status that is no refusal ("Processing failure", "Unrecognized
    # operation"): the request failed, which says nothing about who may make it.
    FAILED = "failed"


# Outcomes that measured nothing: no status came back, or one about the device's load or
# its failure to carry the request out.
UNMEASURED_OPERATIONS = frozenset({OperationOutcome.NO_ANSWER, OperationOutcome.ERROR,
                                   OperationOutcome.BUSY, OperationOutcome.FAILED})


class Operation(_Frozen):
    """A DIMSE operation tried as an unknown peer, built so nothing can match."""

    kind: Literal["dicom-operation"] = "dicom-operation"
    operation: str = Field(description="C-ECHO, C-FIND, C-GET, C-MOVE or C-STORE")
    sop_class: str
    sop_class_name: str
    outcome: OperationOutcome
    confidence: Confidence
    status: int | None = None
    status_text: str | None = None
    detail: str = ""
    sent: str = Field(default="", description="what was sent, without any data")


class AeTitleGuess(_Frozen):
    kind: Literal["dicom-ae-guess"] = "dicom-ae-guess"
    tried: int
    accepted_titles: list[str]
    source: str = Field(description="built-in wordlist, a file, or --ae-title")
    stopped: str = Field(default="", description="why guessing ended before the list did "
                         "without a title accepted (the device stopped answering normally); "
                         "empty when the list was tried to the end or a title was accepted")


class Fingerprint(_Frozen):
    kind: Literal["fingerprint"] = "fingerprint"
    product: str | None
    version: str | None
    vendor: str | None = None
    confidence: str = Field(description="high, medium or low")
    matched_by: list[str] = Field(default_factory=empty_list)
    source: str | None = None
    honeypot_suspected: bool = False
    honeypot_reasons: list[str] = Field(default_factory=empty_list)


class NmapService(_Frozen):
    """What nmap's service detection (-sV) reported for the port."""

    kind: Literal["nmap-service"] = "nmap-service"
    name: str
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    cpe: list[str] = Field(default_factory=empty_list)
    reason: str = Field(default="", description="nmap's reason for the port state")


class ProbeError(_Frozen):
    """A probe or host analysis that failed unexpectedly on this service. The other probes
    still ran; the failure is evidence about the peer (or a scanner bug), never a verdict."""

    kind: Literal["probe-error"] = "probe-error"
    probe: str = Field(description="the probe or analysis that failed")
    exception: str = Field(description="the exception type")
    message: str = Field(description="a short message (at most 200 characters)")


from scanner.model.http_observations import (  # noqa: E402  (kept beside the union it extends)
    HttpCheck,
    HttpSummary,
    ServiceBannerInfo,
)
from scanner.model.legacy_observations import (  # noqa: E402  (kept beside the union it extends)
    RdpNegotiation,
    SmbNegotiation,
    SnmpObservation,
)
from scanner.model.tls_observations import (  # noqa: E402  (kept beside the union it extends)
    TlsCertificate,
    TlsHandshake,
    TlsSummary,
    TlsVersion,
)


class HealthPhase(StrEnum):
    BEFORE = "before"
    AFTER = "after"


class HealthCheck(_Frozen):
    """Was the device answering, before its probes and after them: a C-ECHO in an
    association of its own, or a TCP connect where the echo was refused (for DICOM inside
    TLS, the handshake where the device's TLS stack refused us: it still answered)."""

    kind: Literal["health-check"] = "health-check"
    phase: HealthPhase
    method: Literal["c-echo", "tcp-connect", "tls-handshake"]
    answered: bool
    detail: str
    at: str = Field(description="UTC time of the check (ISO 8601)")


class ConnectionBackoff(_Frozen):
    """Connections to a device that had answered started failing (refused, reset, timed
    out): the scanner backed off and, at the limit, stopped sending to it."""

    kind: Literal["connection-backoff"] = "connection-backoff"
    failures: int
    waited_s: float = Field(description="total back-off wait")
    stopped: bool = Field(description="the failure limit was reached: no further probes")
    events: list[str] = Field(description="timeline: UTC time, then what happened")


Observation = Annotated[
    Banner
    | Association
    | Operation
    | AeTitleGuess
    | Fingerprint
    | TlsSummary
    | TlsVersion
    | TlsCertificate
    | TlsHandshake
    | HttpCheck
    | HttpSummary
    | ServiceBannerInfo
    | NmapService
    | SmbNegotiation
    | RdpNegotiation
    | SnmpObservation
    | ProbeError
    | HealthCheck
    | ConnectionBackoff,
    Field(discriminator="kind"),
]
