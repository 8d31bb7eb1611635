"""``dicomscan report``: render a saved scan again, in any format, without rescanning.

Reads a ``dicomscan scan --format json`` document and writes it as the same outputs a
scan would (repeatable ``-o``, ``--syslog``). Only click at module level, like the others.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from scanner.cli.audit import load_saved
from scanner.cli.common import (
    EXIT_OK,
    EXIT_OUTPUT,
    check_syslog,
    emit,
    output_options,
    plan_outputs,
    writer_options,
)

EXIT_HELP = """\b
Exit codes:
  0    every output written
  2    usage or input error (unreadable or not a saved scan, bad option)
  4    an output could not be written or sent (results kept in a temporary file,
       path printed; the other outputs were written)
"""


@click.command(epilog=EXIT_HELP)
@click.argument("scan_file", metavar="SCAN.json", type=click.Path(dir_okay=False))
@output_options
def report(**opts: Any) -> None:
    """Render a saved scan (dicomscan scan --format json) in other formats.

    \b
    Examples:
      dicomscan report scan.json --format html -o report.html
      dicomscan report scan.json -o findings.csv -o events.ocsf.json --ocsf-array
      dicomscan report scan.json --format jsonl --events findings,inventory,scan
    """
    plan = plan_outputs(opts)
    writer_options(opts)
    check_syslog(opts)
    result = load_saved(opts["scan_file"])
    sys.exit(EXIT_OK if emit(result, plan, opts) else EXIT_OUTPUT)
