"""The port phase's TCP connects in batches: one epoll, no coroutine per attempt.

A sweep of a /16 is tens of thousands of connects, almost all refused or unanswered. A
coroutine, a future and a timer per attempt cost about 100 µs of Python each, ten times
the kernel's work; here an attempt is a non-blocking socket, its connect and a tuple in a
table. The sweep starts attempts in a loop while the scan's connection slots, the host's
cap and spacing and the global rate cap allow, and handles a batch of finished connects
in one callback of the event loop. On loopback (and any time the answer is already in)
the refusal is read straight after the connect, without waiting for the next poll.

Gentleness is the same as one connection at a time through a ``HostGate``: a connection
that finds a port open is handed over untouched (nothing sent: the next probe's first
bytes, the DICOM A-ASSOCIATE-RQ, are the first), and it keeps its scan slot and its
host slot until the engine ``release``s it after identification. A host's ports are
tried in the order given, host after host.

Linux's epoll is used through ``select.epoll``, which has no maintained asyncio-level
equivalent that batches like this; elsewhere ``AVAILABLE`` is False and the engine
connects one port at a time.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import math
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from probes.ports import classify_error
from scanner.model import PortState

AVAILABLE = hasattr(select, "epoll")
_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
SLOT_RETRY = 0.005  # seconds: a re-check when every scan slot is held by other probes

# (port, state, reason, rtt in ms or None, not rounded): one finished attempt.
Attempt = tuple[int, PortState, str, float | None]
OnOpen = Callable[[str, int, socket.socket, float], None]
OnDone = Callable[[str, list[Attempt]], None]
Pace = Callable[[float], float]  # now -> 0 and a start reserved, or seconds to wait


class Slots(asyncio.Semaphore):
    """The scan's connection slots: an asyncio semaphore the sweep can also take without
    waiting (it runs in plain callbacks, not coroutines)."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.total = value

    def free(self) -> bool:
        """A slot is free and no coroutine waits for one (they come first). Semaphore's own
        ``locked()`` walks its waiters with a generator: a third of a refused connect."""
        return self._value > 0 and not self._waiters

    def take(self) -> None:
        """Take a slot without waiting; only after ``free()`` said one is free. The same
        decrement as Semaphore.acquire's fast path (CPython 3.11+)."""
        self._value -= 1


@dataclass(slots=True, eq=False)
class _Host:
    address: str
    ports: tuple[int, ...]
    family: int
    started: int = 0  # ports whose connect has started
    left: int = 0  # ports not finished yet
    in_flight: int = 0  # connects pending plus open connections not released
    next_start: float = 0.0
    results: list[Attempt] = field(default_factory=list)


