"""Follow-up checks on a DICOM port: AE title exposure and what an unknown peer may do.

Each check is its own association (one connection, inside the host's gate), so a
peer that aborts after a refused operation (Orthanc does, for C-FIND) cannot hide
the answers to the others. Every check records an observation; none judges.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from probes.dicom import codes
from probes.dicom.client import Session, request_association
from probes.dicom.operations import echo_message, query_message, retrieve_message, run_operation
from probes.dicom.store import not_tested, object_uids, store_test_object
from scanner.model.observations import (
    AeTitleGuess,
    Association,
    AssociationOutcome,
    Confidence,
    Operation,
    OperationOutcome,
)

if TYPE_CHECKING:
    import ssl

    from probes.context import ProbeContext, ServiceState

CALLED_AE_REJECTED = (1, 7)


def title_recognised(obs: Association) -> bool:
    """The called title was right: accepted, or rejected by the device for another reason
    (its calling AE...). A busy device's transient rejection recognises nothing."""
    if obs.outcome is AssociationOutcome.ACCEPTED:
        return True
    return (obs.reject is not None and obs.reject.by_the_device
            and (obs.reject.source, obs.reject.reason) != CALLED_AE_REJECTED)


def _associations(svc: ServiceState) -> list[Association]:
    return [o for o in svc.observations if isinstance(o, Association)]


async def _with_association(
    ctx: ProbeContext,
    svc: ServiceState,
    purpose: str,
    calling: str,
    called: str,
    contexts: Sequence[str],
    work: Sequence[str] = (),
    record: bool = True,
) -> Association | None:
    """One association; run the named operations inside it, then release. Records everything."""
    s = ctx.settings
    try:
        async with _connect(ctx, svc) as conn:
            obs, session = await request_association(
                conn.reader,
                conn.writer,
                purpose=purpose,
                calling_ae=calling,
                called_ae=called,
                contexts=contexts,
                timeout=s.timeouts.dicom,
            )
            position = len(svc.observations)  # the association is listed before its operations
            if session is not None:
                try:
                    for op in work:
                        svc.observations.append(await _operation(ctx, svc, session, op))
                        if session.closed:
                            break
                    obs = obs.model_copy(update={"released": await session.release()})
                except asyncio.CancelledError:
                    session.abort_now()  # interrupted: the peer is told, not left waiting
                    raise
    except (OSError, TimeoutError) as exc:
        ctx.state.errors.append(f"port {svc.port}: {purpose} connection failed: {exc!s}")
        return None
    if record:
        svc.observations.insert(position, obs)
    return obs


async def _operation(ctx: ProbeContext, svc: ServiceState, session: Session, op: str) -> Operation:
    s = ctx.settings
    session.timeout = s.timeouts.dimse
    patient_id = "DSCN-" + s.zero_match_uid[-12:]
    if op == "C-ECHO":
        return await run_operation(
            session, "C-ECHO", codes.VERIFICATION, echo_message(), "C-ECHO-RQ"
        )
    if op == "C-STORE":
        return await store_test_object(session, object_uids(s.zero_match_uid, ctx.host, svc.port))
    sop = op.split(":", 1)[1]
    operation = op.split(":", 1)[0]
    if operation == "C-FIND":
        msg = query_message(session, sop, s.zero_match_uid, patient_id)
        sent = f"C-FIND-RQ zero-match keys: StudyInstanceUID={s.zero_match_uid}"
    else:
        msg = retrieve_message(
            session, operation, sop, s.zero_match_uid, patient_id, s.random_calling_ae
        )
        sent = f"{operation}-RQ for non-existent StudyInstanceUID={s.zero_match_uid}"
        if operation == "C-MOVE":
            sent += f" to {s.random_calling_ae} (the scanner itself)"
    if sop not in session.accepted:
        return Operation(
            operation=operation,
            sop_class=sop,
            sop_class_name=codes.sop_name(sop),
            outcome=OperationOutcome.CONTEXT_REJECTED,
            confidence=Confidence.CONFIRMED,
            detail="presentation context not accepted",
        )
    return await run_operation(session, operation, sop, msg, sent)


