"""``dicomscan history list|show|prune`` and ``dicomscan diff``. The scan command's
``--history``/``--job`` are in ``scanner/cli/recording.py``."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from scanner.cli.common import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_OUTPUT,
    check_syslog,
    refuse_clashes,
    say,
)
from scanner.cli.recording import (
    FAIL_ON_DRIFT_HELP,
    check_kinds,
    db_error,
    drift_kinds,
    history_option,
    open_store,
    reading_history,
    say_damaged,
    send_drift_syslog,
    write_text,
)

if TYPE_CHECKING:
    from scanner.history.store import HistoryStore, StoredScan
    from scanner.model import ScanResult


def _check_syslog(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        check_syslog({"syslog": value})
    return value


# --- history list | show -------------------------------------------------------------------


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def scan_line(s: StoredScan) -> str:
    from scanner.outputs.escape import visible

    took = (f"{(s.finished_at - s.started_at).total_seconds():.1f}s"
            if s.finished_at else "-")
    mark = s.status.value + (" (partial)" if s.partial else "")
    job = visible(s.job) if s.job else "-"  # a job name may come from a sensor's message
    return (f"{visible(s.scan_id[:8])}  {job:<14} {mark:<24} {_when(s.started_at)}  "
            f"{took:>8}  {s.hosts:>5}  {s.services:>8}  {s.findings:>8}  {s.failed:>6}")


@click.group()
def history() -> None:
    """Stored scans: list them, show one with first and last seen, prune old ones."""


@history.command("list")
@history_option
@click.option("--job", help="Only this job's scans.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def list_scans(history: str | None, job: str | None, limit: int, fmt: str) -> None:
    """Scans, newest first, with times, counts and partial marks."""
    store = open_store(history, existing=True)
    with reading_history(store):
        scans = store.scans(job, limit=limit)
    if fmt == "json":
        click.echo(json.dumps([{**s.model_dump(mode="json"), "partial": s.partial}
                               for s in scans], indent=2))
    else:
        click.echo(f"{'scan':<8}  {'job':<14} {'status':<24} {'started (UTC)':<19}  "
                   f"{'took':>8}  {'hosts':>5}  {'services':>8}  {'findings':>8}  "
                   f"{'failed':>6}")
        for s in scans:
            click.echo(scan_line(s))
    if say_damaged(store):  # the list is incomplete: not the all-clear of exit 0
        sys.exit(EXIT_FAILED)


def _seen_rows(store: HistoryStore, stored: StoredScan, result: ScanResult | None,
               devices: list[dict[str, Any]], findings: list[dict[str, Any]]) -> None:
    """The devices that answered and the failed findings, with first and last seen."""
    if result is None:
        return
    from scanner.history.drift import device_seen
    from scanner.history.timeline import devices_seen, findings_seen

    hosts = [h for h in result.hosts if device_seen(h)]
    failed = [f for f in result.findings if f.status.value == "fail"]
    dseen = devices_seen(store, (h.device_id for h in hosts), job=stored.job,
                         until=stored.started_at)
    fseen = findings_seen(store, (f.finding_id for f in failed), job=stored.job,
                          until=stored.started_at)
    for h in hosts:
        first, last = dseen.get(h.device_id, (None, None))
        devices.append({"device_id": h.device_id, "address": h.address, "mac": h.mac,
                        "open_ports": sorted(p.port for p in h.ports
                                             if p.state.value == "open"),
                        "first_seen": first, "last_seen": last})
    for f in failed:
        first, last = fseen.get(f.finding_id, (None, None))
        findings.append({"finding_id": f.finding_id, "rule_id": f.rule_id,
                         "severity": f.severity.value, "host": f.host, "port": f.port,
                         "first_seen": first, "last_seen": last})


@history.command("show")
@click.argument("scan_ref", metavar="SCAN")
@history_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def show(scan_ref: str, history: str | None, fmt: str) -> None:
    """One stored scan: devices and failed findings, each with first and last seen."""
    store = open_store(history, existing=True)
    devices: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    # an unknown, ambiguous or damaged scan: input, so exit 2
    with reading_history(store):
        stored = store.find(scan_ref)
        result = store.load(stored.scan_id) if stored.status.value != "running" else None
    with reading_history(store):
        _seen_rows(store, stored, result, devices, findings)
    say_damaged(store)  # scans left out of first/last seen
    if fmt == "json":
        doc = {"scan": {**stored.model_dump(mode="json"), "partial": stored.partial},
               "devices": devices, "findings": findings}
        click.echo(json.dumps(doc, indent=2, default=lambda v: v.isoformat()))
        return
    click.echo(scan_line(stored))
    for d in devices:
        click.echo(f"  device {d['address']:<16} {d['device_id'][:12]}  ports "
                   f"{','.join(map(str, d['open_ports'])) or '-'}  first seen "
                   f"{_when(d['first_seen'])}  last seen {_when(d['last_seen'])}")
    for row in findings:
        where = f"{row['host']}{'' if row['port'] is None else ':' + str(row['port'])}"
        click.echo(f"  fail   {row['rule_id']:<36} {where:<22} first seen "
                   f"{_when(row['first_seen'])}  last seen {_when(row['last_seen'])}")


# --- history prune ------------------------------------------------------------------------

PRUNE_EPILOG = """\b
A scan is deleted when it matches every rule given:
  --older-than 90d            started more than 90 days ago
  --keep 30                   not among the 30 newest scans of its job
  --older-than 90d --keep 30  both: old, and not among the job's 30 newest
