"""The port phase's TCP connects in batches, driven by the scan's event loop.

``Sweep`` runs ``probes.sweep_core.Core`` (one epoll, no coroutine per attempt) from the
event loop: the core's epoll is one reader of the loop, and one timer wakes it for its
caps and timeouts. A connected socket reaches ``on_open`` as a ``socket.socket``, still
holding its scan and host slots until ``release``. Linux only (epoll); elsewhere
``AVAILABLE`` is False and the engine connects one port at a time.
"""

from __future__ import annotations

import _socket
import asyncio
import math
import select
import socket
from collections.abc import Callable

from probes.sweep_core import Attempt, Core, OnDone, OnQuiet, Pace

AVAILABLE = hasattr(select, "epoll")
OnOpen = Callable[[str, int, socket.socket, float], None]
__all__ = ["AVAILABLE", "Attempt", "OnDone", "OnOpen", "OnQuiet", "Pace", "Slots", "Sweep"]


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

    def set_aside(self, count: int) -> None:
        """Take ``count`` slots out of use (another process's share) until ``give_back``."""
        self._value -= count
        self.total -= count

    def give_back(self, count: int) -> None:
        """Slots set aside come back into use (their process has finished), waking any
        coroutine that waits for one."""
        self.total += count
        for _ in range(count):
            self.release()


class Sweep:
    """Connect to every (host, port) added; report each open socket and each finished host.

    ``on_open(host, port, sock, rtt_ms)`` gets a connected socket, still holding its slots
    until ``release(host)``; ``on_done(host, attempts)`` gets every port's outcome once the
    host's last connect has finished. ``close()`` drops what is pending."""

    def __init__(self, *, timeout: float, slots: Slots, per_host: int, spacing: float,
                 pace: Pace, on_open: OnOpen, on_done: OnDone,
                 on_quiet: OnQuiet | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_open = on_open
        self._core = Core(timeout=timeout, slots=slots, window=slots.total, per_host=per_host,
                          spacing=spacing, pace=pace, on_open=self._opened, on_done=on_done,
                          on_quiet=on_quiet or (lambda host, refused: on_done(host, [])))
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._scheduled = False
        self._no_more = False
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(self._core.epoll.fileno(), self._ready)

    def add(self, host: str, ports: tuple[int, ...], countable: bool = False) -> None:
        self._core.add(host, ports, countable)
        self._soon()

    def no_more(self) -> None:
        """Every host has been added: ``finished()`` completes once the last is done."""
        self._no_more = True
        self._soon()

    async def finished(self) -> None:
        if self._finished.done() and not self._core.idle():  # hosts added after the end
            self._finished = self._loop.create_future()
            self._soon()
        await asyncio.shield(self._finished)

    def release(self, host: str) -> None:
        self._core.release(host)
        self._soon()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._core.epoll.fileno())
        self._core.close()
        if not self._finished.done():
            self._finished.cancel()

    def _opened(self, host: str, port: int, sock: _socket.socket, rtt: float) -> None:
        # asyncio's streams take a socket.socket: family and type are read from the fd.
        self._on_open(host, port, socket.socket(fileno=sock.detach()), rtt)

    def _soon(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._step)

    def _ready(self) -> None:
        try:
            self._core.ready()
        except Exception as exc:  # a bug here must end the scan, never leave it waiting
            self._fail(exc)
            return
        self._step()

    def _fail(self, exc: Exception) -> None:
        if not self._finished.done():
            self._finished.set_exception(exc)

    def _timed(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self._step()

    def _step(self) -> None:
        self._scheduled = False
        try:
            when = self._core.step()
        except Exception as exc:  # a bug here must end the scan, never leave it waiting
            self._fail(exc)
            return
        if when != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = when
            if when < math.inf:
                # loop.time() and time.monotonic() are one clock on Linux's default loop.
                self._timer = self._loop.call_at(when, self._timed)
        if self._no_more and self._core.idle() and not self._finished.done():
            self._finished.set_result(None)
