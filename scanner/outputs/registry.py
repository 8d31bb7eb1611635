"""The output formats, one module each, behind one small interface: a function from a
``ScanResult`` (and the run's ``WriterOptions``) to text. A new format is one module plus
one line in ``WRITERS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from scanner.outputs.jsonl import EventType

if TYPE_CHECKING:
    from scanner.model import ScanResult
    from scanner.model.drift import Drift
    from scanner.outputs.pieces import Text


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


# A writer's text, or its pieces where the format can be written a host or an event at a
# time (the large ones: json, jsonl).
Writer = Callable[["ScanResult", WriterOptions], "Text"]

# Each writer imports its module when it writes: a run loads only the formats it asked
# for (rich, jinja2 and the catalogue cost start-up time otherwise).


def _json(r: ScanResult, o: WriterOptions) -> Text:
    from scanner.outputs.json_report import json_pieces

    return json_pieces(r)


def _jsonl(r: ScanResult, o: WriterOptions) -> Text:
    from scanner.outputs.jsonl import jsonl_pieces

    return jsonl_pieces(r, o.events, o.extra_events)


def _table(r: ScanResult, o: WriterOptions) -> str:
    from scanner.outputs.table import to_table

    return to_table(r, color=o.color)


def _ocsf(r: ScanResult, o: WriterOptions) -> str:
    from scanner.outputs.ocsf import to_ocsf

    return to_ocsf(r, array=o.ocsf_array)


def _csv(r: ScanResult, o: WriterOptions) -> str:
    from scanner.outputs.csv_report import to_csv

    return to_csv(r)


def _html(r: ScanResult, o: WriterOptions) -> str:
    from scanner.outputs.html_report import to_html

    return to_html(r)


WRITERS: dict[str, Writer] = {
    "json": _json,
    "jsonl": _jsonl,
    "table": _table,
    "ocsf": _ocsf,
    "csv": _csv,
    "html": _html,
}


def _drift_table(d: Drift) -> str:
    from scanner.outputs.drift_events import drift_to_table

    return drift_to_table(d)


def _drift_json(d: Drift) -> str:
    from scanner.outputs.drift_events import drift_to_json

    return drift_to_json(d)


def _drift_jsonl(d: Drift) -> str:
    from scanner.outputs.drift_events import drift_to_jsonl

    return drift_to_jsonl(d)


def _drift_ocsf(d: Drift) -> str:
    from scanner.outputs.drift_siem import drift_to_ocsf

    return drift_to_ocsf(d)


def _drift_cef(d: Drift) -> str:
    from scanner.outputs.drift_siem import drift_to_cef

    return drift_to_cef(d)


# Drift between two stored scans (diff --format, scan --drift-output [FORMAT:]PATH).
DRIFT_WRITERS: dict[str, Callable[[Drift], str]] = {
    "table": _drift_table,
    "json": _drift_json,
    "jsonl": _drift_jsonl,
    "ocsf": _drift_ocsf,
    "cef": _drift_cef,
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
    from scanner.outputs.pieces import whole

    return whole(render_pieces(result, fmt, options, color))


def render_pieces(
    result: ScanResult, fmt: str, options: WriterOptions | None = None, color: bool = False
) -> Text:
    """As ``render``, but in pieces where the format allows: for writing out."""
    return WRITERS[fmt](result, options or WriterOptions(color=color))
