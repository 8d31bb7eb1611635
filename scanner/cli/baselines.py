"""``dicomscan baselines``: list, show and validate hardening baselines.

Only click is imported at module level, like scanner/cli.py: pydantic and YAML load
inside the commands, so ``dicomscan --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from scanner.rules.baseline_model import Baseline

EXIT_USAGE = 2


def _shipped() -> dict[str, Baseline]:
    from scanner.rules.baseline_model import BaselineError
    from scanner.rules.baselines import shipped

    try:
        return dict(shipped())
    except BaselineError as exc:
        # A broken shipped file is an input error: name it instead of a traceback.
        for line in exc.problems:
            click.echo(f"Error: {line}", err=True)
        raise SystemExit(EXIT_USAGE) from None


@click.group()
def baselines() -> None:
    """Hardening baselines: what each kind of device may expose."""


@baselines.command("list")
def list_baselines() -> None:
    """Every shipped baseline with what it extends and its title."""
    found = _shipped()
    width = max((len(b) for b in found), default=2)
    click.echo(f"{'ID':{width}}  {'EXTENDS':{width}}  TITLE")
    for b in found.values():
        click.echo(f"{b.id:{width}}  {b.extends or '-':{width}}  {b.title}")


def _plain(value: Any) -> Any:
    """Port ranges back to the form they are written in (23, "5900-5910")."""
    from scanner.rules.baseline_model import show_ports

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return show_ports(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@baselines.command("show")
@click.argument("name")
def show_baseline(name: str) -> None:
    """One baseline with its inherited expectations merged in (YAML)."""
    import yaml

    from scanner.rules.baselines import resolve

    found = _shipped()
    if name not in found:
        click.echo(f"Error: unknown baseline {name!r}. Known: {', '.join(found)}.", err=True)
        raise SystemExit(EXIT_USAGE)
    r = resolve(name, found)
    doc = r.baseline.model_dump(mode="python", exclude_none=True, exclude={"expectations"})
    doc["inherits_from"] = list(r.lineage[1:])
    doc["expectations"] = r.expectations.model_dump(mode="python", exclude_none=True)
    doc["expectation_set_by"] = dict(r.origin)
    click.echo(yaml.safe_dump(_plain(doc), sort_keys=False, width=100).rstrip())


@baselines.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check baseline files; exit 2 with every problem found, 0 when all are valid.

    A file may extend a shipped baseline or another file given here.
    """
    from pathlib import Path

    from scanner.model.documents import read_text
    from scanner.rules.baseline_model import BaselineError
    from scanner.rules.baselines import load_files

    problems: list[str] = []
    texts: list[tuple[str, str]] = []
    for name in files:
        try:
            texts.append((name, read_text(name)))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: cannot read: {exc}")
    shipped = _shipped()
    # A file that redefines a shipped id replaces it here, so a shipped file validates.
    own = {b for b in shipped if any(Path(n).stem == b for n, _ in texts)}
    base = {k: v for k, v in shipped.items() if k not in own}
    try:
        load_files(texts, base)
    except BaselineError as exc:
        problems += exc.problems
    for line in problems:
        click.echo(f"Error: {line}", err=True)
    if problems:
        raise SystemExit(EXIT_USAGE)
    click.echo(f"{len(texts)} baseline file(s) valid")
