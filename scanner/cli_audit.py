"""``dicomscan audit``: the port audit an auditor signs.

For each device: every open port with its verdict against the device's baseline
(allowed, waived, not allowed, or not judged when no port expectation covered it), the
evidence and when the port was measured, and a per-device and overall PASS/FAIL. A
device passes when every open port is allowed or waived, no waiver covering it has
expired, and its scan finished; anything not checked is never a pass.

It runs a scan exactly like ``dicomscan scan`` (same options), or reads a saved
``--format json`` scan with ``--from FILE``; with ``--policy`` or ``--baseline`` a saved
scan is judged again offline, with waivers checked as of the scan's date.
``--framework NAME`` adds a per-requirement verdict from ``scanner/data/frameworks/``.

Only click is imported at module level, like scanner/cli.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scanner.cli import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    build_settings,
    run_scan,
    scan,
)

if TYPE_CHECKING:
    from scanner.model import Finding, Host, ScanResult

PORT_RULES = ("port-not-allowed", "remote-access-exposed")
# scan's options the audit does not take: it has its own --format and exit rule.
_NOT_SHARED = {"fmt", "fail_on", "output"}

EXIT_HELP = """\b
Exit codes:
  0    every device (and framework requirement) passes
  1    a device or a requirement fails
  2    usage or input error (bad target, saved scan, policy, framework)
  3    the scan itself failed
  130  interrupted (Ctrl-C)
"""


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(EXIT_USAGE)


# --- the audit document ---------------------------------------------------------------------


def _open_ports(host: Host) -> dict[int, str | None]:
    """Open TCP port -> when it was measured (None for a service without an observation)."""
    from scanner.model import PortState

    out: dict[int, str | None] = {
        p.port: p.observed_at.isoformat()
        for p in host.ports
        if p.state is PortState.OPEN and p.protocol.value == "tcp"
    }
    for s in host.services:
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
        _fail(f"unknown framework {name!r}. Known: {', '.join(known)}.")
    doc: dict[str, Any] = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8"))
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


# --- output ---------------------------------------------------------------------------------


def _evidence_text(items: list[dict[str, Any]]) -> str:
    parts = []
    for e in items:
        text = f"{e['rule_id']} {e['status']}"
        if e.get("verdict"):
            text += f": {e['verdict']}"
        if e.get("waiver"):
            w = e["waiver"]
            text += (f" (waived: {w['reason']}; approved by {w['approved_by']}; "
                     f"expires {w['expires']})")
        parts.append(text)
    return "; ".join(parts) or "no baseline verdict"


def to_table(doc: dict[str, Any], width: int = 160) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, force_terminal=False)
    s = doc["scan"]
    console.print(f"dicomscan port audit  scan {s['id']}  from {s['source']}")
    console.print(f"scan time: {s['started_at']} to {s['finished_at']}")
    for d in doc["devices"]:
        name = d["address"] + (f" ({d['hostname']})" if d["hostname"] else "")
        table = Table(
            title=f"{name}: {d['result']}  baseline {d['baseline'] or '-'} "
            f"({d['selected_by'] or '-'})",
            title_justify="left",
        )
        table.add_column("port", no_wrap=True)
        table.add_column("service")
        table.add_column("verdict", no_wrap=True)
        table.add_column("measured at", no_wrap=True)
        table.add_column("evidence")
        for p in d["ports"]:
            table.add_row(
                f"{p['port']}/tcp", p["service"], p["verdict"], p["measured_at"] or "-",
                _evidence_text(p["evidence"]),
            )
        if not d["ports"]:
            table.add_row("-", "-", "no open port", "-", "-")
        console.print(table)
        for reason in d["reasons"]:
            console.print(f"  FAIL because {reason}")
        if d["other_failed_findings"]:
            console.print("  other failed checks: " + ", ".join(d["other_failed_findings"]))
    if "framework" in doc:
        fw = doc["framework"]
        table = Table(title=f"{fw['title']} ({fw['id']}): {fw['result']}", title_justify="left")
        for col in ("requirement", "title", "status", "failed checks"):
            table.add_column(col)
        for r in fw["requirements"]:
            failed = ", ".join(r["failed"][:5]) + (" ..." if len(r["failed"]) > 5 else "")
            status = r["status"] + (f" ({r['waived']} waived)" if r["waived"] else "")
            table.add_row(r["id"], r["title"], status, failed or "-")
        console.print(table)
    counts = [d["result"] for d in doc["devices"]]
    console.print(
        f"OVERALL: {doc['result']}  ({counts.count('PASS')} of {len(counts)} devices pass)"
    )
    return buffer.getvalue()


# --- the command ----------------------------------------------------------------------------


def _load_saved(path: str) -> ScanResult:
    import json

    from pydantic import ValidationError

    from scanner.model import ScanResult

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return ScanResult.model_validate(raw)
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read saved scan {path!r}: {exc}")
    except json.JSONDecodeError as exc:
        _fail(f"{path}: not JSON (save scans with --format json): {exc}")
    except ValidationError as exc:
        _fail(f"{path}: not a dicomscan --format json scan: {exc.error_count()} problem(s), "
              f"first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']}")
    raise AssertionError("unreachable")


def _rejudge(result: ScanResult, opts: dict[str, Any]) -> ScanResult:
    """Judge a saved scan again with --baseline and --policy, as of the scan's date."""
    from scanner.baselines import BaselineError, resolve
    from scanner.policy import PolicyError, read_policy
    from scanner.rules import evaluate

    if opts.get("baseline"):
        try:
            resolve(opts["baseline"])
        except BaselineError as exc:
            _fail(f"--baseline: {exc}")
    policy = None
    if opts.get("policy"):
        try:
            policy = read_policy(opts["policy"]).model_dump(mode="json")
        except PolicyError as exc:
            _fail(f"Invalid value for '--policy': {exc}")
    findings = evaluate(
        result.hosts, opts.get("baseline"), policy, today=result.scan.finished_at.date()
    )
    return result.model_copy(update={"findings": findings})


