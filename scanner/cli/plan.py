"""``dicomscan scan --plan``: the engine's plan of a scan, printed; nothing is sent."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from scanner.engine.plan import ScanPlan
    from scanner.engine.spans import TargetSpans
    from scanner.model import ScanSettings


def _text(p: ScanPlan) -> str:
    from scanner.outputs.escape import visible

    lines = [f"Plan (nothing sent): engine {p.engine}, profile {p.profile}",
             f"Hosts: {p.host_count}"]
    if p.targets is not None:
        for a in p.targets[:50]:
            lines.append(f"  {a}" + (f" ({visible(p.hostnames[a])})" if a in p.hostnames
                                     else ""))
        shown = min(len(p.targets), 50)
    else:  # too many to list: their ranges
        lines += [f"  {r}" for r in p.target_ranges[:50]]
        shown = sum(_size(r) for r in p.target_ranges[:50])
    if p.host_count > shown:
        lines.append(f"  ... and {p.host_count - shown} more")
    lines.append(f"Skipped (do not probe): {p.skipped_count}")
    # Reasons and entries are the user's file's text: no terminal sequence passes through.
    lines += [f"  {s.address}: {visible(s.reason)} [{visible(s.entry)}, {visible(s.source)}]"
              for s in p.skipped[:1000]]
    if p.skipped_count > min(len(p.skipped), 1000):
        lines.append(f"  ... and {p.skipped_count - min(len(p.skipped), 1000)} more")
    split = ", ".join(f"{k} {v}" for k, v in p.discovery_split.items() if v)
    lines.append(f"Discovery: {p.discovery} ({p.discovery_why})" + (f": {split}" if split else ""))
    lines += [f"  note: {visible(n)}" for n in p.discovery_notes]
    lines.append(f"Ports ({len(p.ports)}): {','.join(map(str, p.ports))}")
    lines.append("Probes, in order:")
    lines += [f"  {s.name}: {s.sends}" for s in p.probes]
    bound = str(p.max_connections_per_host) if p.max_connections_per_host else "unbounded"
    lines += [
        "Limits:",
        f"  per host: at most {p.per_host_connections} connections at once, "
        f"{p.probe_spacing:g} s between connection starts",
        f"  per host: at most {bound} connection starts in its {p.host_time_limit:g} s "
        f"time limit; {p.max_discovery_packets_per_host} discovery packet (ARP/ICMP)",
        f"  whole scan: at most {p.max_concurrency} connections at once, "
        + (f"{p.max_rate:g} new connections/s" if p.max_rate else "no rate cap"),
    ]
    lines += [f"Note: {visible(n)}" for n in p.notes]
    return "\n".join(lines) + "\n"


def _size(text: str) -> int:
    import ipaddress

    first, _, last = text.partition("-")
    return int(ipaddress.ip_address(last or first)) - int(ipaddress.ip_address(first)) + 1


def _json(p: ScanPlan, history: dict[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {**asdict(p), "skipped": [s.model_dump() for s in p.skipped]}
    if history is not None:
        doc["history"] = history
    return json.dumps(doc, indent=2) + "\n"


def print_plan(settings: ScanSettings, fmt: str, targets: TargetSpans | None = None,
               history: dict[str, Any] | None = None) -> None:
    """On stdout: JSON with ``--format json`` or ``jsonl``, else text. No file is written.
    ``history``: where the scan would be recorded (``recording.planned_store``)."""
    from scanner.engine.plan import build_plan

    plan = build_plan(settings, targets)
    if fmt in ("json", "jsonl"):
        click.echo(_json(plan, history), nl=False)
        return
    text = _text(plan)
    if history is not None:
        from scanner.outputs.escape import visible

        state = {True: "there", False: "new: made by the scan", None: "not connected to"}
        text += (f"History: {visible(history['store'])} ({state[history['exists']]})"
                 + (f", job {visible(history['job'])}" if history["job"] else "") + "\n")
    click.echo(text, nl=False)
