"""``dicomscan rules``: read the rule catalogue from the command line.

Only click is imported at module level, like scanner/cli.py: the catalogue (pydantic,
YAML) loads inside the commands, so ``dicomscan --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from scanner.rules.catalogue import Rule

EXIT_USAGE = 2


def _catalogue() -> dict[str, Rule]:
    from scanner.rules.catalogue import CatalogueError, load_catalogue

    try:
        return dict(load_catalogue())
    except CatalogueError as exc:
        # A broken catalogue file is an input error: name it instead of a traceback.
        click.echo(f"Error: rule catalogue: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None


@click.group()
def rules() -> None:
    """List the rules the scanner checks, or show one rule in full."""


@rules.command("list")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for reading, json for tools",
)
def list_rules(fmt: str) -> None:
    """Every rule ID with its default severity and title."""
    import json

    catalogue = _catalogue()
    if fmt == "json":
        rows = [
            {"id": r.id, "severity": r.severity.value, "title": r.title} for r in catalogue.values()
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r) for r in catalogue), default=2)
    click.echo(f"{'ID':{width}}  {'SEVERITY':8}  TITLE")
    for r in catalogue.values():
        click.echo(f"{r.id:{width}}  {r.severity.value:8}  {r.title}")


@rules.command("show")
@click.argument("rule_id", metavar="ID")
def show_rule(rule_id: str) -> None:
    """Everything the catalogue says about one rule."""
    import textwrap

    catalogue = _catalogue()
    rule = catalogue.get(rule_id)
    if rule is None:
        close = [r for r in catalogue if rule_id.lower() in r or r in rule_id.lower()]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        click.echo(
            f"Error: unknown rule ID {rule_id!r}.{hint} 'dicomscan rules list' shows every rule.",
            err=True,
        )
        raise SystemExit(EXIT_USAGE)

    def para(label: str, text: str) -> None:
        click.echo(f"{label}:")
        click.echo(
            textwrap.fill(" ".join(text.split()), 88, initial_indent="  ", subsequent_indent="  ")
        )

    click.echo(f"{rule.id}  [{rule.severity.value}]")
    click.echo(f"Title (fail):  {rule.title}")
    click.echo(f"Title (pass):  {rule.pass_title}")
    para("Rationale", rule.rationale)
    para("Remediation", rule.remediation)
    click.echo("References:")
    for ref in rule.references:
        click.echo(f"  - {ref}")
