"""``dicomscan submit`` (queue a scan for a sensor) and ``dicomscan jobs`` (their state)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from scanner.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, build_settings, say
from scanner.cli.numbers import FiniteRange
from scanner.cli.scan import scan
from scanner.cli.site import apply_site_config

# The scan's own options that make sense on another machine: no local file paths of
# client certificates, no outputs (the result goes to the central history). Files that
# are read here (--exclude-file, --policy, --ae-wordlist) travel as their content.
_KEEP = {"targets", "targets_file", "ports", "exclude", "scope", "allow_public", "profile",
         "calling_ae", "ae_title", "ae_guess", "ae_wordlist", "intrusive", "timeout",
         "connect_timeout", "baseline", "policy", "discovery", "engine", "service_version",
         "config", "job", "exclude_file", "max_addresses", "max_rate"}
_SCAN_PARAMS = [p for p in scan.params if p.name in _KEEP]


def _submit(directory: Path, sensor: str, **opts: Any) -> None:
    """Queue a scan of TARGETS for sensor NAME; prints the job ID.

    Takes the scan command's target and probe options (see 'dicomscan scan --help');
    the targets must lie inside the sensor's scope.
    """
    import asyncio

    from scanner.fleet.central import submit
    from scanner.fleet.layout import CentralDir, FleetError

    d = CentralDir(directory)
    try:
        d.load()  # a missing or broken central directory is the user's input: exit 2
    except FleetError as exc:
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE)
    opts = apply_site_config(opts)
    settings = build_settings(opts)
    try:
        job_id = asyncio.run(submit(d, sensor, settings, opts.get("job")))
    except FleetError as exc:
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE if "scope" in str(exc) or "no sensor" in str(exc) else EXIT_FAILED)
    click.echo(job_id)


submit_command = click.Command(
    "submit", callback=_submit, help=_submit.__doc__,
    params=[click.Argument(["directory"], type=click.Path(file_okay=False, path_type=Path)),
            click.Option(["--sensor"], required=True, metavar="NAME",
                         help="The sensor that runs the scan."),
            *_SCAN_PARAMS])


def _show(rows: list[Any]) -> str:
    # A failed job's reason is the sensor's text, targets the submitter's: no terminal
    # sequence in either reaches the terminal.
    from scanner.outputs.escape import visible

    lines = [f"{'JOB':<12} {'SENSOR':<12} {'STATE':<8} {'PROGRESS':>9} {'TRY':>3}  "
             "TARGETS / RESULT"]
    for r in rows:
        prog = f"{r.done}/{r.total}" if r.total else "-"
        tail = r.scan_id or r.reason or r.targets
        lines.append(f"{visible(r.job_id[:12]):<12} {visible(r.sensor):<12} "
                     f"{r.state.value:<8} {prog:>9} {r.delivery:>3}  {visible(str(tail))}")
    return "\n".join(lines) + "\n"


@click.command("jobs")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--wait", "wait_for", metavar="ID",
              help="Wait until this job is done or failed; exit 0 when done, 3 when failed.")
@click.option("--timeout", type=FiniteRange(0.1), default=3600, show_default=True,
              metavar="SECONDS", help="Give up --wait after this long (exit 3).")
@click.option("--json", "as_json", is_flag=True, help="JSON, one object per job.")
def jobs(directory: Path, wait_for: str | None, timeout: float, as_json: bool) -> None:
    """Jobs queued at the central DIRECTORY and their state: queued, running (with
    progress), done (with the stored scan's ID) or failed (with why)."""
    from scanner.fleet.layout import CentralDir, FleetError
    from scanner.fleet.ledger import FINAL, JobState, Ledger

    d = CentralDir(directory)
    try:
        d.load()
        ledger = Ledger(d.ledger)
    except FleetError as exc:
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE)
    from sqlalchemy.exc import SQLAlchemyError

    try:
        if wait_for is None:
            rows = ledger.all()
            click.echo("".join(r.model_dump_json() + "\n" for r in rows) if as_json
                       else _show(rows), nl=False)
            for why in ledger.damaged:  # left out: the list is incomplete, so not exit 0
                click.echo(f"dicomscan: left out a {why}", err=True)
            sys.exit(EXIT_FAILED if ledger.damaged else EXIT_OK)
        deadline = time.monotonic() + timeout
        row = ledger.find(wait_for)
        if row is None:
            click.echo(f"dicomscan: no single job matches {wait_for!r}", err=True)
            sys.exit(EXIT_USAGE)
        while row.state not in FINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            row = ledger.get(row.job_id) or row
    except FleetError as exc:  # the job asked for is a damaged row
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE)
    except SQLAlchemyError as exc:  # e.g. a damaged page: "database disk image is malformed"
        why = " ".join(str(getattr(exc, "orig", None) or exc).split())
        click.echo(f"dicomscan: cannot read the job ledger {d.ledger}: {why}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        ledger.close()
    click.echo(row.model_dump_json() if as_json else _show([row]), nl=False)
    sys.exit(EXIT_OK if row.state is JobState.DONE else EXIT_FAILED)
