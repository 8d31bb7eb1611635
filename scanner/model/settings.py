"""A scan job's input: settings that are complete, serialisable and free of process
state, so a job can be handed to another site's scanner."""

import uuid
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from scanner.model.base import Frozen, empty_dict, empty_list


def ae_title_problem(title: str) -> str | None:
    """Why ``title`` cannot be an AE title, or None. Only spaces is refused too: DICOM
    forbids it (PS3.5 AE), pynetdicom then refused every association, and the scan
    reported the DICOM services it could not talk to as no DICOM at all."""
    if not title or len(title) > 16 or not all(32 <= ord(c) < 127 for c in title) \
            or "\\" in title:
        return "is not a valid AE title (1-16 printable ASCII characters, no backslash)"
    if not title.strip():
        return "is not a valid AE title: only spaces, which DICOM does not allow"
    return None


def _random_ae(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:10].upper()


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


class DoNotProbeKind(StrEnum):
    ADDRESS = "address"
    NETWORK = "network"
    NAME = "name"
    MAC = "mac"


class DoNotProbe(Frozen):
    """A device the site says must never receive a packet from the scanner."""

    entry: str = Field(description="address, CIDR network, host name or MAC address")
    kind: DoNotProbeKind
    reason: str = Field(min_length=1)
    source: str = Field(description="where the entry came from (file or policy)")


class Timeouts(Frozen):
    """Per-phase timeouts in seconds."""

    connect: float = Field(gt=0)
    dicom: float = Field(gt=0, description="A-ASSOCIATE and A-RELEASE answers")
    dimse: float = Field(gt=0, description="DIMSE responses")
    host: float = Field(gt=0, description="everything done to one host")


class ScanSettings(Frozen):
    """A scan job's input: complete, serialisable, and free of process state."""

    targets: list[str] = Field(description="addresses to scan, already expanded and checked")
    target_specs: list[str] = Field(description="targets as the user gave them")
    hostnames: dict[str, str] = Field(
        default_factory=empty_dict, description="address -> name the user gave"
    )
    ports: list[int] = Field(description="TCP ports")
    udp_ports: list[int] = Field(
        default_factory=empty_list, description="UDP ports (U: in the port list); 161 gets SNMP"
    )
    profile: ProfileName = ProfileName.SAFE
    max_concurrency: int = Field(gt=0)
    per_host_connections: int = Field(gt=0)
    probe_spacing: float = Field(ge=0, description="seconds between connection starts per host")
    timeouts: Timeouts
    calling_ae: str = Field(default="DICOMSCAN", description="AE title the scanner presents")
    ae_titles: list[str] = Field(default_factory=empty_list, description="known AE titles to try")
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
    ae_wordlist: list[str] = Field(default_factory=empty_list)
    intrusive: bool = False
    client_cert: str | None = Field(default=None, description="PEM file for mutual TLS")
    client_key: str | None = Field(default=None, description="its key file (never logged)")
    ca: str | None = Field(default=None, description="CA bundle to check server certificates")
    allow_public: bool = False
    scope: list[str] = Field(
        default_factory=empty_list, description="networks every target must lie in (checked again "
        "by the job before any packet)"
    )
    max_addresses: int = Field(default=65536, gt=0, description="size guard on the targets")
    do_not_probe: list[DoNotProbe] = Field(
        default_factory=empty_list, description="never sent a packet, in any phase"
    )
    max_rate: float = Field(
        default=0, ge=0, description="new connections per second across the scan; 0: no cap"
    )
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

    # A job may come as JSON from a centre: the titles are checked as the command line's.
    @field_validator("calling_ae", "ae_titles", "ae_wordlist")
    @classmethod
    def _ae_titles(cls, value: str | list[str]) -> str | list[str]:
        for title in [value] if isinstance(value, str) else value:
            if problem := ae_title_problem(title):
                raise ValueError(f"{title!r} {problem}")
        return value
