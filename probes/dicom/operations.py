"""DIMSE operations that prove what an unknown peer may do, without touching patient data.

C-FIND, C-GET and C-MOVE are built so that nothing can match: a Study Instance UID
and Patient ID generated for this scan, and only non-identifying return keys. The
status then tells authorised from refused. A response that carries a dataset anyway
is discarded unread and the association aborted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as _msgs
from pynetdicom import dimse_primitives as _dimse
from pynetdicom import status as _status
from pynetdicom.dsutils import encode as _encode_ds

from probes.dicom import codes
from probes.dicom.client import Session
from probes.dicom.command import NO_DATA_SET, CommandBuffer, response_status
from probes.dicom.pdu import (
    MAX_DATA_PDU,
    MIN_PEER_PDU,
    PeerClosed,
    PeerProtocolError,
    decode_pdata,
    encode_pdata,
    read_pdu,
)
from scanner.model.observations import Confidence, Operation, OperationOutcome

STATUS_TABLES: dict[str, dict[int, tuple[str, str]]] = {
    "C-ECHO": _status.VERIFICATION_SERVICE_CLASS_STATUS,
    "C-FIND": _status.QR_FIND_SERVICE_CLASS_STATUS,
    "C-GET": _status.QR_GET_SERVICE_CLASS_STATUS,
    "C-MOVE": _status.QR_MOVE_SERVICE_CLASS_STATUS,
    "C-STORE": _status.STORAGE_SERVICE_CLASS_STATUS,
}


# Why a 0xCxxx status is read as "let through": the request reached processing.
PROCESSED_DETAIL = {
    "query": "processed and failed on the non-existent keys: not an authorisation refusal",
    "C-STORE": "processed, then failed to store the test object (the peer reports it was "
    "not stored): not an authorisation refusal",
}


class _Aborted(Exception):
    pass


class _DatasetReturned(Exception):
    pass


def status_text(operation: str, code: int) -> str:
    category, text = STATUS_TABLES[operation].get(code, (_status.code_to_category(code), ""))
    return f"{category}{': ' + text if text else ''} (0x{code:04X})"


# Failure statuses that refuse the request as such: "Refused: Not Authorized", "Refused:
# SOP Class not supported", and C-MOVE's "Refused: Move Destination unknown" (the peer
# sends only to destinations it knows).
REFUSALS = frozenset({0x0124, 0x0122, 0xA801})
RESOURCE_LIMITATION = 0x0213


def _is_authorised(operation: str, code: int) -> bool:
    category = _status.code_to_category(code)
    if operation == "C-MOVE" and code == 0xA801:
        return False  # destination unknown: the peer only sends to registered destinations
    return category in (_status.STATUS_SUCCESS, _status.STATUS_PENDING, _status.STATUS_WARNING)


class Request:
    """A DIMSE request, as the PDUs to send for a context ID and the peer's maximum PDU
    length. Every device gets the same requests in a scan (the zero-match keys are the
    scan's), and pydicom's and pynetdicom's encoders cost about a millisecond a message,
    so the PDUs are encoded once per ``key`` and reused; ``key=None`` (a request unique
    to one device, the C-STORE test object) is encoded each time."""

    __slots__ = ("_build", "_key")

    def __init__(self, key: tuple[Hashable, ...] | None, build: Callable[[], Any]) -> None:
        self._key, self._build = key, build

    def pdus(self, context_id: int, max_pdu: int) -> tuple[bytes, ...]:
        if self._key is None:
            return self._encode(context_id, max_pdu)
        key = (self._key, context_id, max_pdu)
        found = _ENCODED.get(key)
        if found is None:
            if len(_ENCODED) >= _ENCODED_AT_MOST:
                _ENCODED.clear()  # more kinds of peer than a scan meets: start again
            found = _ENCODED[key] = self._encode(context_id, max_pdu)
        return found

    def _encode(self, context_id: int, max_pdu: int) -> tuple[bytes, ...]:
        return tuple(encode_pdata(p) for p in self._build().encode_msg(context_id, max_pdu))


_ENCODED: dict[tuple[Hashable, ...], tuple[bytes, ...]] = {}
_ENCODED_AT_MOST = 512


async def _send_message(session: Session, message: Request, context_id: int) -> None:
    if session.peer_max_pdu < MIN_PEER_PDU:
        # pynetdicom's encoder cannot split a message into PDUs that small (and divides by
        # the length less 6); no real peer announces it, so nothing is sent.
        raise PeerProtocolError(
            f"peer announced a maximum PDU length of {session.peer_max_pdu} bytes, "
            f"under the {MIN_PEER_PDU} a request needs; nothing sent"
        )
    for pdu in message.pdus(context_id, session.peer_max_pdu):
        await session.send(pdu)


async def _read_command(session: Session) -> Dataset:
    """The next DIMSE command set. Dataset fragments are dropped unread."""
    command = CommandBuffer()
    deadline = time.monotonic() + session.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        pdu = await read_pdu(session.reader, left, MAX_DATA_PDU)
        if pdu.type == 0x07:
            session.closed = True
            raise _Aborted
        if pdu.type != 0x04:
            raise PeerProtocolError(f"unexpected PDU type 0x{pdu.type:02x} during DIMSE")
        for _cid, value in decode_pdata(pdu):
            control = value[0] if value else 0
            if not control & 0x01:
                raise _DatasetReturned
            command.add(value[1:])
            if control & 0x02:
                return command.decode()


async def run_operation(
    session: Session, operation: str, sop_class: str, message: Request, sent: str
) -> Operation:
    """Send one request on an accepted context and classify the final response."""

    def result(outcome: OperationOutcome, **kw: Any) -> Operation:
        kw.setdefault("confidence", Confidence.CONFIRMED)
        return Operation(
            operation=operation,
            sop_class=sop_class,
            sop_class_name=codes.sop_name(sop_class),
            outcome=outcome,
            sent=sent,
            **kw,
        )

    context_id = session.accepted.get(sop_class)
    if context_id is None:
        return result(OperationOutcome.CONTEXT_REJECTED, detail="presentation context not accepted")
    try:
        await _send_message(session, message, context_id)
        while True:
            command = await _read_command(session)
            code, data_set_type = response_status(command)
            if data_set_type != NO_DATA_SET:
                raise _DatasetReturned
            if _status.code_to_category(code) != _status.STATUS_PENDING:
                break
    except _Aborted:
        return result(OperationOutcome.ABORTED, detail="peer aborted the association (A-ABORT)")
    except _DatasetReturned:
        await session.abort()
        return result(
            OperationOutcome.AUTHORISED,
            detail="a response carried a dataset: discarded unread, association aborted",
        )
    except TimeoutError:
        await session.abort()
        return result(OperationOutcome.NO_ANSWER, detail=f"no response in {session.timeout:g} s")
    except PeerClosed:
        session.closed = True
        return result(OperationOutcome.ABORTED, detail="peer closed the connection")
    except (PeerProtocolError, OSError, asyncio.IncompleteReadError) as exc:
        await session.abort()
        return result(OperationOutcome.ERROR, detail=str(exc))
    text = status_text(operation, code)
    if 0xA700 <= code <= 0xA7FF or code == RESOURCE_LIMITATION:
        # "Refused: Out of Resources" in every DIMSE-C service, and the general
        # "Resource limitation": the device is at capacity.
        return result(OperationOutcome.BUSY, status=code, status_text=text,
                      detail="the peer is out of resources: not an answer about access")
    if _is_authorised(operation, code):
        return result(OperationOutcome.AUTHORISED, status=code, status_text=text)
    if 0xC000 <= code <= 0xCFFF and operation != "C-ECHO":
        # "Unable to process": the peer let the request through and failed on the keys,
        # which match nothing (Orthanc answers a permitted C-GET/C-MOVE of an unknown
        # study this way; its authorisation refusal is an A-ABORT instead).
        return result(
            OperationOutcome.AUTHORISED,
            confidence=Confidence.INFERRED,
            status=code,
            status_text=text,
            detail=PROCESSED_DETAIL.get(operation, PROCESSED_DETAIL["query"]),
        )
    if code in REFUSALS:
        return result(OperationOutcome.REFUSED, status=code, status_text=text)
    # Any other status ("Processing failure", "Identifier does not match SOP Class", one
    # no standard defines) says the request failed, not that this peer may not make it:
    # read as a refusal, a device that fails every request passed the access checks.
    return result(OperationOutcome.FAILED, status=code, status_text=text,
                  detail="the peer failed the request without refusing it: not an answer "
                  "about access")


def _identifier(implicit: bool, ds: Dataset) -> BytesIO:
    encoded = _encode_ds(ds, implicit, True)
    return BytesIO(encoded or b"")


def _implicit(session: Session, sop_class: str) -> bool:
    return session.transfer[session.accepted[sop_class]] == codes.IMPLICIT_LE


def _build_echo() -> Any:
    primitive = _dimse.C_ECHO()
    primitive.MessageID = 1
    primitive.AffectedSOPClassUID = codes.VERIFICATION
    msg = _msgs.C_ECHO_RQ()
    msg.primitive_to_message(primitive)
    return msg


def echo_message() -> Request:
    return Request(("C-ECHO",), _build_echo)


def zero_match_query(study_uid: str, patient_id: str) -> Dataset:
    """Keys that cannot match: random per scan. Return keys carry no identifying data."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    ds.PatientID = patient_id
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def query_message(session: Session, sop_class: str, study_uid: str, patient_id: str) -> Request:
    implicit = _implicit(session, sop_class)

    def build() -> Any:
        primitive = _dimse.C_FIND()
        primitive.MessageID = 2
        primitive.AffectedSOPClassUID = sop_class
        primitive.Priority = 2
        if sop_class == codes.WORKLIST_FIND:
            ds = Dataset()
            ds.PatientID = patient_id
            ds.AccessionNumber = patient_id[:16]
        else:
            ds = zero_match_query(study_uid, patient_id)
        primitive.Identifier = _identifier(implicit, ds)
        msg = _msgs.C_FIND_RQ()
        msg.primitive_to_message(primitive)
        return msg

    return Request(("C-FIND", sop_class, implicit, study_uid, patient_id), build)


def retrieve_message(
    session: Session, operation: str, sop_class: str, study_uid: str, patient_id: str, dest: str
) -> Request:
    implicit = _implicit(session, sop_class)

    def build() -> Any:
        primitive: Any = _dimse.C_GET() if operation == "C-GET" else _dimse.C_MOVE()
        primitive.MessageID = 3
        primitive.AffectedSOPClassUID = sop_class
        primitive.Priority = 2
        if operation == "C-MOVE":
            primitive.MoveDestination = dest
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study_uid
        ds.PatientID = patient_id
        primitive.Identifier = _identifier(implicit, ds)
        msg: Any = _msgs.C_GET_RQ() if operation == "C-GET" else _msgs.C_MOVE_RQ()
        msg.primitive_to_message(primitive)
        return msg

    return Request((operation, sop_class, implicit, study_uid, patient_id, dest), build)
