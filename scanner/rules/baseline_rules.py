"""Baseline rules: pick each host's baseline, then judge its ports against it.

Selection prefers the most specific evidence: a product identity (fingerprint product,
implementation class UID or version name, HTTP banner) over an open-port signature over
the guessed role; a host that matches nothing gets the generic baseline for its role.
The choice and why it was made travel in every finding's evidence, so an auditor can
check it. Port rules judge TCP ports only: that is what the engine measures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scanner.identify.oui import medical_family
from scanner.identify.vendor import identify_vendors
from scanner.model import Finding, FindingStatus, Host, PortObservation, PortState
from scanner.model.http_observations import ServiceBannerInfo
from scanner.model.observations import Association, Banner, Fingerprint
from scanner.rules.baseline_model import DEFAULT_BASELINE, ROLE_DEFAULTS, Match, port_in, show_ports
from scanner.rules.baselines import Resolved, resolve, shipped
from scanner.rules.catalogue import make_finding

F, P, N = FindingStatus.FAIL, FindingStatus.PASS, FindingStatus.NOT_CHECKED
TIER_NAMES = {3: "product", 2: "open-ports", 1: "role"}
# Literal rule IDs at module level, so the catalogue test's static scan sees them.
PORT_RULE = "port-not-allowed"
REMOTE_RULE = "remote-access-exposed"
UNMATCHED_RULE = "baseline-unmatched"


@dataclass(frozen=True)
class Facts:
    """What selection looks at; hashable, so devices alike are scored once (``_scored``)."""

    products: tuple[str, ...]
    uids: tuple[str, ...]
    version_names: tuple[str, ...]
    banners: tuple[str, ...]
    open_ports: frozenset[int]
    role: str | None
    mac_vendors: tuple[str, ...]
    vendors: tuple[str, ...]


def host_facts(host: Host) -> Facts:
    products, uids, names, banners = [], [], [], []
    for svc in host.services:
        if svc.product:
            products.append(svc.product)
        for o in svc.observations:
            if isinstance(o, Fingerprint) and o.product:
                products.append(o.product)
            elif isinstance(o, Association) and o.peer is not None:
                if o.peer.implementation_class_uid:
                    uids.append(o.peer.implementation_class_uid)
                if o.peer.implementation_version_name:
                    names.append(o.peer.implementation_version_name)
            elif isinstance(o, Banner):
                banners.append(o.text)
    tcp = [p for p in host.ports if p.protocol.value == "tcp"]
    ports = {p.port for p in tcp if p.state is PortState.OPEN}
    ports |= {s.port for s in host.services if s.protocol.value == "tcp"}
    vendors = [v for v in (host.mac_vendor, medical_family(host.mac_vendor)) if v]
    identified = [v.vendor for v in identify_vendors(host)]
    return Facts(tuple(products), tuple(uids), tuple(names), tuple(banners), frozenset(ports),
                 host.role, tuple(vendors), tuple(identified))


def _search(pattern: str, values: tuple[str, ...]) -> str | None:
    return next((v for v in values if re.search(pattern, v)), None)


def match_reasons(m: Match, facts: Facts) -> list[str] | None:
    """Why every criterion of the block holds, or None when one does not."""
    why: list[str] = []
    if m.implementation_class_uid is not None:
        if m.implementation_class_uid not in facts.uids:
            return None
        why.append(f"implementation class UID {m.implementation_class_uid}")
    if m.uid_prefix is not None:
        hit = next((u for u in facts.uids if u.startswith(m.uid_prefix)), None)
        if hit is None:
            return None
        why.append(f"implementation class UID {hit} starts with {m.uid_prefix}")
    checks = (
        ("version_name", facts.version_names, "implementation version name"),
        ("product", facts.products, "fingerprint product"),
        ("http_server", facts.banners, "banner"),
        ("mac_vendor", facts.mac_vendors, "MAC vendor"),
        ("vendor", facts.vendors, "identified vendor"),
    )
    for attr, values, label in checks:
        pattern = getattr(m, attr)
        if pattern is not None:
            found = _search(pattern, values)
            if found is None:
                return None
            why.append(f"{label} {found!r} matches /{pattern}/")
    if m.open_ports is not None:
        if not all(any(port_in(p, [r]) for p in facts.open_ports) for r in m.open_ports):
            return None
        why.append(f"open ports include {show_ports(m.open_ports)}")
    if m.role is not None:
        if facts.role != m.role:
            return None
        why.append(f"guessed role is {m.role}")
    return why


@dataclass(frozen=True)
class Selection:
    resolved: Resolved
    selected_by: str  # forced, product, open-ports, role or default
    reasons: list[str]
    also_matched: list[str]

    @property
    def specific(self) -> bool:
        return self.selected_by in ("forced", "product", "open-ports")

    def evidence(self) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "baseline": self.resolved.id,
            "baseline_version": self.resolved.baseline.version,
            "selected_by": self.selected_by,
            "why": list(self.reasons),
        }
        if self.also_matched:
            ev["also_matched"] = list(self.also_matched)
        return ev


# The shipped baselines are fixed for the process (``shipped`` is cached), so the scoring
# of one set of facts is too: a network of like devices is matched against every block once
# rather than once per device. Bounded: a scan's kinds of device are few, and facts hold
# peer text (banners) only as long as the probes' caps let it be.
@lru_cache(maxsize=1024)
def _scored(facts: Facts) -> tuple[tuple[int, int, str, tuple[str, ...]], ...]:
    """Every baseline with a matching block, most specific first: (tier, criteria, id, why)."""
    scored: list[tuple[int, int, str, tuple[str, ...]]] = []
    for bid, b in sorted(shipped().items()):
        best: tuple[int, int, list[str]] | None = None
        for m in b.match:
            why = match_reasons(m, facts)
            if why is not None and (best is None or (m.tier, len(why)) > best[:2]):
                best = (m.tier, len(why), why)
        if best is not None:
            scored.append((best[0], best[1], bid, tuple(best[2])))
    # Most specific tier first, then the block with more criteria; ids break ties.
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return tuple(scored)


def select(host: Host, forced: str | None = None) -> Selection:
    """The baseline for one host: forced, else the best match, else its role's default."""
    if forced is not None:
        return Selection(resolve(forced), "forced", [f"forced with --baseline {forced}"], [])
    scored = _scored(host_facts(host))
    if scored:
        tier, _, bid, why = scored[0]
        others = [s[2] for s in scored[1:]]
        return Selection(resolve(bid), TIER_NAMES[tier], list(why), others)
    role = host.role or "unknown"
    bid = ROLE_DEFAULTS.get(role, DEFAULT_BASELINE)
    reason = (
        f"no baseline matched; {bid} is the generic baseline for role {role}"
        if role in ROLE_DEFAULTS
        else f"no baseline matched and the role is {role}; {bid} is the default"
    )
    return Selection(resolve(bid), "default", [reason], [])


