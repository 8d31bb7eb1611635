"""The scan's results: hosts, ports, services with their observations, and findings.

Observations (what probes measured) and findings (what rules concluded) are
separate types. Everything here is a pydantic model so a whole scan round-trips
through JSON: a job can be handed to another site's scanner and its result
read back without loss. The field names are the stable JSON contract.
"""

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, model_validator

from scanner import __version__
from scanner.model.base import Frozen, empty_dict, empty_list
from scanner.model.confidence import Confidence
from scanner.model.identity import device_id, finding_id
from scanner.model.lazy_observations import LazyObservations
from scanner.model.settings import DiscoveryMethod, EngineName, ProfileName
from scanner.model.vendor import VendorIdentity

if TYPE_CHECKING:
    from scanner.model.observations import Observation

    Observations = list[Observation]
else:  # built on first use: a scan that finds nothing open never loads them
    Observations = Annotated[list[Any], LazyObservations()]

SCHEMA_VERSION = "1.0"

JsonValue = Any  # evidence values are plain JSON (str, int, float, bool, None, lists, dicts)


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
    OPEN_FILTERED = "open|filtered"  # UDP: no answer, and no ICMP port unreachable either


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class HostDiscovery(Frozen):
    """How the host was found alive: the discovery probe's raw evidence."""

    method: str = Field(description="arp, icmp, tcp, nmap, or none (not probed)")
    reason: str = Field(description="what answered, e.g. arp-reply, echo-reply, 104 refused")
    mac: str | None = Field(default=None, description="source MAC of the answer, if seen")
    rtt_ms: float | None = None
    observed_at: datetime


