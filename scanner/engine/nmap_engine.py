"""The nmap engine (``--engine nmap``): host discovery and port states from nmap, via python-nmap.

nmap finds live hosts (``-sn``) and port states (``-sS`` with raw sockets, ``-sT``
otherwise; ``-sV`` on request); its answers become the same ``HostDiscovery``,
``PortObservation`` and ``NmapService`` observations the embedded engine produces, and
the DICOM, TLS and HTTP probes then run on the ports nmap found open. Names are never
looked up (``-n``).

The embedded engine stays the default because it is the gentle one: it sends every open
port an A-ASSOCIATE-RQ on the very connection that found it, whereas nmap's connect scan
closes its connections without a byte, and ``-sV`` sends non-DICOM probes; legacy DICOM
stacks (MIR CTN's simple_storage, for one) exit on either.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from probes.discovery import TCP_PING_PORTS, raw_sockets_allowed
from scanner.model import (
    DiscoveryMethod,
    HostDiscovery,
    PortObservation,
    PortState,
    ProfileName,
    ScanSettings,
    utcnow,
)
from scanner.model.observations import NmapService
from scanner.model.shorthand import is_decimal

if TYPE_CHECKING:
    from probes.context import HostState, ServiceState
    from scanner.engine.discovery_plan import Plan

INSTALL_HINT = (
    "nmap is not installed: install it (Debian/Ubuntu: apt-get install nmap; others: "
    "https://nmap.org/download) or use the embedded engine (the default)"
)
_TIMING = {ProfileName.SAFE: ["-T3", "--scan-delay", "100ms"], ProfileName.NORMAL: ["-T3"],
           ProfileName.FAST: ["-T4"]}
_STATES = {"open": PortState.OPEN, "closed": PortState.CLOSED, "filtered": PortState.FILTERED,
           "open|filtered": PortState.FILTERED, "closed|filtered": PortState.FILTERED,
           "unfiltered": PortState.CLOSED}


class NmapMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def _scanner() -> Any:
    if shutil.which("nmap") is None:
        raise NmapMissing()
    import nmap

    return nmap.PortScanner()


def fence_args(settings: ScanSettings, six: bool) -> list[str]:
    """nmap's own fences: do-not-probe addresses, networks and names' addresses of the
    family as ``--exclude`` (a second fence: the job already removed them), the rate cap."""
    from scanner.engine.do_not_probe import nmap_excludes, resolve_names

    # Names resolved again here: a name that no longer resolves stops nmap (fails closed).
    resolved = resolve_names(settings.do_not_probe)
    nets = [n for n in nmap_excludes(settings.do_not_probe, resolved) if (":" in n) == six]
    out = ["--exclude", ",".join(nets)] if nets else []
    if settings.max_rate:
        out += ["--max-rate", f"{settings.max_rate:g}"]
    return out


def _run(
    addresses: Sequence[str], args: list[str], settings: ScanSettings | None = None
) -> list[tuple[Any, str]]:
    """One nmap run per address family (nmap needs -6 for IPv6): (scanner, XML) each."""
    runs = []
    for family in ([a for a in addresses if ":" not in a], [a for a in addresses if ":" in a]):
        if not family:
            continue
        nm = _scanner()
        six = ["-6"] if ":" in family[0] else []
        # Root without CAP_NET_RAW (a container) must not let nmap try raw sockets.
        unpriv = [] if raw_sockets_allowed() else ["--unprivileged"]
        fences = fence_args(settings, bool(six)) if settings is not None else []
        nm.scan(hosts=" ".join(family),
                arguments=" ".join(["-n", *six, *unpriv, *fences, *args]),
                sudo=False)
        raw = nm.get_nmap_last_output()
        runs.append((nm, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)))
    return runs


def discovery_args(p: Plan) -> list[str]:
    """nmap's host discovery options for the method the plan chose."""
    if p.requested is DiscoveryMethod.AUTO:
        return ["-sn"]  # nmap's own choice: ARP on a local link when root, else probes
    if p.used is DiscoveryMethod.ARP:
        return ["-sn", "-PR"]
    if p.used is DiscoveryMethod.ICMP:
        return ["-sn", "-PE", "--disable-arp-ping"]
    return ["-sn", "-PS" + ",".join(map(str, TCP_PING_PORTS)), "--disable-arp-ping"]


