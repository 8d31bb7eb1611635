"""The probe contract: what a probe is handed and what it builds.

A probe gets a ``ProbeContext`` (the host, the settings, connections through the
host's ``HostGate``) and adds observations to a ``ServiceState``; the engine freezes the
states into the result model. Kept with the probes, not in the engine, so a probe can be
read, tested and reused without the engine that schedules it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from typing import Protocol as TypingProtocol

from probes.ports import OpenConnection, open_stream
from scanner.model import (
    Host,
    HostDiscovery,
    PortObservation,
    PortState,
    Protocol,
    ScanSettings,
    Service,
)
from scanner.model.vendor import VendorIdentity

if TYPE_CHECKING:  # annotations only: a host with nothing open never loads them
    from scanner.model.observations import NmapService, Observation

Pace = Callable[[], Awaitable[None]]
T = TypeVar("T")


class ConnectionWatch(TypingProtocol):
    """The engine's watch on a host's health: it may delay a new connection (back-off) or
    refuse it (the host was stopped, raising OSError), and hears how each one went."""

    async def before(self) -> None: ...

    def after(self, error: BaseException | None) -> None: ...


class HostGate:
    """Caps simultaneous connections to one host and spaces their starts; ``pace`` (the
    scan's global rate cap, given by the engine) is awaited last before each start."""

    def __init__(
        self,
        global_slots: asyncio.Semaphore,
        cap: int,
        spacing: float,
        pace: Pace | None = None,
        watch: ConnectionWatch | None = None,
    ) -> None:
        self._pace = pace
        self.watch = watch
        self._global = global_slots
        self._host = asyncio.Semaphore(cap)
        self._spacing = spacing
        self._lock = asyncio.Lock()
        self._next_start = 0.0

    @contextlib.asynccontextmanager
    async def slot(self, watched: bool = True) -> AsyncIterator[None]:
        """``watched=False`` only for the engine's own health checks of a stopped host."""
        if watched and self.watch is not None:
            await self.watch.before()  # back-off waits hold no slot
        # Host first, then global: a host at its cap must not hold global slots while waiting.
        async with self._host, self._global:
            if self._spacing:
                # One start at a time per host, spaced from the previous *actual* start: a
                # wait for the global rate must not let the next start crowd this one.
                async with self._lock:
                    while (wait := self._next_start - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    if self._pace is not None:
                        await self._pace()
                    self._next_start = time.monotonic() + self._spacing
            elif self._pace is not None:
                await self._pace()
            yield


@dataclass
class ServiceState:
    """A service being built up by probes; frozen into ``Service`` at the end."""

    port: int
    name: str
    tls: bool = False
    protocol: Protocol = Protocol.TCP
    product: str | None = None
    version: str | None = None
    observations: list[Observation] = field(default_factory=list)

    def freeze(self) -> Service:
        return Service(
            port=self.port,
            protocol=self.protocol,
            name=self.name,
            tls=self.tls,
            product=self.product,
            version=self.version,
            observations=list(self.observations),
        )


@dataclass
class HostState:
    address: str
    hostname: str | None
    ports: dict[int, PortObservation] = field(default_factory=dict)
    services: dict[int, ServiceState] = field(default_factory=dict)
    # UDP apart: 161/udp and 161/tcp are different ports. TCP probes see only ``services``.
    udp_ports: dict[int, PortObservation] = field(default_factory=dict)
    udp_services: dict[int, ServiceState] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    role: str | None = None
    role_confidence: float | None = None
    role_reasons: list[str] = field(default_factory=list)
    mac: str | None = None
    mac_vendor: str | None = None
    vendors: list[VendorIdentity] = field(default_factory=list)
    discovery: HostDiscovery | None = None
    nmap_services: dict[int, NmapService] = field(default_factory=dict)

    def freeze(self) -> Host:
        return Host(
            address=self.address,
            hostname=self.hostname,
            mac=self.mac,
            mac_vendor=self.mac_vendor,
            vendors=list(self.vendors),
            discovery=self.discovery,
            role=self.role,
            role_confidence=self.role_confidence,
            role_reasons=list(self.role_reasons),
            ports=[self.ports[p] for p in sorted(self.ports)]
            + [self.udp_ports[p] for p in sorted(self.udp_ports)],
            services=[self.services[p].freeze() for p in sorted(self.services)]
            + [self.udp_services[p].freeze() for p in sorted(self.udp_services)],
            errors=list(self.errors),
        )

    def open_ports(self) -> list[int]:
        return sorted(p for p, o in self.ports.items() if o.state is PortState.OPEN)


@dataclass
class ProbeContext:
    """What a probe may use: the host, the settings, and gated connections."""

    host: str
    settings: ScanSettings
    gate: HostGate
    state: HostState

    @contextlib.asynccontextmanager
    async def connect(self, port: int) -> AsyncIterator[OpenConnection]:
        """A new connection inside the host's gate. Raises OSError or TimeoutError."""
        async with self.gate.slot():
            conn = await self.watched(open_stream(self.host, port, self.settings.timeouts.connect))
            try:
                yield conn
            finally:
                await conn.close()

    async def watched(self, connecting: Awaitable[T]) -> T:
        """A connect, reported to the host's connection watch: a failure backs the host
        off (and, at the limit, stops it), a success resets the count."""
        watch = self.gate.watch
        try:
            opened = await connecting
        except (OSError, TimeoutError) as exc:
            if watch is not None:
                watch.after(exc)
            raise
        if watch is not None:
            watch.after(None)
        return opened
