"""The scan command's ``--history``/``--job``: the scan is recorded as running before it
starts and stored whole when it ends, with the drift since the job's previous complete scan.

Kept apart from the ``history`` and ``diff`` commands (``scanner/cli/history.py``) so a
scan loads only this; the store itself (SQLAlchemy) loads only when a history is used.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scanner.cli.common import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    say,
)

if TYPE_CHECKING:
    from scanner.history.store import HistoryStore
    from scanner.model import ScanResult, ScanSettings
    from scanner.model.drift import Drift

F = TypeVar("F", bound=Callable[..., Any])

HISTORY_HELP = ("History store: a SQLite file path or a database URL "
                "(postgresql://user@host/db). Default: history.sqlite in the user's data "
                "directory.")


def history_option(func: F) -> F:
    return click.option("--history", "history", metavar="PATH|URL", help=HISTORY_HELP)(func)


def check_kinds(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    drift_kinds(value)
    return value


FAIL_ON_DRIFT_HELP = ("Exit 1 when a change of these kinds is found: comma-separated, or "
                      "'any'. Kinds: device-appeared, device-vanished, port-opened, "
                      "port-closed, service-changed, tls-changed, ae-policy-changed, "
                      "operations-changed, finding-new, finding-resolved, finding-reopened.")


def scan_history_options(func: F) -> F:
    """The scan command's history options: where to store, and drift since the last scan."""
    func = click.option("--drift-output", type=click.Path(dir_okay=False),
                        metavar="[FORMAT:]FILE",
                        help="With --job: write the drift since the job's previous complete "
                             "scan here as events: jsonl (event_type: drift), ocsf or cef; "
                             "FORMAT: or the ending (.ocsf.json, .cef) chooses, else jsonl. "
                             "With --syslog the drift is also sent there as CEF.")(func)
    func = click.option("--fail-on-drift", metavar="KINDS", callback=check_kinds,
                        help="With --job: " + FAIL_ON_DRIFT_HELP)(func)
    return history_option(func)


def open_store(location: str | None, *, existing: bool = False) -> HistoryStore:
    """The store, or one line and exit 2. ``existing``: for commands that only read, a
    path given that holds nothing is an error; opening it made its folders and an empty
    store, so a typo listed "no scans" (exit 0) and left folders behind."""
    from scanner.history.store import HistoryError, HistoryStore

    if existing and location and "://" not in location \
            and not Path(location).expanduser().exists():
        say(f"dicomscan: no history at {location}: nothing is stored there (a scan with "
            f"--history {location} starts one)")
        sys.exit(EXIT_USAGE)
    if location and "://" not in location and (why := _not_a_store(location, existing)):
        say(f"dicomscan: no history at {location}: {why}")
        sys.exit(EXIT_USAGE)
    try:
        return HistoryStore.open(location, writing=not existing)
    except HistoryError as exc:
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE)


def planned_store(opts: dict[str, Any]) -> dict[str, Any] | None:
    """What ``scan --plan`` says of the history the scan would record in: where, for which
    job, and whether a store is there yet. The checks a scan makes of a history file
    before any packet run too, as reads only (nothing is created or upgraded): a path that
    cannot be a history, or one SQLite could not write, is one line and exit 2, as it is
    for the scan. A database URL is shown (without its password), not connected to."""
    if not opts.get("history") and not opts.get("job"):
        return None
    from scanner.history.store import database_url, default_location

    location: str | None = opts.get("history")
    if location and "://" in location:
        from sqlalchemy.engine import make_url

        shown = make_url(database_url(location)).render_as_string()
        return {"store": shown, "job": opts.get("job"), "exists": None}
    path = (Path(location).expanduser() if location else default_location()).absolute()
    if why := _not_a_store(str(path), existing=False):
        say(f"dicomscan: no history at {location or path}: {why}")
        sys.exit(EXIT_USAGE)
    if why := _unwritable(path):
        say(f"dicomscan: cannot open the history {why}")  # the scan's own words
        sys.exit(EXIT_USAGE)
    return {"store": str(path), "job": opts.get("job"), "exists": path.exists()}


