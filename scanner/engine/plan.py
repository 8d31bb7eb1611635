"""``--plan``: what a scan would do, built from the same decisions the job makes, sending
nothing. Targets were already resolved forwards when the settings were built; here only
local tables are read (routes, the neighbour table, this host's addresses, privilege).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner.model import EngineName, ScanSettings, SkippedTarget


@dataclass(frozen=True)
class ProbeStep:
    name: str
    sends: str


@dataclass(frozen=True)
class ScanPlan:
    engine: str
    profile: str
    targets: list[str]
    hostnames: dict[str, str]
    skipped: list[SkippedTarget]
    discovery: str
    discovery_why: str
    discovery_split: dict[str, int]
    discovery_notes: list[str]
    ports: list[int]
    probes: list[ProbeStep]
    per_host_connections: int
    probe_spacing: float
    max_concurrency: int
    max_rate: float
    host_time_limit: float
    max_connections_per_host: int
    max_discovery_packets_per_host: int
    notes: list[str] = field(default_factory=list)


# What each step sends; the pipeline order is the registry's.
_SENDS = {
    "dicom_checks": "DICOM associations: called/calling AE title checks, C-ECHO, "
                    "C-FIND with a zero-match UID; C-STORE of a synthetic object only "
                    "with --intrusive",
    "tls_probe": "TLS ClientHellos (protocol versions, ciphers, certificate)",
    "dicom_tls_checks": "the AE title checks again inside TLS, where DICOM runs in TLS",
    "http_probe": "HTTP GET/HEAD requests to web ports (product pages); default "
                  "credentials only with --intrusive",
    "banner_probe": "nothing (parses what was already received)",
}


def _probe_steps(settings: ScanSettings) -> list[ProbeStep]:
    from scanner.engine.registry import follow_up_probes

    steps = [ProbeStep("identify", "TCP connect to each port; on an open port an "
                                   "A-ASSOCIATE-RQ first, released properly")]
    for probe in follow_up_probes(settings):
        name = getattr(probe, "__name__", type(probe).__name__)
        steps.append(ProbeStep(name, _SENDS.get(name, "see the probe's module")))
    return steps


def build_plan(settings: ScanSettings) -> ScanPlan:
    """The scan's plan; sends no packet and resolves no name."""
    from probes.discovery import TCP_PING_PORTS, raw_sockets_allowed
    from scanner.engine.discovery_plan import plan as discovery_plan
    from scanner.engine.do_not_probe import Fence

    fence = Fence(settings)
    targets = fence.before_discovery(settings.targets)
    d = discovery_plan(settings.discovery, targets, raw_sockets_allowed()) if targets else None
    split = {}
    if d is not None:
        split = {"arp": sum(len(v) for v in d.arp.values()), "icmp": len(d.icmp),
                 "tcp": len(d.tcp), "local": len(d.local)}
    # Per host the connection starts are bounded by its time limit and the tighter of the
    # per-host spacing and the global rate; discovery adds its TCP ping.
    limit = settings.timeouts.host
    per_second = [r for r in (1 / settings.probe_spacing if settings.probe_spacing else 0,
                              settings.max_rate) if r]
    by_time = int(limit * min(per_second)) if per_second else 0
    ping = len(TCP_PING_PORTS) if d is not None and d.tcp else 0
    ports = len(settings.ports)
    notes = ["a do-not-probe MAC is checked when discovery learns it, before any port probe"
             ] if any(e.kind.value == "mac" for e in settings.do_not_probe) else []
    if settings.engine is EngineName.NMAP:
        notes.append("nmap runs discovery and the port scan, with the do-not-probe "
                     "addresses as --exclude; the embedded probes then follow")
    return ScanPlan(
        engine=settings.engine.value,
        profile=settings.profile.value,
        targets=targets,
        hostnames={a: n for a, n in settings.hostnames.items() if a in set(targets)},
        skipped=fence.skipped,
        discovery=d.used.value if d is not None else "none",
        discovery_why=d.why if d is not None else "no targets",
        discovery_split=split,
        discovery_notes=list(d.notes) if d is not None else [],
        ports=list(settings.ports),
        probes=_probe_steps(settings),
        per_host_connections=settings.per_host_connections,
        probe_spacing=settings.probe_spacing,
        max_concurrency=settings.max_concurrency,
        max_rate=settings.max_rate,
        host_time_limit=limit,
        max_connections_per_host=(max(by_time, ports) if by_time else 0) + ping,
        max_discovery_packets_per_host=1 if d is not None and (d.arp or d.icmp) else 0,
        notes=notes,
    )
