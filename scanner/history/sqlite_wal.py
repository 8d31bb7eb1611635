"""SQLite files that several processes write at once (the history, the fleet's job ledger)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path
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


def access_problem(database: str | None, writing: bool) -> str | None:
    """``PATH: why`` SQLite cannot use the file at ``database`` (its own answer is only
    "unable to open database file" or "attempt to write a readonly database"), or None.
    In WAL mode it writes the file and makes ``-wal`` and ``-shm`` files beside it, to
    read as well; each is tried as SQLite would, since permission bits do not refuse root and a
    read-only mount refuses everyone."""
    if not database or database == ":memory:":
        return None
    path = Path(database)
    why = _why(path, writing)
    return f"{database}: {why}" if why else None


def _why(path: Path, writing: bool) -> str | None:
    wants = os.O_RDWR if writing else os.O_RDONLY
    sides = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    for i, file in enumerate(sides):
        try:
            os.close(os.open(file, (os.O_RDWR if i else wants) | os.O_NONBLOCK))
        except FileNotFoundError:
            continue
        except OSError as exc:
            return (f"{file} cannot be opened for {'writing' if i or writing else 'reading'}: "
                    f"{exc.strerror}" + (" (SQLite writes it even to read)" if i else ""))
    if all(file.exists() for file in sides[1:]):
        return None  # nothing needs making beside it
    folder = path.parent
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dicomscan-")
    except OSError as exc:
        what = ("the store cannot be made there" if not path.exists() else
                "SQLite makes the store's -wal and -shm files beside it, to read as well")
        return f"its folder {folder} does not take new files ({exc.strerror}): {what}"
    os.close(fd)
    os.unlink(probe)
    return None
