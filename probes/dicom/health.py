"""What a DICOM association shows of a device's health: one meaning wherever it is seen.

A C-ECHO answered is the proof; an association or an echo refused still shows the
device answering (the TCP connect, and its DICOM stack, worked). The engine's own
health checks (scanner/engine/health.py) and the detection association read an
association with these same functions, so a check made inside the detection has the
method, answer and detail a check of its own would have had.
"""

from __future__ import annotations

import asyncio

from probes.dicom import codes
from probes.dicom.client import Session, close_detection, request_detection
from scanner.model import ScanSettings, utcnow
from scanner.model.observations import (
    Association,
    AssociationOutcome,
    HealthCheck,
    HealthPhase,
    OperationOutcome,
)

REFUSED = (AssociationOutcome.REJECTED, AssociationOutcome.ABORTED)


def seen(phase: HealthPhase, method: str, answered: bool, detail: str, at: str) -> HealthCheck:
    return HealthCheck.model_validate({"phase": phase, "method": method, "answered": answered,
                                       "detail": detail, "at": at})


def unaccepted(assoc: Association, phase: HealthPhase, at: str) -> HealthCheck:
    """An association that was not accepted: refused (rejected, aborted) means answered."""
    return seen(phase, "tcp-connect", assoc.outcome in REFUSED,
                f"connected; association {assoc.outcome.value}", at)


async def echo(session: Session, phase: HealthPhase, at: str) -> HealthCheck:
    """One C-ECHO on an accepted association (left open: the caller releases it)."""
    from probes.dicom.operations import echo_message, run_operation

    op = await run_operation(session, "C-ECHO", codes.VERIFICATION, echo_message(),
                             "C-ECHO-RQ")
    if op.outcome is OperationOutcome.AUTHORISED:
        return seen(phase, "c-echo", True, "C-ECHO answered: success", at)
    return seen(phase, "tcp-connect", True, f"connected; C-ECHO {op.outcome.value}", at)


async def detect_and_check(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: ScanSettings,
    purpose: str = "detect",
) -> tuple[Association, HealthCheck | None]:
    """The detection association, and from it the health check before the follow-up
    probes: a C-ECHO in it when Verification was accepted, or the refusal itself. None
    when it shows nothing either way (no answer, not DICOM, accepted without
    Verification): the engine then makes a check of its own."""
    at = utcnow().isoformat()
    obs, session = await request_detection(reader, writer, settings, purpose)
    check = None
    if session is None:
        if obs.outcome in REFUSED:
            check = unaccepted(obs, HealthPhase.BEFORE, at)
    elif codes.VERIFICATION in session.accepted:
        try:
            check = await echo(session, HealthPhase.BEFORE, utcnow().isoformat())
        except asyncio.CancelledError:
            session.abort_now()  # interrupted: the peer is told, not left waiting
            raise
    return await close_detection(obs, session), check
