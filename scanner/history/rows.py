"""Stored rows read without trusting them: a history file edited by hand, written by a
broken tool or damaged on disk can hold text in a date column, a JSON column that is
not JSON, or a value of the wrong kind. SQLAlchemy's own conversion raises on the first
such row and takes the whole query with it, so the columns are read as the driver
returns them and converted here, one row at a time, naming the row when one is bad.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Table, Text, case, cast, func, null, type_coerce
from sqlalchemy.types import NullType

_SHOWN = 60  # characters of a bad value quoted in a message
# The most one cell may hold to be read. A host's data is about 50 KB and a scan's meta
# a few MB even for 65,536 targets; a cell of hundreds of MB (a damaged or hand-edited
# row) was read whole and then parsed, gigabytes of memory for one history list.
MAX_CELL = 64 << 20  # characters
_SIZE = "__size"  # the label suffix of a cell's size, selected beside it


class DamagedRow(ValueError):
    """One stored row that cannot be read; the message names table, row and column."""

    def __init__(self, scan_id: str, message: str) -> None:
        super().__init__(message)
        self.scan_id = scan_id


def raw_columns(table: Table) -> list[ColumnElement[Any]]:
    """The table's columns as the driver returns them (SQLite: text for dates and JSON;
    PostgreSQL: its own types), so converting them cannot fail inside the query; each
    bounded (see ``bounded``)."""
    return [part for c in table.c for part in bounded(c, c.name)]


def bounded(column: Any, name: str) -> list[ColumnElement[Any]]:
    """A column as the driver returns it, NULL in place of a cell larger than MAX_CELL,
    and the cell's size beside it (``sized`` says which cell was too large): the
    database measures the cell, and the client never receives it."""
    size = func.length(cast(column, Text))
    return [case((size > MAX_CELL, null()), else_=type_coerce(column, NullType())).label(name),
            size.label(name + _SIZE)]


def sized(scan_id: str, where: str, row: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """``row``, or DamagedRow naming its first cell larger than MAX_CELL (left unread)."""
    for key, size in row.items():
        if isinstance(key, str) and key.endswith(_SIZE) and (size or 0) > MAX_CELL:
            raise too_large(scan_id, where, key[:-len(_SIZE)], size)
    return row


def too_large(scan_id: str, where: str, name: str, size: int) -> DamagedRow:
    """The damage of a cell holding ``size`` characters, more than MAX_CELL."""
    return DamagedRow(scan_id, f"scan {scan_id}: {where}: {name} holds {size:,} characters, "
                               f"more than the {MAX_CELL >> 20} MiB one cell may hold; not read")


def raw(column: Any) -> ColumnElement[Any]:
    return type_coerce(column, NullType())


def shown(value: object) -> str:
    text = repr(value)  # repr: control characters come out escaped
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def as_time(value: object) -> datetime:
    """A stored date and time (SQLite keeps text, PostgreSQL a datetime), in UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)  # ValueError on anything else
    else:
        raise ValueError("not a date and time")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def as_json(value: object) -> Any:
    """A stored JSON column: text on SQLite, already decoded on PostgreSQL."""
    if isinstance(value, bytes | str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise ValueError("not JSON") from None
    return value


def column(scan_id: str, where: str, row: Mapping[Any, Any], name: str,
           kind: str) -> Any:
    """One column of a raw row converted (``kind``: time, json, or none), or DamagedRow
    naming the scan, the table and row, the column and what is wrong with it."""
    value = row[name]
    if value is None:
        if kind.endswith("?"):
            return None
        raise DamagedRow(scan_id, f"scan {scan_id}: {where}: {name} is empty (NULL)")
    try:
        if kind.startswith("time"):
            return as_time(value)
        if kind.startswith("json"):
            return as_json(value)
        return value
    except (ValueError, OverflowError) as exc:
        raise DamagedRow(scan_id, f"scan {scan_id}: {where}: {name} {shown(value)} is "
                                  f"{exc if str(exc) == 'not JSON' else 'not a date and time'}"
                         ) from None


def invalid(scan_id: str, where: str, exc: ValidationError) -> DamagedRow:
    """A row whose values have the wrong kind (pydantic's first complaint, one line)."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "value"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return DamagedRow(scan_id, f"scan {scan_id}: {where}: {loc} {shown(first.get('input'))}: "
                               f"{first['msg']}{more}")
