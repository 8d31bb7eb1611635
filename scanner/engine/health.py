"""Device health before and after a host's probes, and back-off when it starts failing.

Each DICOM service gets a C-ECHO before its follow-up probes and again after them (a
TCP connect counts where the association or the echo is refused: the device still
answered). The check before is made inside the detection association where it can
(``probes.dicom.health``): one C-ECHO there when Verification was accepted, or the
refusal itself, so a device gets three associations, not four. Where the detection
showed nothing either way (no answer, or accepted without Verification) the check
before is an association of its own, as is every check after (the device, not the
probes, must answer it). DICOM inside TLS is only known once the TLS probe has found
it, so its check before comes then, in an association of its own, ahead of the DICOM
checks inside TLS, over TLS with the client the service let in. (The TLS probe's own
detection inside TLS could carry it, but that is in the middle of the TLS stage, while
the other ports' TLS connections are under way: a device dying right after it would
not be caught between stages, where the checks stop a host.) A device that answered
before and not after is left alone from then on; the rule
``device-unresponsive-after-scan`` judges the two observations.

The back-off while probes run, and the stop, are scanner/engine/backoff.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator

from probes.context import ProbeContext, ServiceState
from probes.ports import open_stream
from scanner.engine.backoff import Watch
from scanner.model import utcnow
from scanner.model.observations import HealthCheck, HealthPhase

LOG = logging.getLogger("dicomscan")


@contextlib.asynccontextmanager
async def _connection(
    ctx: ProbeContext, svc: ServiceState
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """The service's own way in (plain or TLS), in the host's gate but past its watch: the
    check after is made even to a stopped host (the confirmation)."""
    if svc.name == "dicom-tls":
        from probes.dicom.checks import dicom_tls_context
        from probes.tls_client import connect_tls

        sslctx = dicom_tls_context(ctx, svc)
        async with connect_tls(ctx, svc.port, sslctx, watched=False) as tls:
            yield tls.reader, tls.writer
        return
    async with ctx.gate.slot(watched=False):
        conn = await open_stream(ctx.host, svc.port, ctx.settings.timeouts.connect)
        try:
            yield conn.reader, conn.writer
        finally:
            await conn.close()


async def check(ctx: ProbeContext, svc: ServiceState, phase: HealthPhase) -> HealthCheck:
    """One health check: a C-ECHO, or what the TCP connect showed where it was refused
    (read as the detection association reads it: probes/dicom/health.py)."""
    # Imported here: only a host with an open DICOM port needs pynetdicom (start-up time).
    from probes.dicom import codes
    from probes.dicom.client import first_called_ae, request_association
    from probes.dicom.health import echo, seen, unaccepted

    s = ctx.settings
    at = utcnow().isoformat()
    try:
        async with _connection(ctx, svc) as (reader, writer):
            assoc, session = await request_association(
                reader, writer, purpose="health", calling_ae=s.calling_ae,
                called_ae=first_called_ae(s), contexts=(codes.VERIFICATION,),
                timeout=s.timeouts.dicom)
            if session is None:
                return unaccepted(assoc, phase, at)
            answer = await echo(session, phase, at)
            await session.release()
            return answer
    except ssl.SSLError as exc:
        # The TCP connect succeeded and the device's TLS stack answered with a refusal.
        return seen(phase, "tls-handshake", True, f"connected; TLS handshake failed: {exc.reason}",
                    at)
    except (OSError, TimeoutError) as exc:
        return seen(phase, "tcp-connect", False, f"connect failed: {type(exc).__name__}", at)


def _dicom_services(ctx: ProbeContext) -> list[ServiceState]:
    return [svc for _, svc in sorted(ctx.state.services.items())
            if (svc.name == "dicom" and not svc.tls) or svc.name == "dicom-tls"]


async def before_probes(ctx: ProbeContext) -> None:
    """The check before, for each DICOM service that has none yet: called before the
    follow-up probes and again after each stage of them (DICOM found inside TLS)."""
    for svc in _dicom_services(ctx):
        if _answered_before(svc) is not None:
            continue
        seen = await check(ctx, svc, HealthPhase.BEFORE)
        LOG.info("health %s:%d before: %s", ctx.host, svc.port, seen.detail)
        svc.observations.append(seen)


def _answered_before(svc: ServiceState) -> bool | None:
    before = [o.answered for o in svc.observations
              if isinstance(o, HealthCheck) and o.phase is HealthPhase.BEFORE]
    return before[-1] if before else None


def _checked_after(svc: ServiceState) -> bool:
    return any(isinstance(o, HealthCheck) and o.phase is HealthPhase.AFTER
               for o in svc.observations)


async def _check_after(ctx: ProbeContext, watch: Watch) -> None:
    for svc in _dicom_services(ctx):
        if _answered_before(svc) is None or _checked_after(svc):
            continue
        after = await check(ctx, svc, HealthPhase.AFTER)
        LOG.info("health %s:%d after: %s", ctx.host, svc.port, after.detail)
        svc.observations.append(after)
        if _answered_before(svc) and not after.answered:
            watch.stop(f"port {svc.port} answered before the probes and not after")


async def still_answering(ctx: ProbeContext, watch: Watch) -> bool:
    """Between probe stages: after a failed connection, check at once (the check after)
    rather than send the next stage to a device that may be down."""
    if watch.stopped is None and watch.in_a_row:
        await _check_after(ctx, watch)
    return watch.stopped is None


async def after_probes(ctx: ProbeContext, watch: Watch) -> None:
    """The checks after (one connection each, even to a stopped host: the confirmation),
    then the host is stopped for good if a service answered before and not after."""
    await _check_after(ctx, watch)
    backoff = watch.observation()
    if backoff is not None:
        services = _dicom_services(ctx)
        where = services or [svc for _, svc in sorted(ctx.state.services.items())]
        if where:
            where[0].observations.append(backoff)
        else:
            ctx.state.errors.append("connection back-off: " + "; ".join(backoff.events))
