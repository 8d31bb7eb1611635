"""DIMSE requests are encoded once a scan and reused for every device (pydicom's and
pynetdicom's encoders cost about a millisecond a message), byte for byte what a fresh
encoding gives, and kept apart wherever a byte could differ."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset

from probes.dicom import codes, operations
from probes.dicom.client import Session
from probes.dicom.operations import echo_message, query_message, retrieve_message

STUDY, PATIENT = "2.25.1234", "DSCN-000000001234"


def _session(transfer: str, max_pdu: int = 16384) -> Session:
    sops = (codes.VERIFICATION, codes.STUDY_FIND, codes.STUDY_GET, codes.STUDY_MOVE)
    accepted = {sop: 1 + 2 * n for n, sop in enumerate(sops)}
    return Session(reader=cast(Any, None), writer=cast(Any, None), timeout=1.0,
                   peer_max_pdu=max_pdu, accepted=accepted,
                   transfer={cid: transfer for cid in accepted.values()})


def test_each_request_is_encoded_once_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    operations._ENCODED.clear()
    built: list[str] = []
    real = operations.Request._encode

    def counting(self: operations.Request, context_id: int, max_pdu: int) -> tuple[bytes, ...]:
        built.append(repr(self._key))
        return real(self, context_id, max_pdu)

    monkeypatch.setattr(operations.Request, "_encode", counting)
    session = _session(codes.IMPLICIT_LE)
    for _device in range(50):
        echo_message().pdus(1, session.peer_max_pdu)
        query_message(session, codes.STUDY_FIND, STUDY, PATIENT).pdus(3, session.peer_max_pdu)
        retrieve_message(session, "C-MOVE", codes.STUDY_MOVE, STUDY, PATIENT,
                         "DSCU1").pdus(7, session.peer_max_pdu)
    assert len(built) == 3  # fifty devices, three encodings


def test_a_cached_request_is_what_a_fresh_encoding_sends() -> None:
    operations._ENCODED.clear()
    session = _session(codes.EXPLICIT_LE)
    request = query_message(session, codes.STUDY_FIND, STUDY, PATIENT)
    first = request.pdus(3, 16384)
    assert request.pdus(3, 16384) is first
    assert first == request._encode(3, 16384)


def test_whatever_changes_a_byte_is_a_request_of_its_own() -> None:
    operations._ENCODED.clear()
    implicit, explicit = _session(codes.IMPLICIT_LE), _session(codes.EXPLICIT_LE)
    find = query_message(implicit, codes.STUDY_FIND, STUDY, PATIENT).pdus(3, 16384)
    variants = [
        query_message(explicit, codes.STUDY_FIND, STUDY, PATIENT).pdus(3, 16384),
        query_message(implicit, codes.STUDY_FIND, "2.25.99", PATIENT).pdus(3, 16384),
        query_message(implicit, codes.STUDY_FIND, STUDY, PATIENT).pdus(5, 16384),
        retrieve_message(implicit, "C-GET", codes.STUDY_GET, STUDY, PATIENT, "A").pdus(5, 16384),
    ]
    assert all(v != find for v in variants)
    move_a = retrieve_message(implicit, "C-MOVE", codes.STUDY_MOVE, STUDY, PATIENT, "A")
    move_b = retrieve_message(implicit, "C-MOVE", codes.STUDY_MOVE, STUDY, PATIENT, "B")
    assert move_a.pdus(7, 16384) != move_b.pdus(7, 16384)
    # A small peer PDU splits the message: its own PDUs, each within the peer's limit.
    small = query_message(implicit, codes.STUDY_FIND, STUDY, PATIENT).pdus(3, 64)
    assert len(small) > len(find) and all(len(p) <= 64 + 6 for p in small)


def test_the_identifier_carries_the_zero_match_keys_in_the_accepted_syntax() -> None:
    operations._ENCODED.clear()
    command, data = query_message(_session(codes.EXPLICIT_LE), codes.STUDY_FIND, STUDY,
                                  PATIENT).pdus(3, 16384)
    # P-DATA-TF (6 bytes), PDV length (4), context ID, control header: 0x02 is the last
    # fragment of a data set, 0x03 of a command.
    assert (command[0], command[11], data[0], data[10], data[11]) == (4, 3, 4, 3, 2)
    identifier = data[12:]
    ds = read_dataset(DicomBytesIO(identifier), is_implicit_VR=False, is_little_endian=True)
    assert (ds.StudyInstanceUID, ds.PatientID, ds.QueryRetrieveLevel) == (STUDY, PATIENT,
                                                                          "STUDY")
