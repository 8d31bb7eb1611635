"""What the history knows across scans: when a device or finding was first and last
seen, which findings failed before, and drift between two stored scans."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, Text, case, cast, func, null, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from scanner.history.drift import compute_drift, device_seen
from scanner.history.rows import (
    MAX_CELL,
    DamagedRow,
    as_time,
    bounded,
    column,
    raw,
    sized,
    too_large,
)
from scanner.history.schema import FindingRow, HostRow, ScanRow
from scanner.history.store import HistoryError, HistoryStore, ScanStatus, StoredScan
from scanner.model import FindingStatus, ScanResult
from scanner.model.drift import Drift

Seen = dict[str, tuple[datetime, datetime]]
_FAIL = FindingStatus.FAIL.value
_FINISHED = (ScanStatus.COMPLETE.value, ScanStatus.INTERRUPTED.value)


def _scope(job: str | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [ScanRow.status.in_(_FINISHED)]
    if job is not None:
        conds.append(ScanRow.job == job)
    if until is not None:
        conds.append(ScanRow.started_at <= until)
    return conds


def _first_last(store: HistoryStore, key: InstrumentedAttribute[str],
                ids: list[str], conds: list[ColumnElement[bool]]) -> Seen:
    """First and last scan start per key, in SQL; keys whose first or last start is not
    a date (a damaged scan row) are done again in Python without the damaged scans."""
    table = key.class_
    # The key equals one of ``ids``; a start is bounded like every history cell (a
    # damaged one of hundreds of MB was the min or max, read whole twice), and a key
    # with an oversized start is done again below, where that scan is named.
    size = func.length(cast(ScanRow.started_at, Text))
    start = case((size > MAX_CELL, null()), else_=ScanRow.started_at)
    query = (select(key, raw(func.min(start)), raw(func.max(start)), func.max(size))
             .join(ScanRow, ScanRow.scan_id == table.scan_id)
             .where(key.in_(ids), *conds).group_by(key))
    seen: Seen = {}
    again: list[str] = []
    with Session(store.engine) as s:
        for name, first, last, longest in s.execute(query):
            try:
                if (longest or 0) > MAX_CELL:
                    raise ValueError("a start too large to read")
                seen[name] = (as_time(first), as_time(last))
            except ValueError:
                again.append(name)
        if not again:
            return seen
        pairs = (select(key, ScanRow.scan_id, *bounded(ScanRow.started_at, "started_at"))
                 .distinct().join(ScanRow, ScanRow.scan_id == table.scan_id)
                 .where(key.in_(again), *conds))
        times: dict[str, list[datetime]] = {}
        for row in s.execute(pairs).mappings():
            scan_id = row["scan_id"]
            try:
                times.setdefault(row[key.key], []).append(column(
                    scan_id, "table scans", sized(scan_id, "table scans", row), "started_at",
                    "time"))
            except DamagedRow as damage:
                store.note_damage(damage)
    seen.update({name: (min(t), max(t)) for name, t in times.items()})
    return seen


def devices_seen(store: HistoryStore, device_ids: Iterable[str], *, job: str | None = None,
                 until: datetime | None = None) -> Seen:
    """First and last scan start at which each device answered (open port or discovery)."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    return _first_last(store, HostRow.device_id, ids,
                       [HostRow.seen.is_(True), *_scope(job, until)])


def findings_seen(store: HistoryStore, finding_ids: Iterable[str], *, job: str | None = None,
                  until: datetime | None = None) -> Seen:
    """First and last scan start at which each finding failed."""
    ids = sorted(set(finding_ids))
    if not ids:
        return {}
    return _first_last(store, FindingRow.finding_id, ids,
                       [FindingRow.status == _FAIL, *_scope(job, until)])


