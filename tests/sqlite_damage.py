"""Damage a SQLite file the way a bad disk does, for the damaged-state tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def damage_table_page(path: Path, table: str) -> None:
    """Overwrite the root page of ``table``: every read of that table then fails with
    SQLite's "database disk image is malformed"."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table's pages in the main file
        (page,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                             (table,)).fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
    with path.open("r+b") as fh:
        fh.seek((page - 1) * size)
        fh.write(b"\xff" * size)