The newest complete scan of every job is always kept (drift and first/last seen
compare against it). Scans without a --job form one group. First seen then means
first seen in the scans kept. Damaged scans are left alone (said on stderr).

\b
Exit codes:
  0    done (or nothing to delete); with --dry-run nothing is changed
  2    usage error: no rule, a bad age, no store at --history
  3    the database refused the deletion (nothing was deleted: one transaction)
"""


def _age(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    from scanner.model.ages import AgeError, parse_age

    if value is None:
        return None
    try:
        return parse_age(value)
    except AgeError as exc:
        raise click.BadParameter(str(exc)) from None


@history.command("prune", epilog=PRUNE_EPILOG)
@history_option
@click.option("--older-than", "older_than", metavar="AGE", callback=_age,
              help="Delete scans started longer ago than this: 36h, 90d, 12w.")
@click.option("--keep", "keep_last", type=click.IntRange(1, 1_000_000), metavar="N",
              help="Keep the N newest scans of each job; delete the rest.")
@click.option("--job", help="Only this job's scans (default: every job's).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--vacuum", is_flag=True,
              help="SQLite: afterwards give the freed space back to the file system "
                   "(rewrites the file; otherwise later scans reuse the space).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing but errors (for a timer or cron line).")
def prune(history: str | None, older_than: timedelta | None, keep_last: int | None,
          job: str | None, dry_run: bool, vacuum: bool, fmt: str, quiet: bool) -> None:
    """Delete old stored scans: by age (--older-than), by count per job (--keep) or both.

    A store that records a scheduled scan every day grows without end; run this after
    the scan (the same cron line or timer) to keep it bounded."""
    from sqlalchemy.exc import SQLAlchemyError

    from scanner.history.retention import compact, delete_scans, plan_prune
    from scanner.model import utcnow

    if older_than is None and keep_last is None:
        raise click.UsageError("say what to delete: --older-than AGE, --keep N or both")
    store = open_store(history, existing=True)
    with reading_history(store):
        plan = plan_prune(store.scans(job), now=utcnow(), older_than=older_than,
                          keep_last=keep_last)
    say_damaged(store)
    deleted = 0
    if plan.delete and not dry_run:
        try:
            deleted = delete_scans(store, plan.delete)
            compact(store, rewrite=vacuum)
        except SQLAlchemyError as exc:
            say(f"dicomscan: cannot prune the history {store.engine.url.render_as_string()}: "
                f"{db_error(exc)}")
            sys.exit(EXIT_FAILED)
    if vacuum and store.engine.dialect.name != "sqlite":  # asked for, and not done: say so
        say("dicomscan: --vacuum is for SQLite stores; PostgreSQL's autovacuum gives the "
            "space back on its own")
    if quiet:
        return
    if fmt == "json":
        click.echo(json.dumps({
            "dry_run": dry_run, "deleted": deleted,
            "scans": [{**s.model_dump(mode="json"), "partial": s.partial} for s in plan.delete],
            "kept": len(plan.keep) + len(plan.protected),
            "kept_as_newest_complete": [s.scan_id for s in plan.protected]}, indent=2))
        sys.exit(EXIT_OK)
    verb = "would delete" if dry_run else "deleted"
    for s in plan.delete:
        click.echo(f"{verb:<12}  {scan_line(s)}")
    for s in plan.protected:
        click.echo(f"{'kept':<12}  {scan_line(s)}  (newest complete scan of its job)")
    count = len(plan.delete) if dry_run else deleted
    click.echo(f"{verb} {count} scan{'' if count == 1 else 's'}; "
               f"{len(plan.keep) + len(plan.protected)} kept")


# --- diff ------------------------------------------------------------------------------------

DRIFT_EXIT_HELP = """\b
Exit codes:
  0    no drift of the kinds in --fail-on-drift (or none given)
  1    drift of at least one of those kinds
  2    usage error: unknown scan, not two complete scans, bad store
  4    --syslog could not be reached (the drift was still written), or -o could not
       be written (the drift kept in a temporary file, path printed)
