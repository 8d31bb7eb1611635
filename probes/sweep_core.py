"""The sweep's connects and bookkeeping, without an event loop (standard library only).

A sweep of a /16 is tens of thousands of connects, almost all refused or unanswered. A
coroutine, a future and a timer per attempt cost about 100 µs of Python each, ten times
the kernel's work; here an attempt is a non-blocking socket, its connect and a tuple in a
table, all watched by one epoll. ``Core.step`` starts connects while the connection
slots, the host's cap and spacing and the rate cap allow, and says when it wants to be
called again; a driver calls ``ready`` when the epoll has events. On loopback (and any
time the answer is already in) a refusal is read straight after its connect.

Two drivers: ``probes.sweep`` (the scan's event loop) and ``probes.sweep_worker`` (a
helper process on another CPU, which runs this file by path with nothing but the
standard library, so it must import nothing else). A connection that finds a port open
goes to ``on_open`` untouched (nothing sent: the next probe's first bytes, the DICOM
A-ASSOCIATE-RQ, are the first) and keeps its slot and its host slot until ``release``.
"""

from __future__ import annotations

import _socket
import errno
import math
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

OPEN, CLOSED, FILTERED = "open", "closed", "filtered"  # PortState's values
_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
SLOT_RETRY = 0.005  # seconds: a re-check when every slot is held by someone else
# Out of descriptors (EMFILE) and nothing of ours to free one: tries, SLOT_RETRY apart,
# before the port is reported as not measured rather than waited for without end.
CREATE_TRIES = 200
# A connect with no answer within the timeout is tried once more before the port is called
# filtered, as nmap retransmits: a busy device whose listen queue was full drops the SYN,
# and at the fast profile's 1 s that was the kernel's only try (a /23 of live DICOM devices
# under load lost up to 55 of them to it). The retry waits its turn like any connect.
RETRIES = 1
# errno values that mean "something on the path said no" rather than "the host said no".
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}

# (port, state, reason, rtt in ms or None, not rounded): one finished attempt.
Attempt = tuple[int, str, str, float | None]
OnOpen = Callable[[str, int, _socket.socket, float], None]
OnDone = Callable[[str, list[Attempt]], None]
OnQuiet = Callable[[str, bool], None]  # a countable host with nothing open; any refusal?
Pace = Callable[[float], float]  # now -> 0 and a start reserved, or seconds to wait


class SlotPool(Protocol):
    def free(self) -> bool: ...

    def take(self) -> None: ...

    def release(self) -> None: ...


class Counter:
    """Connection slots for a driver without coroutines waiting on them."""

    def __init__(self, total: int) -> None:
        self.total = self.value = total

    def free(self) -> bool:
        return self.value > 0

    def take(self) -> None:
        self.value -= 1

    def release(self) -> None:
        self.value += 1


class RateSlots:
    """A rate cap as evenly spaced start slots (a token bucket of depth one).

    ``take(now)`` is 0 when a start may go now (its slot is taken), else the seconds to
    its slot, which is then held for it: the caller comes back then. ``reserve(now)``
    books the next slot and gives its time, for a caller that then sleeps until it
    (``RateCap.wait``; the ARP and ICMP sweep threads). Without the hold, callers that
    reserve took every slot from under one that polls (the port sweep), whose hosts then
    waited for the whole discovery. Late by up to ``late``, a start keeps its slot's
    place, so starts due within one timer tick may go together; later than that (a
    stalled loop, a caller that came back late), it takes a fresh slot rather than bunch
    with the others due meanwhile. 0 per second means no cap. One polling caller per
    instance; reservations may come from other threads (the lock)."""

    def __init__(self, per_second: float, late: float) -> None:
        self._grain = late
        self._next = 0.0  # the next free slot
        self._held: float | None = None  # the slot held for the polling caller
        self._lock = threading.Lock()
        self.set_rate(per_second)

    def set_rate(self, per_second: float) -> None:
        """A new cap for the starts from now on (the slot already reserved stays)."""
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._late = max(self._interval / 4, self._grain)

    def take(self, now: float) -> float:
        if not self._interval:
            return 0.0
        with self._lock:
            held = self._held
            if held is not None:
                if now < held:
                    return held - now
                self._held = None
                if now - held <= self._late:
                    return 0.0  # the slot held for this caller
            if now < self._next:
                self._held = self._next
                self._next += self._interval
                return self._held - now
            start = self._next if now - self._next <= self._late else now
            self._next = start + self._interval
            return 0.0

    def reserve(self, now: float) -> float:
        """Book the next free slot: the time (``time.monotonic``) to start at."""
        if not self._interval:
            return now
        with self._lock:
            start = max(now, self._next)
            self._next = start + self._interval
            return start

    def late(self, start: float, now: float) -> bool:
        """A booked start missed by more than ``late``: book a fresh one instead."""
        return now - start > self._late


