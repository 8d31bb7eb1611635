"""The ``dicomscan`` command group: one module per command, assembled here.

Only click is imported at module level, and each command's module only when that command
runs (or ``--help`` lists them): ``dicomscan scan`` does not load the history, fleet or
audit commands, and ``dicomscan --help`` answers at once.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click
from click.core import ParameterSource

from scanner import __version__
from scanner.cli.common import EXIT_CODES_HELP

# Command name -> "module:object". A new command is a module in scanner/cli/ and a line here.
COMMANDS: dict[str, str] = {
    "scan": "scanner.cli.scan:scan",
    "schema": "scanner.cli.info:schema",
    "profiles": "scanner.cli.info:profiles",
    "demo": "scanner.cli.demo:demo",
    "rules": "scanner.cli.rules:rules",
    "baselines": "scanner.cli.baselines:baselines",
    "audit": "scanner.cli.audit:audit",
    "report": "scanner.cli.report:report",
    "history": "scanner.cli.history:history",
    "diff": "scanner.cli.history:diff",
    "config": "scanner.cli.site:config_group",
    "schedule": "scanner.cli.site:schedule",
    "central": "scanner.cli.central:central",
    "sensor": "scanner.cli.sensor:sensor",
    "submit": "scanner.cli.jobs:submit_command",
    "jobs": "scanner.cli.jobs:jobs",
}


class LazyGroup(click.Group):
    """A group that imports a command's module when the command is asked for (click's
    documented lazy-loading pattern)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # pydantic looks for plugins in every installed distribution's entry points when the
        # first model is built (importlib.metadata and a scan of site-packages: about 8% of
        # a closed-port scan's instructions); dicomscan uses none. Setting the variable to
        # an empty string brings them back.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        return super().main(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, name = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), name)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        refuse_blank_values(command)
        return command


def refuse_blank_values(command: click.Command) -> None:
    """Every value given on the command line, to every option and argument of every
    command, may not be empty or only spaces. ``--policy "$POLICY"`` with the variable
    unset was taken as no policy (its do-not-probe list dropped), ``--history ''`` as the
    default store, ``central init ''`` as the current folder: each silently, exit 0."""
    if getattr(command, "_blank_refused", False):
        return
    command._blank_refused = True  # type: ignore[attr-defined]
    for param in command.params:
        if not (isinstance(param, click.Option) and (param.is_flag or param.count)):
            # the text as given, before its type makes '' a Path('.') or a default
            param.consume_value = _blank_checked(param)  # type: ignore[method-assign]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            refuse_blank_values(sub)


def _blank_checked(param: click.Parameter) -> Any:
    consume = param.consume_value

    def check(ctx: click.Context, opts: Any) -> tuple[Any, ParameterSource]:
        value, source = consume(ctx, opts)
        given = value if isinstance(value, tuple | list) else (value,)
        if source is ParameterSource.COMMANDLINE and any(
                isinstance(v, str) and not v.strip() for v in given):
            raise click.BadParameter("an empty value (leave the option out for its "
                                     "default)", ctx=ctx, param=param)
        return value, source

    return check


@click.group(
    cls=LazyGroup,
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