class Sweep:
    """Connect to every (host, port) added; report each open socket and each finished host.

    ``on_open(host, port, sock, rtt_ms)`` gets a connected socket, still holding its slots
    until ``release(host)``; ``on_done(host, attempts)`` gets every port's outcome once the
    host's last connect has finished. ``close()`` drops what is pending."""

    def __init__(self, *, timeout: float, slots: Slots, per_host: int, spacing: float,
                 pace: Pace, on_open: OnOpen, on_done: OnDone) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._slots = slots
        self._per_host = max(1, per_host)
        self._spacing = spacing
        self._pace = pace
        self._on_open = on_open
        self._on_done = on_done
        self._window = max(1, slots.total)  # hosts being started at once, at most
        self._queue: deque[tuple[str, tuple[int, ...]]] = deque()
        self._active: deque[_Host] = deque()  # hosts with ports still to start
        self._hosts: dict[str, _Host] = {}  # hosts not finished or holding a connection
        # fd -> (socket, host, port, started, serial): the serial tells a reused fd apart
        self._pending: dict[int, tuple[_socket.socket, _Host, int, float, int]] = {}
        self._deadlines: deque[tuple[float, int, int]] = deque()  # (when, fd, serial)
        self._serial = 0
        self._expiry: asyncio.TimerHandle | None = None
        self._wake: asyncio.TimerHandle | None = None
        self._scheduled = False
        self._no_more = False
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self._epoll = select.epoll()
        self._loop.add_reader(self._epoll.fileno(), self._ready)

    # ------------------------------------------------------------------ the engine's side
    def add(self, host: str, ports: tuple[int, ...]) -> None:
        self._queue.append((host, ports))
        self._soon()

    def no_more(self) -> None:
        """Every host has been added: ``finished()`` completes once the last is done."""
        self._no_more = True
        self._soon()

    async def finished(self) -> None:
        await asyncio.shield(self._finished)

    def release(self, host: str) -> None:
        """An open connection handed over by ``on_open`` is closed: its slots are free."""
        self._slots.release()
        h = self._hosts.get(host)
        if h is not None:
            h.in_flight -= 1
            self._forget_if_done(h)
        self._soon()

    def close(self) -> None:
        for handle in (self._expiry, self._wake):
            if handle is not None:
                handle.cancel()
        self._loop.remove_reader(self._epoll.fileno())
        for sock, *_ in self._pending.values():
            sock.close()
            self._slots.release()
        self._pending.clear()
        self._deadlines.clear()
        self._epoll.close()
        if not self._finished.done():
            self._finished.cancel()

    # ------------------------------------------------------------------ starting connects
    def _soon(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Start connects while the caps allow. The hot loop of a sweep: it keeps to local
        names, and a refusal that is already in is handled here, inline."""
        self._scheduled = False
        active, slots, pace, per_host = self._active, self._slots, self._pace, self._per_host
        monotonic, spacing, results_closed = time.monotonic, self._spacing, PortState.CLOSED
        while True:
            now = monotonic()
            if active and (h := active[0]).in_flight < per_host and h.next_start <= now:
                pass  # the current host goes on (its next port)
            elif (found := self._next_host(now)) is not None:
                h = found
            else:
                break
            wait = pace(now)
            if wait > 0:
                self._wake_at(now + wait)
                break
            if not slots.free():
                if not self._pending:  # no completion of ours will call us again
                    self._wake_at(now + SLOT_RETRY)
                break
            port = h.ports[h.started]
            h.started += 1
            if h.started == len(h.ports):
                active.popleft()  # the host is the head: its last port is starting
            h.next_start = now + spacing
            # The C socket type: the Python subclass's __init__ and close() cost a
            # refused connect a third of its time. An open one becomes a socket.socket.
            sock = _socket.socket(h.family, _STREAM)
            try:
                err = sock.connect_ex((h.address, port))
            except OSError as exc:  # an address the kernel cannot use at all
                err = exc.errno or errno.EINVAL
            if err == errno.EINPROGRESS:
                # Often already answered (loopback): the refusal is here, no poll needed.
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if not err:
                    slots.take()
                    h.in_flight += 1
                    self._wait(sock, h, port, now)
                    continue
            if err == errno.ECONNREFUSED:
                # Finished within this call: its slot was never needed past it.
                sock.close()
                h.results.append((port, results_closed, "connection refused",
                                  (monotonic() - now) * 1000))
                h.left -= 1
                if not h.left:
                    self._host_done(h)
                continue
            slots.take()
            h.in_flight += 1
            self._finish(h, port, sock, err, now)
        self._check_finished()

    def _wait(self, sock: _socket.socket, h: _Host, port: int, now: float) -> None:
        fd = sock.fileno()
        self._serial += 1
        self._pending[fd] = (sock, h, port, now, self._serial)
        self._epoll.register(fd, select.EPOLLOUT)
        self._deadlines.append((now + self._timeout, fd, self._serial))
        if self._expiry is None:
            self._expiry = self._loop.call_at(now + self._timeout, self._expire)

    def _next_host(self, now: float) -> _Host | None:
        """The host whose next port may start now: the current one until its ports are
        all started, else the first one free of its cap and spacing, else a new one."""
        active = self._active
        earliest = math.inf
        for _ in range(len(active)):
            h = active[0]
            if h.in_flight < self._per_host:
                if h.next_start <= now:
                    return h
                earliest = min(earliest, h.next_start)
            active.rotate(-1)
        while self._queue and len(active) < self._window:
            address, ports = self._queue.popleft()
            h = _Host(address, ports, socket.AF_INET6 if ":" in address else socket.AF_INET,
                      left=len(ports))
            self._hosts[address] = h
            if not ports:  # nothing to connect to (a UDP-only scan): done at once
                self._host_done(h)
                continue
            active.appendleft(h)
            return h
        if earliest < math.inf:
            self._wake_at(earliest)  # every free host waits for its spacing
        return None

    def _wake_at(self, when: float) -> None:
        if self._wake is not None:
            self._wake.cancel()
        # loop.time() and time.monotonic() are the same clock on Linux's default loop.
        self._wake = self._loop.call_at(when, self._woken)

    def _woken(self) -> None:
        self._wake = None
        self._pump()

    # ------------------------------------------------------------------ finished connects
    def _finish(self, h: _Host, port: int, sock: _socket.socket, err: int, started: float,
                timed_out: bool = False) -> None:
        rtt = (time.monotonic() - started) * 1000
        if err == 0 and not timed_out:
            h.results.append((port, PortState.OPEN, "connected", rtt))
            opened = socket.socket(fileno=sock.detach())  # family and type read from the fd
            self._on_open(h.address, port, opened, rtt)  # keeps its slots until release()
        else:
            sock.close()
            self._slots.release()
            h.in_flight -= 1
            if timed_out:
                h.results.append((port, PortState.FILTERED, "no answer within timeout", None))
            else:
                state, reason = classify_error(err)
                h.results.append((port, state, reason,
                                  None if state is PortState.FILTERED else rtt))
        h.left -= 1
        if h.left == 0:
            self._host_done(h)

    def _host_done(self, h: _Host) -> None:
        results, h.results = h.results, []
        self._forget_if_done(h)
        self._on_done(h.address, results)

    def _forget_if_done(self, h: _Host) -> None:
        if h.left == 0 and h.in_flight == 0 and self._hosts.get(h.address) is h:
            del self._hosts[h.address]

    def _ready(self) -> None:
        for fd, _ in self._epoll.poll(0):
            entry = self._pending.pop(fd, None)
            if entry is None:
                continue
            sock, h, port, started, _ = entry
            self._epoll.unregister(fd)  # an open socket goes on to asyncio's own selector
            self._finish(h, port, sock, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR),
                         started)
        self._pump()

    def _expire(self) -> None:
        self._expiry = None
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, fd, serial = self._deadlines.popleft()
            entry = self._pending.get(fd)
            if entry is None or entry[4] != serial:  # answered; the fd may be reused
                continue
            del self._pending[fd]
            self._epoll.unregister(fd)
            sock, h, port, started, _ = entry
            self._finish(h, port, sock, 0, started, timed_out=True)
        if self._deadlines:
            self._expiry = self._loop.call_at(self._deadlines[0][0], self._expire)
        self._pump()

    def _check_finished(self) -> None:
        if (self._no_more and not self._queue and not self._active and not self._pending
                and not self._finished.done()):
            self._finished.set_result(None)