def _answer(obs: Association | None) -> str:
    """What a device answered an association, in a few words."""
    if obs is None:
        return "no association could be made"
    if obs.reject is not None:
        return (f"the device answered {obs.reject.result_text}, source "
                f"{obs.reject.source_text}: {obs.reject.reason_text}")
    return f"the device answered {obs.outcome.value}" + (f" ({obs.detail})" if obs.detail
                                                           else "")


async def _guess_called_ae(ctx: ProbeContext, svc: ServiceState) -> str | None:
    """Try the wordlist (known titles first) until one is accepted; bounded and gated."""
    s = ctx.settings
    titles = [t for t in dict.fromkeys([*s.ae_titles[1:], *s.ae_wordlist]) if t]
    accepted: list[str] = []
    tried = 0
    stopped = ""
    for title in titles:
        tried += 1
        # Rejections are summed up in the AeTitleGuess; only the hit is kept as evidence.
        obs = await _with_association(
            ctx, svc, "ae-guess", s.calling_ae, title, (codes.VERIFICATION,), record=False
        )
        if obs is not None and title_recognised(obs):
            accepted.append(title)
            svc.observations.append(obs)
            break
        if obs is None or obs.outcome is not AssociationOutcome.REJECTED or (
                obs.reject is not None and not obs.reject.by_the_device):
            # The device stopped answering normally: stop guessing, and say so (the
            # titles not tried are not refused).
            stopped = f"stopped after {tried} of {len(titles)} titles: {_answer(obs)}"
            break
    source = "--ae-title and wordlist" if s.ae_titles[1:] else "wordlist"
    svc.observations.append(AeTitleGuess(tried=tried, accepted_titles=accepted, source=source,
                                         stopped=stopped))
    return accepted[0] if accepted else None


def _pick(accepted: set[str], *choices: str) -> str | None:
    return next((c for c in choices if c in accepted), None)


def _tls_detection(svc: ServiceState) -> Association | None:
    """The association that answered inside TLS, preferring the one with our client cert."""
    found = {a.purpose: a for a in _associations(svc) if a.purpose.startswith("detect-tls")}
    with_cert = found.get("detect-tls-client-cert")
    if with_cert is not None and with_cert.outcome is not AssociationOutcome.NO_ANSWER:
        return with_cert
    return found.get("detect-tls")


def dicom_tls_context(ctx: ProbeContext, svc: ServiceState) -> ssl.SSLContext:
    """The TLS client the service let in: with the user's certificate when it took that."""
    from probes.tls_client import client_context

    detect = _tls_detection(svc)
    s = ctx.settings
    if detect is not None and detect.purpose == "detect-tls-client-cert":
        return client_context(s.client_cert, s.client_key)
    return client_context()


def _connect(ctx: ProbeContext, svc: ServiceState) -> AbstractAsyncContextManager[Any]:
    """A gated connection the way this service speaks DICOM: plain, or inside TLS."""
    if svc.name != "dicom-tls":
        return ctx.connect(svc.port)
    from probes.tls_client import connect_tls

    return connect_tls(ctx, svc.port, dicom_tls_context(ctx, svc))


async def dicom_checks(ctx: ProbeContext, svc: ServiceState) -> None:
    """AE title and unknown-peer checks on a service that answered DICOM in the clear."""
    if svc.name != "dicom":
        return
    detect = next((a for a in _associations(svc) if a.purpose.startswith("detect")), None)
    if detect is not None:
        await _checks(ctx, svc, detect)


async def dicom_tls_checks(ctx: ProbeContext, svc: ServiceState) -> None:
    """The same checks inside TLS, after the TLS probe found DICOM there."""
    if svc.name != "dicom-tls":
        return
    detect = _tls_detection(svc)
    if detect is not None:
        await _checks(ctx, svc, detect)


