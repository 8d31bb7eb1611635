"""Files that several processes create and write together: the history and the fleet's
job ledger wait for each other instead of failing with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from scanner.fleet.ledger import Ledger
from scanner.history.store import HistoryStore


def _open_history(path: Path) -> Callable[[], None]:
    store = HistoryStore.open(path)

    def use() -> None:
        store.begin("after-the-lock", "busy", ["198.18.0.1"], "safe")
        assert [s.scan_id for s in store.scans("busy")] == ["after-the-lock"]
    return use


def _open_ledger(path: Path) -> Callable[[], None]:
    ledger = Ledger(path)

    def use() -> None:
        ledger.add("job-1", "site-a", None, ["198.18.0.1"], time.time())
        with ledger.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    return use


@pytest.mark.parametrize("opener", [_open_history, _open_ledger], ids=["history", "ledger"])
def test_a_new_file_waits_for_a_writer_holding_it(
        tmp_path: Path, opener: Callable[[Path], Callable[[], None]]) -> None:
    # While another connection holds a write lock on a file still in rollback mode,
    # SQLite refuses the switch to WAL at once instead of waiting: the race in which
    # concurrent processes create the file together, made certain here.
    path = tmp_path / "shared.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE unrelated (x INTEGER)")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    try:
        use = opener(path)
    finally:
        release.join()
        other.close()
    assert time.monotonic() - started >= 0.4  # it waited for the lock, then went on
    use()


def test_eight_first_opens_of_the_ledger_all_succeed(tmp_path: Path) -> None:
    # The centre, a submit and a jobs listing may each be first to open a new ledger.
    path = tmp_path / "jobs.sqlite"

    def open_and_add(i: int) -> None:
        ledger = Ledger(path)
        ledger.add(f"job-{i}", "site-a", None, ["198.18.0.1"], time.time())
        ledger.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(open_and_add, range(8)))
    ledger = Ledger(path)
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 8
