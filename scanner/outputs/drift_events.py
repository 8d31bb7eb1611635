"""Drift as JSON Lines events (``event_type: drift``), one change per line, for a SIEM;
and drift as a terminal table.

Each event has an ``event_id`` that is stable for the same change between the same two
scans (SHA-256 of the two scan IDs and what changed), so a re-sent file deduplicates.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from scanner import __version__
from scanner.model.drift import Drift, DriftChange
from scanner.outputs.escape import visible


def event_id(drift: Drift, change: DriftChange) -> str:
    parts = (drift.old.scan_id, drift.new.scan_id, change.kind.value, change.device_id,
             "" if change.port is None else str(change.port), change.finding_id or "",
             change.field or "")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def drift_events(drift: Drift) -> list[dict[str, Any]]:
    when = (drift.new.finished_at or drift.new.started_at).isoformat()
    events = []
    for change in drift.changes:
        event: dict[str, Any] = {
            "event_type": "drift",
            "event_id": event_id(drift, change),
            "time": when,
            "tool": "dicomscan",
            "tool_version": __version__,
            "job": drift.new.job,
            "scan_id": drift.new.scan_id,
            "previous_scan_id": drift.old.scan_id,
        }
        event.update(change.model_dump(mode="json"))
        events.append(event)
    return events


def drift_to_jsonl(drift: Drift) -> str:
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in drift_events(drift))


def drift_to_json(drift: Drift) -> str:
    return drift.model_dump_json(indent=2) + "\n"


def drift_to_table(drift: Drift) -> str:
    head = (f"drift {drift.old.scan_id[:8]} ({drift.old.started_at:%Y-%m-%d %H:%M}) -> "
            f"{drift.new.scan_id[:8]} ({drift.new.started_at:%Y-%m-%d %H:%M})"
            f"{f' job {visible(drift.new.job)}' if drift.new.job else ''}")
    if not drift.changes:
        return f"{head}\nno changes\n"
    width = max(len(c.kind.value) for c in drift.changes)
    lines = [head]
    for c in drift.changes:
        seen = (f"  [first seen {c.first_seen:%Y-%m-%d %H:%M}]" if c.first_seen else "")
        # A summary quotes the device's product and version: peer text, shown not obeyed.
        lines.append(f"  {c.kind.value:<{width}}  {visible(c.summary)}{seen}")
    lines.append(f"{len(drift.changes)} change(s)")
    return "\n".join(lines) + "\n"