# --- findings -------------------------------------------------------------------------------


def _port_evidence(obs: PortObservation | None, port: int, sel: Selection) -> dict[str, Any]:
    ev: dict[str, Any] = {"port": port, "protocol": "tcp"}
    if obs is not None:
        ev.update(
            state=obs.state.value,
            measured_at=obs.observed_at.isoformat(),
            method=obs.method,
            reason=obs.reason,
        )
    else:  # a service without a port observation was still found listening
        ev.update(state="open", measured_at=None, method="service probe")
    return {**ev, **sel.evidence()}


def _measured(host: Host) -> dict[int, PortObservation | None]:
    """Every measured TCP port and its observation; service ports count as open."""
    out: dict[int, PortObservation | None] = {
        p.port: p for p in host.ports if p.protocol.value == "tcp"
    }
    for s in host.services:
        if s.protocol.value == "tcp":  # UDP services (SNMP) are judged by their own rules
            out.setdefault(s.port, None)
    return out


def _is_open(obs: PortObservation | None) -> bool:
    return obs is None or obs.state is PortState.OPEN


def _unmeasured(rule: str, host: Host, ports: list[int], sel: Selection) -> list[Finding]:
    if not ports:
        return []
    ev = {"ports": ports, "reason": "not in the scanned port list", **sel.evidence()}
    return [make_finding(rule, N, host.address, None, ev)]