def failed_before(store: HistoryStore, before: StoredScan, job: str | None) -> frozenset[str]:
    """Finding IDs that failed in any finished scan older than ``before``."""
    # Other scans' IDs, not read before: bounded like every history cell. A damaged one
    # comes back as NULL with its scan and size, and that scan is named and left out.
    size = func.length(cast(FindingRow.finding_id, Text))
    large = size > MAX_CELL
    query = (select(case((large, null()), else_=FindingRow.finding_id),
                    case((large, FindingRow.scan_id), else_=null()),
                    case((large, FindingRow.id), else_=null()),
                    case((large, size), else_=null())).distinct()
             .join(ScanRow, ScanRow.scan_id == FindingRow.scan_id)
             .where(FindingRow.status == _FAIL, ScanRow.started_at < before.started_at,
                    ScanRow.scan_id != before.scan_id, *_scope(job, None)))
    found: set[str] = set()
    with Session(store.engine) as s:
        for finding_id, scan_id, row_id, length in s.execute(query):
            if scan_id is None:
                found.add(finding_id)
                continue
            store.note_damage(too_large(scan_id, f"table findings row {row_id}",
                                        "finding_id", length))
    return frozenset(found)


def last_two(store: HistoryStore, job: str | None) -> tuple[StoredScan, StoredScan]:
    scans = store.scans(job, complete_only=True, limit=2)
    if len(scans) < 2:
        which = f"job {job!r}" if job else "the history"
        raise HistoryError(f"{which} has {len(scans)} complete scan(s); drift needs two")
    return scans[1], scans[0]


def stored_drift(store: HistoryStore, old_ref: str | None = None, new_ref: str | None = None,
                 job: str | None = None) -> Drift:
    """Drift between two stored scans (default: the last two complete ones of ``job``),
    with first and last seen from the history up to the new scan."""
    if old_ref is None or new_ref is None:
        old, new = last_two(store, job)
        if new_ref is not None:
            new = store.find(new_ref)
        if old_ref is not None:
            old = store.find(old_ref)
    else:
        old, new = store.find(old_ref), store.find(new_ref)
    scope_job = new.job if job is None else job
    drift = compute_drift(store.load(old.scan_id), store.load(new.scan_id), old_job=old.job,
                          new_job=new.job,
                          previously_failed=failed_before(store, old, scope_job))
    devices = devices_seen(store, (c.device_id for c in drift.changes), job=scope_job,
                           until=new.started_at)
    findings = findings_seen(store, (c.finding_id for c in drift.changes if c.finding_id),
                             job=scope_job, until=new.started_at)
    changes = []
    for c in drift.changes:
        seen = findings.get(c.finding_id) if c.finding_id else devices.get(c.device_id)
        changes.append(c if seen is None else
                       c.model_copy(update={"first_seen": seen[0], "last_seen": seen[1]}))
    return drift.model_copy(update={"changes": changes})


def with_seen(store: HistoryStore, result: ScanResult, job: str | None,
              until: datetime | None = None) -> ScanResult:
    """The result with first and last seen on each device that answered and each finding
    that failed, from the finished scans of ``job`` up to ``until`` (default: this scan's
    start). The scan itself counts once it is stored; others keep None."""
    until = until or result.scan.started_at
    hosts = [h for h in result.hosts if device_seen(h)]
    failed = [f for f in result.findings if f.status is FindingStatus.FAIL]
    dseen = devices_seen(store, (h.device_id for h in hosts), job=job, until=until)
    fseen = findings_seen(store, (f.finding_id for f in failed), job=job, until=until)

    def seen(table: Seen, key: str) -> dict[str, datetime]:
        first_last = table.get(key)
        return {} if first_last is None else {"first_seen": first_last[0],
                                               "last_seen": first_last[1]}

    return result.model_copy(update={
        "hosts": [h.model_copy(update=seen(dseen, h.device_id)) for h in result.hosts],
        "findings": [f.model_copy(update=seen(fseen, f.finding_id))
                     if f.status is FindingStatus.FAIL else f for f in result.findings],
    })
