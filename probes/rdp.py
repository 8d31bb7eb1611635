"""RDP: which security protocols a server accepts, from X.224 Connection Requests only.

Each request carries an RDP_NEG_REQ asking for one set of protocols ([MS-RDPBCGR]
2.2.1.1.1); the Connection Confirm's RDP_NEG_RSP names the one selected, or an
RDP_NEG_FAILURE says why none was. Nothing beyond the Connection Confirm is sent: no TLS
handshake, no CredSSP, no MCS. The 43-byte request is built here because no maintained
Python library exposes the X.224 negotiation on its own (impacket's RDP support is a
script, not a module; full RDP clients go on to log in).

NLA is required when neither standard RDP security nor TLS alone is accepted and the
server says so (failure HYBRID_REQUIRED_BY_SERVER or SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER).
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING

from scanner.model.legacy_observations import RdpAttempt, RdpNegotiation, RdpProtocol

if TYPE_CHECKING:
    from probes.context import ProbeContext, ServiceState

RDP_PORTS = (3389,)
_FLAGS = {
    RdpProtocol.RDP: 0x0,
    RdpProtocol.TLS: 0x1,
    RdpProtocol.CREDSSP: 0x2,
    RdpProtocol.RDSTLS: 0x4,
    RdpProtocol.CREDSSP_EX: 0x8,
}
_BY_FLAG = {v: k for k, v in _FLAGS.items()}
FAILURES = {
    1: "SSL_REQUIRED_BY_SERVER",
    2: "SSL_NOT_ALLOWED_BY_SERVER",
    3: "SSL_CERT_NOT_ON_SERVER",
    4: "INCONSISTENT_FLAGS",
    5: "HYBRID_REQUIRED_BY_SERVER",
    6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}
_NLA_FAILURES = (5, 6)
# Standard RDP security alone, TLS alone, then what a modern client asks for.
REQUESTS: tuple[tuple[RdpProtocol, ...], ...] = (
    (RdpProtocol.RDP,),
    (RdpProtocol.TLS,),
    (RdpProtocol.TLS, RdpProtocol.CREDSSP),
)


def connection_request(flags: int, cookie: bytes = b"Cookie: mstshash=dicomscan\r\n") -> bytes:
    """TPKT + X.224 Connection Request (class 0) + cookie + RDP_NEG_REQ."""
    variable = cookie + struct.pack("<BBHI", 0x01, 0x00, 8, flags)
    x224 = bytes([6 + len(variable), 0xE0, 0, 0, 0, 0, 0]) + variable
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def parse_confirm(requested: tuple[RdpProtocol, ...], data: bytes) -> RdpAttempt:
    """Decode the Connection Confirm (pure: no I/O)."""
    flags = sum(_FLAGS[p] for p in requested)
    base = {"requested": list(requested), "requested_flags": flags, "response_hex": data.hex()}
    if len(data) < 11 or data[0] != 3 or data[5] != 0xD0:
        answer = "no-answer" if not data else "not-a-connection-confirm"
        return RdpAttempt(answer=answer, **base)
    body = data[4:]
    if len(body) < 15:  # no negotiation data: a server older than RDP 5.2, standard RDP only
        return RdpAttempt(answer="confirm-without-negotiation", selected=RdpProtocol.RDP, **base)
    kind, neg_flags, _length, value = struct.unpack_from("<BBHI", body, 7)
    if kind == 0x02:
        selected = _BY_FLAG.get(value)
        return RdpAttempt(answer="selected", selected=selected, selected_flags=value, **base)
    if kind == 0x03:
        text = FAILURES.get(value, f"unknown failure {value}")
        return RdpAttempt(answer="failure", failure_code=value, failure_text=text, **base)
    del neg_flags
    return RdpAttempt(answer=f"unknown negotiation type {kind}", **base)


def summarise(attempts: list[RdpAttempt]) -> RdpNegotiation:
    accepted = list(dict.fromkeys(a.selected for a in attempts if a.selected is not None))
    answered = any(a.answer in ("selected", "failure", "confirm-without-negotiation")
                   for a in attempts)
    without_nla = [a for a in attempts if set(a.requested) <= {RdpProtocol.RDP, RdpProtocol.TLS}]
    nla: bool | None = None
    detail = ""
    if any(p in (RdpProtocol.RDP, RdpProtocol.TLS) for p in accepted):
        nla = False
    elif without_nla and all(a.failure_code is not None for a in without_nla):
        nla = any(a.failure_code in _NLA_FAILURES for a in without_nla) or None
        if nla is None:
            detail = "standard RDP and TLS were refused, but not with an NLA-required failure"
    elif answered:
        detail = "not every request without NLA got an answer"
    return RdpNegotiation(answered=answered, attempts=attempts, accepted=accepted,
                          nla_required=nla, detail=detail)


async def _read_confirm(reader: asyncio.StreamReader, timeout: float) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(4), timeout)
    length = struct.unpack(">H", head[2:4])[0]
    if head[0] != 3 or not 11 <= length <= 64:
        return head
    return head + await asyncio.wait_for(reader.readexactly(length - 4), timeout)


async def negotiate(ctx: ProbeContext, port: int) -> RdpNegotiation:
    timeout = ctx.settings.timeouts.dicom
    attempts: list[RdpAttempt] = []
    for requested in REQUESTS:
        flags = sum(_FLAGS[p] for p in requested)
        try:
            async with ctx.connect(port) as conn:
                conn.writer.write(connection_request(flags))
                await conn.writer.drain()
                data = await _read_confirm(conn.reader, timeout)
        except asyncio.IncompleteReadError as exc:  # closed mid-answer: keep what came
            attempts.append(parse_confirm(requested, exc.partial))
            continue
        except (OSError, TimeoutError):
            attempts.append(RdpAttempt(requested=list(requested), requested_flags=flags,
                                       answer="no-answer"))
            break  # a port that did not answer one request is not sent the others
        attempts.append(parse_confirm(requested, data))
    return summarise(attempts)


async def rdp_probe(ctx: ProbeContext, svc: ServiceState) -> None:
    """On ports that answered our A-ASSOCIATE-RQ with a TPKT (or unnamed 3389)."""
    if not (svc.name == "rdp" or (svc.name == "unknown" and svc.port in RDP_PORTS)):
        return
    obs = await negotiate(ctx, svc.port)
    if obs.answered:
        svc.name = "rdp"
    if obs.answered or svc.name == "rdp":
        svc.observations.append(obs)