"""


@click.command(epilog=DRIFT_EXIT_HELP)
@click.argument("old", required=False)
@click.argument("new", required=False)
@history_option
@click.option("--job", help="Whose scans to compare (default: the last two complete ones).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "ocsf", "cef"]),
              default="table", show_default=True,
              help="For a SIEM, one event per change: jsonl ('event_type: drift'), ocsf "
                   "(OCSF 1.8.0: 5001 for inventory changes, 2003 for findings) or cef.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option("--fail-on-drift", metavar="KINDS", callback=check_kinds,
              help=FAIL_ON_DRIFT_HELP)
@click.option("--syslog", metavar="URL", callback=_check_syslog,
              help="Also send each change as CEF in an RFC 5424 syslog message (MSGID "
                   "drift): udp://, tcp:// or tls://HOST:PORT.")
@click.option("--syslog-ca", type=click.Path(exists=True, dir_okay=False),
              help="CA bundle that signed the syslog receiver's certificate (tls://).")
def diff(old: str | None, new: str | None, history: str | None, job: str | None, fmt: str,
         output: str | None, fail_on_drift: str | None, syslog: str | None,
         syslog_ca: str | None) -> None:
    """What changed between two stored scans: OLD and NEW (IDs or unique prefixes), or the
    last two complete scans of --job (or of the whole history)."""
    from scanner.history.store import HistoryError
    from scanner.history.timeline import stored_drift
    from scanner.outputs.registry import DRIFT_WRITERS

    kinds = drift_kinds(fail_on_drift)
    if output and output != "-":  # -o the history itself replaced it with the drift
        refuse_clashes([("-o", output)], {"history": history, "syslog_ca": syslog_ca})
    if old is not None and new is None:
        new, old = old, None  # one scan given: compare it with the one before it
    store = open_store(history, existing=True)
    with reading_history(store):
        if old is None and new is not None:
            target = store.find(new)
            earlier = [s for s in store.scans(job or target.job, complete_only=True)
                       if s.started_at < target.started_at]
            if not earlier:
                raise HistoryError(f"no complete scan before {target.scan_id[:8]}")
            old = earlier[0].scan_id
        drift = stored_drift(store, old, new, job)
    say_damaged(store)  # left out of the choice of scans or of first/last seen
    written = write_text(DRIFT_WRITERS[fmt](drift), output)
    sent = send_drift_syslog(drift, syslog, syslog_ca)
    found = {c.kind.value for c in drift.changes} & kinds
    if found:
        click.echo(f"dicomscan: drift: {', '.join(sorted(found))}", err=True)
    sys.exit(EXIT_FINDINGS if found else EXIT_OK if sent and written else EXIT_OUTPUT)
