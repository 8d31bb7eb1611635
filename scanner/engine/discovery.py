"""Running host discovery before the port scan, by the plan ``discovery_plan`` makes.

The choice and its reason are recorded in the scan's metadata; each host is announced
the moment it answers, so its scan can start while the sweep waits for silent ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from probes.arp import arp_sweep
from probes.discovery import TakeOver, raw_sockets_allowed, tcp_ping
from probes.icmp import icmp_sweep
from probes.ports import OpenConnection
from probes.raw_sweep import ThreadPace
from scanner.engine.discovery_plan import Plan, plan
from scanner.engine.rate import RateCap
from scanner.model import (
    DiscoveryInfo,
    DiscoveryMethod,
    EngineName,
    HostDiscovery,
    ScanSettings,
    utcnow,
)

# Answers on a LAN come back in milliseconds; waiting longer only slows a sweep.
SWEEP_WAIT = 1.0
M = DiscoveryMethod
OnAlive = Callable[[str, HostDiscovery], None]


def identify_and_drop(settings: ScanSettings) -> TakeOver:
    """A TCP ping connection's default fate: service identification (an A-ASSOCIATE-RQ,
    released properly), then closed; the result is dropped."""
    from scanner.engine.registry import identify_service

    async def take_over(conn: OpenConnection, rtt_ms: float) -> None:
        del rtt_ms
        await identify_service(conn, settings, kept=False)  # dropped: no check before

    return take_over


async def run_discovery(
    settings: ScanSettings,
    addresses: Sequence[str],
    on_alive: OnAlive | None = None,
    take_over: TakeOver | None = None,
    rate: RateCap | None = None,
) -> tuple[DiscoveryInfo, dict[str, HostDiscovery] | None]:
    """Discover live hosts. The dict is None when every target is to be port-scanned.

    ``on_alive`` is called (in the event loop) for each host as soon as it answers, so
    the caller can start on it while the sweep still waits for the silent ones. A TCP
    ping connection that opens goes to ``take_over`` (default: identified and dropped),
    never closed empty.
    """
    started = time.perf_counter()
    p = plan(settings.discovery, addresses, raw_sockets_allowed)
    found: dict[str, HostDiscovery] | None = None
    notify = on_alive or (lambda address, seen: None)
    if p.used is not M.NONE:
        found = {a: HostDiscovery(method="local", reason="this host's own address",
                                  observed_at=utcnow()) for a in p.local}
        for address, seen in found.items():
            notify(address, seen)
        if settings.engine is EngineName.NMAP:
            from scanner.engine.nmap_engine import nmap_discover

            found.update(await asyncio.to_thread(nmap_discover, p, settings))
        else:
            found.update(
                await _embedded(p, settings, notify, take_over or identify_and_drop(settings),
                                rate)
            )
    info = DiscoveryInfo(
        requested=p.requested,
        used=p.used,
        why=p.why,
        probed=len(addresses) if found is not None else 0,
        alive=len(found) if found is not None else len(addresses),
        notes=p.notes,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return info, found


async def _embedded(
    p: Plan, settings: ScanSettings, notify: OnAlive, take_over: TakeOver,
    rate: RateCap | None = None,
) -> dict[str, HostDiscovery]:
    # A quarter of the connect timeout: fast 0.25 s, normal 0.5 s, safe 0.75 s.
    wait = min(SWEEP_WAIT, settings.timeouts.connect / 4)
    loop = asyncio.get_running_loop()
    # Whatever was announced counts, even if a sweep's final list missed it.
    found: dict[str, HostDiscovery] = {}

    def announce(address: str, seen: HostDiscovery) -> None:
        found.setdefault(address, seen)
        notify(address, seen)

    def from_thread(address: str, seen: HostDiscovery) -> None:
        loop.call_soon_threadsafe(announce, address, seen)

    # ARP and ICMP packets take their slots of the one rate cap from their threads, so
    # discovery packets, TCP pings and the port scans of hosts found meanwhile share it.
    paced = ThreadPace(rate)
    jobs = [asyncio.to_thread(arp_sweep, addrs, iface, wait, from_thread, paced)
            for iface, addrs in p.arp.items()]
    if p.icmp:
        jobs.append(asyncio.to_thread(icmp_sweep, p.icmp, wait, from_thread, paced))
    if p.tcp:
        jobs.append(tcp_ping(p.tcp, settings.timeouts.connect, settings.per_host_connections,
                             settings.max_concurrency, take_over, on_alive=announce,
                             pace=rate.wait if rate is not None else None))
    try:
        for part in await asyncio.gather(*jobs):
            found.update(part)
    finally:
        paced.stop()  # a stopped scan (Ctrl-C) frees the sweep threads: they send no more
    return found
