"""Hand-built DICOM PDUs for the scripted hostile peers (tests/hostile.py).

Built byte by byte, not with pynetdicom, because the point is to send what no
conformant encoder would: a maximum PDU length of a few bytes, a Status element of the
wrong length, a PDV that overruns its PDU, command fragments without end.
"""

from __future__ import annotations

import struct

IMPLICIT_LE = "1.2.840.10008.1.2"
APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
HOSTILE_UID = b"1.2.826.0.1.3680043.9.9999.1"


def _item(item_type: int, body: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(body)) + body


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def proposed_context_ids(rq: bytes) -> list[int]:
    """The presentation context ids of an A-ASSOCIATE-RQ (items of type 0x20)."""
    ids: list[int] = []
    pos = 6 + 68
    while pos + 4 <= len(rq):
        item_type, length = rq[pos], struct.unpack(">H", rq[pos + 2 : pos + 4])[0]
        if item_type == 0x20 and pos + 4 < len(rq):
            ids.append(rq[pos + 4])
        pos += 4 + length
    return ids


def associate_ac(
    rq: bytes,
    *,
    max_pdu: int = 16384,
    version_name: bytes = b"HOSTILE_1",
    uid: bytes = HOSTILE_UID,
) -> bytes:
    """An A-ASSOCIATE-AC accepting every proposed context with Implicit VR LE."""
    contexts = b"".join(
        _item(0x21, bytes([cid, 0, 0, 0]) + _item(0x40, IMPLICIT_LE.encode()))
        for cid in proposed_context_ids(rq)
    )
    user = (
        _item(0x51, struct.pack(">L", max_pdu))
        + _item(0x52, uid)
        + _item(0x55, version_name)
    )
    called_calling = rq[10:42] if len(rq) >= 42 else b"ANY-SCP".ljust(16) + b"ANY-SCU".ljust(16)
    body = (
        b"\x00\x01\x00\x00" + called_calling + bytes(32)
        + _item(0x10, APP_CONTEXT) + contexts + _item(0x50, user)
    )
    return _pdu(0x02, body)


def _element(tag: tuple[int, int], value: bytes) -> bytes:
    return struct.pack("<HHL", tag[0], tag[1], len(value)) + value


def _uid(uid: str) -> bytes:
    raw = uid.encode()
    return raw + b"\x00" if len(raw) % 2 else raw


def echo_rsp(status: bytes | None) -> bytes:
    """A C-ECHO-RSP command set (Implicit VR LE). ``status`` is the raw Status value:
    ``None`` leaves the element out; 1 or 3 bytes make a short or odd one."""
    elements = (
        _element((0, 0x0002), _uid(VERIFICATION))
        + _element((0, 0x0100), struct.pack("<H", 0x8030))
        + _element((0, 0x0120), struct.pack("<H", 1))
        + _element((0, 0x0800), struct.pack("<H", 0x0101))
        + (b"" if status is None else _element((0, 0x0900), status))
    )
    return _element((0, 0x0000), struct.pack("<L", len(elements))) + elements


def pdata(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF holding one PDV."""
    pdv = struct.pack(">LBB", len(fragment) + 2, context_id, control) + fragment
    return _pdu(0x04, pdv)


def pdata_overrun(context_id: int, fragment: bytes) -> bytes:
    """A P-DATA-TF whose one PDV declares 4 KiB more than its PDU holds."""
    pdv = struct.pack(">LBB", len(fragment) + 2 + 4096, context_id, 0x03) + fragment
    return _pdu(0x04, pdv)


def context_of(pdata_pdu: bytes) -> int:
    """The presentation context id of the first PDV of a P-DATA-TF we received."""
    return pdata_pdu[10] if len(pdata_pdu) > 10 else 1


RELEASE_RP = _pdu(0x06, bytes(4))
ONE_BYTE_RJ = _pdu(0x03, b"\x01")
