"""SNMP on UDP: is an agent there, and (with --intrusive only) does it answer a default
community.

Presence is an SNMPv3 engine discovery (RFC 3414 section 4): a GET with no user, no
authentication and an empty engine ID, which every SNMPv3 agent answers with a Report
carrying its snmpEngineID (whose first bytes name the vendor's IANA enterprise number).
No credential is sent. The messages are built and read with pysnmp's own ASN.1
definitions. With --intrusive, pysnmp's asyncio client sends a GET of sysDescr.0 per
default community, stopping at the first that answers: in SNMPv2c and SNMPv1 at the same
time, as agents on old devices take a community in v1 only (a v2c GET alone timed out there
and the community read as refused), and hardened ones in v2c only.
"""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from scanner.model.legacy_observations import SnmpCommunityAttempt, SnmpObservation

if TYPE_CHECKING:
    from probes.context import ProbeContext

SNMP_PORT = 161
DEFAULT_COMMUNITIES = ("public", "private")
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
# pysnmp's message processing models: 1 is SNMPv2c, 0 is SNMPv1.
VERSIONS: tuple[tuple[Literal["2c", "1"], int], ...] = (("2c", 1), ("1", 0))


@dataclass(frozen=True)
class DatagramAnswer:
    """What came back to one datagram: bytes, an ICMP port unreachable, or nothing."""

    data: bytes | None = None
    refused: bool = False

    @property
    def silent(self) -> bool:
        return self.data is None and not self.refused


async def exchange(host: str, port: int, payload: bytes, timeout: float) -> DatagramAnswer:
    """One datagram to (host, port) from a connected socket, and the first answer.

    A plain socket, not an asyncio transport: the transport drops empty datagrams, and
    an empty datagram is what a UDP port with no known protocol is sent.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect((host, port))
            sock.send(payload)
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
        except ConnectionRefusedError:  # Linux reports the ICMP port unreachable here
            return DatagramAnswer(refused=True)
        except TimeoutError:
            return DatagramAnswer()
    return DatagramAnswer(data=data)


def discovery_request(msg_id: int) -> bytes:
    """An SNMPv3 GET with noAuthNoPriv, reportable, empty engine ID and user (RFC 3414 4)."""
    from pyasn1.codec.ber import encoder
    from pysnmp.proto import rfc1905
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

    pdu = rfc1905.GetRequestPDU()
    pdu["request-id"] = msg_id
    pdu["error-status"] = 0
    pdu["error-index"] = 0
    pdu["variable-bindings"].clear()
    msg = SNMPv3Message()
    msg["msgVersion"] = 3
    head = msg["msgGlobalData"]
    head["msgID"] = msg_id
    head["msgMaxSize"] = 65507
    head["msgFlags"] = b"\x04"  # reportable, no auth, no priv
    head["msgSecurityModel"] = 3  # USM
    usm = UsmSecurityParameters()
    for key in ("msgAuthoritativeEngineId", "msgUserName", "msgAuthenticationParameters",
                "msgPrivacyParameters"):
        usm[key] = b""
    usm["msgAuthoritativeEngineBoots"] = 0
    usm["msgAuthoritativeEngineTime"] = 0
    msg["msgSecurityParameters"] = encoder.encode(usm)
    scoped = msg["msgData"]["plaintext"]
    scoped["contextEngineId"] = b""
    scoped["contextName"] = b""
    scoped["data"]["get-request"] = pdu
    return bytes(encoder.encode(msg))


def engine_id_of(answer: bytes) -> bytes | None:
    """The authoritative snmpEngineID of an SNMPv3 answer, or None if it is not one."""
    from pyasn1.codec.ber import decoder
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

    try:
        msg, _ = decoder.decode(answer, asn1Spec=SNMPv3Message())
        usm, _ = decoder.decode(bytes(msg["msgSecurityParameters"]),
                                asn1Spec=UsmSecurityParameters())
        return bytes(usm["msgAuthoritativeEngineId"])
    except Exception:  # pyasn1 raises its own error tree on anything not SNMPv3
        return None


def enterprise_of(engine_id: bytes) -> int | None:
    """IANA enterprise number in an RFC 3411 snmpEngineID (first 4 bytes, top bit set)."""
    if len(engine_id) < 5 or not engine_id[0] & 0x80:
        return None
    return int.from_bytes(engine_id[:4], "big") & 0x7FFFFFFF


async def community_get(host: str, port: int, community: str, timeout: float,
                        mp_model: int = 1) -> tuple[bool, str | None, str]:
    """One GET of sysDescr.0 with ``community`` (``mp_model`` 1: SNMPv2c, 0: SNMPv1):
    (answered, sysDescr, detail)."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create((host, port), timeout=timeout, retries=0)
        err_ind, err_stat, _idx, binds = await get_cmd(
            engine, CommunityData(community, mpModel=mp_model), target, ContextData(),
            ObjectType(ObjectIdentity(SYS_DESCR)),
        )
    finally:
        engine.close_dispatcher()
    if err_ind:
        return False, None, str(err_ind)
    if err_stat:  # an error answer still proves the community was accepted
        return True, None, f"error status {err_stat.prettyPrint()}"
    text = next((v.prettyPrint() for _, v in binds), None)
    return True, text, ""


async def snmp_probe(ctx: ProbeContext, port: int) -> tuple[DatagramAnswer, SnmpObservation]:
    """Engine discovery (through the host's gate), then the communities with --intrusive."""
    timeout = ctx.settings.timeouts.dicom
    msg_id = random.randint(1, 2**31 - 1)
    async with ctx.gate.slot():
        answer = await exchange(ctx.host, port, discovery_request(msg_id), timeout)
    engine_id = engine_id_of(answer.data) if answer.data else None
    tried: list[SnmpCommunityAttempt] = []
    accepted: str | None = None
    version: Literal["2c", "1"] | None = None
    descr: str | None = None
    if ctx.settings.intrusive and not answer.refused:
        for community in DEFAULT_COMMUNITIES:
            async with ctx.gate.slot():  # both versions at once: one wait, not two
                answers = await asyncio.gather(*(
                    community_get(ctx.host, port, community, timeout, mp_model)
                    for _, mp_model in VERSIONS))
            for (name, _), (ok, text, detail) in zip(VERSIONS, answers, strict=True):
                tried.append(SnmpCommunityAttempt(community=community, version=name,
                                                  answered=ok, detail=detail))
                if ok and accepted is None:
                    accepted, version, descr = community, name, text
            if accepted is not None:
                break
    detail = ""
    if answer.refused:
        detail = "ICMP port unreachable: nothing listens"
    elif answer.data is not None and engine_id is None:
        detail = "an answer that is not SNMPv3"
    elif answer.silent:
        detail = "no answer to the SNMPv3 engine discovery"
    obs = SnmpObservation(
        agent_answered=engine_id is not None or accepted is not None,
        engine_id_hex=engine_id.hex() if engine_id else None,
        enterprise=enterprise_of(engine_id) if engine_id else None,
        communities_tried=tried,
        community_accepted=accepted,
        version_accepted=version,
        sys_descr=descr,
        intrusive=ctx.settings.intrusive,
        detail=detail,
    )
    return answer, obs
