"""``--format jsonl``: one self-describing event per line, for a SIEM's agent tailing a
file (Filebeat, Splunk's forwarder, Fluent Bit, Vector).

Every line has ``event_type``:

- ``finding``: one per finding, with the scan's id and times and every field of the
  finding (the lines of earlier versions, unchanged, plus ``event_type``);
- ``inventory``: one per device: device_id, address, MAC, vendor, role, services and
  products (with ``--events inventory``);
- ``scan_start`` / ``scan_end``: the scan's targets, profile and ports, and at the end its
  counts and whether it was interrupted (with ``--events scan``).

``extra`` events (e.g. the history's drift events) are appended as given, after the scan's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any

from scanner.model import Host, ScanResult
from scanner.outputs.pieces import Pieces


class EventType(StrEnum):
    FINDING = "finding"
    INVENTORY = "inventory"
    SCAN = "scan"  # chooses both scan_start and scan_end


def _common(result: ScanResult) -> dict[str, Any]:
    meta = result.scan
    return {
        "schema_version": result.schema_version,
        "scan_id": meta.id,
        "scan_started_at": meta.started_at.isoformat(),
        "scan_finished_at": meta.finished_at.isoformat(),
        "tool": meta.tool,
        "tool_version": meta.tool_version,
    }


def inventory_event(host: Host) -> dict[str, Any]:
    """What the scan learnt about one device."""
    return {
        "device_id": host.device_id,
        "address": host.address,
        "hostname": host.hostname,
        "mac": host.mac,
        "mac_vendor": host.mac_vendor,
        "role": host.role,
        "role_confidence": host.role_confidence,
        "open_ports": sorted(p.port for p in host.ports if p.state.value == "open"),
        "services": [
            {"port": s.port, "protocol": s.protocol.value, "name": s.name, "tls": s.tls,
             "product": s.product, "version": s.version}
            for s in host.services
        ],
        "products": sorted({s.product for s in host.services if s.product}),
        # From the scan history; None for a scan that was not stored.
        "first_seen": host.first_seen.isoformat() if host.first_seen else None,
        "last_seen": host.last_seen.isoformat() if host.last_seen else None,
    }


def jsonl_events(
    result: ScanResult,
    events: Iterable[EventType] = (EventType.FINDING,),
    extra: Iterable[dict[str, Any]] = (),
) -> Iterator[dict[str, Any]]:
    """The events in file order, one at a time (never all of them in memory at once)."""
    chosen = set(events)
    common = _common(result)
    meta = result.scan
    if EventType.SCAN in chosen:
        yield {"event_type": "scan_start", **common, "targets": meta.targets,
               "profile": meta.profile.value, "ports": meta.ports,
               "engine": meta.engine.value}
    if EventType.INVENTORY in chosen:
        for h in result.hosts:
            yield {"event_type": "inventory", **common, **inventory_event(h)}
    if EventType.FINDING in chosen:
        for f in result.findings:
            yield {"event_type": "finding", **common, **f.model_dump(mode="json")}
    if EventType.SCAN in chosen:
        statuses = Counter(f.status.value for f in result.findings)
        yield {"event_type": "scan_end", **common, "interrupted": meta.interrupted,
               "hosts": len(result.hosts), "findings": len(result.findings),
               "by_status": dict(sorted(statuses.items())),
               "errors": [e.model_dump(mode="json") for e in meta.errors]}
    yield from extra


def to_jsonl(
    result: ScanResult,
    events: Iterable[EventType] = (EventType.FINDING,),
    extra: Iterable[dict[str, Any]] = (),
) -> str:
    return jsonl_pieces(result, events, extra).text()


def jsonl_pieces(
    result: ScanResult,
    events: Iterable[EventType] = (EventType.FINDING,),
    extra: Iterable[dict[str, Any]] = (),
) -> Pieces:
    """One line per event, made as the file is written."""
    chosen, appended = tuple(events), tuple(extra)
    return Pieces(lambda: (json.dumps(e, separators=(",", ":")) + "\n"
                           for e in jsonl_events(result, chosen, appended)))
