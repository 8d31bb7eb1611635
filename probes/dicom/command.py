"""Reading a peer's DIMSE command set under caps no peer can move.

A real command set is well under 1 KiB; the peer decides how many fragments it sends,
so the fragments are summed against ``MAX_COMMAND_SET`` and the read ends there. The
elements we act on (Status, Command Data Set Type) are checked for their length before
their value is read: pydicom raises on a 1- or 3-byte US, and a peer's mistake must be
a recorded answer, not an exception.
"""

from __future__ import annotations

import logging
import struct
import warnings
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode as _decode_ds

from probes.dicom.pdu import PeerProtocolError

log = logging.getLogger(__name__)

# 64 times the largest command set a real peer sends; the scan's memory does not follow.
MAX_COMMAND_SET = 64 * 1024
STATUS = 0x00000900
DATA_SET_TYPE = 0x00000800
NO_DATA_SET = 0x0101


class CommandBuffer:
    """Command fragments of one message, capped at ``MAX_COMMAND_SET`` bytes in all."""

    def __init__(self, cap: int = MAX_COMMAND_SET) -> None:
        self._cap = cap
        self._data = bytearray()

    def add(self, fragment: bytes) -> None:
        if len(self._data) + len(fragment) > self._cap:
            raise PeerProtocolError(
                f"command set exceeds {self._cap} bytes (fragments kept coming); read stopped"
            )
        self._data += fragment

    def decode(self) -> Dataset:
        """The command set (Implicit VR Little Endian); PeerProtocolError when malformed."""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds: Dataset = _decode_ds(BytesIO(bytes(self._data)), True, True)
        except Exception as exc:  # pydicom raises assorted types on malformed input
            raise PeerProtocolError(f"malformed command set: {type(exc).__name__}") from exc
        for w in caught:
            log.debug("peer command set: %s", w.message)
        return ds


def us_element(command: Dataset, tag: int, name: str) -> int | None:
    """One US element of a command set, or None when absent. A value that is not exactly
    2 bytes raises PeerProtocolError naming its length."""
    if tag not in command:
        return None
    raw = command.get_item(tag)
    value = getattr(raw, "value", None)
    if isinstance(value, bytes | bytearray):
        if len(value) != 2:
            raise PeerProtocolError(f"{name} element is {len(value)} bytes long, not 2")
        return int(struct.unpack("<H", value)[0])
    try:
        return int(command[tag].value)
    except (TypeError, ValueError) as exc:
        raise PeerProtocolError(f"{name} element unreadable: {type(exc).__name__}") from exc


def response_status(command: Dataset) -> tuple[int, int]:
    """(Status, Command Data Set Type) of a response; PeerProtocolError when missing/odd."""
    status = us_element(command, STATUS, "Status")
    if status is None:
        raise PeerProtocolError("response without a Status")
    data_set_type = us_element(command, DATA_SET_TYPE, "Command Data Set Type")
    return status, NO_DATA_SET if data_set_type is None else data_set_type