class PortObservation(Frozen):
    port: int = Field(ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    state: PortState
    method: str = Field(description="how the state was measured, e.g. tcp-connect")
    reason: str = Field(description="what was seen: connected, refused, timeout, unreachable")
    rtt_ms: float | None = None
    observed_at: datetime


class Service(Frozen):
    port: int = Field(ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    name: str = Field(description="dicom, http, ssh, tls, ... or unknown")
    tls: bool = False
    product: str | None = None
    version: str | None = None
    observations: Observations = Field(default_factory=empty_list)


def _absent(value: Any) -> bool:
    # Seen times exist only with a history: left out, not null, so saved scans round-trip.
    return value is None


class Host(Frozen):
    address: str
    device_id: str = Field(
        default="",
        description="stable device identity: SHA-256 (first 32 hex digits) of 'mac:<MAC>' "
        "where the MAC is known, else of 'ip:<address>'",
    )
    hostname: str | None = Field(default=None, description="only the name the user gave")
    mac: str | None = Field(default=None, description="MAC address, on a directly attached link")
    mac_vendor: str | None = Field(
        default=None, description="registrant of the MAC's OUI (offline IEEE/Wireshark data)"
    )
    discovery: HostDiscovery | None = None
    vendors: list[VendorIdentity] = Field(
        default_factory=empty_list,
        description="vendors the disclosed evidence points to, best first",
    )
    role: str | None = Field(default=None, description="guessed device role")
    role_confidence: float | None = None
    role_reasons: list[str] = Field(default_factory=empty_list)
    ports: list[PortObservation] = Field(default_factory=empty_list)
    services: list[Service] = Field(default_factory=empty_list)
    errors: list[str] = Field(default_factory=empty_list)
    first_seen: datetime | None = Field(
        default=None, exclude_if=_absent,
        description="start of the first stored scan (of the same job) in which the device "
        "answered; only when the scan is stored in or read from a history")
    last_seen: datetime | None = Field(
        default=None, exclude_if=_absent, description="start of the last such scan up to this one")

    @model_validator(mode="before")
    @classmethod
    def _identity(cls, data: Any) -> Any:
        # Derived, never chosen: filled in when absent (also in scans saved before it).
        if isinstance(data, dict) and not data.get("device_id") and "address" in data:
            data = {**data, "device_id": device_id(data["address"], data.get("mac"))}
        return data


class Finding(Frozen):
    finding_id: str = Field(
        default="",
        description="stable across scans: SHA-256 (first 32 hex digits) of "
        "'rule_id|device_id|port|baseline' (empty parts where there is none; the baseline "
        "only for port-not-allowed and remote-access-exposed); the status is not part of it",
    )
    device_id: str = Field(default="", description="the device_id of the host it is about")
    rule_id: str
    severity: Severity
    status: FindingStatus
    host: str
    port: int | None = None
    title: str
    evidence: dict[str, JsonValue] = Field(default_factory=empty_dict)
    remediation: str = ""
    references: list[str] = Field(default_factory=empty_list)
    confidence: Confidence = Confidence.CONFIRMED
    first_seen: datetime | None = Field(
        default=None, exclude_if=_absent,
        description="start of the first stored scan (of the same job) in which this finding "
        "failed; only when the scan is stored in or read from a history, and absent for a "
        "finding that never failed")
    last_seen: datetime | None = Field(
        default=None, exclude_if=_absent, description="start of the last such scan up to this one")

    @model_validator(mode="before")
    @classmethod
    def _identity(cls, data: Any) -> Any:
        # Without its host's MAC at hand the device is taken by address; the rules'
        # evaluation passes the host's device_id in, so IDs follow the MAC where known.
        if isinstance(data, dict) and "rule_id" in data and "host" in data:
            if data.get("finding_id") and data.get("device_id"):
                return data  # both given (the rules' make_finding, a saved scan)
            device = data.get("device_id") or device_id(data["host"])
            if not data.get("finding_id"):
                evidence = data.get("evidence") or {}
                baseline = evidence.get("baseline") if isinstance(evidence, dict) else None
                data = {**data, "finding_id": finding_id(
                    data["rule_id"], device, data.get("port"),
                    baseline if isinstance(baseline, str) else None)}
            data = {**data, "device_id": device}
        return data

    def on_device(self, device: str) -> "Finding":
        """This finding with its identity taken from the device's ID (MAC where known)."""
        baseline = self.evidence.get("baseline")
        fid = finding_id(self.rule_id, device, self.port,
                         baseline if isinstance(baseline, str) else None)
        if device == self.device_id and fid == self.finding_id:
            return self  # a host without a MAC: already so (frozen, so shared safely)
        return self.model_copy(update={"device_id": device, "finding_id": fid})


class ScanError(Frozen):
    host: str | None = None
    port: int | None = None
    message: str
    unjudged: bool = Field(
        False, description="the rules failed on this host's data: its findings are missing")


class DiscoveryInfo(Frozen):
    """Which discovery ran, why, and what it found."""

    requested: DiscoveryMethod
    used: DiscoveryMethod
    why: str
    probed: int = Field(description="addresses probed")
    alive: int = Field(description="addresses found alive and then port-scanned")
    notes: list[str] = Field(default_factory=empty_list, description="methods skipped and why")
    elapsed_ms: float


class SkippedTarget(Frozen):
    """An address the scan left alone because a do-not-probe entry covers it."""

    address: str
    entry: str = Field(description="the do-not-probe entry that matched")
    reason: str
    source: str
    when: str = Field(description="before discovery, or once discovery learned its MAC")


class QuietHosts(Frozen):
    """Hosts of a large scan with nothing to report, counted instead of listed, so a sweep's
    memory and report do not grow with the empty addresses (scanner/engine/job.py)."""

    hosts: int = Field(
        ge=0, description="scanned: no open port, service, error or discovery answer"
    )
    refused: int = Field(
        ge=0, description="of those, hosts that refused a connection (so something answered)"
    )


class ScanMeta(Frozen):
    id: str
    tool: str = "dicomscan"
    tool_version: str = __version__
    started_at: datetime
    finished_at: datetime
    targets: list[str]
    profile: ProfileName
    ports: list[int]
    udp_ports: list[int] = Field(default_factory=empty_list)
    interrupted: bool = False
    errors: list[ScanError] = Field(default_factory=empty_list)
    engine: EngineName = EngineName.EMBEDDED
    discovery: DiscoveryInfo | None = None
    skipped: list[SkippedTarget] = Field(
        default_factory=empty_list, description="do-not-probe targets left alone, and why"
    )
    max_rate: float | None = Field(default=None, description="new connections/s cap used")
    quiet: QuietHosts | None = Field(
        default=None, description="large scans only: hosts with nothing to report, counted"
    )


class ScanResult(Frozen):
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