def classify_error(err: int) -> tuple[str, str]:
    """A finished connect's errno as a port state and the reason it gives."""
    if err == errno.ECONNREFUSED:
        return CLOSED, "connection refused"
    if err == errno.ECONNRESET:
        # A refusal is an RST to the SYN (ECONNREFUSED); a reset means the handshake was
        # completed and the peer then reset it: open, whatever the timing.
        return OPEN, "connected, then reset by the peer"
    if err in _UNREACHABLE:
        return FILTERED, f"unreachable ({os.strerror(err)})"
    return FILTERED, f"error: {os.strerror(err)}"


@dataclass(slots=True, eq=False)
class _Host:
    address: str
    ports: list[int]  # in the order they start; a port tried again is appended
    family: int
    started: int = 0  # ports whose connect has started
    left: int = 0  # ports not finished yet
    in_flight: int = 0  # connects pending plus open connections not released
    next_start: float = 0.0
    countable: bool = False  # with nothing open, only counted (on_quiet), not reported
    results: list[Attempt] = field(default_factory=list)
    tries: dict[int, int] | None = None  # port -> tries after a timeout (most hosts: none)


class Core:
    def __init__(self, *, timeout: float, slots: SlotPool, window: int, per_host: int,
                 spacing: float, pace: Pace, on_open: OnOpen, on_done: OnDone,
                 on_quiet: OnQuiet) -> None:
        self.epoll = select.epoll()
        self._timeout = timeout
        self._slots = slots
        self._window = max(1, window)  # hosts being started at once, at most
        self._per_host = max(1, per_host)
        self._spacing = spacing
        self._pace = pace
        self._on_open = on_open
        self._on_done = on_done
        self._on_quiet = on_quiet
        self._queue: deque[tuple[str, tuple[int, ...], bool]] = deque()
        self._active: deque[_Host] = deque()  # hosts with ports still to start
        self._hosts: dict[str, _Host] = {}  # hosts not finished or holding a connection
        # fd -> (socket, host, port, started, serial): the serial tells a reused fd apart
        self._pending: dict[int, tuple[_socket.socket, _Host, int, float, int]] = {}
        self._deadlines: deque[tuple[float, int, int]] = deque()  # (when, fd, serial)
        self._serial = 0
        self._wake = math.inf  # when step() wants to run again for the caps (not deadlines)
        self._create_failures = 0  # socket() failures in a row

    # ------------------------------------------------------------------ the driver's side
    def add(self, address: str, ports: tuple[int, ...], countable: bool = False) -> None:
        """``countable``: if none of its ports is open the host only goes to ``on_quiet``
        (a large scan counts such hosts; building their reports would cost more than the
        connects)."""
        self._queue.append((address, ports, countable))

    def idle(self) -> bool:
        """Nothing waits to start and no connect is pending."""
        return not self._queue and not self._active and not self._pending

    def release(self, address: str) -> None:
        """An open connection handed over by ``on_open`` is closed: its slots are free."""
        self._slots.release()
        h = self._hosts.get(address)
        if h is not None:
            h.in_flight -= 1
            self._forget_if_done(h)

    def step(self) -> float:
        """Expire what timed out and start what may start; returns when to call again
        (``math.inf``: only when ``ready`` has events or something is added or released)."""
        now = time.monotonic()
        if self._deadlines and self._deadlines[0][0] <= now:
            self._expire(now)
        self._wake = math.inf
        self._pump()
        deadline = self._deadlines[0][0] if self._deadlines else math.inf
        return min(self._wake, deadline)

    def ready(self) -> None:
        """Handle the connects the epoll says have finished."""
        for fd, _ in self.epoll.poll(0):
            entry = self._pending.pop(fd, None)
            if entry is None:
                continue
            sock, h, port, started, _ = entry
            self.epoll.unregister(fd)  # an open socket goes on to another selector
            self._finish(h, port, sock, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR),
                         started)

    def close(self) -> None:
        for sock, *_ in self._pending.values():
            sock.close()
            self._slots.release()
        self._pending.clear()
        self._deadlines.clear()
        self._queue.clear()
        self._active.clear()
        self.epoll.close()

    # ------------------------------------------------------------------ starting connects
    def _pump(self) -> None:
        """The hot loop of a sweep: it keeps to local names, and a refusal that is already
        in is handled here, inline."""
        active, slots, pace, per_host = self._active, self._slots, self._pace, self._per_host
        monotonic, spacing = time.monotonic, self._spacing
        while True:
            now = monotonic()
            if active and (h := active[0]).in_flight < per_host and h.next_start <= now:
                pass  # the current host goes on (its next port)
            elif (found := self._next_host(now)) is not None:
                h = found
            else:
                return
            if not slots.free():
                if not self._pending:  # no completion of ours will call us again
                    self._wake = min(self._wake, now + SLOT_RETRY)
                return
            wait = pace(now)
            if wait > 0:
                self._wake = min(self._wake, now + wait)
                return
            try:
                # The C socket type: the Python subclass's __init__ and close() cost a
                # refused connect a third of its time.
                sock = _socket.socket(h.family, _STREAM)
            except OSError as exc:  # out of descriptors or buffers: try again shortly
                self._create_failures += 1
                if self._create_failures < CREATE_TRIES:
                    self._wake = min(self._wake, now + SLOT_RETRY)
                    return
                self._create_failures = 0
                self._unmeasured(h, exc.errno or errno.EMFILE)
                continue
            self._create_failures = 0
            port = h.ports[h.started]
            h.started += 1
            if h.started == len(h.ports):
                active.popleft()  # the host is the head: its last port is starting
            h.next_start = now + spacing
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
                h.results.append((port, CLOSED, "connection refused", (monotonic() - now) * 1000))
                h.left -= 1
                if not h.left:
                    self._host_done(h)
                continue
            slots.take()
            h.in_flight += 1
            self._finish(h, port, sock, err, now)

    def _unmeasured(self, h: _Host, err: int) -> None:
        """The host's next port could not even be tried (no socket): filtered, with why."""
        port = h.ports[h.started]
        h.started += 1
        if h.started == len(h.ports):
            self._active.popleft()
        h.results.append((port, FILTERED, f"not measured: {os.strerror(err)}", None))
        h.left -= 1
        if not h.left:
            self._host_done(h)

    def _wait(self, sock: _socket.socket, h: _Host, port: int, now: float) -> None:
        fd = sock.fileno()
        self._serial += 1
        self._pending[fd] = (sock, h, port, now, self._serial)
        self.epoll.register(fd, select.EPOLLOUT)
        self._deadlines.append((now + self._timeout, fd, self._serial))

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
            address, ports, countable = self._queue.popleft()
            h = _Host(address, list(ports), socket.AF_INET6 if ":" in address else socket.AF_INET,
                      left=len(ports), countable=countable)
            self._hosts[address] = h
            if not ports:  # nothing to connect to (a UDP-only scan): done at once
                self._host_done(h)
                continue
            active.appendleft(h)
            return h
        self._wake = min(self._wake, earliest)  # every free host waits for its spacing
        return None

    # ------------------------------------------------------------------ finished connects
    def _finish(self, h: _Host, port: int, sock: _socket.socket, err: int, started: float,
                timed_out: bool = False) -> None:
        rtt = (time.monotonic() - started) * 1000
        if err == 0 and not timed_out:
            h.results.append((port, OPEN, "connected", rtt))
            self._on_open(h.address, port, sock, rtt)  # keeps its slots until release()
        else:
            sock.close()
            self._slots.release()
            h.in_flight -= 1
            if timed_out and self._try_again(h, port):
                return
            if timed_out:
                h.results.append((port, FILTERED, "no answer within timeout", None))
            else:
                state, reason = classify_error(err)
                h.results.append((port, state, reason, None if state == FILTERED else rtt))
        h.left -= 1
        if h.left == 0:
            self._host_done(h)

    def _try_again(self, h: _Host, port: int) -> bool:
        """Queue ``port`` for another connect if it has tries left; the host goes back
        among those with ports to start."""
        tries = h.tries if h.tries is not None else {}
        if tries.get(port, 0) >= RETRIES:
            return False
        tries[port] = tries.get(port, 0) + 1
        h.tries = tries
        if h.started == len(h.ports):  # it had left the active hosts: back at the end
            self._active.append(h)
        h.ports.append(port)  # started by the pump that runs right after the expiry
        return True

    def _host_done(self, h: _Host) -> None:
        results, h.results = h.results, []
        self._forget_if_done(h)
        if h.countable and all(a[1] != OPEN for a in results):
            self._on_quiet(h.address, any(a[1] == CLOSED for a in results))
        else:
            self._on_done(h.address, results)

    def _forget_if_done(self, h: _Host) -> None:
        if h.left == 0 and h.in_flight == 0 and self._hosts.get(h.address) is h:
            del self._hosts[h.address]

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, fd, serial = self._deadlines.popleft()
            entry = self._pending.get(fd)
            if entry is None or entry[4] != serial:  # answered; the fd may be reused
                continue
            del self._pending[fd]
            self.epoll.unregister(fd)
            sock, h, port, started, _ = entry
            self._finish(h, port, sock, 0, started, timed_out=True)
