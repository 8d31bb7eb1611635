"""The ``dicomscan`` command group: one module per command, assembled here.

Only click is imported at module level: the scan machinery (pydantic, pynetdicom,
rich) loads inside the commands that use it, so ``dicomscan --help`` answers at once.
"""

from __future__ import annotations

import click

from scanner import __version__
from scanner.cli.audit import audit
from scanner.cli.baselines import baselines
from scanner.cli.central import central
from scanner.cli.common import EXIT_CODES_HELP
from scanner.cli.demo import demo
from scanner.cli.history import diff, history
from scanner.cli.info import profiles, schema
from scanner.cli.jobs import jobs, submit_command
from scanner.cli.report import report
from scanner.cli.rules import rules
from scanner.cli.scan import scan
from scanner.cli.sensor import sensor
from scanner.cli.site import config_group, schedule


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="dicomscan")
def main() -> None:
    """DICOM network and device hardening scanner.

    Finds DICOM services on any port, checks TLS and AE title exposure and what an
    unknown peer may do, and reports findings with evidence. Safe by default: at
    most 2 connections at a time per host, nothing that writes or retrieves patient
    data, and public (internet) addresses are refused.

    \b
    First run:   dicomscan demo
    Typical:     dicomscan scan 10.20.0.0/24 --format table
    For a SIEM:  dicomscan scan -T targets.txt --format jsonl -o findings.jsonl
    """


for command in (scan, schema, profiles, demo, rules, baselines, audit, report, history, diff,
                config_group, schedule, central, sensor, submit_command, jobs):
    main.add_command(command)
