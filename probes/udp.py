"""UDP ports given with ``U:``: their state, and SNMP on 161.

UDP has no handshake, so a state needs an answer: a datagram back means open, an ICMP
port unreachable means closed, silence means open|filtered (nmap's word: an open port
that ignored us, or a firewall that dropped us). 161 gets an SNMPv3 engine discovery,
which any SNMPv3 agent answers without credentials (probes/snmp.py); any other UDP
port gets one empty datagram, the least a service can be sent. Every datagram goes
through the host's connection gate, like a TCP connection.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from scanner.model import PortObservation, PortState, Protocol, utcnow

if TYPE_CHECKING:
    from probes.context import ProbeContext
    from probes.snmp import DatagramAnswer


def state_of(answer: DatagramAnswer) -> tuple[PortState, str]:
    if answer.data is not None:
        return PortState.OPEN, "udp-response"
    if answer.refused:
        return PortState.CLOSED, "port-unreachable"
    return PortState.OPEN_FILTERED, "no-response"


async def _one(ctx: ProbeContext, port: int) -> None:
    from probes.context import ServiceState
    from probes.snmp import SNMP_PORT, exchange, snmp_probe  # its models: only with U: ports

    started = time.monotonic()
    if port == SNMP_PORT:
        answer, obs = await snmp_probe(ctx, port)
        state, reason = state_of(answer)
        if obs.agent_answered:  # a community answer proves an open port even after silence
            state, reason = PortState.OPEN, "snmp-response"
        method = "snmpv3-discovery"
    else:
        async with ctx.gate.slot():
            answer = await exchange(ctx.host, port, b"", ctx.settings.timeouts.dicom)
        state, reason = state_of(answer)
        obs, method = None, "udp-empty-datagram"
    rtt = (time.monotonic() - started) * 1000 if state is PortState.OPEN else None
    ctx.state.udp_ports[port] = PortObservation(
        port=port, protocol=Protocol.UDP, state=state, method=method, reason=reason,
        rtt_ms=rtt, observed_at=utcnow(),
    )
    if obs is not None and state is not PortState.CLOSED:
        svc = ServiceState(port=port, name="snmp" if obs.agent_answered else "unknown",
                           protocol=Protocol.UDP)
        svc.observations.append(obs)
        ctx.state.udp_services[port] = svc


async def _contained(ctx: ProbeContext, port: int) -> None:
    try:
        await _one(ctx, port)
    except OSError as exc:  # e.g. no route: this port is unmeasured, the host goes on
        ctx.state.errors.append(f"udp port {port}: could not send: {exc}")


async def udp_phase(ctx: ProbeContext) -> None:
    """Every UDP port of the scan on this host (none unless the port list has U:)."""
    await asyncio.gather(*(_contained(ctx, p) for p in ctx.settings.udp_ports))
