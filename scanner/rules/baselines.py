"""Vendor hardening baselines: loading, validation, ``extends`` resolution and selection.

A baseline is one YAML file in the top-level ``baselines/`` folder (installed as the
package ``dicomscan_baselines``). Each expectation names the catalogue rule it checks, so
the rule catalogue stays the one place that says what a rule means. Errors name the file,
the line and the key path, because the people who edit these files are auditors, not
Python programmers.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scanner.rules.catalogue import load_catalogue

PACKAGE = "dicomscan_baselines"
Role = Literal["pacs", "modality", "workstation", "worklist", "print"]
# Remote-access services hardening guides ask to disable when unused (README's port table).
REMOTE_ACCESS_PORTS = (21, 22, 23, 135, 139, 445, 3389, 5800, 5900)
# The generic baseline for each guessed role; "unknown" or no role falls back to DEFAULT.
ROLE_DEFAULTS: dict[str, str] = {
    "pacs": "generic-pacs",
    "worklist": "generic-pacs",
    "modality": "generic-modality",
    "print": "generic-modality",
    "workstation": "generic-workstation",
}
# Unknown-role DICOM hosts are judged as servers: the PACS baseline allows the most
# DICOM and web ports, so it flags only ports no imaging server needs.
DEFAULT_BASELINE = "generic-pacs"


class BaselineError(ValueError):
    """One or more baseline files are invalid; ``problems`` holds one line per error."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _port_range(value: Any) -> tuple[int, int]:
    """A port (23) or an inclusive range ("5900-5910"), as (low, high)."""
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, tuple) and len(value) == 2:  # already parsed (merged by extends)
        low, high = value
    elif isinstance(value, str) and re.fullmatch(r"\d+-\d+", value.strip()):
        low, high = (int(p) for p in value.split("-"))
    else:
        raise ValueError(f"{value!r} is not a port or a 'low-high' range")
    if not (1 <= low <= high <= 65535):
        raise ValueError(f"{value!r} is not a TCP port (1-65535, low <= high)")
    return low, high


PortRange = Annotated[tuple[int, int], BeforeValidator(_port_range)]


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Strict):
    id: str | None = Field(default=None, description="what expectations cite it by")
    title: str = Field(min_length=1)
    url: str | None = None
    reference: str | None = None
    date: str = Field(pattern=r"^\d{4}(-\d{2}){0,2}$", description="YYYY, YYYY-MM or YYYY-MM-DD")

    @model_validator(mode="after")
    def _locatable(self) -> Source:
        if not (self.url or self.reference):
            raise ValueError("a source needs a url or a reference")
        return self


class Citation(_Strict):
    """An expectation's ground: a source of the baseline, and how sure that source is
    (../shared/VENDORS.md's tags: C confirmed, S secondary, U unconfirmed)."""

    source: str = Field(min_length=1, description="the id of one of the baseline's sources")
    confidence: Literal["confirmed", "secondary", "unconfirmed"]
    says: str = Field(min_length=1, description="what the source says that this rests on")


class AdvisoryRef(_Strict):
    """A published advisory that applies to the vendor's devices."""

    id: str = Field(min_length=1)
    applies_to: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    cite: list[Citation] = Field(min_length=1)


class _Expectation(_Strict):
    cite: list[Citation] = Field(default_factory=list)


class Match(_Strict):
    """One way to recognise the device; every field given must hold (AND)."""

    implementation_class_uid: str | None = None
    uid_prefix: str | None = None
    version_name: str | None = Field(default=None, description="regex, implementation version")
    product: str | None = Field(default=None, description="regex, the fingerprint's product")
    http_server: str | None = Field(default=None, description="regex, a non-DICOM banner")
    open_ports: list[PortRange] | None = Field(default=None, description="all must be open")
    role: Role | None = None
    mac_vendor: str | None = Field(
        default=None, description="regex, the MAC's OUI registrant or its vendor family"
    )
    vendor: str | None = Field(
        default=None, description="regex, a vendor scanner/identify/vendor.py identified"
    )

    _re_fields = field_validator(
        "version_name", "product", "http_server", "mac_vendor", "vendor"
    )(_regex)

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not self.model_fields_set:
            raise ValueError("a match block needs at least one criterion")
        return self

    @property
    def tier(self) -> int:
        """How specific the block is: product identity 3, port signature or MAC vendor 2
        (a vendor makes many products), role 1."""
        ident = ("implementation_class_uid", "uid_prefix", "version_name", "product")
        if any(getattr(self, f) is not None for f in (*ident, "http_server")):
            return 3
        vendorish = self.mac_vendor is not None or self.vendor is not None
        return 2 if self.open_ports is not None or vendorish else 1


class Ports(_Expectation):
    rule: str
    allowed: list[PortRange] = Field(default_factory=list)
    must_be_closed: list[PortRange] = Field(default_factory=list)


