"""SQLite files that several processes write at once (the history, the fleet's job ledger)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

WAIT_S = 60


def switch_to_wal(cur: Any, wait_s: float = WAIT_S) -> None:
    """Put the file in WAL mode, waiting for other writers like any other statement.

    SQLite answers this pragma "database is locked" at once, without its busy handler,
    while another connection holds a write lock on a file still in rollback mode (as
    when several processes create the file together), so the wait is ours.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if (("locked" not in str(exc) and "busy" not in str(exc))
                    or time.monotonic() >= deadline):
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def lenient_text(raw: bytes) -> str:
    """sqlite3's text_factory for files a person or a broken tool may have edited: text
    that is not UTF-8 reads with U+FFFD where it is broken. sqlite3's own decoding
    raised OperationalError and took every other row of the query with it."""
    return raw.decode("utf-8", "replace")
