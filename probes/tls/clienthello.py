"""Hand-built ClientHellos and a reader for the server's first flight.

A raw ClientHello can offer exactly one protocol version and any list of suites,
legacy ones included, which no maintained TLS library will send any more; and the
answer can be read only as far as needed (the ServerHello, or the clear-text
Certificate and CertificateRequest of TLS <= 1.2) before the connection is dropped,
so the server never does the expensive part of a handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import struct
from dataclasses import dataclass, field

SSL3, TLS10, TLS11, TLS12, TLS13 = 0x0300, 0x0301, 0x0302, 0x0303, 0x0304
VERSION_NAMES = {SSL3: "SSLv3", TLS10: "TLSv1.0", TLS11: "TLSv1.1", TLS12: "TLSv1.2",
                 TLS13: "TLSv1.3"}  # fmt: skip

ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure",
    41: "no_certificate", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 60: "export_restriction", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 112: "unrecognized_name", 116: "certificate_required",
    120: "no_application_protocol",
}  # fmt: skip

# A ServerHello with this random is a HelloRetryRequest (RFC 8446 §4.1.3).
_HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
_GROUPS = (0x001D, 0x0017, 0x0018, 0x0019, 0x001E, 0x0016, 0x0015)  # x25519 first, EC only:
# listing FFDHE groups would let an RFC 7919 server refuse DHE suites it has custom params for.
_SIGALGS = (0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0403, 0x0503, 0x0603, 0x0807,
            0x0808, 0x0809, 0x080A, 0x080B, 0x0301, 0x0303, 0x0402, 0x0302, 0x0201, 0x0203,
            0x0202)  # fmt: skip
_MAX_RECORD = (1 << 14) + 2048
_MAX_FLIGHT = 1 << 18  # a certificate chain bigger than this is not worth reading


def alert_text(code: int | None) -> str | None:
    return None if code is None else ALERTS.get(code, f"alert {code}")


def _vec(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "big") + data


def _ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


def _u16s(values: tuple[int, ...] | list[int]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def client_hello(version: int, suites: list[int], server_name: str | None = None) -> bytes:
    """One TLS record holding a ClientHello that offers ``version`` only, and ``suites``."""
    extensions = b""
    if version >= TLS10:  # SSL 3.0 stacks may choke on extensions
        if server_name and not _is_ip(server_name):
            name = server_name.encode("idna")
            extensions += _ext(0, _vec(b"\x00" + _vec(name, 2), 2))
        extensions += _ext(10, _vec(_u16s(_GROUPS), 2))
        extensions += _ext(11, b"\x01\x00")  # uncompressed points only
        extensions += _ext(23, b"")  # extended_master_secret
        if version >= TLS12:
            extensions += _ext(13, _vec(_u16s(_SIGALGS), 2))
    if version >= TLS13:
        extensions += _ext(43, _vec(_u16s([TLS13]), 1))
        # Any 32 bytes are a valid X25519 share; we never derive keys from it.
        extensions += _ext(51, _vec(struct.pack("!HH", 0x001D, 32) + os.urandom(32), 2))
        extensions += _ext(45, b"\x01\x01")  # psk_dhe_ke
    offered = list(suites) if version >= TLS13 else [*suites, 0x00FF]  # + renegotiation SCSV
    body = (
        struct.pack("!H", min(version, TLS12))
        + os.urandom(32)
        + _vec(os.urandom(32) if version >= TLS13 else b"", 1)
        + _vec(_u16s(offered), 2)
        + b"\x01\x00"
    )
    # Some stacks hang on ClientHellos of 256..511 bytes (RFC 7685): pad past that window.
    size = 4 + len(body) + 2 + len(extensions)
    if version >= TLS10 and 256 <= size < 512:
        extensions += _ext(21, bytes(max(0, 512 - size - 4)))
    if version >= TLS10:
        body += _vec(extensions, 2)
    handshake = b"\x01" + _vec(body, 3)
    return struct.pack("!BHH", 22, TLS10 if version >= TLS10 else SSL3, len(handshake)) + handshake


@dataclass
class ServerAnswer:
    """What came back: a ServerHello (and, on request, the rest of a TLS <= 1.2 flight)."""

    kind: str  # server-hello, alert, closed, not-tls, timeout
    version: int | None = None
    suite: int | None = None
    hello_retry: bool = False
    alert: int | None = None
    certificates: list[bytes] = field(default_factory=list)
    certificate_request: bool | None = None
    received: int = 0
    first_bytes: bytes = b""
    detail: str = ""


def _parse_server_hello(body: bytes) -> tuple[int, int, bool]:
    """(selected version, suite, is HelloRetryRequest) from a ServerHello body."""
    legacy, random = struct.unpack_from("!H", body, 0)[0], body[2:34]
    sid_len = body[34]
    pos = 35 + sid_len
    suite = struct.unpack_from("!H", body, pos)[0]
    pos += 3  # suite + compression method
    version = legacy
    if pos + 2 <= len(body):
        end = pos + 2 + struct.unpack_from("!H", body, pos)[0]
        pos += 2
        while pos + 4 <= end:
            ext_type, ext_len = struct.unpack_from("!HH", body, pos)
            if ext_type == 43 and ext_len == 2:  # supported_versions: the real choice in 1.3
                version = struct.unpack_from("!H", body, pos + 4)[0]
            pos += 4 + ext_len
    return version, suite, random == _HRR_RANDOM


def _parse_certificates(body: bytes) -> list[bytes]:
    total = int.from_bytes(body[0:3], "big")
    certs, pos = [], 3
    while pos + 3 <= min(len(body), 3 + total):
        n = int.from_bytes(body[pos : pos + 3], "big")
        certs.append(body[pos + 3 : pos + 3 + n])
        pos += 3 + n
    return certs


async def read_answer(
    reader: asyncio.StreamReader, timeout: float, whole_flight: bool = False
) -> ServerAnswer:
    """Read until the ServerHello (or, with ``whole_flight``, ServerHelloDone) or a verdict.

    Never raises for peer behaviour: garbage, silence and resets become an answer kind.
    """
    ans = ServerAnswer(kind="timeout")
    seen = bytearray()
    try:
        async with asyncio.timeout(timeout):
            await _read_records(reader, ans, seen, whole_flight)
    except TimeoutError:
        if ans.kind == "timeout":
            ans.detail = (
                f"no answer within {timeout:g} s"
                if not seen
                else f"handshake stalled after {len(seen)} bytes, nothing more in {timeout:g} s"
            )
    except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
        if ans.kind != "server-hello":
            ans.kind = "closed"
            ans.detail = f"connection closed after {len(seen)} bytes ({type(exc).__name__})"
    except (struct.error, IndexError, ValueError) as exc:
        if ans.kind != "server-hello":
            ans.kind = "not-tls"
        ans.detail = f"malformed handshake message: {exc}"
    ans.received = len(seen)
    ans.first_bytes = bytes(seen[:32])
    return ans


class _Buffered:
    """Reads into ``seen`` so that whatever arrived is kept as evidence, even when a
    read is cut short by the timeout or a reset."""

    def __init__(self, reader: asyncio.StreamReader, seen: bytearray) -> None:
        self.reader, self.seen, self.pos = reader, seen, 0

    async def take(self, n: int) -> bytes:
        while len(self.seen) - self.pos < n:
            chunk = await self.reader.read(1 << 16)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(self.seen[self.pos :]), n)
            self.seen += chunk
            if len(self.seen) > _MAX_FLIGHT:
                raise ValueError("server flight too large")
        out = bytes(self.seen[self.pos : self.pos + n])
        self.pos += n
        return out


async def _read_records(
    reader: asyncio.StreamReader, ans: ServerAnswer, seen: bytearray, whole_flight: bool
) -> None:
    stream = _Buffered(reader, seen)
    handshake = bytearray()
    while True:
        header = await stream.take(5)
        ctype, major, minor = header[0], header[1], header[2]
        length = struct.unpack("!H", header[3:5])[0]
        if ctype not in (20, 21, 22, 23) or major != 3 or minor > 4 or length > _MAX_RECORD:
            ans.kind, ans.detail = "not-tls", "answer is not a TLS record"
            return
        payload = await stream.take(length)
        if ctype == 21 and len(payload) >= 2:
            if ans.kind != "server-hello":
                ans.kind = "alert"
            ans.alert = payload[1]
            return
        if ctype != 22:  # CCS or encrypted data: the clear part of the flight is over
            if ans.kind == "server-hello":
                return
            ans.kind, ans.detail = "not-tls", f"record type {ctype} before any ServerHello"
            return
        handshake += payload
        while len(handshake) >= 4:
            msg_len = int.from_bytes(handshake[1:4], "big")
            if len(handshake) < 4 + msg_len:
                break
            msg_type, body = handshake[0], bytes(handshake[4 : 4 + msg_len])
            del handshake[: 4 + msg_len]
            if msg_type == 2:
                ans.kind = "server-hello"
                ans.version, ans.suite, ans.hello_retry = _parse_server_hello(body)
                if not whole_flight or ans.version >= TLS13 or ans.hello_retry:
                    return
                ans.certificate_request = False
            elif ans.kind != "server-hello":
                raise ValueError(f"handshake message {msg_type} before ServerHello")
            elif msg_type == 11:
                ans.certificates = _parse_certificates(body)
            elif msg_type == 13:
                ans.certificate_request = True
            elif msg_type == 14:  # ServerHelloDone
                return