@click.command(epilog=EXIT_HELP)
@click.argument("targets", nargs=-1)
@click.option("--from", "from_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Audit a saved 'dicomscan scan --format json' document instead of scanning.")
@click.option("--framework", metavar="NAME",
              help="Also report per requirement of a compliance framework "
                   "(acr-siim-2025, nist-800-53, hipaa-164-312, nist-1800-24).")
@click.option("--format", "audit_fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("-o", "--output", "audit_output", type=click.Path(dir_okay=False),
              help="Write here, not stdout.")
def audit(**opts: Any) -> None:
    """Port audit: every open port per device with its verdict, and PASS/FAIL.

    Scans TARGETS with the same options as 'dicomscan scan', or reads a saved scan
    with --from. A device passes when every open port is allowed by its baseline or
    waived by the site policy (--policy).

    \b
    Examples:
      dicomscan audit 10.20.0.0/24 --policy site.yaml
      dicomscan audit --from scan.json --framework nist-800-53 --format json
    """
    import json

    framework = load_framework(opts["framework"]) if opts["framework"] else None
    interrupted = False
    if opts["from_file"]:
        if opts["targets"] or opts["targets_file"]:
            raise click.UsageError("give TARGETS or --from FILE, not both")
        result = _load_saved(opts["from_file"])
        if opts.get("policy") or opts.get("baseline"):
            result = _rejudge(result, opts)
        source = opts["from_file"]
    else:
        settings = build_settings(opts)
        show = not opts["quiet"] and sys.stderr.isatty()
        try:
            result, interrupted = run_scan(settings, show)
        except Exception as exc:  # the scan failed as a whole: exit 3, like scan
            click.echo(f"dicomscan: scan failed: {type(exc).__name__}: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        source = "live scan"
    doc = build_audit(result, source, framework)
    text = json.dumps(doc, indent=2) + "\n" if opts["audit_fmt"] == "json" else to_table(doc)
    if opts["audit_output"] and opts["audit_output"] != "-":
        try:
            Path(opts["audit_output"]).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.FileError(opts["audit_output"], str(exc)) from None
    else:
        click.echo(text, nl=False)
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if doc["result"] == "PASS" else EXIT_FINDINGS)


# Every scan option (targets file, ports, profile, AE titles, TLS, --baseline, --policy, ...)
# except scan's output format and exit threshold: the audit runs the same scan.
audit.params.extend(
    p for p in scan.params if p.name not in _NOT_SHARED and p.name != "targets"
)
