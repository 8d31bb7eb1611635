"""``dicomscan history prune``: the retention rules, the deletion on SQLite and a real
PostgreSQL (every table's rows of a deleted scan go, the kept scans load unchanged), and
the command on real scans of a real storescp."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from scanner.history.retention import plan_prune
from scanner.history.store import HistoryStore, ScanStatus
from scanner.history.timeline import devices_seen
from scanner.lab.peers import start_storescp
from scanner.model.ages import AgeError, parse_age
from tests.conftest import needs_dcmtk
from tests.history.conftest import T0, dicom, finding, host, scan

TABLES = ("scans", "hosts", "ports", "services", "findings")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def device(n: int) -> list:  # type: ignore[type-arg]
    """One DICOM device with a finding: rows in every table."""
    return [host("198.18.0.2", [104], [dicom(104)]),
            finding("dicom-echo-open", "198.18.0.2", 104)]


def fill(store: HistoryStore, jobs: dict[str | None, list[int]]) -> dict[int, str]:
    """Scan number -> ID, each scan recorded under its job (scan n starts at T0 + n h)."""
    ids = {}
    for job, numbers in jobs.items():
        for n in numbers:
            h, f = device(n)
            result = scan(n, [h], [f])
            store.record(result, job)
            ids[n] = result.scan.id
    return ids


def on_disk(location: str) -> int:
    """Bytes of a SQLite store: the file and its write-ahead log."""
    return sum(p.stat().st_size for p in Path(location).parent.glob(Path(location).name + "*"))


def free_pages(location: str) -> int:
    with sqlite3.connect(location) as db:
        count: int = db.execute("PRAGMA freelist_count").fetchone()[0]
    return count


def rows_of(store: HistoryStore, scan_id: str) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t} WHERE scan_id = :s"),
                                {"s": scan_id}).scalar_one() for t in TABLES}


@pytest.mark.parametrize(("text_", "hours"), [("36h", 36), ("90d", 90 * 24), ("2W", 336),
                                              (" 1d ", 24)])
def test_an_age_is_a_number_and_a_unit(text_: str, hours: int) -> None:
    assert parse_age(text_) == timedelta(hours=hours)


@pytest.mark.parametrize("bad", ["", "90", "d", "0d", "-1d", "1.5d", "1y", "9999999d", "1d2h"])
def test_anything_else_is_not_an_age(bad: str) -> None:
    with pytest.raises(AgeError):
        parse_age(bad)


def test_the_rules_delete_what_matches_all_and_keep_each_job_s_newest_complete(
        store_location: str) -> None:
    store = HistoryStore.open(store_location)
    ids = fill(store, {"ct": [1, 2, 3, 4], "mr": [5, 6], None: [7]})
    store.begin("killed", "mr", ["198.18.0.2"], "safe", started_at=T0 + timedelta(hours=8))
    now = T0 + timedelta(hours=10)
    scans = store.scans()

    by_count = plan_prune(scans, now=now, older_than=None, keep_last=2)
    assert {s.scan_id for s in by_count.delete} == {ids[1], ids[2], ids[5]}
    assert by_count.protected == ()
    # mr's newest is the killed (running) scan: its newest complete one (6) stays anyway
    by_one = plan_prune(scans, now=now, older_than=None, keep_last=1)
    assert {s.scan_id for s in by_one.delete} == {ids[1], ids[2], ids[3], ids[5]}
    assert [s.scan_id for s in by_one.protected] == [ids[6]]

    # started more than 5.5 hours before now: scans 1-4 (ct), whose newest (4) stays
    by_age = plan_prune(scans, now=now, older_than=timedelta(hours=5, minutes=30),
                        keep_last=None)
    assert {s.scan_id for s in by_age.delete} == {ids[1], ids[2], ids[3]}
    assert [s.scan_id for s in by_age.protected] == [ids[4]]
    both = plan_prune(scans, now=now, older_than=timedelta(hours=5, minutes=30), keep_last=3)
    assert [s.scan_id for s in both.delete] == [ids[1]]
    nothing = plan_prune(scans, now=now, older_than=timedelta(days=30), keep_last=None)
    assert nothing.delete == () and len(nothing.keep) == len(scans)


def test_a_prune_deletes_every_row_of_its_scans_and_nothing_of_the_others(
        store_location: str, tmp_path: Path) -> None:
    store = HistoryStore.open(store_location)
    ids = fill(store, {"ct": [1, 2, 3]})
    kept = store.load(ids[3])
    assert all(n > 0 for n in rows_of(store, ids[1]).values())
    out = cli("history", "prune", "--history", store_location, "--keep", "1", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["deleted"], doc["kept"], doc["dry_run"]) == (2, 1, False)
    assert [s["scan_id"] for s in doc["scans"]] == [ids[2], ids[1]]
    for gone in (ids[1], ids[2]):
        assert rows_of(store, gone) == dict.fromkeys(TABLES, 0)
    assert store.load(ids[3]) == kept
    # first seen is now first seen in what is kept
    seen = devices_seen(store, [kept.hosts[0].device_id], job="ct")
    assert seen[kept.hosts[0].device_id][0] == kept.scan.started_at


def test_vacuum_is_said_to_be_for_sqlite_only(store_location: str) -> None:
    fill(HistoryStore.open(store_location), {"ct": [1, 2]})
    out = cli("history", "prune", "--history", store_location, "--keep", "1", "--vacuum")
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "deleted 1 scan; 1 kept"
    said = "--vacuum is for SQLite stores" in out.stderr
    assert said is store_location.startswith("postgresql"), out.stderr


def test_a_dry_run_changes_nothing(store_location: str) -> None:
    store = HistoryStore.open(store_location)
    ids = fill(store, {"ct": [1, 2, 3]})
    out = cli("history", "prune", "--history", store_location, "--older-than", "1h",
              "--dry-run")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 4 and lines[-1] == "would delete 2 scans; 1 kept"
    assert lines[2].startswith("kept") and lines[2].endswith("(newest complete scan of its job)")
    out = cli("history", "prune", "--history", store_location, "--older-than", "1h",
              "--dry-run", "--format", "json")
    doc = json.loads(out.stdout)
    assert (doc["dry_run"], doc["deleted"], doc["kept_as_newest_complete"]) == (True, 0, [ids[3]])
    assert [s["scan_id"] for s in doc["scans"]] == [ids[2], ids[1]]
    assert len(store.scans()) == 3 and rows_of(store, ids[1])["hosts"] == 1


def test_a_database_that_refuses_the_deletion_loses_nothing(tmp_path: Path) -> None:
    location = tmp_path / "h.sqlite"
    store = HistoryStore.open(location)
    ids = fill(store, {"ct": [1, 2, 3]})
    store.close()
    with sqlite3.connect(location) as db:  # a site's own guard on its audit trail
        db.execute("CREATE TRIGGER keep_scans BEFORE DELETE ON scans "
                   "BEGIN SELECT RAISE(ABORT, 'audit trail: scans are kept'); END")
    out = cli("history", "prune", "--history", str(location), "--keep", "1")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "cannot prune the history" in out.stderr and "scans are kept" in out.stderr
    store = HistoryStore.open(location)
    assert {s.scan_id for s in store.scans()} == set(ids.values())


@pytest.mark.parametrize("args", [(), ("--older-than", "0d"), ("--older-than", "3 days"),
                                  ("--keep", "0"), ("--older-than", "\x1b[31m9d")])
def test_a_prune_without_a_valid_rule_is_a_usage_error(tmp_path: Path,
                                                       args: tuple[str, ...]) -> None:
    location = tmp_path / "h.sqlite"
    fill(HistoryStore.open(location), {"ct": [1, 2]})
    out = cli("history", "prune", "--history", str(location), *args)
    assert out.returncode == 2, out.stderr
    assert "\x1b" not in out.stderr
    assert len(HistoryStore.open(location).scans()) == 2


def test_a_prune_of_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    out = cli("history", "prune", "--history", str(tmp_path / "typo.sqlite"), "--keep", "1")
    assert out.returncode == 2 and "no history at" in out.stderr
    assert list(tmp_path.iterdir()) == []


@needs_dcmtk
def test_real_scans_pruned_and_vacuumed_keep_the_newest_and_its_drift(tmp_path: Path) -> None:
    location = str(tmp_path / "h.sqlite")
    peer = start_storescp()
    try:
        for _ in range(4):
            out = cli("scan", "127.0.0.1", "-p", str(peer.info.port), "--discovery", "none",
                      "--fail-on", "never", "-q", "--format", "json", "--history", location,
                      "--job", "lab")
            assert out.returncode == 0, out.stderr
    finally:
        peer.stop()
    before = [s.scan_id for s in HistoryStore.open(location).scans("lab")]
    out = cli("history", "prune", "--history", location, "--keep", "3")
    assert out.stdout.splitlines()[-1] == "deleted 1 scan; 3 kept"
    assert free_pages(location) > 0  # kept in the file for the next scans
    wal = Path(location + "-wal")  # the deletion went through the log, now moved in
    assert not wal.exists() or wal.stat().st_size == 0
    size = on_disk(location)
    out = cli("history", "prune", "--history", location, "--keep", "2", "--vacuum")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "deleted 1 scan; 2 kept"
    assert free_pages(location) == 0
    store = HistoryStore.open(location)
    assert [s.scan_id for s in store.scans("lab")] == before[:2]
    assert all(s.status is ScanStatus.COMPLETE for s in store.scans("lab"))
    assert on_disk(location) < size  # the freed pages went back
    out = cli("diff", "--history", location, "--job", "lab", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["changes"] == []


@needs_dcmtk
def test_a_job_s_retention_runs_right_after_its_scheduled_scan(tmp_path: Path) -> None:
    """The crontab line that `schedule` prints, run through sh as cron runs it: the scan
    is stored, then the job's old scans go and another job's stay."""
    location = str(tmp_path / "h%store.sqlite")  # '%' is cron's newline: escaped
    store = HistoryStore.open(location)
    old = fill(store, {"night": [1, 2], "day": [3]})  # T0 + hours: more than a day ago
    store.close()
    peer = start_storescp()
    site = tmp_path / "site.yaml"
    site.write_text(f"history: {json.dumps(location)}\njobs:\n  night:\n"
                    f"    targets: [127.0.0.1]\n    ports: [{peer.info.port}]\n"
                    "    discovery: none\n    fail_on: never\n"
                    "    schedule: {cron: '30 1 * * *', retention: {older_than: 12h}}\n")
    try:
        out = cli("schedule", "--print", "cron", "--config", str(site), "--exec",
                  f"{sys.executable} -m scanner")
        assert out.returncode == 0, out.stderr
        line = out.stdout.strip()
        assert line.endswith(" history prune --history "
                             f"{location.replace('%', chr(92) + '%')} --job night "
                             "--older-than 12h --quiet")
        command = line.split(" ", 5)[5].replace("\\%", "%")  # what cron hands to sh
        run = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    finally:
        peer.stop()
    # the scan's own report (no outputs configured: the table) and nothing of the prune
    assert run.returncode == 0 and run.stderr == "", run.stdout + run.stderr
    assert "Hosts and open ports" in run.stdout and "deleted" not in run.stdout
    store = HistoryStore.open(location)
    night = store.scans("night")
    assert len(night) == 1 and night[0].scan_id not in old.values()  # the scan just made
    assert [s.scan_id for s in store.scans("day")] == [old[3]]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed")
def test_a_job_s_retention_is_the_service_s_post_step(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("jobs:\n  night:\n    targets: [198.18.0.1]\n"
                    "    schedule: {retention: {keep: 30, older_than: 12w}}\n")
    units = tmp_path / "units"
    out = cli("schedule", "--print", "systemd", "--config", str(site), "--write", str(units),
              "--exec", "/usr/bin/dicomscan")
    assert out.returncode == 0, out.stderr
    service = (units / "dicomscan-night.service").read_text()
    assert ("ExecStartPost=/usr/bin/dicomscan history prune --history "
            "/var/lib/dicomscan/history.sqlite --job night --older-than 12w --keep 30 --quiet"
            ) in service.splitlines()
    verify = subprocess.run(["systemd-analyze", "verify", str(units / "dicomscan-night.service"),
                             str(units / "dicomscan-night.timer")], capture_output=True,
                            text=True, timeout=60)
    assert "ExecStartPost" not in verify.stderr, verify.stderr


@pytest.mark.parametrize(("retention", "error"), [
    ("{}", ": Value error, say what to delete"),
    ("{older_than: 0d}", ".older_than: Value error, '0d': an age of 0"),
    ("{older_than: 90}", ".older_than: Input should be a valid string"),
    ("{keep: 0}", ".keep: Input should be greater than or equal to 1"),
    ("{keep: '3'}", ".keep: Input should be a valid integer"),
    ("{keep: 3, forever: yes}", ".forever: Extra inputs are not permitted")])
def test_a_bad_retention_is_named_with_its_line(tmp_path: Path, retention: str,
                                                error: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(f"jobs:\n  night:\n    targets: [198.18.0.1]\n    schedule:\n"
                    f"      retention: {retention}\n")
    out = cli("config", "check", str(site))
    where = f"{site}:5: jobs.night.schedule.retention{error}"
    assert out.returncode == 2 and where in out.stderr, out.stderr
