"""What the commands share: exit codes, options turned into settings, running a scan
with a progress bar, writing its output, and the exit code it earns.

Only click is imported at module level: the scan machinery (pydantic, pynetdicom,
rich) loads inside the commands that use it, so ``dicomscan --help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from scanner.model import ScanResult, ScanSettings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SEVERITIES = ("info", "low", "medium", "high", "critical")

EXIT_CODES_HELP = """\b
Exit codes:
  0    no failed finding at or above --fail-on
  1    failed findings at or above --fail-on
  2    usage or input error (bad target, port list, file)
  3    the scan itself failed
  130  interrupted (Ctrl-C); what was found so far is still written
"""


def build_settings(opts: dict[str, Any]) -> ScanSettings:
    """The engine's settings from command-line options; a bad option is a usage error."""
    from scanner.engine.settings import SettingsError
    from scanner.engine.settings import build_settings as from_options

    try:
        return from_options(opts)
    except SettingsError as exc:
        if exc.usage:
            raise click.UsageError(str(exc)) from None
        raise click.BadParameter(str(exc), param_hint=exc.param) from None


def run_scan(settings: ScanSettings, show_progress: bool) -> tuple[ScanResult, bool]:
    """Run the job with a progress bar on request; on Ctrl-C return what was found so far.
    Second value: interrupted."""
    from scanner.engine.run import run_scan as run
    from scanner.outputs.progress import progress_reporter

    with progress_reporter(show_progress) as report:
        return run(settings, progress=report)


def emit(result: ScanResult, fmt: str, output: str | None) -> None:
    from scanner.outputs.registry import render

    text = render(result, fmt, color=fmt == "table" and output is None and sys.stdout.isatty())
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(output, str(exc)) from None


def say_discovery(result: ScanResult, quiet: bool) -> None:
    """Which discovery method ran and why, and any method skipped, on stderr."""
    info = result.scan.discovery
    if info is None:
        return
    for note in info.notes:
        click.echo(f"dicomscan: discovery: {note}", err=True)
    if not quiet and info.used.value != "none":
        click.echo(f"dicomscan: discovery {info.used.value} ({info.why}): {info.alive} of "
                   f"{info.probed} addresses alive in {info.elapsed_ms / 1000:.2f} s", err=True)


def exit_code(result: ScanResult, fail_on: str) -> int:
    from scanner.model import Severity

    worst = result.worst_failure()
    if fail_on == "never" or worst is None:
        return EXIT_OK
    return EXIT_FINDINGS if worst.rank >= Severity(fail_on).rank else EXIT_OK


