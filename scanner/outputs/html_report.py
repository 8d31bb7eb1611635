"""``--format html``: the audit report as one self-contained HTML file an auditor can read,
print and file (no external scripts, styles, fonts or images: it opens the same on an
air-gapped workstation years later).

Scope, time, method and profile; per device its baseline and port-by-port verdicts with
evidence and the time measured; findings grouped by severity with evidence and
remediation; pass, waived and not-checked counts and an inline SVG chart of them.

Every value comes from Jinja2 with autoescape on, and control characters (an ANSI escape
in a banner, say) are shown as ``\\x1b`` rather than passed through.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from scanner.model import FindingStatus, ScanResult, Severity
from scanner.rules.port_audit import build_audit

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
STATUS_ORDER = ("fail", "waived", "not-checked", "pass")
_COLOURS = {"fail": "#b3261e", "waived": "#8a6d00", "not-checked": "#5f6368", "pass": "#1e7b34"}


def _visible(value: Any) -> Any:
    """Control characters spelled out, so a peer's bytes cannot act on a terminal or page."""
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


def _chart(counts: dict[str, int]) -> dict[str, Any]:
    """Bars of the status counts, laid out here so the template only draws them."""
    top = max(counts.values(), default=0) or 1
    bars = []
    for i, status in enumerate(STATUS_ORDER):
        n = counts.get(status, 0)
        bars.append({"status": status, "count": n, "y": 10 + i * 34,
                     "width": round(300 * n / top), "colour": _COLOURS[status]})
    return {"bars": bars, "height": 20 + 34 * len(STATUS_ORDER)}


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("scanner.outputs", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_visible,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True,
                                                 ensure_ascii=False, default=str)
    return env


def to_html(result: ScanResult, audit: dict[str, Any] | None = None) -> str:
    """The report of a scan; ``audit`` is a port audit already built (with its source and
    framework), else one is built from the scan."""
    doc = audit if audit is not None else build_audit(result, "scan", None)
    counts = Counter(f.status.value for f in result.findings)
    groups = []
    for severity in sorted(Severity, key=lambda s: -s.rank):
        items = [f for f in result.findings if f.severity is severity]
        items.sort(key=lambda f: (STATUS_ORDER.index(f.status.value), f.host, f.port or 0))
        if items:
            failed = sum(f.status is FindingStatus.FAIL for f in items)
            groups.append({"severity": severity.value, "findings": items, "failed": failed})
    hosts = {h.address: h for h in result.hosts}
    template = _environment().get_template("report.html.j2")
    return str(template.render(
        scan=result.scan, audit=doc, hosts=hosts, groups=groups,
        counts={s: counts.get(s, 0) for s in STATUS_ORDER}, chart=_chart(dict(counts)),
        total=len(result.findings),
    ))
