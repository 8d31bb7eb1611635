"""The scan's side of a sweep helper process (``probes.sweep_worker``).

A large sweep is bound by one CPU: Python's part of each refused connect is about as
much as the kernel's. ``RemoteSweep`` has the same interface as ``probes.sweep.Sweep``
and hands its hosts to a helper process on another CPU, which connects exactly as the
in-process sweep does and passes each open socket back, untouched, over a Unix socket.
The helper starts a fresh interpreter with the standard library only (about 20 ms, in
parallel with the scan). If it dies, ``on_lost`` gets the hosts it had not finished, so
the scan can connect to them itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from probes.sweep import OnOpen
from probes.sweep_core import CLOSED, FILTERED, OPEN, Attempt, OnDone, OnQuiet
from probes.sweep_worker import pack_lines

WORKER = Path(__file__).with_name("sweep_worker.py")
LOG = logging.getLogger("dicomscan")
STATES = {OPEN, CLOSED, FILTERED}
OnLost = Callable[[list[tuple[str, tuple[tuple[int, ...], bool]]]], None]


class RemoteSweep:
    def __init__(self, *, timeout: float, slots: int, per_host: int, spacing: float,
                 rate: float, late: float, on_open: OnOpen, on_done: OnDone,
                 on_quiet: OnQuiet, on_lost: OnLost) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_open, self._on_done, self._on_lost = on_open, on_done, on_lost
        self._on_quiet = on_quiet
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # -S -E: no site-packages, no PYTHON* variables; the helper needs neither.
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-E", str(WORKER), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        except BaseException:
            self._sock.close()
            raise
        finally:
            theirs.close()
        self._sock.setblocking(False)
        # added, not reported done: ports and countable, to hand back if the helper dies
        self._outstanding: dict[str, tuple[tuple[int, ...], bool]] = {}
        self._hosts: list[str] = []  # to send in the next H message
        self._releases: list[str] = []
        self._outbox: list[bytes] = []
        self._scheduled = False
        self._no_more = False
        self._finished: asyncio.Future[None] = self._loop.create_future()
        config = {"timeout": timeout, "slots": slots, "per_host": per_host,
                  "spacing": spacing, "rate": rate, "late": late}
        self._outbox.append(b"C " + json.dumps(config).encode())
        self._loop.add_reader(self._sock.fileno(), self._read)
        self._flush()

    # ------------------------------------------------------------------ as Sweep
    def add(self, host: str, ports: tuple[int, ...], countable: bool = False) -> None:
        self._outstanding[host] = (ports, countable)
        self._hosts.append(f"{host}\t{','.join(map(str, ports))}\t{int(countable)}")
        self._soon()

    def no_more(self) -> None:
        self._no_more = True
        self._soon()

    async def finished(self) -> None:
        await asyncio.shield(self._finished)

    def release(self, host: str) -> None:
        self._releases.append(host)
        self._soon()

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
        self._sock.close()
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(1.0)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        if not self._finished.done():
            self._finished.cancel()

    # ------------------------------------------------------------------ sending
    def _soon(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._batch)

    def _batch(self) -> None:
        """Everything added or released since the last batch, as few messages as fit."""
        self._scheduled = False
        if self._hosts:
            self._outbox += pack_lines(b"H", self._hosts)
            self._hosts = []
        if self._releases:
            self._outbox += pack_lines(b"R", self._releases)
            self._releases = []
        if self._no_more:
            self._outbox.append(b"N")
            self._no_more = False
        self._flush()

    def _flush(self) -> None:
        """Send without blocking; what does not fit waits for the socket to drain."""
        while self._outbox:
            try:
                self._sock.send(self._outbox[0])
            except BlockingIOError:
                self._loop.add_writer(self._sock.fileno(), self._drained)
                return
            except OSError:
                self._outbox.clear()  # the helper is gone: _read sees it and hands back
                return
            self._outbox.pop(0)

    def _drained(self) -> None:
        self._loop.remove_writer(self._sock.fileno())
        self._flush()

    # ------------------------------------------------------------------ receiving
    def _read(self) -> None:
        try:
            self._receive()
        except Exception as exc:  # a record that does not parse: the helper is not trusted
            LOG.warning("sweep helper sent what could not be read (%s: %s); stopping it",
                        type(exc).__name__, exc)
            if self._proc.poll() is None:
                self._proc.kill()
            self._lost()

    def _receive(self) -> None:
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self._sock, 1 << 17, 4)
            except BlockingIOError:
                return
            except OSError:
                message, fds = b"", []
            if not message:
                self._lost()
                return
            kind = message[:1]
            if kind == b"O":
                for fd in fds[1:]:  # never more than one is sent; close any stray
                    socket.close(fd)
                try:
                    _, host, port_text, rtt_text = message.decode().split(" ")
                    self._known(host)
                    port, rtt = int(port_text), float(rtt_text)
                    opened = socket.socket(fileno=fds[0])
                except Exception:
                    for fd in fds[:1]:
                        socket.close(fd)
                    raise
                self._on_open(host, port, opened, rtt)
            elif kind == b"D":
                for line in message[2:].decode().split("\n"):
                    self._done(line)
            elif kind == b"Q":
                for line in message[2:].decode().split("\n"):
                    host, refused = line.split("\t")
                    self._known(host)
                    del self._outstanding[host]
                    self._on_quiet(host, refused == "1")
            elif kind == b"E":
                self._end()
                return

    def _known(self, host: str) -> None:
        """Only a host this helper was given, and not yet reported done, may be named."""
        if host not in self._outstanding:
            raise ValueError(f"a host it was not given, or already reported: {host[:60]!r}")

    def _done(self, line: str) -> None:
        host, *fields = line.split("\t")
        self._known(host)
        ports = set(self._outstanding[host][0])
        attempts: list[Attempt] = []
        for item in fields:
            port, state, rtt, reason = item.split("|", 3)
            if int(port) not in ports or state not in STATES:
                raise ValueError(f"an outcome it cannot have: {item[:60]!r}")
            attempts.append((int(port), state, reason, float(rtt) if rtt else None))
        if len(attempts) != len(ports):
            raise ValueError(f"{len(attempts)} outcomes for {len(ports)} ports")
        del self._outstanding[host]
        self._on_done(host, attempts)

    def _end(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        if not self._finished.done():
            self._finished.set_result(None)

    def _lost(self) -> None:
        """The helper went away before its last host: they go back to the scan."""
        self._loop.remove_reader(self._sock.fileno())
        left, self._outstanding = list(self._outstanding.items()), {}
        if left:
            self._on_lost(left)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(0.5)  # its end of the socket is closed: it is exiting
            code = self._proc.poll()
            why = ""
            if code is not None and self._proc.stderr is not None:
                tail = self._proc.stderr.read()[-300:].decode(errors="replace").strip()
                why = tail.splitlines()[-1] if tail else ""
            # Only our own process's words (never a peer's): safe to log as they are.
            LOG.warning("sweep helper ended early (exit %s%s); its %d hosts are swept here",
                        code, f": {why}" if why else "", len(left))
        if not self._finished.done():
            self._finished.set_result(None)