async def _checks(ctx: ProbeContext, svc: ServiceState, detect: Association) -> None:
    s = ctx.settings
    working: str | None = None
    if s.ae_titles or "called-ae" not in detect.purpose.split(","):
        # Detection used the title the user knows; test enforcement with a random one. The
        # known title stays the working one even if detection was rejected: some stacks
        # (DCMTK dcmqrscp) answer an unknown calling AE with "called AE not recognised".
        working = detect.called_ae
        await _with_association(
            ctx, svc, "called-ae", s.calling_ae, s.random_called_ae, (codes.VERIFICATION,)
        )
    elif detect.outcome is AssociationOutcome.ACCEPTED:
        working = detect.called_ae
    elif (
        detect.reject
        and (detect.reject.source, detect.reject.reason) == CALLED_AE_REJECTED
        and (s.ae_guess or len(s.ae_titles) > 1)
    ):
        working = await _guess_called_ae(ctx, svc)
    if working is None:
        return  # no title gets us in: calling-AE and operation checks cannot run
    calling = await _with_association(
        ctx, svc, "calling-ae", s.random_calling_ae, working, codes.SERVICE_CONTEXTS, ("C-ECHO",)
    )
    if calling is None or calling.outcome is not AssociationOutcome.ACCEPTED:
        return
    await _unknown_peer_operations(ctx, svc, calling, working)


async def _unknown_peer_operations(
    ctx: ProbeContext, svc: ServiceState, calling: Association, working: str
) -> None:
    s = ctx.settings
    accepted = {c.abstract_syntax for c in calling.contexts if c.accepted}
    plans: list[tuple[str, str]] = []
    find = _pick(accepted, codes.STUDY_FIND, codes.PATIENT_FIND)
    get = _pick(accepted, codes.STUDY_GET, codes.PATIENT_GET)
    move = _pick(accepted, codes.STUDY_MOVE, codes.PATIENT_MOVE)
    for operation, sop in (("C-FIND", find), ("C-GET", get), ("C-MOVE", move)):
        if sop:
            plans.append((operation, sop))
    if codes.WORKLIST_FIND in accepted:
        plans.append(("C-FIND", codes.WORKLIST_FIND))
    # One association per operation: a refusal may abort the association (Orthanc does).
    for operation, sop in plans:
        await _with_association(
            ctx,
            svc,
            f"operation {operation}",
            s.random_calling_ae,
            working,
            (sop,),
            (f"{operation}:{sop}",),
        )
    storage = [
        c.abstract_syntax
        for c in calling.contexts
        if c.accepted and c.abstract_syntax.startswith("1.2.840.10008.5.1.4.1.1.")
    ]
    if not storage:
        return
    if not s.intrusive:
        svc.observations.append(
            not_tested(
                storage[0],
                "storage context accepted from an unknown peer; C-STORE is only sent "
                "with --intrusive",
            )
        )
        return
    await _intrusive_store(ctx, svc, storage, working)


async def _intrusive_store(
    ctx: ProbeContext, svc: ServiceState, storage: list[str], working: str
) -> None:
    """--intrusive: prove storage with one synthetic object, in an association of its own."""
    if codes.SC_STORAGE not in storage:
        # The peer already said no to Secondary Capture: do not bother it with a second ask.
        svc.observations.append(
            not_tested(
                storage[0],
                "storage context accepted from an unknown peer, but not Secondary Capture, "
                "the only class the intrusive check sends: nothing sent",
            )
        )
        return
    before = len(svc.observations)
    assoc = await _with_association(
        ctx,
        svc,
        "operation C-STORE",
        ctx.settings.random_calling_ae,
        working,
        (codes.SC_STORAGE,),
        ("C-STORE",),
    )
    if not any(isinstance(o, Operation) for o in svc.observations[before:]):
        # No C-STORE went out (association refused this time, or the connection failed):
        # keep the verdict inferred from the earlier accepted context.
        why = (assoc.detail or assoc.outcome.value) if assoc else "connection failed"
        svc.observations.append(
            not_tested(codes.SC_STORAGE, f"storage association not accepted ({why}): nothing sent")
        )
