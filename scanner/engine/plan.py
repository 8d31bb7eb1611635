"""``--plan``: what a scan would do, built from the same decisions the job makes, sending
nothing. Targets were already resolved forwards when the settings were built; here only
local tables are read (routes, the neighbour table, this host's addresses, privilege).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scanner.engine.spans import Span, range_text
from scanner.model import DiscoveryMethod, EngineName, ScanSettings, SkippedTarget

if TYPE_CHECKING:
    from scanner.engine.spans import TargetSpans

# A plan lists its hosts and skipped devices up to this many (the default size guard);
# beyond, it counts them and gives their ranges: a /8 listed is 16 million lines.
LIST_LIMIT = 65536


@dataclass(frozen=True)
class ProbeStep:
    name: str
    sends: str


@dataclass(frozen=True)
class ScanPlan:
    engine: str
    profile: str
    host_count: int
    targets: list[str] | None  # None: more than LIST_LIMIT, see target_ranges
    target_ranges: list[str]
    hostnames: dict[str, str]
    skipped_count: int
    skipped: list[SkippedTarget]  # the first LIST_LIMIT of skipped_count
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

    probes = follow_up_probes(settings)
    echo = (" (with one C-ECHO in it where Verification is accepted: the health check "
            "before the follow-up probes)") if probes else ""
    steps = [ProbeStep("identify", "TCP connect to each port; on an open port an "
                                   f"A-ASSOCIATE-RQ first{echo}, released properly")]
    for probe in probes:
        name = getattr(probe, "__name__", type(probe).__name__)
        steps.append(ProbeStep(name, _SENDS.get(name, "see the probe's module")))
    return steps


def _ranges(spans: list[Span]) -> list[str]:
    """Consecutive spans of one family joined, as ``first-last`` or one address."""
    out: list[tuple[int, str, int, int]] = []
    for s in spans:
        if out and out[-1][:2] == s.family and out[-1][3] + 1 == s.first:
            out[-1] = (*s.family, out[-1][2], s.last)
        else:
            out.append((*s.family, s.first, s.last))
    return [range_text(v, a, b, zone) for v, zone, a, b in out]


def build_plan(settings: ScanSettings, planned: TargetSpans | None = None) -> ScanPlan:
    """The scan's plan; sends no packet. ``planned``: the targets as spans (``--plan``
    never expands them), else the settings' addresses. Name entries of the do-not-probe
    list are resolved forwards, as the job's fence does."""
    from probes.discovery import TCP_PING_PORTS, raw_sockets_allowed
    from scanner.engine.discovery_plan import plan as discovery_plan
    from scanner.engine.do_not_probe import Fence
    from scanner.engine.spans import count, texts
    from scanner.engine.targets import parse_spec

    spans = planned.spans if planned is not None else [
        s for a in settings.targets for s in parse_spec(a)]
    fence = Fence(settings)
    kept, skipped_spans = fence.split_spans(spans)
    host_count = count(kept)
    skipped_count = sum(k.span.size for k in skipped_spans)
    skipped = list(itertools.islice(
        (r for k in skipped_spans for r in k.records()), LIST_LIMIT))
    targets = list(texts(kept)) if host_count <= LIST_LIMIT else None
    listed = set(targets or ())
    d = (discovery_plan(settings.discovery, targets, raw_sockets_allowed())
         if targets else None)
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
    undecided = d is None and host_count > 0 and settings.discovery is not DiscoveryMethod.NONE
    # a bound: when discovery is not worked out per address, a TCP ping may be its method
    ping = len(TCP_PING_PORTS) if (d is not None and d.tcp) or undecided else 0
    ports = len(settings.ports)
    notes = ["a do-not-probe MAC is checked when discovery learns it, before any port probe"
             ] if any(e.kind.value == "mac" for e in settings.do_not_probe) else []
    if targets is None:
        notes.append(f"{host_count} hosts, more than {LIST_LIMIT}: counted and given as "
                     "ranges, not listed; discovery is decided per address when they are "
                     "scanned")
    if skipped_count > len(skipped):
        notes.append(f"{skipped_count} skipped addresses: the first {len(skipped)} listed")
    if settings.engine is EngineName.NMAP:
        notes.append("nmap runs discovery and the port scan, with the do-not-probe "
                     "addresses as --exclude; the embedded probes then follow")
    return ScanPlan(
        engine=settings.engine.value,
        profile=settings.profile.value,
        host_count=host_count,
        targets=targets,
        target_ranges=_ranges(kept),
        hostnames={a: n for a, n in settings.hostnames.items() if a in listed},
        skipped_count=skipped_count,
        skipped=skipped,
        discovery=d.used.value if d is not None else "none" if not host_count else "per address",
        discovery_why=(d.why if d is not None else "no targets" if not host_count
                       else "not decided: too many hosts to list"),
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
        max_discovery_packets_per_host=1 if undecided or (d is not None and (d.arp or d.icmp))
        else 0,
        notes=notes,
    )