def _unwritable(path: Path) -> str | None:
    """``PATH: why`` SQLite could not record in the file at ``path`` (read-only access,
    not a database), found without writing; None when it could, or when there is no file
    yet."""
    import sqlite3

    from scanner.history.sqlite_wal import access_problem

    if not path.exists() or path.stat().st_size == 0:
        return None
    if why := access_problem(str(path), writing=True):
        return why
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return f"{path}: {exc}"
    return None


def _not_a_store(location: str, existing: bool) -> str | None:
    """Why an existing path cannot be a history file: SQLite said only "disk I/O error" for
    a named pipe or a device, and took an empty file as a new store, so a command that
    only reads wrote a whole schema into it and listed "no scans"."""
    import stat

    try:
        info = Path(location).expanduser().stat()
    except OSError:
        return None  # nothing there (yet): the checks above and the store say what
    if not stat.S_ISREG(info.st_mode):
        from scanner.model.documents import file_kind

        return f"{file_kind(info.st_mode)}, not a history file"
    if existing and info.st_size == 0:
        return ("the file is empty (0 bytes), so nothing is stored there (a scan with "
                f"--history {location} starts one)")
    return None


def db_error(exc: BaseException) -> str:
    """A database error on one line: the driver's own text, without SQLAlchemy's SQL and
    link (a damaged SQLite page is "database disk image is malformed")."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


@contextmanager
def reading_history(store: HistoryStore) -> Iterator[None]:
    """Around a command that reads the store: a scan it cannot read (unknown, damaged)
    or a file the database cannot read is one line and exit 2; damaged scans it only
    passed over are said on stderr afterwards (say_damaged)."""
    from sqlalchemy.exc import SQLAlchemyError

    from scanner.history.store import HistoryError

    try:
        yield
    except HistoryError as exc:
        say_damaged(store)
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE)
    except SQLAlchemyError as exc:
        say(f"dicomscan: cannot read the history {store.engine.url.render_as_string()}: "
            f"{db_error(exc)}")
        sys.exit(EXIT_USAGE)


def say_damaged(store: HistoryStore) -> bool:
    """One stderr line per damaged scan left out; True when there was any."""
    for why in store.damaged.values():
        click.echo(f"dicomscan: history: left out a damaged scan: {why}", err=True)
    shown, store.damaged = bool(store.damaged), {}
    return shown


def write_text(text: str, output: str | None) -> bool:
    """To stdout, or atomically to a file (a reader never sees half a report). False when
    the file could not be written: said on stderr with where the text was kept instead.
    (click's FileError made that exit 1, which reads as "drift found".)"""
    from scanner.cli.common import write_output

    if output is None or output == "-":
        click.echo(text, nl=False)
        return True
    return write_output(output, text)


# --- the scan command's hook ------------------------------------------------------------


def begin_recording(opts: dict[str, Any], settings: ScanSettings) -> HistoryStore | None:
    """With --history or --job: the store, after recording this scan as running."""
    if not opts.get("history") and not opts.get("job"):
        return None
    from sqlalchemy.exc import SQLAlchemyError

    store = open_store(opts.get("history"))
    try:
        store.begin(settings.scan_id, opts.get("job"), settings.target_specs,
                    settings.profile.value)
    except SQLAlchemyError as exc:  # no scan without its trace: say so before any packet
        click.echo(f"dicomscan: history: cannot record the scan: {db_error(exc)}", err=True)
        sys.exit(EXIT_FAILED)
    return store


def finish_recording(store: HistoryStore | None, result: ScanResult, interrupted: bool,
                     opts: dict[str, Any]) -> tuple[ScanResult, int]:
    """Store the result, then the drift since the job's previous complete scan (drift
    outputs, --fail-on-drift). Returns the result with first and last seen from the
    history (for every output), and 1 when drift of a failing kind was found, else 0.
    If the store fails the report is still written (the scan stays 'running', i.e.
    partial, in the history) and the failure is said on stderr."""
    if store is None:  # no history: none of its machinery is imported (start-up time)
        return result, EXIT_OK
    from sqlalchemy.exc import SQLAlchemyError

    from scanner.history.store import HistoryError
    from scanner.history.timeline import with_seen

    try:
        try:
            store.record(result, opts.get("job"), interrupted)
        except SQLAlchemyError as exc:
            click.echo(f"dicomscan: history: could not store scan {result.scan.id}: "
                       f"{db_error(exc)}", err=True)
            return result, EXIT_OK
        missing = "first/last seen"
        result = with_seen(store, result, opts.get("job"))
        if interrupted or result.scan.interrupted or not opts.get("job"):
            return result, EXIT_OK
        missing = "drift"
        return result, _drift_after_scan(store, result.scan.id, opts)
    except (HistoryError, SQLAlchemyError) as exc:
        # Stored, but the history around it could not be read (a damaged earlier scan):
        # drift was not measured, which is not "no drift".
        why = exc if isinstance(exc, HistoryError) else db_error(exc)
        click.echo(f"dicomscan: history: scan {result.scan.id} stored, but no {missing}: "
                   f"{why}", err=True)
        return result, EXIT_FAILED
    finally:
        say_damaged(store)
        store.close()


def _drift_after_scan(store: HistoryStore, scan_id: str, opts: dict[str, Any]) -> int:
    from scanner.history.timeline import stored_drift
    from scanner.outputs.registry import DRIFT_WRITERS, drift_file

    kinds, output = drift_kinds(opts.get("fail_on_drift")), opts.get("drift_output")
    if not kinds and not output and not opts.get("syslog"):
        return EXIT_OK
    now = store.find(scan_id)
    earlier = [s for s in store.scans(opts["job"], complete_only=True)
               if s.started_at < now.started_at]
    if not earlier:
        click.echo(f"dicomscan: drift: first complete scan of job {opts['job']}, nothing "
                   "to compare with", err=True)
        return EXIT_OK
    drift = stored_drift(store, earlier[0].scan_id, scan_id, opts["job"])
    if output:
        fmt, path = drift_file(output)
        written = write_text(DRIFT_WRITERS[fmt](drift), path)
    else:
        written = True
    click.echo(f"dicomscan: drift since {earlier[0].scan_id[:8]}: {len(drift.changes)} "
               "change(s)", err=True)
    sent = send_drift_syslog(drift, opts.get("syslog"), opts.get("syslog_ca"))
    found = {c.kind.value for c in drift.changes} & kinds
    if found:
        click.echo(f"dicomscan: drift: {', '.join(sorted(found))}", err=True)
    return EXIT_FINDINGS if found else EXIT_OK if sent and written else EXIT_OUTPUT


def send_drift_syslog(drift: Drift, url: str | None, ca_file: str | None) -> bool:
    """Each change as CEF over syslog, if a URL is given; False (said) when it failed."""
    if not url or not drift.changes:
        return True
    from scanner.outputs.syslog import SyslogError, send_drift

    try:
        sent = send_drift(drift, url, ca_file=ca_file)
    except SyslogError as exc:
        click.echo(f"dicomscan: syslog: {exc}; drift not sent", err=True)
        return False
    click.echo(f"dicomscan: syslog: sent {sent} drift event(s) to {url}", err=True)
    return True


def drift_kinds(value: str | None) -> set[str]:
    if not value:  # before the import: the scan calls this for every run (start-up time)
        return set()
    from scanner.model.drift import DriftKind

    names = {k.strip() for k in value.split(",") if k.strip()}
    if "any" in names:
        return {k.value for k in DriftKind}
    unknown = names - {k.value for k in DriftKind}
    if unknown:
        raise click.BadParameter(f"unknown drift kind(s): {', '.join(sorted(unknown))}; "
                                 f"kinds: {', '.join(k.value for k in DriftKind)}, any",
                                 param_hint="--fail-on-drift")
    return names
