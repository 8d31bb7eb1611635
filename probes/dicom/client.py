"""An asyncio DICOM association client: request, classify the answer, release politely.

Every accepted association ends with A-RELEASE (or A-ABORT when the peer misbehaves):
a fragile device must never be left holding a half-open association.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from probes.dicom import codes
from probes.dicom.pdu import (
    ABORT_RQ,
    FIRST_BYTES,
    OUR_MAX_PDU,
    RELEASE_RP,
    RELEASE_RQ,
    PeerClosed,
    PeerProtocolError,
    PeerTimeout,
    RawPDU,
    associate_rq,
    decode_abort,
    decode_ac,
    decode_rj,
    quickack,
    read_pdu,
)
from scanner.model import ScanSettings
from scanner.model.observations import (
    AbortInfo,
    Association,
    AssociationOutcome,
    ContextResult,
    PeerIdentity,
    RejectInfo,
)

log = logging.getLogger(__name__)


@dataclass
class Session:
    """An accepted association: what DIMSE operations need to talk on it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timeout: float
    peer_max_pdu: int
    accepted: dict[str, int] = field(default_factory=dict)  # abstract syntax -> context id
    transfer: dict[int, str] = field(default_factory=dict)  # context id -> transfer syntax
    closed: bool = False

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        # A timeout scope, not wait_for: that makes a task (and a turn of the loop) per write.
        async with asyncio.timeout(self.timeout):
            await self.writer.drain()
        quickack(self.writer)

    async def release(self) -> bool:
        """A-RELEASE-RQ and wait for the RP; abort if it does not come. True when released."""
        if self.closed:
            return False
        try:
            await self.send(RELEASE_RQ)
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                pdu = await read_pdu(self.reader, left, OUR_MAX_PDU)
                if pdu.type == 0x06:
                    self.closed = True
                    return True
                if pdu.type == 0x05:  # release collision: answer and finish
                    await self.send(RELEASE_RP)
                    self.closed = True
                    return True
                if pdu.type == 0x07:
                    self.closed = True
                    return False
                # late P-DATA (a pending response): discarded unread, keep waiting
        except (TimeoutError, PeerClosed, PeerProtocolError, OSError):
            pass
        await self.abort()
        return False

    def abort_now(self) -> None:
        """A-ABORT without waiting, for a scan being interrupted: the transport sends it
        ahead of the FIN when the connection is closed."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.write(ABORT_RQ)

    async def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError, TimeoutError):
            await self.send(ABORT_RQ)


def _identity(primitive: Any) -> PeerIdentity:
    # Read the items directly: pynetdicom's properties raise when a (non-conformant) peer
    # leaves out the mandatory implementation class UID or maximum length.
    uid = None
    max_len = None
    name = None
    role: list[str] = []
    ext: list[str] = []
    window = None
    for item in primitive.user_information:
        cls = type(item).__name__
        if cls == "ImplementationClassUIDNotification":
            uid = item.implementation_class_uid
        elif cls == "MaximumLengthNotification":
            max_len = item.maximum_length_received
        elif cls == "ImplementationVersionNameNotification":
            name = item.implementation_version_name
        elif cls == "AsynchronousOperationsWindowNegotiation":
            window = (
                int(item.maximum_number_operations_invoked),
                int(item.maximum_number_operations_performed),
            )
        elif cls == "SCP_SCU_RoleSelectionNegotiation":
            role.append(f"{item.sop_class_uid} scu={item.scu_role} scp={item.scp_role}")
        elif cls == "SOPClassExtendedNegotiation":
            info = bytes(item.service_class_application_information or b"")
            ext.append(f"{item.sop_class_uid} {info.hex()}")
    return PeerIdentity(
        implementation_class_uid=str(uid) if uid else None,
        implementation_version_name=str(name).strip() if name else None,
        max_pdu_length=max_len,
        async_ops_window=window,
        role_selection=role,
        extended_negotiation=ext,
    )


def _contexts(
    primitive: Any, proposed: Sequence[str]
) -> tuple[list[ContextResult], dict[str, int], dict[int, str]]:
    by_id = {2 * i + 1: uid for i, uid in enumerate(proposed)}
    results: list[ContextResult] = []
    accepted: dict[str, int] = {}
    transfer: dict[int, str] = {}
    for cx in primitive.presentation_context_definition_results_list:
        abstract = by_id.get(cx.context_id, f"unknown context {cx.context_id}")
        ts = str(cx.transfer_syntax[0]) if cx.transfer_syntax else None
        result = int(cx.result) if cx.result is not None else -1
        results.append(
            ContextResult(
                abstract_syntax=abstract,
                name=codes.sop_name(abstract),
                result=result,
                result_text=codes.CONTEXT_RESULT.get(result, f"unknown result {result}"),
                transfer_syntax=ts if result == 0 else None,
            )
        )
        if result == 0 and ts:
            accepted[abstract] = cx.context_id
            transfer[cx.context_id] = ts
    return results, accepted, transfer


@dataclass(frozen=True)
class AcceptAnswer:
    """What an A-ASSOCIATE-AC says, read once per distinct PDU (see ``read_ac``)."""

    identity: PeerIdentity
    results: tuple[ContextResult, ...]
    accepted: tuple[tuple[str, int], ...]
    transfer: tuple[tuple[int, str], ...]
    warnings: tuple[str, ...]  # what pydicom noted about odd values (for the debug log)


# Devices of one kind answer our (cached, identical) request with byte-identical
# A-ASSOCIATE-ACs, and pynetdicom's decoder checks every UID with pydicom's expressions:
# about a third of the CPU of detecting a service. Only ordinary-sized answers are kept,
# so a hostile peer's large ones cannot make the cache big (64 x 16 KiB at most).
_AC_CACHE_BYTES = 16 * 1024


def read_ac(encoded: bytes, contexts: tuple[str, ...]) -> AcceptAnswer:
    if len(encoded) <= _AC_CACHE_BYTES:
        return _read_ac_cached(encoded, contexts)
    return _read_ac(encoded, contexts)


def _read_ac(encoded: bytes, contexts: tuple[str, ...]) -> AcceptAnswer:
    # pydicom warns (to stderr) on odd values, such as a UID with control characters:
    # peer data, so kept for the debug log instead.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        primitive = decode_ac(encoded)
        results, accepted, transfer = _contexts(primitive, contexts)
        identity = _identity(primitive)
    return AcceptAnswer(identity, tuple(results), tuple(accepted.items()),
                        tuple(transfer.items()), tuple(str(w.message) for w in caught))


_read_ac_cached = functools.lru_cache(maxsize=64)(_read_ac)


async def request_association(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    purpose: str,
    calling_ae: str,
    called_ae: str,
    contexts: Sequence[str],
    timeout: float,
) -> tuple[Association, Session | None]:
    """Send an A-ASSOCIATE-RQ and classify the answer.

    Returns the observation and, when accepted, a live Session the caller must release.
    """
    started = time.perf_counter()
    base: dict[str, Any] = {"purpose": purpose, "calling_ae": calling_ae, "called_ae": called_ae}

    def done(outcome: AssociationOutcome, **kw: Any) -> Association:
        ms = round((time.perf_counter() - started) * 1000, 3)
        return Association(outcome=outcome, elapsed_ms=ms, **base, **kw)

    try:
        writer.write(associate_rq(calling_ae, called_ae, tuple(contexts)))
        async with asyncio.timeout(timeout):  # no task per write, unlike wait_for
            await writer.drain()
        quickack(writer)
        pdu = await read_pdu(reader, timeout, OUR_MAX_PDU)
    except PeerTimeout as exc:
        detail = f"no answer within {timeout:g} s"
        if exc.received:
            detail += f" (only {len(exc.received)} bytes of a PDU arrived)"
            writer.write(ABORT_RQ)
        return done(
            AssociationOutcome.NO_ANSWER, detail=detail, first_bytes_hex=exc.received.hex() or None
        ), None
    except TimeoutError:
        return done(AssociationOutcome.NO_ANSWER, detail=f"no answer within {timeout:g} s"), None
    except PeerClosed as exc:
        if exc.received:
            return done(
                AssociationOutcome.NOT_DICOM,
                detail="peer sent a partial, non-DICOM answer and closed",
                first_bytes_hex=exc.received[:FIRST_BYTES].hex(),
            ), None
        return done(
            AssociationOutcome.CLOSED, detail="peer closed the connection without answering"
        ), None
    except PeerProtocolError as exc:
        if exc.dicom_like:  # a DICOM header with an impossible body: a broken DICOM peer
            writer.write(ABORT_RQ)
            outcome = AssociationOutcome.ERROR
        else:
            outcome = AssociationOutcome.NOT_DICOM
        return done(outcome, detail=str(exc), first_bytes_hex=exc.first_bytes.hex()), None
    except OSError as exc:
        return done(AssociationOutcome.ERROR, detail=f"connection error: {exc}"), None
    return await _classify(pdu, reader, writer, contexts, timeout, done)


async def _classify(
    pdu: RawPDU,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    contexts: Sequence[str],
    timeout: float,
    done: Any,
) -> tuple[Association, Session | None]:
    if pdu.type == 0x02:
        try:
            answer = read_ac(pdu.encoded(), tuple(contexts))
        except Exception as exc:  # pynetdicom raises assorted errors on malformed items
            writer.write(ABORT_RQ)
            return done(
                AssociationOutcome.ERROR,
                detail=f"malformed A-ASSOCIATE-AC: {type(exc).__name__}",
                first_bytes_hex=pdu.encoded()[:FIRST_BYTES].hex(),
            ), None
        for message in answer.warnings:
            log.debug("peer A-ASSOCIATE-AC: %s", message)
        identity = answer.identity
        session = Session(reader, writer, timeout, identity.max_pdu_length or OUR_MAX_PDU,
                          dict(answer.accepted), dict(answer.transfer))
        obs = done(AssociationOutcome.ACCEPTED, peer=identity, contexts=list(answer.results))
        return obs, session
    if pdu.type == 0x03:
        try:
            result, source, reason = decode_rj(pdu)
        except PeerProtocolError as exc:
            # Still a DICOM header: the evidence keeps the port DICOM (no ClientHello later).
            first = pdu.encoded()[:FIRST_BYTES].hex()
            return done(AssociationOutcome.ERROR, detail=str(exc), first_bytes_hex=first), None
        reject = RejectInfo(
            result=result,
            result_text=codes.REJECT_RESULT.get(result, f"unknown result {result}"),
            source=source,
            source_text=codes.REJECT_SOURCE.get(source, f"unknown source {source}"),
            reason=reason,
            reason_text=codes.reject_reason(source, reason),
        )
        return done(AssociationOutcome.REJECTED, reject=reject, detail=reject.reason_text), None
    if pdu.type == 0x07:
        source, reason = decode_abort(pdu)
        text = (
            f"{codes.ABORT_SOURCE.get(source, source)}: "
            f"{codes.ABORT_REASON.get(reason, f'reason {reason}')}"
        )
        return done(
            AssociationOutcome.ABORTED,
            abort=AbortInfo(source=source, reason=reason, text=text),
            detail=text,
        ), None
    writer.write(ABORT_RQ)
    return done(
        AssociationOutcome.ERROR,
        detail=f"unexpected PDU type 0x{pdu.type:02x} in answer to A-ASSOCIATE-RQ",
        first_bytes_hex=pdu.encoded()[:FIRST_BYTES].hex(),
    ), None


def first_called_ae(settings: ScanSettings) -> str:
    """The title detection addresses: a known one if given, else one no device has.

    With a random title the detection association doubles as the called-AE check.
    """
    return settings.ae_titles[0] if settings.ae_titles else settings.random_called_ae


async def request_detection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: ScanSettings,
    purpose: str = "detect",
    called_ae: str | None = None,
) -> tuple[Association, Session | None]:
    """The standard detection A-ASSOCIATE-RQ; an accepted session goes to
    ``close_detection``."""
    return await request_association(
        reader,
        writer,
        purpose=purpose,
        calling_ae=settings.calling_ae,
        called_ae=called_ae or first_called_ae(settings),
        contexts=codes.SERVICE_CONTEXTS,
        timeout=settings.timeouts.dicom,
    )


async def close_detection(obs: Association, session: Session | None) -> Association:
    """Release an accepted detection association; the observation notes whether it was."""
    if session is None:
        return obs
    try:
        released = await session.release()
    except asyncio.CancelledError:
        session.abort_now()  # interrupted: the peer is told, not left waiting
        raise
    return obs.model_copy(update={"released": released})


async def detect_association(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: ScanSettings,
    purpose: str = "detect",
    called_ae: str | None = None,
) -> Association:
    """The standard detection association on an open connection, released at once.

    Used by service identification (cleartext) and by the TLS probe (DICOM inside TLS);
    ``probes.dicom.health.detect_and_check`` adds the health check before to it.
    """
    obs, session = await request_detection(reader, writer, settings, purpose, called_ae)
    return await close_detection(obs, session)
