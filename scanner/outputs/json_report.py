"""``--format json``: the whole document (``schema_version``, ``scan``, ``hosts``,
``findings``), described by ``scanner/schema/report.schema.json``."""

from __future__ import annotations

from collections.abc import Iterator

from scanner.model import ScanResult
from scanner.outputs.pieces import Pieces

_LIST_FIELDS = ("hosts", "findings")  # the last fields of ScanResult, in its order


def to_json(result: ScanResult) -> str:
    return json_pieces(result).text()


def json_pieces(result: ScanResult) -> Pieces:
    """The document ``result.model_dump_json(indent=2)`` writes, byte for byte, a host and
    a finding at a time."""
    return Pieces(lambda: _pieces(result))


def _pieces(result: ScanResult) -> Iterator[str]:
    head = result.model_dump_json(indent=2, exclude=set(_LIST_FIELDS))
    yield head[: -len("\n}")]
    for name in _LIST_FIELDS:
        items = getattr(result, name)
        yield f',\n  "{name}": ['
        for index, item in enumerate(items):
            # One item's own indented text, moved two levels in. A JSON string holds no
            # raw newline, so every line break is the layout's.
            text = item.model_dump_json(indent=2).replace("\n", "\n    ")
            yield ("\n    " if index == 0 else ",\n    ") + text
        yield "\n  ]" if items else "]"
    yield "\n}\n"
