"""``--format jsonl``: one finding per line, each with the scan id and host, for a SIEM
tailing a file."""

from __future__ import annotations

import json
from typing import Any

from scanner.model import ScanResult


def jsonl_events(result: ScanResult) -> list[dict[str, Any]]:
    meta = result.scan
    events = []
    for finding in result.findings:
        event: dict[str, Any] = {
            "schema_version": result.schema_version,
            "scan_id": meta.id,
            "scan_started_at": meta.started_at.isoformat(),
            "scan_finished_at": meta.finished_at.isoformat(),
            "tool": meta.tool,
            "tool_version": meta.tool_version,
        }
        event.update(finding.model_dump(mode="json"))
        events.append(event)
    return events


def to_jsonl(result: ScanResult) -> str:
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in jsonl_events(result))
