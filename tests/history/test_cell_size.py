"""One history cell of hundreds of megabytes (a hand edit, another tool, a damaged disk)
was read whole and parsed: now a cell over MAX_CELL is measured by the database, never
sent to dicomscan, and named as damaged like any other bad row. A real scan of a real
storescp writes the store; sqlite3 then blows one cell up in a copy."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.history.rows import MAX_CELL
from scanner.lab.peers import start_storescp
from tests.conftest import needs_dcmtk

pytestmark = [pytest.mark.peers, needs_dcmtk]

HUGE = MAX_CELL + 1000  # characters: a JSON string just over the bound


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """Three complete scans of one storescp, oldest first (diff's 'failed before' reads
    the scans older than the two it compares)."""
    store = tmp_path_factory.mktemp("history") / "h.sqlite"
    with start_storescp() as running:
        for _ in range(3):
            out = cli("scan", "127.0.0.1", "-p", str(running.info.port), "--discovery",
                      "none", "--fail-on", "never", "-q", "--format", "json", "--history",
                      str(store), "--job", "lab")
            assert out.returncode == 0, out.stderr
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ids = [r[0] for r in db.execute("SELECT scan_id FROM scans ORDER BY started_at")]
    yield store, ids


def _blown_up(pristine: tuple[Path, list[str]], tmp_path: Path, table: str,
              column: str) -> tuple[Path, str, int]:
    """A copy whose first ``table`` row of the newest scan holds HUGE characters in
    ``column``; the row's id (0 for scans)."""
    source, ids = pristine
    store = tmp_path / "h.sqlite"
    shutil.copy(source, store)
    key = "rowid" if table == "scans" else "id"
    with sqlite3.connect(store) as db:
        (row,) = db.execute(f"SELECT min({key}) FROM {table} WHERE scan_id = ?",
                            (ids[-1],)).fetchone()
        assert row is not None, f"the scan wrote no {table} row"
        db.execute(f"UPDATE {table} SET {column} = '\"' || printf('%.*c', ?, 'x') || '\"' "
                   f"WHERE {key} = ?", (HUGE, row))
    return store, ids[-1], row


@pytest.mark.parametrize(("table", "column"), [
    ("hosts", "data"), ("ports", "data"), ("services", "observations"),
    ("findings", "data"), ("scans", "meta"),
])
def test_a_huge_result_cell_is_named_not_read(pristine: tuple[Path, list[str]],
                                              tmp_path: Path, table: str,
                                              column: str) -> None:
    store, scan_id, row = _blown_up(pristine, tmp_path, table, column)
    where = "table scans" if table == "scans" else f"table {table} row {row}"
    out = cli("history", "show", scan_id[:8], "--history", str(store))
    assert out.returncode == 2, out.stderr
    assert f"scan {scan_id}: {where}: {column} holds {HUGE + 2:,} characters, more " \
           "than the 64 MiB one cell may hold; not read" in out.stderr, out.stderr
    assert len(out.stderr) < 2000  # the cell is not quoted


def test_a_huge_scans_cell_leaves_that_scan_out_of_the_list(
        pristine: tuple[Path, list[str]], tmp_path: Path) -> None:
    store, scan_id, _ = _blown_up(pristine, tmp_path, "scans", "targets")
    out = cli("history", "list", "--history", str(store))
    assert out.returncode == 3, out.stderr  # the list is incomplete
    assert f"left out a damaged scan: scan {scan_id}: table scans: targets holds" \
           in out.stderr, out.stderr
    assert pristine[1][0][:8] in out.stdout and scan_id[:8] not in out.stdout


def _blow_up_oldest(pristine: tuple[Path, list[str]], tmp_path: Path, sql: str) -> Path:
    store = tmp_path / "h.sqlite"
    shutil.copy(pristine[0], store)
    with sqlite3.connect(store) as db:
        changed = db.execute(sql, (HUGE, pristine[1][0])).rowcount
        assert changed == 1, sql
    return store


def test_a_huge_start_of_an_earlier_scan_is_named_in_first_seen(
        pristine: tuple[Path, list[str]], tmp_path: Path) -> None:
    """First and last seen took the min and max start in SQL unbounded: a damaged start
    of hundreds of MB came back whole, twice, before it was found not a date."""
    store = _blow_up_oldest(pristine, tmp_path, "UPDATE scans SET started_at = '\"' || "
                            "printf('%.*c', ?, 'x') || '\"' WHERE scan_id = ?")
    newest = pristine[1][-1]
    out = cli("history", "show", newest[:8], "--history", str(store))
    assert out.returncode == 0, out.stderr
    assert f"left out a damaged scan: scan {pristine[1][0]}: table scans: started_at " \
           f"holds {HUGE + 2:,} characters, more than the 64 MiB" in out.stderr, out.stderr
    assert len(out.stderr) < 2000


def test_a_huge_finding_id_of_an_earlier_failure_is_named_in_drift(
        pristine: tuple[Path, list[str]], tmp_path: Path) -> None:
    """diff's 'failed before' read every older failed finding's ID unbounded."""
    store = _blow_up_oldest(pristine, tmp_path, "UPDATE findings SET finding_id = "
                            "printf('%.*c', ?, 'x') WHERE id = (SELECT min(id) FROM findings "
                            "WHERE status = 'fail' AND scan_id = ?)")
    out = cli("diff", "--history", str(store))
    assert out.returncode == 0, out.stderr
    assert f"left out a damaged scan: scan {pristine[1][0]}: table findings row " \
           in out.stderr and f"finding_id holds {HUGE:,} characters" in out.stderr, out.stderr
    assert len(out.stderr) < 2000