def _port_rule(host: Host, sel: Selection) -> list[Finding]:
    rule = PORT_RULE
    exp = sel.resolved.expectations.ports
    measured = _measured(host)
    if exp is None:
        ev = {"reason": "the baseline sets no port expectations", **sel.evidence()}
        return [make_finding(rule, N, host.address, None, ev)]
    out: list[Finding] = []
    for port, obs in sorted(measured.items()):
        ev = _port_evidence(obs, port, sel)
        if _is_open(obs):
            if port_in(port, exp.must_be_closed):
                ev["verdict"] = "must be closed by the baseline"
            elif port_in(port, exp.allowed):
                ev["verdict"] = "allowed by the baseline"
                out.append(make_finding(rule, P, host.address, port, ev))
                continue
            else:
                ev["verdict"] = "not in the baseline's allowed ports"
            ev["allowed"] = show_ports(exp.allowed)
            out.append(make_finding(rule, F, host.address, port, ev))
        elif port_in(port, exp.must_be_closed):
            ev["verdict"] = "must be closed, and is not open"
            out.append(make_finding(rule, P, host.address, port, ev))
    # Single listed ports only: a range is too wide to require that it was scanned.
    required = [low for low, high in exp.must_be_closed if low == high and low not in measured]
    return out + _unmeasured(rule, host, required, sel)


def _remote_services(host: Host) -> dict[int, ServiceBannerInfo]:
    """Ports whose own answer showed a remote-access service (SSH, telnet, VNC, ...),
    whatever the port number: an sshd moved to 2222 is still remote access."""
    out: dict[int, ServiceBannerInfo] = {}
    for svc in host.services:
        for o in svc.observations:
            if isinstance(o, ServiceBannerInfo) and o.category == "remote-access" and o.answered:
                out[svc.port] = o
    return out


def _banner_evidence(info: ServiceBannerInfo) -> dict[str, Any]:
    keys = ("protocol", "banner", "protocol_version", "software")
    return {k: v for k in keys if (v := getattr(info, k)) is not None}


def _remote_rule(host: Host, sel: Selection) -> list[Finding]:
    rule = REMOTE_RULE
    exp = sel.resolved.expectations.remote_access
    if exp is None:
        return []
    measured = _measured(host)
    identified = _remote_services(host)
    out: list[Finding] = []
    watched = sorted({p for low, high in exp.ports for p in range(low, high + 1)})
    for port in sorted(set(watched) | identified.keys()):
        if port not in measured:
            continue
        obs = measured[port]
        ev = _port_evidence(obs, port, sel)
        if port in identified:
            ev["service"] = _banner_evidence(identified[port])
        if not _is_open(obs):
            ev["verdict"] = "remote-access port not open"
            out.append(make_finding(rule, P, host.address, port, ev))
        elif port_in(port, exp.allowed):
            ev["verdict"] = "open, and allowed by the baseline"
            out.append(make_finding(rule, P, host.address, port, ev))
        else:
            ev["verdict"] = (
                "open remote-access port the baseline does not allow"
                if port in watched
                else "remote-access service (identified by its answer) the baseline does not allow"
            )
            out.append(make_finding(rule, F, host.address, port, ev))
    missing = [p for p in watched if p not in measured] if len(watched) < 100 else []
    return out + _unmeasured(rule, host, missing, sel)


def has_open_port(host: Host) -> bool:
    return any(_is_open(obs) for obs in _measured(host).values())


def baseline_findings(
    host: Host, forced: str | None = None, sel: Selection | None = None
) -> list[Finding]:
    """Selection, port and remote-access verdicts for one host (``sel``: the selection,
    when the caller already made it).

    A host with no open port gets none: there is nothing to identify or judge, and the
    address may not even be a device.
    """
    if not has_open_port(host):
        return []
    sel = sel or select(host, forced)
    ev = {"role": host.role, "role_reasons": list(host.role_reasons), **sel.evidence()}
    if sel.resolved.baseline.advisories:  # vendor baselines: the advisories that apply
        ev["advisories"] = [
            {"id": a.id, "applies_to": a.applies_to, "summary": a.summary}
            for a in sel.resolved.baseline.advisories
        ]
    # Info-level: falling back to a generic baseline is worth knowing, not a weakness.
    status = P if sel.specific else F
    out = [make_finding(UNMATCHED_RULE, status, host.address, None, ev)]
    return out + _port_rule(host, sel) + _remote_rule(host, sel)
