"""DICOM upper-layer PDUs over asyncio streams, encoded and decoded by pynetdicom.

pynetdicom's own transport runs one thread per association; we reuse its PDU,
item and primitive classes but drive them over asyncio streams so hundreds of
devices can be probed at once. Reading is bounded in size and time so a hostile
peer (garbage, a huge declared length, one byte a second) cannot hang the scan
or exhaust memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as _prim
from pynetdicom.presentation import build_context

from probes.dicom import codes
from scanner import __version__

# The scanner names itself honestly (never posing as another product, as nmap poses as DCMTK):
# a UUID-derived UID under 2.25 (ISO/IEC 9834-8) and a DICOMSCAN_ version name (16 chars max).
IMPLEMENTATION_CLASS_UID = "2.25.219854087697542533163553906787628959525"
IMPLEMENTATION_VERSION_NAME = f"DICOMSCAN_{__version__}"[:16]

OUR_MAX_PDU = 65536
# Association-level PDUs (AC, RJ, release, abort) are small; a real A-ASSOCIATE-AC with many
# contexts is a few KiB. Anything beyond this is a hostile or broken peer.
MAX_CONTROL_PDU = 256 * 1024
MAX_DATA_PDU = 4 * 1024 * 1024
# The smallest maximum PDU length we send to: pynetdicom's encoder needs more than 6 + 7
# bytes per PDU and divides by the length less 6; 64 still carries a command in ~10 PDUs.
MIN_PEER_PDU = 64
HEADER = struct.Struct(">BBL")
VALID_TYPES = range(1, 8)
FIRST_BYTES = 64


class PeerProtocolError(Exception):
    """The peer sent something that is not a well-formed DICOM PDU."""

    def __init__(self, message: str, first_bytes: bytes = b"") -> None:
        super().__init__(message)
        self.first_bytes = first_bytes

    @property
    def dicom_like(self) -> bool:
        """A broken DICOM peer (valid PDU header) rather than another protocol."""
        return looks_like_pdu(self.first_bytes)


# PS3.8 9.3.4 and 9.3.6-9.3.8: A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT are 4 bytes
# long. An RDP server's TPKT header (03 00 LL LL) starts like an A-ASSOCIATE-RJ, but
# its length field reads as 458,752 or more; a DICOM stack that gets the length of a
# 4-byte PDU wrong is still a (broken) DICOM stack, so only an absurd length says "other".
_FIXED_LENGTH = (0x03, 0x05, 0x06, 0x07)
_ABSURD_FIXED_LENGTH = 1024


def looks_like_pdu(data: bytes) -> bool:
    """A plausible DICOM PDU header: known type, zero reserved byte and, for the 4-byte
    control PDUs (when the length was received), not an absurd length."""
    if len(data) < 2 or data[0] not in VALID_TYPES or data[1] != 0:
        return False
    if len(data) >= HEADER.size and data[0] in _FIXED_LENGTH:
        return int.from_bytes(data[2:6], "big") <= _ABSURD_FIXED_LENGTH
    return True


class PeerClosed(Exception):
    """The peer closed the connection."""

    def __init__(self, received: bytes = b"") -> None:
        super().__init__("peer closed the connection")
        self.received = received


def quickack(writer: asyncio.StreamWriter) -> None:
    """Ask the kernel to acknowledge the peer's next segment at once.

    Stock DCMTK (Debian's storescp) leaves Nagle on and writes each response in two
    parts; with our delayed ACK the second part waits ~40 ms. Linux resets the flag
    on its own, so it is set again after every request we send.
    """
    sock = writer.get_extra_info("socket")
    if sock is not None and hasattr(socket, "TCP_QUICKACK"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


@dataclass(frozen=True)
class RawPDU:
    type: int
    body: bytes

    def encoded(self) -> bytes:
        return HEADER.pack(self.type, 0, len(self.body)) + self.body


class PeerTimeout(TimeoutError):
    """No complete PDU in time; ``received`` holds the start of whatever did arrive."""

    def __init__(self, received: bytes) -> None:
        super().__init__("no complete answer in time")
        self.received = received


async def read_pdu(reader: asyncio.StreamReader, timeout: float, max_len: int) -> RawPDU:
    """Read one PDU within ``timeout`` seconds overall; a slow peer raises PeerTimeout."""
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout):
            await _fill(reader, buf, HEADER.size)
            pdu_type, _, length = HEADER.unpack(buf[: HEADER.size])
            if not looks_like_pdu(bytes(buf[: HEADER.size])):
                extra = await _read_some(reader, FIRST_BYTES - len(buf))
                raise PeerProtocolError("answer is not a DICOM PDU", bytes(buf) + extra)
            limit = MAX_CONTROL_PDU if pdu_type != 0x04 else max_len
            if length > limit:
                raise PeerProtocolError(
                    f"PDU type 0x{pdu_type:02x} declares {length} bytes, more than the "
                    f"{limit} this probe accepts",
                    bytes(buf),
                )
            await _fill(reader, buf, HEADER.size + length)
    except TimeoutError:
        raise PeerTimeout(bytes(buf[:FIRST_BYTES])) from None
    return RawPDU(pdu_type, bytes(buf[HEADER.size :]))


def _salvage(reader: asyncio.StreamReader, n: int) -> bytes:
    """Up to ``n`` bytes that arrived before the connection was reset.

    asyncio's ``StreamReader.read`` raises a stored connection error before it returns
    data it already holds: an SSH server that resets the connection on our A-ASSOCIATE-RQ
    left "SSH-2." as its banner whenever the reset was processed between two reads (a
    busy machine). The buffer is private to asyncio, hence the guarded look."""
    held = getattr(reader, "_buffer", None)
    if not isinstance(held, bytearray):
        return b""
    data = bytes(held[:n])
    del held[:n]
    return data


async def _fill(reader: asyncio.StreamReader, buf: bytearray, n: int) -> None:
    """Read until ``buf`` holds ``n`` bytes; partial data stays in ``buf`` for evidence."""
    while len(buf) < n:
        try:
            chunk = await reader.read(n - len(buf))
        except ConnectionError:
            chunk = _salvage(reader, n - len(buf))
        if not chunk:
            raise PeerClosed(bytes(buf[:FIRST_BYTES]))
        buf += chunk


async def _read_some(reader: asyncio.StreamReader, n: int) -> bytes:
    """Up to ``n`` more bytes that arrive promptly, for evidence; never waits long.

    Reads on while data keeps coming (a gap of 50 ms ends it, 0.2 s at most): a telnet
    server sends its option negotiation and its pre-login text as separate writes.
    """
    out = bytearray()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.2
    while len(out) < n:
        wait = min(deadline - loop.time(), 0.2 if not out else 0.05)
        if wait <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(n - len(out)), wait)
        except TimeoutError:
            break
        except ConnectionError:
            out += _salvage(reader, n - len(out))
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


@lru_cache(maxsize=256)
def associate_rq(calling_ae: str, called_ae: str, contexts: tuple[str, ...]) -> bytes:
    """Encoded A-ASSOCIATE-RQ; cached because a scan sends the same one to many devices."""
    primitive = _prim.A_ASSOCIATE()
    primitive.application_context_name = codes.APPLICATION_CONTEXT
    primitive.calling_ae_title = calling_ae
    primitive.called_ae_title = called_ae
    items: list[Any] = []
    max_len = _prim.MaximumLengthNotification()
    max_len.maximum_length_received = OUR_MAX_PDU
    items.append(max_len)
    uid = _prim.ImplementationClassUIDNotification()
    uid.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    items.append(uid)
    name = _prim.ImplementationVersionNameNotification()
    name.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    items.append(name)
    primitive.user_information = items
    pcs = []
    for i, abstract in enumerate(contexts):
        cx = build_context(abstract, [codes.EXPLICIT_LE, codes.IMPLICIT_LE])
        cx.context_id = 2 * i + 1
        pcs.append(cx)
    primitive.presentation_context_definition_list = pcs
    return bytes(_pdu.A_ASSOCIATE_RQ(primitive).encode())


RELEASE_RQ = bytes(_pdu.A_RELEASE_RQ().encode())
RELEASE_RP = bytes(_pdu.A_RELEASE_RP().encode())
ABORT_RQ = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # service-user, no reason


def decode_ac(encoded: bytes) -> _prim.A_ASSOCIATE:
    """A whole A-ASSOCIATE-AC PDU (header included) as pynetdicom's primitive."""
    pdu = _pdu.A_ASSOCIATE_AC()
    pdu.decode(encoded)
    return pdu.to_primitive()


def decode_rj(raw: RawPDU) -> tuple[int, int, int]:
    if len(raw.body) < 4:
        raise PeerProtocolError("A-ASSOCIATE-RJ shorter than 4 bytes", raw.encoded()[:FIRST_BYTES])
    return raw.body[1], raw.body[2], raw.body[3]


def decode_abort(raw: RawPDU) -> tuple[int, int]:
    if len(raw.body) < 4:
        return 0, 0
    return raw.body[2], raw.body[3]


def decode_pdata(raw: RawPDU) -> list[tuple[int, bytes]]:
    """Presentation data values: (context id, control header + fragment).

    Parsed here rather than by pynetdicom, whose decoder asserts (an AssertionError) on a
    PDV that overruns its PDU; each PDV must fit in what is left of the PDU body."""
    values: list[tuple[int, bytes]] = []
    body, pos = raw.body, 0
    while pos < len(body):
        if pos + 4 > len(body):
            raise PeerProtocolError("P-DATA ends inside a PDV length")
        length = int.from_bytes(body[pos : pos + 4], "big")
        if length < 2 or pos + 4 + length > len(body):
            raise PeerProtocolError(
                f"PDV declares {length} bytes, {len(body) - pos - 4} left in its P-DATA"
            )
        values.append((body[pos + 4], bytes(body[pos + 5 : pos + 4 + length])))
        pos += 4 + length
    if not values:
        raise PeerProtocolError("P-DATA without a PDV")
    return values


def encode_pdata(primitive: _prim.P_DATA) -> bytes:
    return bytes(_pdu.P_DATA_TF(primitive).encode())
