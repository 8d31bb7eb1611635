"""The output formats, one module each, behind one small interface: a function from a
``ScanResult`` (and the run's ``WriterOptions``) to text. A new format is one module plus
one line in ``WRITERS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scanner.model import ScanResult
from scanner.model.drift import Drift
from scanner.outputs.csv_report import to_csv
from scanner.outputs.drift_events import drift_to_json, drift_to_jsonl, drift_to_table
from scanner.outputs.drift_siem import drift_to_cef, drift_to_ocsf
from scanner.outputs.html_report import to_html
from scanner.outputs.json_report import to_json
from scanner.outputs.jsonl import EventType, to_jsonl
from scanner.outputs.ocsf import to_ocsf
from scanner.outputs.table import to_table


@dataclass(frozen=True)
class WriterOptions:
    """What a run asks of its writers beyond the result itself.

    ``extra_events``: events from outside the scan (e.g. the history's drift events),
    appended by the event formats (jsonl) as they are.
    """

    color: bool = False
    events: frozenset[EventType] = frozenset({EventType.FINDING})
    ocsf_array: bool = False
    extra_events: tuple[dict[str, Any], ...] = field(default=())


Writer = Callable[[ScanResult, WriterOptions], str]

WRITERS: dict[str, Writer] = {
    "json": lambda r, o: to_json(r),
    "jsonl": lambda r, o: to_jsonl(r, o.events, o.extra_events),
    "table": lambda r, o: to_table(r, color=o.color),
    "ocsf": lambda r, o: to_ocsf(r, array=o.ocsf_array),
    "csv": lambda r, o: to_csv(r),
    "html": lambda r, o: to_html(r),
}

# Drift between two stored scans (diff --format, scan --drift-output [FORMAT:]PATH).
DRIFT_WRITERS: dict[str, Callable[[Drift], str]] = {
    "table": drift_to_table,
    "json": drift_to_json,
    "jsonl": drift_to_jsonl,
    "ocsf": lambda d: drift_to_ocsf(d),
    "cef": lambda d: drift_to_cef(d),
}
# Formats of a drift events file (--drift-output), and the endings that choose them.
DRIFT_FILE_FORMATS = ("jsonl", "ocsf", "cef")


def drift_file(spec: str) -> tuple[str, str]:
    """(format, path) of ``[FORMAT:]PATH``: FORMAT jsonl, ocsf or cef, else the ending
    (``.ocsf``, ``.ocsf.json``, ``.ocsf.jsonl``: ocsf; ``.cef``: cef), else jsonl."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in DRIFT_FILE_FORMATS and rest:
        return prefix, rest
    lower = spec.lower()
    if lower.endswith((".ocsf", ".ocsf.json", ".ocsf.jsonl")):
        return "ocsf", spec
    return ("cef" if lower.endswith(".cef") else "jsonl"), spec


# File name endings that choose a format when -o gives no explicit one.
EXTENSIONS: dict[str, str] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".ocsf": "ocsf",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
    ".txt": "table",
}


class FormatChoice(StrEnum):
    """Formats a user may name (``--format`` or ``FORMAT:PATH``)."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    OCSF = "ocsf"
    CSV = "csv"
    HTML = "html"


def format_for(path: str, default: str | None) -> str | None:
    """The format a file name asks for: its ending (``.ocsf.json`` counts as OCSF), else
    ``default``; None when neither says."""
    lower = path.lower()
    if lower.endswith((".ocsf.json", ".ocsf.jsonl")):
        return "ocsf"
    for ending, fmt in EXTENSIONS.items():
        if lower.endswith(ending):
            return fmt
    return default


def render(
    result: ScanResult, fmt: str, options: WriterOptions | None = None, color: bool = False
) -> str:
    """The result in one format; ``color`` (without options) only matters to the table."""
    return WRITERS[fmt](result, options or WriterOptions(color=color))
