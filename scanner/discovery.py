"""Which discovery method to use for which targets, and running it before the port scan.

``auto`` picks by privilege and topology: ARP when raw sockets are allowed and every
target is on a directly attached IPv4 link, ICMP echo when raw sockets are allowed but
some target is routed, and the TCP ping otherwise. Loopback targets need no discovery.
An explicit ``arp`` or ``icmp`` without raw sockets falls back to the TCP ping with a
note, not an error; targets a method cannot reach (ARP off-link, IPv6) go to the next
method that can. The choice and its reason are recorded in the scan's metadata.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from probes.discovery import (
    TakeOver,
    arp_sweep,
    icmp_sweep,
    is_local_address,
    onlink_interface,
    raw_sockets_allowed,
    tcp_ping,
)
from probes.ports import OpenConnection
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


@dataclass
class Plan:
    requested: DiscoveryMethod
    used: DiscoveryMethod
    why: str
    notes: list[str] = field(default_factory=list)
    arp: dict[str, list[str]] = field(default_factory=dict)  # interface -> addresses
    icmp: list[str] = field(default_factory=list)
    tcp: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)  # this host's own: alive, not probed


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def plan(requested: DiscoveryMethod, addresses: Sequence[str], raw: bool) -> Plan:
    """Decide the method for every address (pure: privilege is passed in)."""
    if requested is M.NONE:
        return Plan(requested, M.NONE, "--discovery none: every target is port-scanned")
    if all(_is_loopback(a) for a in addresses):
        return Plan(requested, M.NONE, "loopback targets need no discovery")
    local = [a for a in addresses if is_local_address(a)]
    addresses = [a for a in addresses if a not in set(local)]
    v4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    v6 = [a for a in addresses if a not in set(v4)]
    links = {a: onlink_interface(a) for a in v4}
    used, notes = requested, []
    if requested is M.AUTO:
        if raw and v4 and all(links.values()):
            used, why = M.ARP, "raw sockets allowed and every target on a directly attached link"
        elif raw:
            used, why = M.ICMP, "raw sockets allowed, but some targets are routed"
        else:
            used, why = M.TCP, "no raw sockets (not root): TCP ping on imaging ports"
    else:
        why = f"--discovery {requested.value}"
        if requested in (M.ARP, M.ICMP) and not raw:
            notes.append(f"{requested.value.upper()} needs raw sockets (root or CAP_NET_RAW): "
                         "skipped, TCP ping used instead")
            used = M.TCP
    p = Plan(requested, used, why, notes, local=local)
    if used is M.TCP:
        p.tcp = list(addresses)
        return p
    if v6:
        p.notes.append(f"{len(v6)} IPv6 targets: TCP ping (ARP and ICMP here are IPv4)")
        p.tcp = v6
    if used is M.ICMP:
        p.icmp = v4
        return p
    for addr, iface in links.items():
        if iface:
            p.arp.setdefault(iface, []).append(addr)
        else:
            p.icmp.append(addr)
    if p.icmp:
        p.notes.append(f"{len(p.icmp)} targets are not on a directly attached link: ICMP echo")
    return p


def identify_and_drop(settings: ScanSettings) -> TakeOver:
    """A TCP ping connection's default fate: service identification (an A-ASSOCIATE-RQ,
    released properly), then closed; the result is dropped."""
    from scanner.registry import identify_service

    async def take_over(conn: OpenConnection, rtt_ms: float) -> None:
        del rtt_ms
        await identify_service(conn, settings)

    return take_over


async def run_discovery(
    settings: ScanSettings,
    addresses: Sequence[str],
    on_alive: OnAlive | None = None,
    take_over: TakeOver | None = None,
) -> tuple[DiscoveryInfo, dict[str, HostDiscovery] | None]:
    """Discover live hosts. The dict is None when every target is to be port-scanned.

    ``on_alive`` is called (in the event loop) for each host as soon as it answers, so
    the caller can start on it while the sweep still waits for the silent ones. A TCP
    ping connection that opens goes to ``take_over`` (default: identified and dropped),
    never closed empty.
    """
    started = time.perf_counter()
    p = plan(settings.discovery, addresses, raw_sockets_allowed())
    found: dict[str, HostDiscovery] | None = None
    notify = on_alive or (lambda address, seen: None)
    if p.used is not M.NONE:
        found = {a: HostDiscovery(method="local", reason="this host's own address",
                                  observed_at=utcnow()) for a in p.local}
        for address, seen in found.items():
            notify(address, seen)
        if settings.engine is EngineName.NMAP:
            from scanner.nmap_engine import nmap_discover

            found.update(await asyncio.to_thread(nmap_discover, p, settings))
        else:
            found.update(
                await _embedded(p, settings, notify, take_over or identify_and_drop(settings))
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
    p: Plan, settings: ScanSettings, notify: OnAlive, take_over: TakeOver
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

    jobs = [asyncio.to_thread(arp_sweep, addrs, iface, wait, from_thread)
            for iface, addrs in p.arp.items()]
    if p.icmp:
        jobs.append(asyncio.to_thread(icmp_sweep, p.icmp, wait, from_thread))
    if p.tcp:
        jobs.append(tcp_ping(p.tcp, settings.timeouts.connect, settings.per_host_connections,
                             settings.max_concurrency, take_over, on_alive=announce))
    for part in await asyncio.gather(*jobs):
        found.update(part)
    return found