class RemoteAccess(_Expectation):
    rule: str
    ports: list[PortRange] = Field(default_factory=lambda: [(p, p) for p in REMOTE_ACCESS_PORTS])
    allowed: list[PortRange] = Field(default_factory=list)


class Required(_Expectation):
    rule: str
    required: bool


class FromUnknown(_Expectation):
    rule: str
    allowed: bool


class Expectations(_Strict):
    ports: Ports | None = None
    remote_access: RemoteAccess | None = None
    dicom_tls_required: Required | None = None
    called_ae_enforced: Required | None = None
    unknown_calling_ae_rejected: Required | None = None
    echo_from_unknown: FromUnknown | None = None
    find_from_unknown: FromUnknown | None = None
    move_from_unknown: FromUnknown | None = None
    get_from_unknown: FromUnknown | None = None
    store_from_unknown: FromUnknown | None = None
    rdp_nla_required: Required | None = None


# The rule each expectation checks: a baseline must name it, so a reader of the file sees
# which finding an expectation drives, and a typo cannot silently check nothing.
EXPECTED_RULE: dict[str, str] = {
    "ports": "port-not-allowed",
    "remote_access": "remote-access-exposed",
    "dicom_tls_required": "dicom-cleartext",
    "called_ae_enforced": "dicom-called-ae-not-enforced",
    "unknown_calling_ae_rejected": "dicom-calling-ae-not-validated",
    "echo_from_unknown": "dicom-echo-open",
    "find_from_unknown": "dicom-query-open",
    "move_from_unknown": "dicom-retrieve-open",
    "get_from_unknown": "dicom-retrieve-open",
    "store_from_unknown": "dicom-store-open",
    "rdp_nla_required": "rdp-nla-not-required",
}


class Baseline(_Strict):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sources: list[Source] = Field(min_length=1)
    match: list[Match] = Field(default_factory=list)
    extends: str | None = None
    vendor: str | None = Field(
        default=None, description="set on vendor baselines: each expectation must cite a source"
    )
    advisories: list[AdvisoryRef] = Field(default_factory=list)
    expectations: Expectations = Field(default_factory=Expectations)

    @model_validator(mode="after")
    def _cited(self) -> Baseline:
        ids = {s.id for s in self.sources if s.id}
        problems: list[str] = []
        cited = [(k, getattr(self.expectations, k)) for k in EXPECTED_RULE]
        for key, exp in cited:
            if exp is None:
                continue
            if self.vendor is not None and not exp.cite:
                problems.append(f"expectations.{key}: a vendor baseline's expectation needs "
                                "a cite (a source says it, or the baseline says nothing)")
            problems += [f"expectations.{key}: cites unknown source {c.source!r}"
                         for c in exp.cite if c.source not in ids]
        for adv in self.advisories:
            problems += [f"advisories.{adv.id}: cites unknown source {c.source!r}"
                         for c in adv.cite if c.source not in ids]
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --- loading, with errors that point at a line ------------------------------------------------


def _line_of(root: yaml.Node | None, loc: Iterable[int | str]) -> int | None:
    """1-based line of the deepest node on ``loc`` that exists in the composed YAML."""
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


def parse_baseline(text: str, origin: str) -> Baseline:
    """One baseline from YAML text; raises BaselineError naming ``origin``, line and key."""
    try:
        root = yaml.compose(text)
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BaselineError([f"{origin}: not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise BaselineError([f"{origin}: expected a mapping with id, title, version, ..."])
    try:
        baseline = Baseline.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_where(origin, root, tuple(e['loc']))}: {_explain(dict(e))}" for e in exc.errors()
        ]
        raise BaselineError(problems) from None
    rule_errors = [f"{_where(origin, root, loc)}: {msg}" for loc, msg in _rule_problems(baseline)]
    if rule_errors:
        raise BaselineError(rule_errors)
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
    files: Iterable[tuple[str, str]], base: dict[str, Baseline] | None = None
) -> dict[str, Baseline]:
    """Parse and cross-check baselines; ``base`` (e.g. the shipped set) may be extended."""
    found: dict[str, Baseline] = dict(base or {})
    origins: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for origin, text in files:
        try:
            b = parse_baseline(text, origin)
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
            where = _where(origin, yaml.compose(text), ("extends",))
            problems += [f"{where}: {p}" for p in exc.problems]
    if problems:
        raise BaselineError(problems)
    return found


@cache
def shipped() -> dict[str, Baseline]:
    return load_files(shipped_files())


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

    @property
    def id(self) -> str:
        return self.baseline.id


def resolve(bid: str, known: dict[str, Baseline] | None = None) -> Resolved:
    """Merge ``extends`` from the root down: a child overrides whole expectations, except
    port lists, which add up (a child's allowed port leaves its parent's must-be-closed)."""
    known = shipped() if known is None else known
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


def port_in(port: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(low <= port <= high for low, high in ranges)


def show_ports(ranges: Iterable[tuple[int, int]]) -> list[int | str]:
    return [low if low == high else f"{low}-{high}" for low, high in ranges]
