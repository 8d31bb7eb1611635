"""Retention: which stored scans ``history prune`` deletes, and the deletion itself.

A store that records a scheduled scan every day grows without end (about 10 MB a scan of
1,000 devices), so an unattended site needs a way to keep only what it uses. The rules keep
what the other commands need: the newest complete scan of every job always stays, as
drift and first/last seen compare against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from scanner.history.schema import ScanRow
from scanner.history.store import HistoryStore, ScanStatus, StoredScan

# A DELETE's IN list this long at the most (SQLite's bound parameters are limited).
_BATCH = 500


@dataclass(frozen=True)
class PrunePlan:
    """What a prune deletes and keeps. ``protected``: scans kept because each is the newest
    complete one of its job, although the rules alone would delete them."""

    delete: tuple[StoredScan, ...]
    keep: tuple[StoredScan, ...]
    protected: tuple[StoredScan, ...]


def plan_prune(scans: Iterable[StoredScan], *, now: datetime, older_than: timedelta | None,
               keep_last: int | None) -> PrunePlan:
    """A scan goes when it matches every rule given: started before ``now - older_than``,
    and not among the ``keep_last`` newest of its job (scans without a job form one group).
    The newest complete scan of each job stays whatever the rules say."""
    if older_than is None and keep_last is None:
        raise ValueError("a prune needs an age, a count or both")
    by_job: dict[str | None, list[StoredScan]] = {}
    for s in scans:
        by_job.setdefault(s.job, []).append(s)
    doomed: list[StoredScan] = []
    kept: list[StoredScan] = []
    protected: list[StoredScan] = []
    for group in by_job.values():
        group.sort(key=lambda s: s.started_at, reverse=True)
        newest_complete = next((s for s in group if s.status is ScanStatus.COMPLETE), None)
        for rank, s in enumerate(group):
            old = older_than is None or s.started_at < now - older_than
            beyond = keep_last is None or rank >= keep_last
            if not (old and beyond):
                kept.append(s)
            elif s is newest_complete:
                protected.append(s)
            else:
                doomed.append(s)
    newest_first = sorted(doomed, key=lambda s: s.started_at, reverse=True)
    return PrunePlan(tuple(newest_first), tuple(kept), tuple(protected))


def delete_scans(store: HistoryStore, scans: Sequence[StoredScan]) -> int:
    """Delete these scans with their hosts, ports, services and findings (the tables'
    ON DELETE CASCADE) in one transaction; the number of scans deleted."""
    ids = [s.scan_id for s in scans]
    deleted = 0
    with store.session() as session:
        for start in range(0, len(ids), _BATCH):
            result = session.execute(
                delete(ScanRow).where(ScanRow.scan_id.in_(ids[start:start + _BATCH])))
            deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


def compact(store: HistoryStore, *, rewrite: bool) -> None:
    """After a deletion from SQLite: move the write-ahead log into the file and truncate
    it (the deletion itself went through the log, which otherwise stays as large as what
    was deleted); with ``rewrite``, VACUUM first, giving the freed pages back to the file
    system (it rewrites the file). Nothing for other databases: their autovacuum does this."""
    if store.engine.dialect.name != "sqlite":
        return
    raw = store.engine.raw_connection()
    try:
        # The store's connections run in SQLite's autocommit mode (no open transaction),
        # which VACUUM needs.
        cursor = raw.cursor()
        if rewrite:
            cursor.execute("VACUUM")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
