"""Drift: what changed between two scans, as a pure function of the two results.

Devices are matched by ``device_id`` and findings by ``finding_id``, never by address
or position. A value measured on one side only (TLS not probed in the old scan, an
operation not tried) is no change: drift compares measurements, not their absence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scanner.model import FindingStatus, Host, PortState, ScanResult, Service
from scanner.model.drift import Drift, DriftChange, DriftKind, ScanRef
from scanner.model.observations import Association, Operation
from scanner.model.tls_observations import TlsSummary


def scan_ref(result: ScanResult, job: str | None = None) -> ScanRef:
    return ScanRef(scan_id=result.scan.id, job=job, started_at=result.scan.started_at,
                   finished_at=result.scan.finished_at)


def device_seen(host: Host) -> bool:
    """A device answered: an open port, or a discovery method (not 'none') found it alive."""
    if any(p.state is PortState.OPEN for p in host.ports):
        return True
    return host.discovery is not None and host.discovery.method not in ("none", "")


def _open_ports(host: Host) -> set[tuple[int, str]]:
    return {(p.port, p.protocol.value) for p in host.ports if p.state is PortState.OPEN}


def service_facts(svc: Service) -> dict[str, dict[str, Any]]:
    """The comparable facts of one service, grouped by the drift kind they belong to."""
    facts: dict[str, dict[str, Any]] = {
        "service": {"name": svc.name, "product": svc.product, "version": svc.version},
        "tls": {"tls": svc.tls},
        "ae-policy": {},
        "operations": {},
    }
    for obs in svc.observations:
        if isinstance(obs, TlsSummary):
            facts["tls"].update({
                "speaks_tls": obs.speaks_tls,
                "versions": sorted(obs.versions_accepted),
                "best_profile": obs.best_profile,
            })
        elif isinstance(obs, Association):
            for purpose in obs.purpose.split(","):
                if purpose in ("called-ae", "calling-ae"):
                    facts["ae-policy"][purpose] = obs.outcome.value
        elif isinstance(obs, Operation):
            facts["operations"][obs.operation] = obs.outcome.value
    return facts


_FACT_KIND = {
    "service": DriftKind.SERVICE_CHANGED,
    "tls": DriftKind.TLS_CHANGED,
    "ae-policy": DriftKind.AE_POLICY_CHANGED,
    "operations": DriftKind.OPERATIONS_CHANGED,
}


def _service_changes(host: Host, old: Service, new: Service) -> Iterable[DriftChange]:
    before, after = service_facts(old), service_facts(new)
    for group, kind in _FACT_KIND.items():
        for key in sorted(set(before[group]) & set(after[group])):
            was, now = before[group][key], after[group][key]
            # Only measured values are compared: a value unknown on one side is no change.
            if was is not None and now is not None and was != now:
                yield DriftChange(
                    kind=kind, device_id=host.device_id, address=host.address, port=new.port,
                    field=f"{group}.{key}", before=was, after=now,
                    summary=f"{host.address}:{new.port} {group} {key}: {was} -> {now}")


def _host_changes(old: Host, new: Host, new_ports: set[int]) -> Iterable[DriftChange]:
    was, now = _open_ports(old), _open_ports(new)
    for port, proto in sorted(now - was):
        yield DriftChange(kind=DriftKind.PORT_OPENED, device_id=new.device_id,
                          address=new.address, port=port, field=proto,
                          summary=f"{new.address}:{port}/{proto} opened")
    for port, proto in sorted(was - now):
        if proto == "tcp" and port not in new_ports:
            continue  # not scanned this time: nothing is known about it
        yield DriftChange(kind=DriftKind.PORT_CLOSED, device_id=new.device_id,
                          address=new.address, port=port, field=proto,
                          summary=f"{new.address}:{port}/{proto} closed")
    old_svcs = {(s.port, s.protocol): s for s in old.services}
    for svc in new.services:
        before = old_svcs.get((svc.port, svc.protocol))
        if before is not None:
            yield from _service_changes(new, before, svc)


def _finding_changes(old: ScanResult, new: ScanResult, present: dict[str, Host],
                     previously_failed: frozenset[str]) -> Iterable[DriftChange]:
    old_by = {f.finding_id: f for f in old.findings}
    new_by = {f.finding_id: f for f in new.findings}
    old_fail = {k for k, f in old_by.items() if f.status is FindingStatus.FAIL}
    new_fail = {k for k, f in new_by.items() if f.status is FindingStatus.FAIL}
    for fid in sorted(new_fail - old_fail):
        f = new_by[fid]
        kind = DriftKind.FINDING_REOPENED if fid in previously_failed else DriftKind.FINDING_NEW
        before = old_by[fid].status.value if fid in old_by else None
        yield DriftChange(kind=kind, device_id=f.device_id, address=f.host, port=f.port,
                          finding_id=fid, rule_id=f.rule_id, before=before, after="fail",
                          summary=f"{f.rule_id} on {f.host}"
                          f"{'' if f.port is None else f':{f.port}'} fails "
                          f"({'again' if kind is DriftKind.FINDING_REOPENED else 'new'})")
    for fid in sorted(old_fail - new_fail):
        f = old_by[fid]
        now = new_by.get(fid)
        # Resolved only when measured: it passes now, or its device (and port) answered
        # and the finding no longer applies. Waived or not-checked is not a fix, and a
        # finding whose device vanished or port closed is told by that change alone.
        if now is not None and now.status is not FindingStatus.PASS:
            continue
        host = present.get(f.device_id)
        if now is None and (host is None or (
                f.port is not None and f.port not in {p for p, _ in _open_ports(host)})):
            continue
        yield DriftChange(kind=DriftKind.FINDING_RESOLVED, device_id=f.device_id,
                          address=now.host if now else f.host, port=f.port, finding_id=fid,
                          rule_id=f.rule_id, before="fail",
                          after=now.status.value if now else None,
                          summary=f"{f.rule_id} on {f.host}"
                          f"{'' if f.port is None else f':{f.port}'} resolved")


def compute_drift(old: ScanResult, new: ScanResult, *, old_job: str | None = None,
                  new_job: str | None = None,
                  previously_failed: frozenset[str] = frozenset()) -> Drift:
    """Everything that changed from ``old`` to ``new``. ``previously_failed``: finding IDs
    that failed in some scan before ``old`` (from the history), which tells a finding
    that comes back (reopened) from a new one."""
    before = {h.device_id: h for h in old.hosts if device_seen(h)}
    after = {h.device_id: h for h in new.hosts if device_seen(h)}
    changes: list[DriftChange] = []
    for dev in sorted(after.keys() - before.keys(), key=lambda d: after[d].address):
        h = after[dev]
        ports = sorted(p for p, _ in _open_ports(h))
        changes.append(DriftChange(kind=DriftKind.DEVICE_APPEARED, device_id=dev,
                                   address=h.address, after=ports,
                                   summary=f"{h.address} appeared (open: {ports or 'none'})"))
    for dev in sorted(before.keys() - after.keys(), key=lambda d: before[d].address):
        h = before[dev]
        ports = sorted(p for p, _ in _open_ports(h))
        changes.append(DriftChange(kind=DriftKind.DEVICE_VANISHED, device_id=dev,
                                   address=h.address, before=ports,
                                   summary=f"{h.address} vanished (was open: {ports or 'none'})"))
    new_ports = set(new.scan.ports)
    for dev in sorted(before.keys() & after.keys(), key=lambda d: after[d].address):
        changes.extend(_host_changes(before[dev], after[dev], new_ports))
    changes.extend(_finding_changes(old, new, after, previously_failed))
    return Drift(old=scan_ref(old, old_job), new=scan_ref(new, new_job), changes=changes)
