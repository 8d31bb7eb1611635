"""A host's connection watch: back-off when connections to it start failing, and the stop.

While the probes run, connections to ports already found open that are refused, reset
or time out mean the device is struggling: each failure in a row doubles a wait before
the next connection (bounded), and at the limit the host is stopped, so no further probe
connects to it. Every host of a scan has one, so this module loads no observation model
until there is something to record (scanner/model/lazy_observations.py): a host with
nothing open never needs them. The checks before and after are scanner/engine/health.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from scanner.model import utcnow

if TYPE_CHECKING:
    from scanner.model.observations import ConnectionBackoff

LOG = logging.getLogger("dicomscan")
BACKOFF_FIRST = 0.5  # seconds after the first failure; doubles with each one in a row
BACKOFF_MAX = 8.0
FAILURE_LIMIT = 4  # failures in a row before the host is stopped
_FAILURES = (ConnectionRefusedError, ConnectionResetError, TimeoutError)


class HostStopped(ConnectionAbortedError):
    """The host was stopped: this connection was never attempted."""


class Watch:
    """A host's connection health (the ``ConnectionWatch`` its gate consults)."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.failures = 0
        self.waited = 0.0
        self.stopped: str | None = None
        self.events: list[str] = []
        self._delay = 0.0

    def _event(self, text: str) -> None:
        self.events.append(f"{utcnow().isoformat()} {text}")
        LOG.info("health: %s", text)

    async def before(self) -> None:
        if self.stopped:
            raise HostStopped(f"host stopped ({self.stopped}): connection not attempted")
        delay, self._delay = self._delay, 0.0
        if delay:
            self.waited += delay
            await asyncio.sleep(delay)

    def after(self, error: BaseException | None) -> None:
        if error is None:
            self.in_a_row = 0
            return
        if not isinstance(error, _FAILURES):
            return
        self.in_a_row += 1
        self.failures += 1
        if self.in_a_row >= FAILURE_LIMIT:
            self.stop(f"{self.in_a_row} connection failures in a row")
            return
        self._delay = min(BACKOFF_FIRST * 2 ** (self.in_a_row - 1), BACKOFF_MAX)
        self._event(f"{type(error).__name__}: backing off {self._delay:g} s")

    def stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
            self._event(f"stopped: {why}; no further connections to this host")

    def observation(self) -> ConnectionBackoff | None:
        if not self.failures and self.stopped is None:
            return None
        from scanner.model.observations import ConnectionBackoff

        return ConnectionBackoff(failures=self.failures, waited_s=round(self.waited, 3),
                                 stopped=self.stopped is not None, events=list(self.events))
