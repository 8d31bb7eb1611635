"""``--format table``: a human summary (rich), for terminals."""

from __future__ import annotations

import io
import ipaddress
from typing import TYPE_CHECKING

from scanner.model import Finding, FindingStatus, PortState, Protocol, ScanResult, Severity
from scanner.outputs.escape import for_rich as esc

if TYPE_CHECKING:
    from rich.table import Table

_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
# Failed findings listed one by one up to this many; more are grouped by rule. A terminal
# table of thousands of rows helps nobody and took rich about 11 s for a /22 of DICOM
# devices (7,154 failed findings); every finding stays in the file formats.
LIST_AT_MOST = 200


def to_table(result: ScanResult, color: bool = False, width: int = 120) -> str:
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, width=width, no_color=not color)
    meta = result.scan
    console.print(
        f"dicomscan {meta.tool_version}  scan {meta.id}  profile {meta.profile.value}  "
        f"{meta.started_at:%Y-%m-%d %H:%M:%S}Z → {meta.finished_at:%H:%M:%S}Z"
        + ("  [INTERRUPTED: partial results]" if meta.interrupted else "")
    )
    if meta.discovery is not None and meta.discovery.used.value != "none":
        d = meta.discovery
        console.print(f"discovery {d.used.value}: {d.alive} of {d.probed} addresses alive "
                      f"({d.why})")
    hosts = Table(title="Hosts and open ports", show_lines=False)
    for col in ("host", "role", "open ports", "services"):
        hosts.add_column(col)
    for host in result.hosts:
        open_ports = [p for p in host.ports if p.state is PortState.OPEN]
        filtered = sum(p.state is PortState.FILTERED for p in host.ports)
        services = ", ".join(
            f"{s.port}{'/udp' if s.protocol is Protocol.UDP else ''}/{s.name}"
            f"{'+tls' if s.tls else ''}"
            + (f" ({esc(' '.join(filter(None, (s.product, s.version))))})" if s.product else "")
            for s in host.services
        )
        ports_text = ", ".join(
            f"{p.port}/udp" if p.protocol is Protocol.UDP else str(p.port) for p in open_ports
        ) or "none"
        if filtered:
            ports_text += f"  ({filtered} filtered)"
        if quiet := sum(p.state is PortState.OPEN_FILTERED for p in host.ports):
            ports_text += f"  ({quiet} udp open|filtered)"
        role = (
            f"{host.role} ({host.role_confidence:.0%})"
            if host.role and host.role_confidence
            else ""
        )
        address = esc(host.address) + (f"\n{esc(host.mac_vendor)}" if host.mac_vendor else "")
        if host.vendors:
            v = host.vendors[0]
            address += f"\n{esc(v.vendor)}" + (f" {esc(v.family)}" if v.family else "")
            address += f" ({esc(v.confidence)})"
        hosts.add_row(address, esc(role), ports_text, services or "-")
    console.print(hosts)
    failed = sorted(
        (f for f in result.findings if f.status is FindingStatus.FAIL),
        key=lambda f: (-f.severity.rank, f.host, f.port or 0),
    )
    findings = _failed_table(failed)
    console.print(findings)
    counts = {s: sum(f.status is s for f in result.findings) for s in FindingStatus}
    console.print(
        "checks: "
        + ", ".join(f"{n} {s.value}" for s, n in counts.items())
        + (f"; {len(meta.errors)} scan errors" if meta.errors else "")
    )
    for err in meta.errors:
        console.print(f"  error: {esc(err.host or '')} {esc(err.message)}")
    return buffer.getvalue()


def _failed_table(failed: list[Finding]) -> Table:
    from rich.table import Table

    if len(failed) <= LIST_AT_MOST:
        table = Table(title=f"Findings ({len(failed)} failed)")
        for col in ("severity", "host", "port", "rule", "title", "confidence"):
            table.add_column(col)
        for f in failed:
            table.add_row(f"[{_STYLE[f.severity]}]{f.severity.value}[/]", esc(f.host),
                          str(f.port or ""), esc(f.rule_id), esc(f.title), f.confidence.value)
        return table
    by_rule: dict[str, list[Finding]] = {}
    for f in failed:  # already in severity order: the groups keep it
        by_rule.setdefault(f.rule_id, []).append(f)
    table = Table(title=f"Findings ({len(failed)} failed, grouped by rule; each one is in "
                        "the json, jsonl, csv and html formats)")
    for col in ("severity", "rule", "title", "hosts", "for example"):
        table.add_column(col)
    # Most severe first (a group's first finding is its most severe), then most widespread.
    groups = sorted(by_rule.items(),
                    key=lambda kv: (-kv[1][0].severity.rank, -len({f.host for f in kv[1]}), kv[0]))
    for rule, group in groups:
        hosts = sorted({f.host for f in group}, key=_address_order)
        first = group[0]
        examples = ", ".join(esc(h) for h in hosts[:3]) + (", ..." if len(hosts) > 3 else "")
        table.add_row(f"[{_STYLE[first.severity]}]{first.severity.value}[/]", esc(rule),
                      esc(first.title), str(len(hosts)), examples)
    return table


def _address_order(host: str) -> tuple[int, int, str]:
    """Addresses in numeric order (127.0.0.2 before 127.0.0.10), names after them."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (7, 0, host)
    return (ip.version, int(ip), host)
