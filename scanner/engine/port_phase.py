"""The embedded engine's TCP port phase: connects in batches, identification as each opens.

Every live host's ports go to one ``probes.sweep.Sweep``, which connects without a
coroutine per attempt. A port found open is identified at once on the connection that
found it (its first bytes are the DICOM A-ASSOCIATE-RQ), holding that connection's scan
and host slots until it is closed. When a host's last connect has finished it goes on to
the rest of its pipeline (the engine's worker pool), unless it is quiet in a large scan:
nothing open, nothing else to say of it; then it is only counted, never built.

A large, fast sweep is bound by one CPU, so it is shared with helper processes
(``probes.sweep_remote``), one per further CPU: hosts are dealt out in turn, each helper
gets its share of the connection slots and of the rate cap, and the scan's own rate cap
is cut to its share too (``helpers_for``), so the scan as a whole stays within both.

Where ``probes.sweep`` is not available (no epoll) each port is connected on its own
through the host's gate (``connect_each``), as before the sweep existed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sys
from collections.abc import Callable

from probes import sweep, sweep_remote
from probes.context import HostState, ProbeContext, ServiceState
from probes.ports import METHOD, adopt, probe_port
from scanner.engine.rate import LATE
from scanner.model import EngineName, PortObservation, PortState, ScanSettings, utcnow

LOG = logging.getLogger("dicomscan")
Handoff = dict[tuple[str, int], tuple[PortObservation, ServiceState]]
# Helper processes pay only for large sweeps at a high rate: below these one CPU keeps
# up with the rate cap (a connect costs about 15 µs of it) and a helper's start-up and
# its cut of the scan's own rate would not be worth it.
HELPER_MIN_CONNECTS = 4096
HELPER_MIN_RATE = 20_000.0
MAX_HELPERS = 3
# A host's outcomes travel to the scan as one record (about 60 bytes a port): more ports
# than this and a record could outgrow the helper's messages.
HELPER_MAX_PORTS = 1024


def helpers_for(settings: ScanSettings) -> int:
    """How many sweep helper processes a job uses (0: the scan sweeps alone)."""
    if (settings.engine is not EngineName.EMBEDDED or not sweep.AVAILABLE
            or not sys.executable  # an embedded interpreter: no python to start
            or len(settings.ports) > HELPER_MAX_PORTS
            or len(settings.targets) * len(settings.ports) < HELPER_MIN_CONNECTS
            or 0 < settings.max_rate < HELPER_MIN_RATE):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(0, min(cpus - 1, MAX_HELPERS, settings.max_concurrency // 64 - 1))


def observation(port: int, state: PortState, reason: str, rtt: float | None) -> PortObservation:
    return PortObservation(port=port, state=state, method=METHOD, reason=reason,
                           rtt_ms=None if rtt is None else round(rtt, 3), observed_at=utcnow())


class PortPhase:
    """``add`` each live host; the host reaches ``ready`` when its ports are done (or, if
    ``countable`` says so and nothing is open, is only ``count``ed); its pipeline then
    awaits ``identified``."""

    def __init__(self, settings: ScanSettings, slots: sweep.Slots, pace: sweep.Pace, *,
                 host: Callable[[str], HostState], handoff: Handoff,
                 ready: Callable[[str], None], countable: Callable[[str], bool] | None,
                 count: Callable[[bool], None], tick: Callable[[int, str], None],
                 helpers: int = 0, helpers_done: Callable[[], None] = lambda: None) -> None:
        self._settings = settings
        self._host = host  # the host's state, made on first use
        self._handoff = handoff  # ports a discovery TCP ping already opened and identified
        self._ready = ready
        # countable(host): with nothing open, count it (count(refused)) instead of listing it.
        # None: every host is listed (a small scan, or UDP ports to ask too).
        self._countable = countable
        self._count = count
        self._tick = tick
        self._identifying: dict[str, list[asyncio.Task[None]]] = {}
        self._began: dict[str, float] = {}  # loop time of each host's first open port
        self._port_count = len(settings.ports)
        share = slots.total // (helpers + 1)
        self._remotes: list[sweep_remote.RemoteSweep] = []
        for index in range(1, helpers + 1):  # index: the sweeper's place in _sweepers
            try:
                self._remotes.append(sweep_remote.RemoteSweep(
                    timeout=settings.timeouts.connect, slots=share,
                    per_host=settings.per_host_connections, spacing=settings.probe_spacing,
                    rate=settings.max_rate / (helpers + 1), late=LATE,
                    on_open=functools.partial(self._opened, index), on_done=self._done,
                    on_quiet=self._quiet, on_lost=self._lost,
                ))
            except OSError as exc:  # no process to be had: fewer helpers (rates stay cut)
                LOG.warning("sweep helper could not start (%s); sweeping with %d", exc,
                            len(self._remotes))
                break
        # The helpers' share of the slots, and (helpers_done) of the rate, come back to the
        # scan once every helper has ended and each socket it passed over is released: the
        # follow-up probes of the live hosts would otherwise run on the scan's share alone.
        self._slots, self._helpers_done = slots, helpers_done
        self._lent = share * len(self._remotes)  # slots set aside for the helpers
        self._held = [0] * (len(self._remotes) + 1)  # per sweeper: sockets being identified
        self._remotes_ended = False
        slots.set_aside(self._lent)
        self._sweep = sweep.Sweep(
            timeout=settings.timeouts.connect, slots=slots,
            per_host=settings.per_host_connections, spacing=settings.probe_spacing,
            pace=pace, on_open=functools.partial(self._opened, 0), on_done=self._done,
            on_quiet=self._quiet,
        )
        self._sweepers: list[sweep.Sweep | sweep_remote.RemoteSweep] = [self._sweep,
                                                                         *self._remotes]
        self._turn = 0

    def add(self, address: str, ports: tuple[int, ...]) -> None:
        countable = self._countable is not None and self._countable(address)
        if self._handoff:
            kept = tuple(p for p in ports if (address, p) not in self._handoff)
            countable = countable and kept == ports  # a port it answered on is listed
            ports = kept
        self._turn = (self._turn + 1) % len(self._sweepers)
        self._sweepers[self._turn].add(address, ports, countable)

    async def finish(self) -> None:
        """Every host has been added; returns once each has been handed on or counted."""
        for sweeper in self._sweepers:
            sweeper.no_more()
        for remote in self._remotes:
            await remote.finished()  # a helper that died has handed its hosts back
        self._remotes_ended = True
        self._give_back()
        await self._sweep.finished()

    def _give_back(self) -> None:
        if self._lent and self._remotes_ended and not any(self._held[1:]):
            self._slots.give_back(self._lent)
            self._lent = 0
            self._helpers_done()

    def _lost(self, hosts: list[tuple[str, tuple[tuple[int, ...], bool]]]) -> None:
        for address, (ports, countable) in hosts:
            self._sweep.add(address, ports, countable)

    def began(self, address: str) -> float | None:
        """When the host's first open port was found (its time limit runs from then)."""
        return self._began.pop(address, None)

    async def identified(self, address: str) -> None:
        """Wait for the identification of the host's open ports (an error surfaces here)."""
        tasks = self._identifying.pop(address, [])
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()  # only if the host was cut short (its time limit)

    def close(self) -> None:
        for sweeper in self._sweepers:
            sweeper.close()
        for tasks in self._identifying.values():
            for task in tasks:
                task.cancel()
        self._identifying.clear()

    def _opened(self, owner: int, address: str, port: int, sock: socket.socket,
                rtt: float) -> None:
        state = self._host(address)
        state.ports[port] = observation(port, PortState.OPEN, "connected", rtt)
        self._began.setdefault(address, asyncio.get_running_loop().time())
        self._held[owner] += 1
        task = asyncio.ensure_future(self._identify(owner, state, port, sock))
        self._identifying.setdefault(address, []).append(task)

    async def _identify(self, owner: int, state: HostState, port: int,
                        sock: socket.socket) -> None:
        from scanner.engine.registry import identify_service

        try:
            conn = await adopt(sock, state.address, port)
            try:
                state.services[port] = await identify_service(conn, self._settings)
            finally:
                await conn.close()
        finally:
            self._sweepers[owner].release(state.address)  # its slots were the finder's
            self._held[owner] -= 1
            if owner:
                self._give_back()

    def _quiet(self, address: str, refused: bool) -> None:
        self._tick(self._port_count, address)
        self._count(refused)

    def _done(self, address: str, attempts: list[sweep.Attempt]) -> None:
        self._tick(self._port_count, address)
        handed = [p for p in self._settings.ports if (address, p) in self._handoff
                  ] if self._handoff else []
        state = self._host(address)
        for port, port_state, reason, rtt in attempts:
            if port not in state.ports:  # an open one was recorded as it opened
                state.ports[port] = observation(port, PortState(port_state), reason, rtt)
        for port in handed:
            state.ports[port], state.services[port] = self._handoff.pop((address, port))
        self._ready(address)


async def connect_each(ctx: ProbeContext, ports: list[int], handoff: Handoff,
                       tick: Callable[[int, str], None]) -> None:
    """Without the sweep: each port connected on its own through the host's gate."""
    from scanner.engine.registry import identify_service

    async def one(port: int) -> None:
        found = handoff.pop((ctx.host, port), None)
        if found is not None:  # discovery's TCP ping already opened and identified it
            ctx.state.ports[port], ctx.state.services[port] = found
            tick(1, f"{ctx.host}:{port}")
            return
        async with ctx.gate.slot():
            obs, conn = await probe_port(ctx.host, port, ctx.settings.timeouts.connect)
            ctx.state.ports[port] = obs
            if conn is not None:
                try:
                    ctx.state.services[port] = await identify_service(conn, ctx.settings)
                finally:
                    await conn.close()
        tick(1, f"{ctx.host}:{port}")

    await asyncio.gather(*(one(p) for p in ports))
