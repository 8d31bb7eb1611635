"""A history store with damaged rows: a real scan of a real storescp writes the store,
then sqlite3 damages it as a hand edit, another tool or the disk could. Every command
that reads it names the scan, table, row and column, leaves the damaged scan out where
it can go on without it, and never shows a traceback."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.lab.peers import start_storescp
from tests.conftest import needs_dcmtk
from tests.sqlite_damage import damage_table_page

pytestmark = [pytest.mark.peers, needs_dcmtk]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def _scan(store: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("scan", "127.0.0.1", "-p", str(port), "--discovery", "none", "--fail-on",
               "never", "-q", "--format", "json", "--history", str(store), "--job", "lab",
               *extra)


@pytest.fixture(scope="module")
def peer() -> Iterator[int]:
    with start_storescp() as running:
        yield running.info.port


@pytest.fixture(scope="module")
def pristine(peer: int, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A store with three complete scans of the same storescp, oldest first."""
    store = tmp_path_factory.mktemp("history") / "h.sqlite"
    for _ in range(3):
        out = _scan(store, peer)
        assert out.returncode == 0, out.stderr
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file to copy
        ids = [r[0] for r in db.execute("SELECT scan_id FROM scans ORDER BY started_at")]
    return store, ids


def damaged(pristine: tuple[Path, list[str]], tmp_path: Path, sql: str,
            which: int) -> tuple[Path, list[str]]:
    """A copy of the store with ``sql`` run on scan number ``which`` (:scan)."""
    source, ids = pristine
    store = tmp_path / "h.sqlite"
    shutil.copy(source, store)
    with sqlite3.connect(store) as db:
        assert db.execute(sql, {"scan": ids[which]}).rowcount >= 1
    return store, ids


# A scan row damaged: text in a date column, JSON that is not JSON, JSON of the wrong
# kind, a value no state has, NULL where a finished scan needs a value.
SCAN_ROW = [
    ("UPDATE scans SET started_at = 'yesterday' WHERE scan_id = :scan",
     "started_at 'yesterday' is not a date and time"),
    ("UPDATE scans SET finished_at = '2026-13-45 99:00' WHERE scan_id = :scan",
     "finished_at '2026-13-45 99:00' is not a date and time"),
    ("UPDATE scans SET targets = '[\"10.0.0.0/8\"' WHERE scan_id = :scan",
     "targets '[\"10.0.0.0/8\"' is not JSON"),
    ("UPDATE scans SET targets = 'null' WHERE scan_id = :scan", "targets None"),
    ("UPDATE scans SET status = 'finished?' WHERE scan_id = :scan", "status 'finished?'"),
    ("UPDATE scans SET host_count = 'many' WHERE scan_id = :scan", "hosts 'many'"),
]


@pytest.mark.parametrize(("sql", "problem"), SCAN_ROW, ids=lambda v: v[:40])
def test_damaged_scan_row_is_named_and_left_out(pristine: tuple[Path, list[str]],
                                                tmp_path: Path, sql: str,
                                                problem: str) -> None:
    store, (first, middle, last) = damaged(pristine, tmp_path, sql, 1)
    hist = ("--history", str(store))
    said = f"scan {middle}: table scans: {problem}"

    listed = cli("history", "list", "--format", "json", *hist)
    # It was a ValueError/JSONDecodeError traceback. Exit 3: the list is incomplete.
    assert listed.returncode == 3, listed.stderr
    assert [s["scan_id"] for s in json.loads(listed.stdout)] == [last, first]
    assert f"left out a damaged scan: {said}" in listed.stderr, listed.stderr

    shown = cli("history", "show", middle[:8], *hist)
    assert shown.returncode == 2, shown.stderr
    assert said in shown.stderr and shown.stderr.count("\n") == 1, shown.stderr

    both = cli("diff", middle, last, *hist)
    assert both.returncode == 2 and said in both.stderr, both.stderr

    # The last two readable complete scans are compared; the damaged one is said.
    drift = cli("diff", "--format", "json", *hist)
    assert drift.returncode == 0, drift.stderr
    doc = json.loads(drift.stdout)
    assert (doc["old"]["scan_id"], doc["new"]["scan_id"]) == (first, last), doc
    if "status" not in sql:  # a scan that is not 'complete' is no candidate to begin with
        assert said in drift.stderr, drift.stderr

    # A new scan stores, reads first/last seen past the damaged row, compares with the
    # last readable scan, and keeps its usual exit code.
    fresh = _scan(store, _port(store, last), "--fail-on-drift", "any")
    assert fresh.returncode == 0, fresh.stderr
    hosts = json.loads(fresh.stdout)["hosts"]
    started = _started(store, first)
    assert hosts[0]["first_seen"].replace("T", " ").rstrip("Z") == started, hosts


