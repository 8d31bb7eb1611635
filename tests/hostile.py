"""Scripted misbehaving TCP peers on loopback, for testing how the scanner copes.

``hostile_peer(behaviour)`` runs a threaded server on 127.0.0.1 on a free port and
yields a ``HostilePeer``: ``.port`` is where it listens and ``.received`` holds, per
accepted connection in accept order, every byte that connection received (updated
live). Leaving the ``with`` block closes every socket and joins every thread.

Behaviours (the peer answers after the first bytes it receives, as a real SCP answers
an A-ASSOCIATE-RQ, unless said otherwise):

- ``garbage``: 64 random-looking bytes that are no DICOM PDU, then it closes.
- ``huge-ac``: an A-ASSOCIATE-AC header announcing 0xFFFFFFF0 bytes and a few body
  bytes; then it keeps the connection open and sends nothing more.
- ``slow``: a valid-looking A-ASSOCIATE-AC, one byte per ``slow_interval`` seconds,
  forever (the PDU announces far more bytes than a test will ever wait for).
- ``close``: closes each connection as soon as it is accepted, before reading.
- ``http``: ``HTTP/1.1 400 Bad Request`` with a ``Server: hostile-test`` header, then closes.
- ``silent``: reads everything, never answers, never closes first.
- ``abort``: an A-ABORT, source 0 (service-user), reason 0, then closes.
- ``reject``: an A-ASSOCIATE-RJ, rejected-permanent, source 1 (service-user), reason 7
  (called AE title not recognised), then closes.
- ``rst``: resets each connection (SO_LINGER 0) as soon as it is accepted.
- ``rj-1byte``: an A-ASSOCIATE-RJ whose body is one byte, then closes.
- ``http-superscript``: ``HTTP/1.1 200 OK`` whose ``Content-Length`` is ``\xb9`` (latin-1
  superscript one, a "digit" to ``str.isdigit()`` that ``int()`` refuses), then closes.
- ``http-endless``: a catch-all web server: ``200 OK`` to anything, a JSON body that is
  begun and never ended (no length, the connection held open).

DICOM-speaking behaviours accept every association (every proposed context, Implicit VR
LE, see tests/hostile_pdus.py), answer A-RELEASE-RQ, and answer each P-DATA so:

- ``status-missing`` / ``status-short`` / ``status-odd``: a C-ECHO-RSP whose Status element
  is left out, 1 byte long or 3 bytes long.
- ``pdv-overrun``: a P-DATA whose PDV declares 4 KiB more than its PDU holds.
- ``tiny-pdu``: the A-ASSOCIATE-AC announces a maximum PDU length of 4 bytes.
- ``fragments``: command fragments (never the last) of 16 KiB each, as fast as they go,
  until the client leaves.
- ``markup``: the A-ASSOCIATE-AC's version name is rich markup; its implementation
  class UID carries an OSC sequence.
- ``one-shot``: speaks DICOM (Status success) on the first connection only; every later
  connection is closed at once, as by a device that serves one association and stops.
- ``out-of-resources``: answers every request with Status 0xA700, "Refused: Out of
  Resources", as a device at capacity does.
- ``processing-failure`` / ``identifier-mismatch``: answers every request with Status
  0x0110, "Processing failure", or 0xA900, "Identifier does not match SOP Class": failures
  that refuse nothing, as from a device whose database is down.
- ``enforce-then-busy``: rejects the first three associations as a device enforcing its
  called AE title does (rejected-permanent, source 1, reason 7), every later one as
  ``busy-after-first`` does: a device that stops taking guesses.
- ``busy-after-first``: speaks DICOM on the first connection only; every later
  A-ASSOCIATE-RQ gets an A-ASSOCIATE-RJ rejected-transient, source 3 (service-provider,
  presentation), reason 1 (temporary congestion), as from a device at its association
  limit: a refusal that says nothing about who asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterator

from tests import hostile_pdus as pdus

DICOM_BEHAVIOURS = (
    "status-missing", "status-short", "status-odd", "pdv-overrun", "tiny-pdu", "fragments",
    "markup", "one-shot", "busy-after-first", "out-of-resources", "processing-failure",
    "identifier-mismatch",
)
BEHAVIOURS = (
    "garbage", "huge-ac", "slow", "close", "http", "silent", "abort", "reject", "rst",
    "rj-1byte", "http-endless", "http-superscript", "enforce-then-busy", *DICOM_BEHAVIOURS,
)
# Shown in a table cell, a peer's version name must not become markup or terminal control.
# pynetdicom refuses control characters in a version name; the OSC rides in the UID.
MARKUP_VERSION = b"fo-dicom [/x]"
MARKUP_UID = b"1.2.3\x1b]0;pwned\x07"
_STATUS = {"status-missing": None, "status-short": b"\x00", "status-odd": b"\x00\x00\x00",
           "out-of-resources": b"\x00\xa7", "processing-failure": b"\x10\x01",
           "identifier-mismatch": b"\x00\xa9"}

_digest = hashlib.sha512(b"dicomscan hostile peer").digest()
# 64 bytes; the top bit on the first byte keeps it off every PDU type (0x01-0x07).
GARBAGE = bytes([_digest[0] | 0x80]) + _digest[1:]
HUGE_AC = b"\x02\x00\xff\xff\xff\xf0" + b"\x00\x01\x00\x00" + b"ORTHANC".ljust(16)
HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nServer: hostile-test\r\nContent-Length: 0\r\n\r\n"
HTTP_SUPERSCRIPT = (b"HTTP/1.1 200 OK\r\nServer: hostile-test\r\nContent-Length: \xb9\r\n\r\n"
                    b"x")
HTTP_ENDLESS = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[{"00100020": '
A_ABORT = bytes.fromhex("07 00 00000004 00 00 00 00")
A_ASSOCIATE_RJ = bytes.fromhex("03 00 00000004 00 01 01 07")
A_ASSOCIATE_RJ_BUSY = bytes.fromhex("03 00 00000004 00 02 03 01")
# Header, protocol version, reserved, called and calling AE, 32 reserved bytes, then the
# application context item; the declared length (1 MiB) is never reached at 1 byte/s.
SLOW_AC = (
    b"\x02\x00"
    + struct.pack(">I", 1 << 20)
    + b"\x00\x01\x00\x00"
    + b"ANY-SCP".ljust(16)
    + b"DICOMSCAN".ljust(16)
    + bytes(32)
    + b"\x10\x00\x00\x15"
    + b"1.2.840.10008.3.1.1.1"
)

_TICK = 0.1  # how often blocked threads look at the stop flag
_ANSWERS = {
    "garbage": GARBAGE, "http": HTTP_400, "abort": A_ABORT, "reject": A_ASSOCIATE_RJ,
    "rj-1byte": pdus.ONE_BYTE_RJ, "http-superscript": HTTP_SUPERSCRIPT,
}


class HostilePeer:
    """A running scripted peer: ``port``, ``received`` and a few waiting helpers."""

    def __init__(self, behaviour: str, host: str = "127.0.0.1", slow_interval: float = 1.0):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"hostile peers stay on loopback, not {host}")
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; choose from {BEHAVIOURS}")
        self.behaviour = behaviour
        self.slow_interval = slow_interval
        self._listener = socket.create_server((host, 0), backlog=128)
        self._listener.settimeout(_TICK)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._received: list[bytes] = []
        self._open: set[socket.socket] = set()
        self._finished = 0
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="hostile-accept")

    @property
    def received(self) -> list[bytes]:
        """Bytes received so far, one entry per accepted connection, in accept order."""
        with self._lock:
            return list(self._received)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._received)

    def wait_idle(self, connections: int = 1, timeout: float = 5.0) -> bool:
        """Wait until at least ``connections`` were accepted and all of them have ended."""
        with self._lock:
            return self._lock.wait_for(
                lambda: (
                    len(self._received) >= connections and self._finished == len(self._received)
                ),
                timeout,
            )

    def wait_received(self, nbytes: int, index: int = 0, timeout: float = 5.0) -> bool:
        """Wait until connection ``index`` has received at least ``nbytes`` bytes."""
        with self._lock:
            return self._lock.wait_for(
                lambda: len(self._received) > index and len(self._received[index]) >= nbytes,
                timeout,
            )

    def start(self) -> None:
        self._acceptor.start()

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            for conn in self._open:
                # Wakes a thread blocked in recv or send at once.
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(5.0)
        hanging = [t.name for t in threads if t.is_alive()]
        if hanging:
            raise RuntimeError(f"hostile peer threads did not stop: {hanging}")

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                index = len(self._received)
                self._received.append(b"")
                self._open.add(conn)
                thread = threading.Thread(
                    target=self._serve, args=(conn, index), name=f"hostile-{self.behaviour}-{index}"
                )
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            conn.settimeout(_TICK)
            self._script(conn, index)
        except OSError:
            pass  # the client went away: nothing to script any more
        finally:
            with self._lock:
                self._open.discard(conn)
                self._finished += 1
                self._lock.notify_all()
            conn.close()

    def _script(self, conn: socket.socket, index: int) -> None:
        behaviour = self.behaviour
        if behaviour == "close":
            return
        if behaviour == "rst":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if behaviour == "one-shot" and index > 0:
            return
        if behaviour == "enforce-then-busy" or (behaviour == "busy-after-first" and index > 0):
            if self._read(conn, index):
                busy = behaviour == "busy-after-first" or index >= 3
                conn.sendall(A_ASSOCIATE_RJ_BUSY if busy else A_ASSOCIATE_RJ)
                conn.shutdown(socket.SHUT_WR)
                self._drain(conn, index)
            return
        if behaviour in DICOM_BEHAVIOURS:
            self._speak_dicom(conn, index)
            return
        if behaviour == "silent":
            self._drain(conn, index)
            return
        if not self._read(conn, index):
            return
        if behaviour in _ANSWERS:
            conn.sendall(_ANSWERS[behaviour])
            # FIN rather than RST: the client reads the whole answer before seeing the end.
            conn.shutdown(socket.SHUT_WR)
            self._drain(conn, index)
        elif behaviour == "http-endless":
            conn.sendall(HTTP_ENDLESS)
            self._drain(conn, index)
        elif behaviour == "huge-ac":
            conn.sendall(HUGE_AC)
            self._drain(conn, index)
        elif behaviour == "slow":
            self._trickle(conn, index)

    def _recv_once(self, conn: socket.socket, index: int) -> bool | None:
        """Record one chunk: True on data, False on EOF, None when nothing came in a tick."""
        try:
            data = conn.recv(65536)
        except TimeoutError:
            return None
        if not data:
            return False
        with self._lock:
            self._received[index] += data
            self._lock.notify_all()
        return True

    def _read(self, conn: socket.socket, index: int) -> bool:
        """Wait for and record one chunk of input; False on EOF or when stopping."""
        while not self._stop.is_set():
            got = self._recv_once(conn, index)
            if got is not None:
                return got
        return False

    def _drain(self, conn: socket.socket, index: int, seconds: float | None = None) -> bool:
        """Record input until EOF or stop (False), or until ``seconds`` have passed (True)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return True
            if self._recv_once(conn, index) is False:
                return False
        return False

    def _next_pdu(self, conn: socket.socket, index: int, cursor: int) -> bytes | None:
        """The whole next PDU from ``cursor`` on in what this connection received."""
        while not self._stop.is_set():
            data = self.received[index][cursor:]
            if len(data) >= 6:
                end = 6 + int.from_bytes(data[2:6], "big")
                if len(data) >= end:
                    return data[:end]
            if self._recv_once(conn, index) is False:
                return None
        return None

    def _speak_dicom(self, conn: socket.socket, index: int) -> None:
        behaviour, cursor = self.behaviour, 0
        while (pdu := self._next_pdu(conn, index, cursor)) is not None:
            cursor += len(pdu)
            if pdu[0] == 0x01:
                conn.sendall(pdus.associate_ac(
                    pdu,
                    max_pdu=4 if behaviour == "tiny-pdu" else 16384,
                    version_name=MARKUP_VERSION if behaviour == "markup" else b"HOSTILE_1",
                    uid=MARKUP_UID if behaviour == "markup" else pdus.HOSTILE_UID,
                ))
            elif pdu[0] == 0x04:
                self._answer_pdata(conn, pdus.context_of(pdu))
            elif pdu[0] == 0x05:
                conn.sendall(pdus.RELEASE_RP)
                return
            else:
                return

    def _answer_pdata(self, conn: socket.socket, cid: int) -> None:
        behaviour = self.behaviour
        if behaviour in _STATUS:
            conn.sendall(pdus.pdata(cid, 0x03, pdus.echo_rsp(_STATUS[behaviour])))
        elif behaviour == "pdv-overrun":
            conn.sendall(pdus.pdata_overrun(cid, pdus.echo_rsp(b"\x00\x00")))
        elif behaviour == "fragments":
            chunk = pdus.pdata(cid, 0x01, bytes(16384))
            conn.settimeout(2.0)
            while not self._stop.is_set():
                conn.sendall(chunk)  # the client leaving ends this with an OSError
        else:
            conn.sendall(pdus.pdata(cid, 0x03, pdus.echo_rsp(b"\x00\x00")))

    def _trickle(self, conn: socket.socket, index: int) -> None:
        sent = 0
        while True:
            conn.sendall(SLOW_AC[sent : sent + 1] or b"\x00")
            sent += 1
            # Keep recording while waiting; stop on EOF or when the peer closes.
            if not self._drain(conn, index, self.slow_interval):
                return


@contextlib.contextmanager
def hostile_peer(
    behaviour: str, *, host: str = "127.0.0.1", slow_interval: float = 1.0
) -> Iterator[HostilePeer]:
    """Run a scripted peer (see the module docstring) for the duration of the block."""
    peer = HostilePeer(behaviour, host=host, slow_interval=slow_interval)
    peer.start()
    try:
        yield peer
    finally:
        peer.close()
