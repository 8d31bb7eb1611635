"""Failure boundaries: one probe failing on one service never costs another its results.

Each follow-up probe on each service, and each host analysis, runs inside its own
boundary. An unexpected exception there becomes a ``ProbeError`` observation on that
service (probe name, exception type, a short message), an entry in the host's errors
and in the scan's ``errors``; the other probes and the host analysis still run.
Cancellation (Ctrl-C, the host time limit) is not an error and passes through.

Time is bounded the same way: each probe on each port gets at most ``PORT_SHARE`` of the
host's time, DICOM ports are identified and followed up before the rest (the host's
gate hands out connection slots first come, first served), and a host that runs out of
time still gets its host analysis on what was found, so a tarpit costs its own ports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from scanner.model import ScanError

if TYPE_CHECKING:
    from probes.context import HostState, ProbeContext, ServiceState

log = logging.getLogger(__name__)

MESSAGE_CHARS = 200
PORT_SHARE = 0.5  # of the host's time limit, for one probe on one port
# IANA and common vendor DICOM ports (../shared/REFERENCE.md): identified first.
DICOM_PORTS = (104, 11112, 2761, 2762, 4242, 2575)


def port_order(ports: Iterable[int]) -> list[int]:
    """Ports in identification order: DICOM ports first, then the rest as given."""
    ports = list(ports)
    return [p for p in ports if p in DICOM_PORTS] + [p for p in ports if p not in DICOM_PORTS]


def service_order(services: Iterable[ServiceState]) -> list[ServiceState]:
    """Services in follow-up order: DICOM first, then named ones, unknown (silent) last."""
    rank = {"dicom": 0, "dicom-tls": 0, "unknown": 2}
    return sorted(services, key=lambda s: (rank.get(s.name, 1), s.port))


def _name(func: object) -> str:
    name = getattr(func, "__name__", None) or type(func).__name__
    return str(name).removesuffix("_probe").replace("_", "-") or "probe"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line: peer bytes may be in the message
    return text[:MESSAGE_CHARS] if text else type(exc).__name__


def record_failure(
    state: HostState,
    errors: list[ScanError],
    where: str,
    exc: Exception,
    svc: ServiceState | None = None,
) -> None:
    """Record one contained failure on the service (if any), the host and the scan."""
    from scanner.model.observations import ProbeError  # only once a probe failed

    error = ProbeError(probe=where, exception=type(exc).__name__, message=_short(exc))
    if svc is not None:
        svc.observations.append(error)
    place = f"port {svc.port}: " if svc is not None else ""
    msg = f"{place}{where} failed: {error.exception}: {error.message}"
    state.errors.append(msg)
    errors.append(ScanError(host=state.address, message=msg))
    log.debug("contained failure on %s: %s", state.address, msg, exc_info=exc)


async def contained_probe(
    probe: Callable[[ProbeContext, ServiceState], Awaitable[None]],
    ctx: ProbeContext,
    svc: ServiceState,
    errors: list[ScanError],
) -> None:
    """Run one follow-up probe on one service within its share of the host's time; an
    unexpected exception or a used-up budget is recorded."""
    budget = ctx.settings.timeouts.host * PORT_SHARE
    try:
        async with asyncio.timeout(budget):
            await probe(ctx, svc)
    except TimeoutError:
        exc = TimeoutError(f"port time budget of {budget:g} s used up; results partial")
        record_failure(ctx.state, errors, _name(probe), exc, svc)
    except Exception as exc:  # the boundary: anything a peer provokes stays on its service
        record_failure(ctx.state, errors, _name(probe), exc, svc)


def finish_host(
    state: HostState, steps: Iterable[Callable[[HostState], None]], errors: list[ScanError]
) -> None:
    """The host's closing steps (MAC, analyses) on whatever was found, each contained:
    also after the host ran out of time."""
    for step in steps:
        contained_analysis(step, state, errors)


def contained_analysis(
    analyse: Callable[[HostState], None], state: HostState, errors: list[ScanError]
) -> None:
    """Run one host analysis; an unexpected exception is recorded on the host."""
    try:
        analyse(state)
    except Exception as exc:  # the boundary: a broken analysis keeps the host's ports
        record_failure(state, errors, _name(analyse), exc)
