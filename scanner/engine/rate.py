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

from probes.sweep_core import RateSlots

LATE = 0.002  # seconds: about the loop's timer granularity; later than this is a stall


class RateCap(RateSlots):
    """``await cap.wait()`` right before each new connection; 0 means no cap. ``take(now)``
    for callers that cannot await (the sweep's connects) shares the same slots."""

    def __init__(self, per_second: float) -> None:
        # Late by more than a quarter slot and the next start (due one slot after ours)
        # would follow too closely: past that, queue again. Never below the loop's grain.
        super().__init__(per_second, LATE)

    async def wait(self) -> None:
        if not self._interval:
            return
        start = self.reserve(time.monotonic())
        while True:
            while (left := start - time.monotonic()) > 0:
                await asyncio.sleep(left)  # the loop may wake a hair early; never start early
            now = time.monotonic()
            if not self.late(start, now):
                return
            # Woken late: the slots due meanwhile would all start now. Queue behind them.
            start = self.reserve(now)
