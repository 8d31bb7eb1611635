"""Vendor hardening baselines: loading, validation, ``extends`` resolution and selection.
The file format is ``baseline_model``.

A baseline is one YAML file in the top-level ``baselines/`` folder (installed as the
package ``dicomscan_baselines``). Each expectation names the catalogue rule it checks, so
the rule catalogue stays the one place that says what a rule means. Errors name the file,
the line and the key path, because the people who edit these files are auditors, not
Python programmers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from scanner.model.data_cache import DataError, shipped_yaml
from scanner.model.documents import (
    TooDeep,
    Unconvertible,
    check_yaml_nesting,
    load_yaml,
    yaml_problem,
)
from scanner.rules.baseline_model import (
    EXPECTED_RULE,
    PACKAGE,
    Baseline,
    BaselineError,
    Expectations,
    Ports,
    RemoteAccess,
)
from scanner.rules.catalogue import load_catalogue

if TYPE_CHECKING:
    import yaml

# --- loading, with errors that point at a line ------------------------------------------------


def _line_of(root: yaml.Node | None, loc: Iterable[int | str]) -> int | None:
    """1-based line of the deepest node on ``loc`` that exists in the composed YAML."""
    import yaml

    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for step in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == step:
                    # An unknown key is reported at the key itself, anything else at its value.
                    line = key.start_mark.line + 1
                    nxt = value
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value)
        ):
            nxt = node.value[step]
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def _compose(text: str) -> yaml.Node | None:
    """The document's nodes, for the lines an error message names (PyYAML loads only then:
    a scan reads the shipped baselines from the data cache)."""
    import yaml

    return yaml.compose(text, Loader=yaml.CSafeLoader)


def _where(origin: str, root: yaml.Node | None, loc: tuple[int | str, ...]) -> str:
    line = _line_of(root, loc)
    path = ".".join(str(p) for p in loc) or "(top level)"
    return f"{origin}:{line}: {path}" if line else f"{origin}: {path}"


def _explain(err: dict[str, Any]) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _rule_problems(b: Baseline) -> Iterator[tuple[tuple[int | str, ...], str]]:
    catalogue = load_catalogue()
    for key, want in EXPECTED_RULE.items():
        exp = getattr(b.expectations, key)
        if exp is None:
            continue
        loc: tuple[int | str, ...] = ("expectations", key, "rule")
        if exp.rule not in catalogue:
            yield loc, f"unknown rule ID {exp.rule!r} (not in the rule catalogue)"
        elif exp.rule != want:
            yield loc, f"{key} is checked by rule {want!r}, not {exp.rule!r}"


def _shipped_document(text: str, origin: str) -> Any:
    try:
        return shipped_yaml(text)
    except DataError as exc:
        raise BaselineError([f"{origin}: not valid YAML: {exc}"]) from None


def _user_document(text: str, origin: str) -> Any:
    """A user's file, checked for absurd nesting before it is loaded."""
    import yaml

    try:
        check_yaml_nesting(text)
        return load_yaml(text, yaml.CSafeLoader)
    except (yaml.YAMLError, TooDeep, Unconvertible) as exc:
        raise BaselineError([f"{origin}: not valid YAML: {yaml_problem(exc)}"]) from None


def parse_baseline(text: str, origin: str, *, shipped: bool = False) -> Baseline:
    """One baseline from YAML text; raises BaselineError naming ``origin``, line and key.
    A user's file is checked for absurd nesting first (the shipped ones are ours)."""
    raw = _shipped_document(text, origin) if shipped else _user_document(text, origin)
    if not isinstance(raw, dict):
        raise BaselineError([f"{origin}: expected a mapping with id, title, version, ..."])
    try:
        baseline = Baseline.model_validate(raw)
    except ValidationError as exc:
        root = _compose(text)  # the lines, for the message only
        problems = [
            f"{_where(origin, root, tuple(e['loc']))}: {_explain(dict(e))}" for e in exc.errors()
        ]
        raise BaselineError(problems) from None
    rule_errors = list(_rule_problems(baseline))
    if rule_errors:
        root = _compose(text)
        raise BaselineError([f"{_where(origin, root, loc)}: {msg}" for loc, msg in rule_errors])
    return baseline


def shipped_files() -> list[tuple[str, str]]:
    """(name, text) of every shipped baseline, from the installed package or a checkout."""
    checkout = Path(__file__).resolve().parent.parent.parent / "baselines"
    folder: Any
    if (checkout / "__init__.py").is_file():
        # A source checkout's own baselines win over an installed package, which may come
        # from another checkout (an editable install elsewhere on the same Python).
        folder = checkout
    elif importlib.util.find_spec(PACKAGE) is not None:
        folder = resources.files(PACKAGE)
    else:
        raise BaselineError([f"no shipped baselines: neither {checkout} nor {PACKAGE}"])
    entries = [e for e in folder.iterdir() if e.name.endswith(".yaml")]
    return [(e.name, e.read_text(encoding="utf-8")) for e in sorted(entries, key=lambda e: e.name)]


