"""The scan's data model: settings in, results out.

Observations (what probes measured) and findings (what rules concluded) are
separate types. Everything here is a pydantic model so a whole scan round-trips
through JSON: a job can be handed to another site's scanner and its result
read back without loss. The field names are the stable JSON contract.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scanner import __version__
from scanner.observations import Confidence, Observation

SCHEMA_VERSION = "1.0"

JsonValue = Any  # evidence values are plain JSON (str, int, float, bool, None, lists, dicts)


def _random_ae(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:10].upper()


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class FindingStatus(StrEnum):
    FAIL = "fail"
    PASS = "pass"
    NOT_CHECKED = "not-checked"
    WAIVED = "waived"


class PortState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class ProfileName(StrEnum):
    SAFE = "safe"
    NORMAL = "normal"
    FAST = "fast"


class DiscoveryMethod(StrEnum):
    AUTO = "auto"
    ARP = "arp"
    ICMP = "icmp"
    TCP = "tcp"
    NONE = "none"


class EngineName(StrEnum):
    EMBEDDED = "embedded"
    NMAP = "nmap"


class HostDiscovery(_Frozen):
    """How the host was found alive: the discovery probe's raw evidence."""

    method: str = Field(description="arp, icmp, tcp, nmap, or none (not probed)")
    reason: str = Field(description="what answered, e.g. arp-reply, echo-reply, 104 refused")
    mac: str | None = Field(default=None, description="source MAC of the answer, if seen")
    rtt_ms: float | None = None
    observed_at: datetime


class PortObservation(_Frozen):
    port: int = Field(ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    state: PortState
    method: str = Field(description="how the state was measured, e.g. tcp-connect")
    reason: str = Field(description="what was seen: connected, refused, timeout, unreachable")
    rtt_ms: float | None = None
    observed_at: datetime


class Service(_Frozen):
    port: int = Field(ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    name: str = Field(description="dicom, http, ssh, tls, ... or unknown")
    tls: bool = False
    product: str | None = None
    version: str | None = None
    observations: list[Observation] = Field(default_factory=list)


class Host(_Frozen):
    address: str
    hostname: str | None = Field(default=None, description="only the name the user gave")
    mac: str | None = Field(default=None, description="MAC address, on a directly attached link")
    mac_vendor: str | None = Field(
        default=None, description="registrant of the MAC's OUI (offline IEEE/Wireshark data)"
    )
    discovery: HostDiscovery | None = None
    role: str | None = Field(default=None, description="guessed device role")
    role_confidence: float | None = None
    role_reasons: list[str] = Field(default_factory=list)
    ports: list[PortObservation] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class Finding(_Frozen):
    rule_id: str
    severity: Severity
    status: FindingStatus
    host: str
    port: int | None = None
    title: str
    evidence: dict[str, JsonValue] = Field(default_factory=dict)
    remediation: str = ""
    references: list[str] = Field(default_factory=list)
    confidence: Confidence = Confidence.CONFIRMED


class Timeouts(_Frozen):
    """Per-phase timeouts in seconds."""

    connect: float = Field(gt=0)
    dicom: float = Field(gt=0, description="A-ASSOCIATE and A-RELEASE answers")
    dimse: float = Field(gt=0, description="DIMSE responses")
    host: float = Field(gt=0, description="everything done to one host")


class ScanSettings(_Frozen):
    """A scan job's input: complete, serialisable, and free of process state."""

    targets: list[str] = Field(description="addresses to scan, already expanded and checked")
    target_specs: list[str] = Field(description="targets as the user gave them")
    hostnames: dict[str, str] = Field(
        default_factory=dict, description="address -> name the user gave"
    )
    ports: list[int]
    profile: ProfileName = ProfileName.SAFE
    max_concurrency: int = Field(gt=0)
    per_host_connections: int = Field(gt=0)
    probe_spacing: float = Field(ge=0, description="seconds between connection starts per host")
    timeouts: Timeouts
    calling_ae: str = Field(default="DICOMSCAN", description="AE title the scanner presents")
    ae_titles: list[str] = Field(default_factory=list, description="known AE titles to try")
    random_called_ae: str = Field(
        default_factory=lambda: _random_ae("DSCN"),
        description="a called AE title no device has: tests called AE enforcement",
    )
    random_calling_ae: str = Field(
        default_factory=lambda: _random_ae("DSCU"),
        description="an unregistered calling AE title: tests calling AE validation",
    )
    zero_match_uid: str = Field(
        default_factory=lambda: f"2.25.{uuid.uuid4().int}",
        description="Study Instance UID that matches nothing, for authorisation tests",
    )
    ae_guess: bool = False
    ae_wordlist: list[str] = Field(default_factory=list)
    intrusive: bool = False
    client_cert: str | None = Field(default=None, description="PEM file for mutual TLS")
    client_key: str | None = Field(default=None, description="its key file (never logged)")
    ca: str | None = Field(default=None, description="CA bundle to check server certificates")
    allow_public: bool = False
    baseline: str | None = Field(
        default=None, description="baseline forced on every host instead of selection"
    )
    policy: dict[str, Any] | None = Field(
        default=None,
        description="the site policy (scanner.policy.SitePolicy as JSON): pins and waivers",
    )
    discovery: DiscoveryMethod = Field(
        default=DiscoveryMethod.AUTO, description="host discovery before the port scan"
    )
    engine: EngineName = Field(default=EngineName.EMBEDDED, description="port scan engine")
    service_version: bool = Field(default=False, description="nmap -sV on open ports")
    scan_id: str = Field(default_factory=lambda: str(uuid.uuid4()))


class ScanError(_Frozen):
    host: str | None = None
    port: int | None = None
    message: str


class DiscoveryInfo(_Frozen):
    """Which discovery ran, why, and what it found."""

    requested: DiscoveryMethod
    used: DiscoveryMethod
    why: str
    probed: int = Field(description="addresses probed")
    alive: int = Field(description="addresses found alive and then port-scanned")
    notes: list[str] = Field(default_factory=list, description="methods skipped and why")
    elapsed_ms: float


class ScanMeta(_Frozen):
    id: str
    tool: str = "dicomscan"
    tool_version: str = __version__
    started_at: datetime
    finished_at: datetime
    targets: list[str]
    profile: ProfileName
    ports: list[int]
    interrupted: bool = False
    errors: list[ScanError] = Field(default_factory=list)
    engine: EngineName = EngineName.EMBEDDED
    discovery: DiscoveryInfo | None = None


class ScanResult(_Frozen):
    schema_version: str = SCHEMA_VERSION
    scan: ScanMeta
    hosts: list[Host]
    findings: list[Finding]

    def __repr__(self) -> str:
        # Short on purpose: Python 3.11's asyncio.run repr()s the finished main task when it
        # restores its SIGINT handler, and the full repr of a large scan costs seconds.
        return (
            f"ScanResult(id={self.scan.id!r}, hosts={len(self.hosts)}, "
            f"findings={len(self.findings)}, interrupted={self.scan.interrupted})"
        )

    def worst_failure(self) -> Severity | None:
        failed = [f.severity for f in self.findings if f.status is FindingStatus.FAIL]
        return max(failed, key=lambda s: s.rank) if failed else None
