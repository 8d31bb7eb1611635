"""The history store on SQLite and on a real PostgreSQL: round trip, partial scans,
migrations, concurrent writers, first/last seen, and drift from stored scans."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from scanner.history.drift import compute_drift
from scanner.history.schema import Base
from scanner.history.store import HistoryError, HistoryStore, ScanStatus, database_url
from scanner.history.timeline import last_two, stored_drift
from scanner.model.drift import DriftKind
from tests.history.conftest import dicom, finding, host, scan


def kinds(drift: object) -> list[tuple[str, str, int | None]]:
    return sorted((c.kind.value, c.address, c.port) for c in drift.changes)  # type: ignore[attr-defined]


def test_scan_round_trips_through_the_store(store_location: str) -> None:
    store = HistoryStore.open(store_location)
    result = scan(1, [host("198.18.0.2", [104, 2762], [dicom(104), dicom(2762, tls_versions=
                  ["TLSv1.2"])], mac="AA:BB:CC:00:00:01"), host("198.18.0.3", [])],
                  [finding("dicom-echo-open", "198.18.0.2", 104)])
    store.record(result, "radiology")
    assert store.load(result.scan.id[:12]) == result
    [stored] = store.scans("radiology")
    assert (stored.status, stored.hosts, stored.services, stored.findings, stored.failed) == \
        (ScanStatus.COMPLETE, 2, 2, 1, 1)
    assert store.scans("other") == []
    if store.engine.dialect.name == "sqlite":  # concurrent readers and one writer
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_scan_that_never_finished_stays_partial(store_location: str) -> None:
    store = HistoryStore.open(store_location)
    done = [scan(n, [host("198.18.0.2", [104])]) for n in (1, 2)]
    for r in done:
        store.record(r, "j")
    store.begin("killed-scan", "j", ["198.18.0.2"], "safe", started_at=done[1].scan.started_at
                .replace(hour=23))
    stored = store.find("killed-scan")
    assert stored.status is ScanStatus.RUNNING and stored.partial
    with pytest.raises(HistoryError, match="never finished"):
        store.load("killed-scan")
    # drift by default compares the last two *complete* scans, not the killed one
    old, new = last_two(store, "j")
    assert (old.scan_id, new.scan_id) == (done[0].scan.id, done[1].scan.id)
    interrupted = scan(3, [host("198.18.0.2", [104])], interrupted=True)
    store.record(interrupted, "j")
    assert store.find(interrupted.scan.id).status is ScanStatus.INTERRUPTED


def test_migrations_build_exactly_the_models_schema(store_location: str) -> None:
    store = HistoryStore.open(store_location)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff
    assert store.revision() == "0001"


def test_a_store_made_at_revision_0001_opens_and_keeps_its_data(store_location: str) -> None:
    # Build the first schema version with Alembic alone and fill it with plain SQL, as a
    # store written by that version would be, then open it the normal way.
    engine = create_engine(database_url(store_location))
    bare = HistoryStore(engine)
    bare.upgrade("0001")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO scans (scan_id, job, status, started_at, recorded_at, tool_version,"
            " targets, host_count, service_count, finding_count, failed_count) VALUES "
            "('old-1', 'legacy', 'running', '2026-01-01 00:00:00+00:00',"
            " '2026-01-01 00:00:00+00:00', '0.1.0', '[\"198.18.0.9\"]', 0, 0, 0, 0)"))
    engine.dispose()
    store = HistoryStore.open(store_location)
    [old] = store.scans("legacy")
    assert old.scan_id == "old-1" and old.partial and old.targets == ["198.18.0.9"]


def test_concurrent_writers_each_store_their_scan(store_location: str) -> None:
    # No store yet: the eight writers also race to create the schema.
    results = [scan(n, [host(f"198.18.0.{n}", [104], [dicom(104)])],
                    [finding("dicom-echo-open", f"198.18.0.{n}", 104)]) for n in range(1, 9)]

    def write(i: int) -> None:
        store = HistoryStore.open(store_location)  # each its own engine, like a process
        store.begin(results[i].scan.id, "busy", results[i].scan.targets, "safe")
        store.record(results[i], "busy")
        store.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    store = HistoryStore.open(store_location)
    assert {s.scan_id for s in store.scans("busy")} == {r.scan.id for r in results}
    assert all(store.load(r.scan.id) == r for r in results)


def test_a_finding_that_comes_back_is_reopened_with_first_and_last_seen(
        store_location: str) -> None:
    store = HistoryStore.open(store_location)
    a = "198.18.0.2"
    states = ["fail", "pass", "fail"]
    runs = [scan(n, [host(a, [104], [dicom(104)])], [finding("dicom-echo-open", a, 104, st)])
            for n, st in enumerate(states, 1)]
    for r in runs:
        store.record(r, "j")
    drift = stored_drift(store, job="j")
    [change] = drift.changes
    assert change.kind is DriftKind.FINDING_REOPENED
    assert (change.first_seen, change.last_seen) == (runs[0].scan.started_at,
                                                     runs[2].scan.started_at)
    middle = stored_drift(store, runs[0].scan.id, runs[1].scan.id)
    assert [c.kind for c in middle.changes] == [DriftKind.FINDING_RESOLVED]


def test_drift_names_every_kind_of_change() -> None:
    a, b, c = "198.18.0.2", "198.18.0.3", "198.18.0.4"
    old = scan(1, [host(a, [104, 11112], [dicom(104, tls_versions=["TLSv1.2"]),
                                          dicom(11112)]),
                   host(b, [104], [dicom(104)])],
               [finding("dicom-echo-open", a, 104), finding("dicom-cleartext", a, 11112),
                finding("dicom-echo-open", b, 104)])
    new = scan(2, [host(a, [104, 11112, 8042], [
                   dicom(104, tls_versions=[], version="3.6.8", echo="refused"),
                   dicom(11112, called_ae="accepted")]),
                   host(c, [104], [dicom(104)])],
               [finding("dicom-echo-open", a, 104, "pass"), finding("dicom-cleartext", a, 11112),
                finding("dicom-called-ae-not-enforced", a, 11112),
                finding("dicom-echo-open", c, 104)])
    drift = compute_drift(old, new)
    assert kinds(drift) == sorted([
        ("device-appeared", c, None), ("device-vanished", b, None),
        ("port-opened", a, 8042),
        ("service-changed", a, 104), ("tls-changed", a, 104), ("tls-changed", a, 104),
        ("tls-changed", a, 104), ("operations-changed", a, 104),
        ("ae-policy-changed", a, 11112),
        ("finding-resolved", a, 104), ("finding-new", a, 11112), ("finding-new", c, 104),
    ])
    tls = {ch.field: (ch.before, ch.after) for ch in drift.of_kind(DriftKind.TLS_CHANGED)}
    assert tls["tls.versions"] == (["TLSv1.2"], [])
    # the vanished device's finding is told by its vanishing, not as "resolved"
    assert not [ch for ch in drift.changes if ch.kind is DriftKind.FINDING_RESOLVED
                and ch.address == b]
    assert compute_drift(old, old).changes == []


def test_a_port_not_scanned_again_is_not_closed() -> None:
    a = "198.18.0.2"
    old = scan(1, [host(a, [104, 4242])])
    new = scan(2, [host(a, [104])], ports=[104])
    assert compute_drift(old, new).changes == []
    assert kinds(compute_drift(old, scan(3, [host(a, [104])], ports=[104, 4242]))) == [
        ("port-closed", a, 4242)]


def test_locations_become_urls(tmp_path: Path) -> None:
    assert database_url("postgresql://scan@db.example/history") == \
        "postgresql+psycopg://scan@db.example/history"
    assert database_url(str(tmp_path / "h.sqlite")) == f"sqlite:///{tmp_path / 'h.sqlite'}"


def test_bad_locations_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="not a usable database URL"):
        HistoryStore.open("nosuchdb://x/y")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HistoryError, match="cannot create the folder"):
        HistoryStore.open(str(blocker / "sub" / "h.sqlite"))


def test_a_version_measured_on_one_side_only_is_no_change() -> None:
    """Over TLS a product may stay unidentified: unknown is not a change to a value."""
    a = "198.18.0.2"
    unknown = dicom(104).model_copy(update={"product": None, "version": None})
    old = scan(1, [host(a, [104], [unknown])])
    new = scan(2, [host(a, [104], [dicom(104)])])
    assert compute_drift(old, new).changes == []
    newer = scan(3, [host(a, [104], [dicom(104, version="3.6.8")])])
    assert kinds(compute_drift(new, newer)) == [("service-changed", a, 104)]