def load_files(
    files: Iterable[tuple[str, str]], base: dict[str, Baseline] | None = None,
    *, shipped: bool = False,
) -> dict[str, Baseline]:
    """Parse and cross-check baselines; ``base`` (e.g. the shipped set) may be extended."""
    found: dict[str, Baseline] = dict(base or {})
    origins: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for origin, text in files:
        try:
            b = parse_baseline(text, origin, shipped=shipped)
        except BaselineError as exc:
            problems += exc.problems
            continue
        if b.id in origins:
            problems.append(f"{origin}: id {b.id!r} is also defined in {origins[b.id][0]}")
        found[b.id], origins[b.id] = b, (origin, text)
    for bid, (origin, text) in origins.items():
        try:
            _chain(bid, found)
        except BaselineError as exc:
            where = _where(origin, _compose(text), ("extends",))
            problems += [f"{where}: {p}" for p in exc.problems]
    if problems:
        raise BaselineError(problems)
    return found


@cache
def shipped() -> dict[str, Baseline]:
    return load_files(shipped_files(), shipped=True)


# --- extends --------------------------------------------------------------------------------


def _chain(bid: str, known: dict[str, Baseline]) -> list[Baseline]:
    """The baseline and its ancestors, nearest first; refuses loops and unknown parents."""
    chain: list[Baseline] = []
    current: str | None = bid
    while current is not None:
        if current in [b.id for b in chain]:
            loop = " -> ".join([*(b.id for b in chain), current])
            raise BaselineError([f"circular extends: {loop}"])
        if current not in known:
            known_ids = ", ".join(sorted(known))
            raise BaselineError([f"unknown baseline {current!r} (known: {known_ids})"])
        chain.append(known[current])
        current = known[current].extends
    return chain


def _merge(
    parent: list[tuple[int, int]], drop: list[tuple[int, int]], add: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Parent's ranges without ``drop``, then ``add``; duplicates once, order kept."""
    return list(dict.fromkeys([*(r for r in parent if r not in drop), *add]))


@dataclass(frozen=True)
class Resolved:
    """A baseline with its inherited expectations merged in; ``origin`` says who set each."""

    baseline: Baseline
    expectations: Expectations
    origin: dict[str, str] = field(default_factory=dict)
    lineage: tuple[str, ...] = ()
    # What the judge worked out from this baseline once, reused for every device judged
    # against it (scanner/rules/judge.py); not part of the baseline's value.
    judged: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def id(self) -> str:
        return self.baseline.id


def resolve(bid: str, known: dict[str, Baseline] | None = None) -> Resolved:
    """Merge ``extends`` from the root down: a child overrides whole expectations, except
    port lists, which add up (a child's allowed port leaves its parent's must-be-closed)."""
    return _resolve(bid, known) if known is not None else _resolve_shipped(bid)


@cache
def _resolve_shipped(bid: str) -> Resolved:
    # The shipped set is fixed for the process, and every device of a scan is judged
    # against one of a few baselines: merging once each saves a tenth of the rules' time.
    return _resolve(bid, shipped())


def _resolve(bid: str, known: dict[str, Baseline]) -> Resolved:
    chain = _chain(bid, known)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for b in reversed(chain):
        for key in EXPECTED_RULE:
            exp = getattr(b.expectations, key)
            if exp is None:
                continue
            prev = merged.get(key)
            if key == "ports" and isinstance(prev, Ports):
                allowed = _merge(prev.allowed, exp.must_be_closed, exp.allowed)
                closed = _merge(prev.must_be_closed, exp.allowed, exp.must_be_closed)
                exp = Ports(rule=exp.rule, allowed=allowed, must_be_closed=closed,
                            cite=[*prev.cite, *exp.cite])
            elif key == "remote_access" and isinstance(prev, RemoteAccess):
                ports = exp.ports if "ports" in exp.model_fields_set else prev.ports
                allowed = _merge(prev.allowed, [], exp.allowed)
                exp = RemoteAccess(rule=exp.rule, ports=ports, allowed=allowed,
                                   cite=[*prev.cite, *exp.cite])
            merged[key] = exp
            origin[key] = b.id if prev is None else f"{b.id} (over {origin[key]})"
    return Resolved(chain[0], Expectations(**merged), origin, tuple(b.id for b in chain))


