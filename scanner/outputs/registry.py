"""The output formats, one module each, behind one small interface: a function from a
``ScanResult`` to text. A new format is one module plus one line in ``WRITERS``."""

from __future__ import annotations

from collections.abc import Callable

from scanner.model import ScanResult
from scanner.outputs.json_report import to_json
from scanner.outputs.jsonl import to_jsonl
from scanner.outputs.table import to_table

Writer = Callable[[ScanResult], str]

WRITERS: dict[str, Writer] = {
    "json": to_json,
    "jsonl": to_jsonl,
    "table": to_table,
}


def render(result: ScanResult, fmt: str, color: bool = False) -> str:
    """The result in one format; ``color`` only matters to the terminal table."""
    if fmt == "table":
        return to_table(result, color=color)
    return WRITERS[fmt](result)
