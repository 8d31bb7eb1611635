"""Findings as ArcSight CEF (Common Event Format) records, the payload of ``--syslog``.

``CEF:0|dicomscan|dicomscan|VERSION|RULE_ID|TITLE|SEVERITY|EXTENSION``, UTF-8. Escaping:
in the header ``\\`` and ``|`` get a backslash and newlines become spaces; in extension
values ``\\`` and ``=`` get a backslash and CR/LF become ``\\r``/``\\n``
(../shared/STANDARDS.md §5.1). Written here rather than with a library: no CEF formatter on
PyPI is maintained, and one that is (format-cef 0.0.4) strips existing escapes first.

Severity: a failed finding carries its rule's severity (info 1, low 3, medium 5, high 8,
critical 10); a passed, waived or unchecked one is 0, so a SIEM alerting on severity sees
only real failures. ``outcome`` says which (fail, pass, waived, not-checked).

Extension keys: rt (scan end, epoch ms), dst (address), dpt (port), externalId
(finding_id), outcome, cat (rule family), msg (title), cs1 deviceId, cs2 scanId,
cs3 ruleSeverity, cs4 evidence (compact JSON; past 2000 characters cut and marked
``...[truncated]``), cs5 remediation; deviceCustomDate1 firstSeen and deviceCustomDate2
lastSeen (epoch ms, when the finding failed first and last) where the scan was stored in
a history.
"""

from __future__ import annotations

import json
from datetime import datetime

from scanner.model import Finding, FindingStatus, ScanResult, Severity

_SEVERITY = {Severity.INFO: 1, Severity.LOW: 3, Severity.MEDIUM: 5, Severity.HIGH: 8,
             Severity.CRITICAL: 10}
EVIDENCE_LIMIT = 2000
TRUNCATED = "...[truncated]"


def escape_header(value: str) -> str:
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    return value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def escape_extension(value: str) -> str:
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    return value.replace("\r\n", "\\n").replace("\r", "\\r").replace("\n", "\\n")


def cef_severity(f: Finding) -> int:
    return _SEVERITY[f.severity] if f.status is FindingStatus.FAIL else 0


def seen_fields(first: datetime | None, last: datetime | None) -> list[tuple[str, str]]:
    """First and last seen from the history, as CEF custom dates (epoch ms)."""
    if first is None or last is None:
        return []
    return [("deviceCustomDate1Label", "firstSeen"),
            ("deviceCustomDate1", str(int(first.timestamp() * 1000))),
            ("deviceCustomDate2Label", "lastSeen"),
            ("deviceCustomDate2", str(int(last.timestamp() * 1000)))]


def to_cef(result: ScanResult, f: Finding) -> str:
    evidence = json.dumps(f.evidence, separators=(",", ":"), sort_keys=True,
                          ensure_ascii=False)
    if len(evidence) > EVIDENCE_LIMIT:  # said, not silently cut: the JSON file has it all
        evidence = evidence[:EVIDENCE_LIMIT] + TRUNCATED
    fields: list[tuple[str, str]] = [
        ("rt", str(int(result.scan.finished_at.timestamp() * 1000))),
        ("dst", f.host),
        *([("dpt", str(f.port))] if f.port is not None else []),
        ("externalId", f.finding_id),
        ("outcome", f.status.value),
        ("cat", f.rule_id.split("-", 1)[0]),
        ("msg", f.title),
        ("cs1Label", "deviceId"), ("cs1", f.device_id),
        ("cs2Label", "scanId"), ("cs2", result.scan.id),
        ("cs3Label", "ruleSeverity"), ("cs3", f.severity.value),
        ("cs4Label", "evidence"), ("cs4", evidence),
        ("cs5Label", "remediation"), ("cs5", f.remediation),
        *seen_fields(f.first_seen, f.last_seen),
    ]
    header = "|".join(escape_header(v) for v in (
        "dicomscan", "dicomscan", result.scan.tool_version, f.rule_id, f.title))
    extension = " ".join(f"{k}={escape_extension(v)}" for k, v in fields)
    return f"CEF:0|{header}|{cef_severity(f)}|{extension}"
