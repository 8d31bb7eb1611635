"""The port audit as a table for a terminal or a printout (rich, no colour)."""

from __future__ import annotations

from typing import Any

from scanner.outputs.escape import for_rich as esc


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
    return esc("; ".join(parts) or "no baseline verdict")


def to_table(doc: dict[str, Any], width: int = 160) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, force_terminal=False)
    s = doc["scan"]
    console.print(f"dicomscan port audit  scan {s['id']}  from {esc(s['source'])}")
    console.print(f"scan time: {s['started_at']} to {s['finished_at']}")
    for d in doc["devices"]:
        name = esc(d["address"] + (f" ({d['hostname']})" if d["hostname"] else ""))
        table = Table(
            title=f"{name}: {d['result']}  baseline {esc(d['baseline'] or '-')} "
            f"({esc(d['selected_by'] or '-')})",
            title_justify="left",
        )
        table.add_column("port", no_wrap=True)
        table.add_column("service")
        table.add_column("verdict", no_wrap=True)
        table.add_column("measured at", no_wrap=True)
        table.add_column("evidence")
        for p in d["ports"]:
            table.add_row(
                f"{p['port']}/tcp", esc(p["service"]), esc(p["verdict"]), p["measured_at"] or "-",
                _evidence_text(p["evidence"]),
            )
        if not d["ports"]:
            table.add_row("-", "-", "no open port", "-", "-")
        console.print(table)
        for reason in d["reasons"]:
            console.print(f"  FAIL because {esc(reason)}")
        if d["other_failed_findings"]:
            console.print("  other failed checks: " + esc(", ".join(d["other_failed_findings"])))
    if "framework" in doc:
        fw = doc["framework"]
        table = Table(title=f"{fw['title']} ({fw['id']}): {fw['result']}", title_justify="left")
        for col in ("requirement", "title", "status", "failed checks"):
            table.add_column(col)
        for r in fw["requirements"]:
            failed = ", ".join(r["failed"][:5]) + (" ..." if len(r["failed"]) > 5 else "")
            status = r["status"] + (f" ({r['waived']} waived)" if r["waived"] else "")
            table.add_row(esc(r["id"]), esc(r["title"]), esc(status), esc(failed or "-"))
        console.print(table)
    counts = [d["result"] for d in doc["devices"]]
    console.print(
        f"OVERALL: {doc['result']}  ({counts.count('PASS')} of {len(counts)} devices pass)"
    )
    return buffer.getvalue()
