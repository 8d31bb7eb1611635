"""``--format csv``: one row per finding, for spreadsheets.

Columns, in this order (stable; new columns are only ever added at the end):
``COLUMNS``. ``evidence`` is the finding's evidence as compact JSON and ``references``
are joined with a space. ``first_seen``/``last_seen`` (when the finding failed first and
last) and ``device_first_seen``/``device_last_seen`` come from the scan history and are
empty for a scan that was not stored. Written by the ``csv`` module (RFC 4180 quoting, CRLF).

A cell that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) gets a leading ``'``: values come from the peers
scanned, and a device must not be able to plant a formula in the auditor's spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from scanner.model import Finding, Host, ScanResult

COLUMNS = (
    "scan_id", "scan_finished_at", "finding_id", "device_id", "host", "port", "rule_id",
    "severity", "status", "confidence", "title", "evidence", "remediation", "references",
    "first_seen", "last_seen", "device_first_seen", "device_last_seen",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """The value, defused for spreadsheets when it could start a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _when(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _row(result: ScanResult, f: Finding, host: Host | None) -> list[str]:
    values = [
        result.scan.id, result.scan.finished_at.isoformat(), f.finding_id, f.device_id,
        f.host, "" if f.port is None else str(f.port), f.rule_id, f.severity.value,
        f.status.value, f.confidence.value, f.title,
        json.dumps(f.evidence, separators=(",", ":"), sort_keys=True, ensure_ascii=False),
        f.remediation, " ".join(f.references),
        _when(f.first_seen), _when(f.last_seen),
        _when(host.first_seen if host else None), _when(host.last_seen if host else None),
    ]
    return [safe_cell(v) for v in values]


def to_csv(result: ScanResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    hosts = {h.device_id: h for h in result.hosts}
    writer.writerows(_row(result, f, hosts.get(f.device_id)) for f in result.findings)
    return buffer.getvalue()
