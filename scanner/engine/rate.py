"""The global rate cap: new connections per second across the whole scan.

A token bucket of depth one, which is the same as spacing every connection start
across the scan by 1/rate: no burst can ever exceed the rate in any window, which is
what a site's agreed rate means. It sits on top of the per-host cap and spacing.
"""

from __future__ import annotations

import asyncio
import time


class RateCap:
    """``await cap.wait()`` before each new connection; 0 means no cap."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0  # the next free slot (reserved in turn: first come, first served)
        self._last = -1e9  # the last start that really happened

    async def wait(self) -> None:
        if not self._interval:
            return
        # No await between reading and advancing _next: asyncio makes this atomic.
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._interval
        while (left := start - time.monotonic()) > 0:
            await asyncio.sleep(left)  # the loop may wake a hair early; never start early
        # A reserved slot is not enough: if the loop stalled (a first import, a large
        # result), several reservations fall due at once. Space from the last real start.
        while (left := self._last + self._interval - time.monotonic()) > 0:
            await asyncio.sleep(left)
        self._last = time.monotonic()
        self._next = max(self._next, self._last + self._interval)
