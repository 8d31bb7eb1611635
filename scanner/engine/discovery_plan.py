"""Which discovery method to use for which targets: a pure decision, no packet sent.

``auto`` picks by privilege and topology: ARP when raw sockets are allowed and every
target is on a directly attached IPv4 link, ICMP echo when raw sockets are allowed but
some target is routed, and the TCP ping otherwise. Loopback targets need no discovery.
An explicit ``arp`` or ``icmp`` without raw sockets falls back to the TCP ping with a
note, not an error; targets a method cannot reach (ARP off-link, IPv6) go to the next
method that can. Both engines run the plan this module makes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from probes.discovery import is_local_address, local_ipv4_spans, onlink_interface, routes
from scanner.model import DiscoveryMethod

M = DiscoveryMethod


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


def plan(requested: DiscoveryMethod, addresses: Sequence[str],
         raw: bool | Callable[[], bool]) -> Plan:
    """Decide the method for every address (pure: privilege is passed in, or a check of it
    that runs only when the choice depends on it; opening a packet socket to find out
    costs 8-20 ms as root, more than a whole closed-port scan of loopback)."""
    if requested is M.NONE:
        return Plan(requested, M.NONE, "--discovery none: every target is port-scanned")
    if all(_is_loopback(a) for a in addresses):
        return Plan(requested, M.NONE, "loopback targets need no discovery")
    if callable(raw):
        raw = raw()
    spans = local_ipv4_spans()  # read once: a bind per address cost a /16 1-2 s
    local = [a for a in addresses if is_local_address(a, spans)]
    mine = set(local)  # built once: a /16 sweep must not be quadratic
    addresses = [a for a in addresses if a not in mine]
    # Targets are normalised addresses: a colon is IPv6 (parsing each cost a /16 seconds).
    v4 = [a for a in addresses if ":" not in a]
    v6 = [a for a in addresses if ":" in a]
    table = routes() if v4 else []  # read once, not once per address
    links = {a: onlink_interface(a, table) for a in v4}
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
