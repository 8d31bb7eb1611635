"""Observations of the legacy-Windows services found on modality consoles: SMB, RDP and
SNMP. What was sent and what came back, with no verdict (the rules judge)."""

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scanner.model.base import empty_list


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DialectAttempt(_Frozen):
    """One SMB NEGOTIATE offering a single dialect, and what the server did with it."""

    dialect: str = Field(description="NT LM 0.12 (SMB1), 2.0.2, 2.1, 3.0 or 3.1.1 (highest)")
    accepted: bool
    negotiated: str | None = Field(default=None, description="the dialect the server chose")
    signing_required: bool | None = Field(
        default=None,
        description="SecurityMode of the answer; None for 3.1.1, whose client library always "
        "reports signing as required",
    )
    detail: str = ""


class SmbNegotiation(_Frozen):
    """SMB negotiate per dialect, then one anonymous (null) session setup for the name and
    OS the server puts in its NTLM challenge. No credentials are sent."""

    kind: Literal["smb-negotiate"] = "smb-negotiate"
    answered: bool = Field(description="some NEGOTIATE got an SMB answer")
    attempts: list[DialectAttempt] = Field(default_factory=empty_list)
    smb1_accepted: bool | None = Field(default=None, description="None when not measured")
    dialects: list[str] = Field(default_factory=empty_list, description="dialects accepted")
    signing_required: bool | None = Field(
        default=None, description="from a dialect at or below 3.0 (or SMB1 when it is the only one)"
    )
    signing_measured_on: str | None = None
    server_name: str | None = None
    server_domain: str | None = None
    dns_host_name: str | None = None
    server_os: str | None = Field(default=None, description="as the NTLM challenge states it")
    null_session: str | None = Field(
        default=None, description="accepted, refused or error: the anonymous session setup"
    )
    detail: str = ""


class RdpProtocol(StrEnum):
    """RDP security protocols ([MS-RDPBCGR] 2.2.1.1.1 requestedProtocols)."""

    RDP = "rdp"  # PROTOCOL_RDP 0: standard RDP security
    TLS = "tls"  # PROTOCOL_SSL 1
    CREDSSP = "credssp"  # PROTOCOL_HYBRID 2: Network Level Authentication
    RDSTLS = "rdstls"  # PROTOCOL_RDSTLS 4
    CREDSSP_EX = "credssp-ex"  # PROTOCOL_HYBRID_EX 8: NLA with the Early User Authorization PDU


class RdpAttempt(_Frozen):
    """One X.224 Connection Request with an RDP_NEG_REQ and its Connection Confirm."""

    requested: list[RdpProtocol]
    requested_flags: int
    answer: str = Field(description="selected, failure, confirm-without-negotiation, no-answer")
    selected: RdpProtocol | None = None
    selected_flags: int | None = None
    failure_code: int | None = None
    failure_text: str | None = None
    response_hex: str = ""


class RdpNegotiation(_Frozen):
    """The security protocols an RDP server accepts, from X.224 Connection Requests only:
    nothing beyond the Connection Confirm is sent (no TLS, no CredSSP, no login)."""

    kind: Literal["rdp-negotiate"] = "rdp-negotiate"
    answered: bool
    attempts: list[RdpAttempt] = Field(default_factory=empty_list)
    accepted: list[RdpProtocol] = Field(default_factory=empty_list)
    nla_required: bool | None = Field(
        default=None, description="None when the answers did not settle it"
    )
    detail: str = ""


class SnmpCommunityAttempt(_Frozen):
    community: str = Field(description="a published default community (public, private)")
    version: Literal["2c", "1"] = Field(
        default="2c", description="the SNMP version of the GET (older scans: 2c only)")
    answered: bool
    detail: str = ""


class SnmpObservation(_Frozen):
    """SNMP on a UDP port: whether an agent answers (an SNMPv3 engine discovery, which
    carries no credential), and with --intrusive a GET of sysDescr.0 per default community,
    in SNMPv2c and SNMPv1 at once (an agent may take a community in only one of them)."""

    kind: Literal["snmp"] = "snmp"
    agent_answered: bool
    engine_id_hex: str | None = Field(default=None, description="the agent's snmpEngineID")
    enterprise: int | None = Field(default=None, description="IANA enterprise number in it")
    communities_tried: list[SnmpCommunityAttempt] = Field(default_factory=empty_list)
    community_accepted: str | None = None
    version_accepted: Literal["2c", "1"] | None = Field(
        default=None, description="the SNMP version the accepted community answered")
    sys_descr: str | None = Field(default=None, description="sysDescr.0 as the agent gave it")
    intrusive: bool = Field(description="whether community strings were tried")
    detail: str = ""