def _port(store: Path, scan_id: str) -> int:
    with sqlite3.connect(store) as db:
        (port,) = db.execute("SELECT port FROM ports WHERE scan_id = ? AND state = 'open'",
                             (scan_id,)).fetchone()
    return int(port)


def _started(store: Path, scan_id: str) -> str:
    with sqlite3.connect(store) as db:
        (started,) = db.execute("SELECT started_at FROM scans WHERE scan_id = ?",
                                (scan_id,)).fetchone()
    return str(started)


# Rows of a scan's result damaged: the scan cannot be shown or compared, and says why.
RESULT_ROW = [
    ("UPDATE hosts SET data = '{\"address\": ' WHERE scan_id = :scan", "table hosts row",
     "is not JSON"),
    ("UPDATE hosts SET data = '[1, 2]' WHERE scan_id = :scan", "table hosts row",
     "is not a JSON object"),
    ("UPDATE ports SET data = 'x' WHERE scan_id = :scan", "table ports row", "is not JSON"),
    ("UPDATE services SET observations = '{' WHERE scan_id = :scan", "table services row",
     "observations '{' is not JSON"),
    ("UPDATE findings SET data = '{\"status\": 7}' WHERE scan_id = :scan",
     "its stored result: findings.0", "(and "),
    ("UPDATE scans SET meta = NULL WHERE scan_id = :scan", "table scans",
     "meta is empty (NULL)"),
]


@pytest.mark.parametrize(("sql", "where", "problem"), RESULT_ROW, ids=lambda v: v[:40])
def test_damaged_result_row_is_named(pristine: tuple[Path, list[str]], tmp_path: Path,
                                     sql: str, where: str, problem: str) -> None:
    store, (first, _middle, last) = damaged(pristine, tmp_path, sql, 2)
    hist = ("--history", str(store))

    listed = cli("history", "list", *hist)  # the scan rows themselves are fine
    assert listed.returncode == 0, listed.stderr

    for args in (("history", "show", last), ("history", "show", last, "--format", "json"),
                 ("diff",), ("diff", first, last)):
        out = cli(*args, *hist)
        assert out.returncode == 2, out.stderr
        assert f"dicomscan: damaged row: scan {last}: {where}" in out.stderr, out.stderr
        assert problem in out.stderr and out.stderr.count("\n") == 1, out.stderr

    # The scan itself is stored and written; the drift it was asked for could not be
    # measured, which is exit 3, not the 0 of "no drift".
    fresh = _scan(store, _port(store, first), "--fail-on-drift", "any")
    assert fresh.returncode == 3, fresh.stderr
    assert "stored, but no drift: damaged row: scan " + last in fresh.stderr
    assert json.loads(fresh.stdout)["hosts"], fresh.stdout
    assert cli("history", "list", *hist).stdout.count("complete") == 4


def test_damaged_database_page_is_one_line(pristine: tuple[Path, list[str]],
                                           tmp_path: Path) -> None:
    source, ids = pristine
    store = tmp_path / "h.sqlite"
    shutil.copy(source, store)
    damage_table_page(store, "hosts")  # its root page overwritten
    for args in (("history", "show", ids[2]), ("diff",)):
        out = cli(*args, "--history", str(store))
        # It was sqlalchemy's DatabaseError traceback.
        assert out.returncode == 2, out.stderr
        assert out.stderr == (f"dicomscan: cannot read the history sqlite:///{store}: "
                              "database disk image is malformed\n")


def test_scan_into_a_store_with_a_damaged_scans_page_is_one_line(
        pristine: tuple[Path, list[str]], peer: int, tmp_path: Path) -> None:
    source, _ids = pristine
    store = tmp_path / "h.sqlite"
    shutil.copy(source, store)
    damage_table_page(store, "scans")  # its root page overwritten
    out = _scan(store, peer)
    # No scan without its trace in the history: exit 3 before any packet. The message
    # carried sqlalchemy's SQL statement and link over several lines.
    assert out.returncode == 3, out.stderr
    assert out.stderr == ("dicomscan: history: cannot record the scan: database disk image "
                          "is malformed\n")


def test_scan_reference_is_a_prefix_not_a_pattern(pristine: tuple[Path, list[str]],
                                                  tmp_path: Path) -> None:
    """'____' or '%%%%' matched any scan ID (SQL LIKE): with one scan stored, 'history
    show ____' showed it as if its ID began so."""
    store, ids = damaged(pristine, tmp_path, "DELETE FROM scans WHERE scan_id != :scan", 2)
    for ref in ("____", "%%%%", ids[2][:2] + "%"):
        out = cli("history", "show", ref + "_", "--history", str(store))
        assert out.returncode == 2, (ref, out.stdout)
        assert "no scan matches" in out.stderr
    assert cli("history", "show", ids[2][:6], "--history", str(store)).returncode == 0
