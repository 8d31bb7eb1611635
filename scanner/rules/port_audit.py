"""The port audit an auditor signs: for each device every open port with its verdict
against the device's baseline (allowed, waived, not allowed, or not judged when no port
expectation covered it), the evidence and when the port was measured, and a per-device
and overall PASS/FAIL. A device passes when every open port is allowed or waived, no
waiver covering it has expired, and its scan finished; anything not checked is never a
pass. ``--framework NAME`` adds a per-requirement verdict from
``scanner/data/frameworks/``.

The document is plain JSON-ready data; ``scanner.outputs.audit_table`` renders it.
"""

from __future__ import annotations

from typing import Any

from scanner.model import Finding, Host, PortState, ScanResult

PORT_RULES = ("port-not-allowed", "remote-access-exposed")


class FrameworkError(ValueError):
    """An unknown compliance framework name."""


def _open_ports(host: Host) -> dict[int, str | None]:
    """Open TCP port -> when it was measured (None for a service without an observation)."""
    out: dict[int, str | None] = {
        p.port: p.observed_at.isoformat()
        for p in host.ports
        if p.state is PortState.OPEN and p.protocol.value == "tcp"
    }
    for s in host.services:
        if s.protocol.value == "tcp":
            out.setdefault(s.port, None)
    return dict(sorted(out.items()))


def _service(host: Host, port: int) -> str:
    for s in host.services:
        if s.port == port:
            label = s.name + ("+tls" if s.tls and "tls" not in s.name else "")
            product = " ".join(filter(None, (s.product, s.version)))
            return f"{label} ({product})" if product else label
    return "-"


def _port_verdict(findings: list[Finding]) -> str:
    statuses = {f.status.value for f in findings}
    if "fail" in statuses:
        return "not allowed"
    if "waived" in statuses:
        return "waived"
    if "pass" in statuses:
        return "allowed"
    return "not judged"


def _evidence(f: Finding) -> dict[str, Any]:
    ev: dict[str, Any] = {"rule_id": f.rule_id, "status": f.status.value}
    for key in ("verdict", "baseline", "selected_by"):
        if key in f.evidence:
            ev[key] = f.evidence[key]
    if "waiver" in f.evidence:
        w = f.evidence["waiver"]
        ev["waiver"] = {k: w.get(k) for k in ("reason", "approved_by", "expires", "policy")}
    return ev


def _device(host: Host, findings: list[Finding], incomplete: bool) -> dict[str, Any]:
    mine = [f for f in findings if f.host == host.address]
    selection = next((f.evidence for f in mine if f.rule_id == "baseline-unmatched"), {})
    ports = []
    for port, measured_at in _open_ports(host).items():
        judged = [f for f in mine if f.rule_id in PORT_RULES and f.port == port]
        ports.append(
            {
                "port": port,
                "protocol": "tcp",
                "service": _service(host, port),
                "verdict": _port_verdict(judged),
                "measured_at": measured_at,
                "evidence": [_evidence(f) for f in judged],
            }
        )
    expired = [
        _evidence(f) for f in mine if f.rule_id == "waiver-expired" and f.status.value == "fail"
    ]
    reasons = [f"port {p['port']}: {p['verdict']}" for p in ports if p["verdict"] not in
               ("allowed", "waived")]
    reasons += [f"expired waiver: {e.get('verdict', '')}" for e in expired]
    reasons += [f"scan incomplete: {e}" for e in host.errors]
    if incomplete:
        reasons.append("scan interrupted: results partial")
    return {
        "address": host.address,
        "hostname": host.hostname,
        "baseline": selection.get("baseline"),
        "selected_by": selection.get("selected_by"),
        "why": selection.get("why", []),
        "result": "FAIL" if reasons else "PASS",
        "reasons": reasons,
        "ports": ports,
        "expired_waivers": expired,
        "other_failed_findings": sorted(
            {f.rule_id for f in mine if f.status.value == "fail" and f.rule_id not in PORT_RULES}
        ),
    }


def load_framework(name: str) -> dict[str, Any]:
    """A compliance mapping from scanner/data/frameworks/NAME.yaml."""
    from importlib import resources

    import yaml

    folder = resources.files("scanner") / "data" / "frameworks"
    known = sorted(e.name.removesuffix(".yaml") for e in folder.iterdir()
                   if e.name.endswith(".yaml"))
    if name not in known:
        raise FrameworkError(f"unknown framework {name!r}. Known: {', '.join(known)}.")
    text = (folder / f"{name}.yaml").read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.load(text, Loader=yaml.CSafeLoader)
    return doc


def framework_report(framework: dict[str, Any], findings: list[Finding]) -> dict[str, Any]:
    """Per requirement: fail when a mapped rule failed, pass when one held (or was waived)
    and none failed, not-checked when no mapped rule gave a verdict. The counts of waived
    and not-checked findings behind a pass are reported with it."""
    rows = []
    for req in framework["requirements"]:
        rules = list(req["rules"])
        mapped = [f for f in findings if f.rule_id in rules]
        statuses = [f.status.value for f in mapped]
        if "fail" in statuses:
            status = "fail"
        elif "pass" in statuses or "waived" in statuses:
            status = "pass"
        else:
            status = "not-checked"
        rows.append(
            {
                "id": req["id"],
                "title": req["title"],
                "status": status,
                "rules": rules,
                "failed": sorted({f"{f.rule_id}@{f.host}" + (f":{f.port}" if f.port else "")
                                  for f in mapped if f.status.value == "fail"}),
                "waived": sum(s == "waived" for s in statuses),
                "not_checked": sum(s == "not-checked" for s in statuses),
                "checks": len(statuses),
            }
        )
    return {
        "id": framework["id"],
        "title": framework["title"],
        "result": "FAIL" if any(r["status"] == "fail" for r in rows) else "PASS",
        "requirements": rows,
    }


def build_audit(
    result: ScanResult, source: str, framework: dict[str, Any] | None = None
) -> dict[str, Any]:
    meta = result.scan
    devices = [_device(h, result.findings, meta.interrupted) for h in result.hosts]
    doc: dict[str, Any] = {
        "audit": "dicomscan port audit",
        "scan": {
            "id": meta.id,
            "source": source,
            "tool_version": meta.tool_version,
            "started_at": meta.started_at.isoformat(),
            "finished_at": meta.finished_at.isoformat(),
            "targets": list(meta.targets),
            "interrupted": meta.interrupted,
        },
        "devices": devices,
    }
    failed = any(d["result"] == "FAIL" for d in devices) or meta.interrupted
    if framework is not None:
        doc["framework"] = framework_report(framework, result.findings)
        failed = failed or doc["framework"]["result"] == "FAIL"
    doc["result"] = "FAIL" if failed else "PASS"
    return doc