def nmap_discover(p: Plan, settings: ScanSettings) -> dict[str, HostDiscovery]:
    """Live hosts according to ``nmap -sn``, with nmap's reason and the MAC it saw."""
    addresses = [*(a for group in p.arp.values() for a in group), *p.icmp, *p.tcp]
    if not addresses:
        return {}
    found: dict[str, HostDiscovery] = {}
    up = [(nm, host) for nm, _ in _run(addresses, [*discovery_args(p),
                                                   *_TIMING[settings.profile][:1]],
                                           settings)
          for host in nm.all_hosts()]
    for nm, host in up:
        info = nm[host]
        if info.state() != "up":
            continue
        mac = info.get("addresses", {}).get("mac")
        found[host] = HostDiscovery(
            method="nmap", reason=str(info["status"].get("reason", "up")),
            mac=mac.lower() if mac else None, observed_at=utcnow(),
        )
    return found


def _unlisted_states(xml: str) -> dict[str, dict[int, PortState]]:
    """Ports nmap folded into "Not shown: N closed ports", per host, from its XML."""
    out: dict[str, dict[int, PortState]] = {}
    for host in ET.fromstring(xml).iter("host"):
        addr = next((a.get("addr") for a in host.iter("address")
                     if a.get("addrtype") in ("ipv4", "ipv6")), None)
        if addr is None:
            continue
        for extra in host.iter("extraports"):
            state = _STATES.get(extra.get("state", ""), PortState.FILTERED)
            for reasons in extra.iter("extrareasons"):
                for part in (reasons.get("ports") or "").split(","):
                    low, _, high = part.partition("-")
                    if is_decimal(low) and (not high or is_decimal(high)):
                        for port in range(int(low), int(high or low) + 1):
                            out.setdefault(addr, {})[port] = state
    return out


async def nmap_port_scan(settings: ScanSettings, hosts: dict[str, HostState]) -> None:
    """Fill every host's port states (and nmap service guesses) from one nmap run."""
    import asyncio

    if not hosts:
        return
    syn = raw_sockets_allowed()
    args = ["-Pn", "-sS" if syn else "-sT", "-p", ",".join(map(str, settings.ports)),
            "--reason", *_TIMING[settings.profile]]
    if settings.service_version:
        args += ["-sV", "--version-light"]  # the lighter probe set: fewer bytes at devices
    reports: dict[str, dict[int, dict[str, Any]]] = {}
    unlisted: dict[str, dict[int, PortState]] = {}
    for nm, xml in await asyncio.to_thread(_run, list(hosts), args, settings):
        reports.update({h: dict(nm[h].get("tcp", {})) for h in nm.all_hosts()})
        unlisted.update(_unlisted_states(xml))
    method = "nmap-syn" if syn else "nmap-connect"
    now = utcnow()
    for address, state in hosts.items():
        tcp = reports.get(address, {})
        for port in settings.ports:
            entry = tcp.get(port)
            if entry is not None:
                st, reason = _STATES.get(entry["state"], PortState.FILTERED), entry["reason"]
            elif port in unlisted.get(address, {}):
                st, reason = unlisted[address][port], "not shown by nmap (same state as others)"
            else:
                st, reason = PortState.FILTERED, "no state reported by nmap"
            state.ports[port] = PortObservation(port=port, state=st, method=method,
                                                reason=str(reason), observed_at=now)
            if entry is not None and settings.service_version and entry.get("name"):
                state.nmap_services[port] = NmapService(
                    name=entry["name"], product=entry.get("product") or None,
                    version=entry.get("version") or None,
                    extrainfo=entry.get("extrainfo") or None,
                    cpe=[c for c in str(entry.get("cpe", "")).split() if c],
                    reason=str(reason),
                )


def merge_nmap_service(svc: ServiceState, seen: NmapService | None) -> ServiceState:
    """Fold nmap's -sV answer in: evidence always, names only where ours found none."""
    if seen is not None:
        svc.observations.append(seen)
        if svc.name == "unknown":
            svc.name = seen.name
        if svc.product is None and seen.product:
            svc.product, svc.version = seen.product, seen.version
    return svc
