"""The global rate cap: new connections per second across the whole scan.

A token bucket of depth one, which is the same as spacing every connection start
across the scan by 1/rate: no burst can ever exceed the rate in any window, which is
what a site's agreed rate means. It sits on top of the per-host cap and spacing.

Each waiter reserves the next slot, first come, first served, and sleeps until it. The
event loop wakes timers with about a millisecond's granularity, so starts due within
``LATE`` of each other may go together (never more than the rate allows over that
time). A waiter that wakes later than that, or later than a quarter of a slot (the loop
stalled: a first import, a large result), would bunch with the others due meanwhile, so
it takes a fresh slot after the latest one instead: a stall delays starts but never
bunches them.
"""

from __future__ import annotations

import asyncio
import time

LATE = 0.002  # seconds: about the loop's timer granularity; later than this is a stall


class RateCap:
    """``await cap.wait()`` right before each new connection; 0 means no cap."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        # Late by more than a quarter slot and the next start (due one slot after ours)
        # would follow too closely: past that, queue again. Never below the loop's grain.
        self._late = max(self._interval / 4, LATE)
        self._next = 0.0  # the next free slot

    def take(self, now: float) -> float:
        """``wait`` for callers that cannot await (the sweep's connects): 0 when a start may
        go at ``now`` (its slot is taken), else the seconds until the next free slot. Late
        by up to the same margin, a start keeps its slot's place; later, it takes a fresh
        one, as a late waiter does."""
        if not self._interval:
            return 0.0
        if now < self._next:
            return self._next - now
        start = self._next if now - self._next <= self._late else now
        self._next = start + self._interval
        return 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        # No await between reading and advancing _next: asyncio makes this atomic.
        start = max(time.monotonic(), self._next)
        self._next = start + self._interval
        while True:
            while (left := start - time.monotonic()) > 0:
                await asyncio.sleep(left)  # the loop may wake a hair early; never start early
            now = time.monotonic()
            if now - start <= self._late:
                return
            # Woken late: the slots due meanwhile would all start now. Queue behind them.
            start = max(now, self._next)
            self._next = start + self._interval
