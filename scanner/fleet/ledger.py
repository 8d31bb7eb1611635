"""The job ledger: every submitted job's state, in SQLite beside the central config.

``submit`` writes a job as queued; the central process moves it to running (progress),
done (its result stored in the history) or failed (refused by the sensor, or no result
after the maximum deliveries). ``done`` is set once: a later result for the same job is
a duplicate and is never stored again, whatever the stream's duplicate window.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateTable

from scanner.fleet.layout import FleetError
from scanner.history.sqlite_wal import WAIT_S, access_problem, lenient_text, switch_to_wal
from scanner.model.base import Frozen


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINAL = (JobState.DONE, JobState.FAILED)

_meta = MetaData()
jobs = Table(
    "jobs", _meta,
    Column("job_id", String(64), primary_key=True),
    Column("sensor", String(64), nullable=False),
    Column("name", String(200)),
    Column("state", String(16), nullable=False),
    Column("seq", Integer),  # JOBS stream sequence, to match the max-deliveries advisory
    Column("targets", Text, nullable=False),
    Column("submitted_at", Float, nullable=False),
    Column("picked_at", Float),
    Column("finished_at", Float),
    Column("delivery", Integer, nullable=False, default=0),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False, default=0),
    Column("scan_id", String(64)),
    Column("reason", Text),
    Column("duplicates", Integer, nullable=False, default=0),
)


class JobRow(Frozen):
    job_id: str
    sensor: str
    name: str | None
    state: JobState
    seq: int | None
    targets: str
    submitted_at: float
    picked_at: float | None
    finished_at: float | None
    delivery: int
    done: int
    total: int
    scan_id: str | None
    reason: str | None
    duplicates: int


class DamagedJob(FleetError):
    """A ledger row that does not read as a job: names the job and what is wrong."""


def _row(row: Any) -> JobRow:
    try:
        return JobRow.model_validate(dict(row))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "row"
        value = repr(first.get("input"))[:60]
        raise DamagedJob(f"damaged job ledger row: job {str(row['job_id'])[:64]!r}: {where} "
                         f"{value}: {first['msg']}") from None


class Ledger:
    def __init__(self, path: Path) -> None:
        # damaged rows left out of all(), one message each, for the caller to say
        self.damaged: list[str] = []
        self.path = path
        self.engine: Engine = create_engine(f"sqlite:///{path}",
                                            connect_args={"timeout": WAIT_S})

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.text_factory = lenient_text
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={WAIT_S * 1000}")
            switch_to_wal(cur)  # submit and central write at once
            cur.close()

        # IF NOT EXISTS, not create_all's look-then-create: the centre and a submit may
        # both be first to open the ledger, and the slower one would fail.
        try:
            with self.engine.begin() as c:
                c.execute(CreateTable(jobs, if_not_exists=True))
        except SQLAlchemyError as exc:  # not a database, a folder in the way, unreadable
            self.engine.dispose()
            # SQLite's "unable to open database file" names neither file nor reason
            if where := access_problem(str(path), writing=True):
                raise FleetError(f"cannot open the job ledger {where}") from None
            why = getattr(exc, "orig", None) or exc
            raise FleetError(f"cannot open the job ledger {path}: {why}") from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """A write transaction; a file damaged under it is FleetError, one line (submit
        showed sqlalchemy's DatabaseError traceback)."""
        try:
            with self.engine.begin() as c:
                yield c
        except SQLAlchemyError as exc:
            why = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise FleetError(f"cannot write the job ledger {self.path}: {why}") from None

    def add(self, job_id: str, sensor: str, name: str | None, targets: list[str],
            submitted_at: float) -> None:
        with self._writing() as c:
            c.execute(jobs.insert().values(
                job_id=job_id, sensor=sensor, name=name, state=JobState.QUEUED.value,
                targets=" ".join(targets), submitted_at=submitted_at, delivery=0, done=0,
                total=0, duplicates=0))

    def set_seq(self, job_id: str, seq: int) -> None:
        with self._writing() as c:
            c.execute(update(jobs).where(jobs.c.job_id == job_id).values(seq=seq))

    def get(self, job_id: str) -> JobRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(jobs).where(jobs.c.job_id == job_id)).mappings().first()
        return _row(row) if row else None

    def find(self, ref: str) -> JobRow | None:
        """By ID or a unique prefix of at least 4 characters."""
        if len(ref) < 4:
            return None
        with self.engine.connect() as c:
            # autoescape: a reference is a prefix, not a LIKE pattern ('____' matched all)
            query = select(jobs).where(jobs.c.job_id.startswith(ref, autoescape=True))
            rows = list(c.execute(query.limit(2)).mappings())
        return _row(rows[0]) if len(rows) == 1 else None

    def by_seq(self, seq: int) -> JobRow | None:
        with self.engine.connect() as c:
            row = c.execute(select(jobs).where(jobs.c.seq == seq)).mappings().first()
        return _row(row) if row else None

    def all(self, limit: int = 200) -> list[JobRow]:
        """The newest jobs; damaged rows are left out and noted in ``damaged``."""
        found: list[JobRow] = []
        with self.engine.connect() as c:
            rows = c.execute(select(jobs).order_by(jobs.c.submitted_at.desc()).limit(limit))
            for r in rows.mappings():
                try:
                    found.append(_row(r))
                except DamagedJob as exc:
                    self.damaged.append(str(exc))
        return found

    def progress(self, job_id: str, delivery: int, done: int, total: int, at: float) -> None:
        """Running, unless already final (a late progress report changes nothing). One
        conditional UPDATE: a read then a write would race with ``finish``."""
        with self.engine.begin() as c:
            c.execute(update(jobs).where(jobs.c.job_id == job_id, _not_final()).values(
                state=JobState.RUNNING.value, delivery=delivery, done=done, total=total,
                picked_at=func.coalesce(jobs.c.picked_at, at)))

    def finish(self, job_id: str, state: JobState, at: float, scan_id: str | None = None,
               reason: str | None = None) -> bool:
        """Mark the job final; False (a duplicate counted) when it already was."""
        done = {"done": jobs.c.total} if state is JobState.DONE else {}
        with self.engine.begin() as c:
            changed = c.execute(update(jobs).where(jobs.c.job_id == job_id, _not_final())
                                .values(state=state.value, finished_at=at, scan_id=scan_id,
                                        reason=reason, **done)).rowcount
            if changed:
                return True
            c.execute(update(jobs).where(jobs.c.job_id == job_id)
                      .values(duplicates=jobs.c.duplicates + 1))
            return False


def _not_final() -> Any:
    return jobs.c.state.not_in([s.value for s in FINAL])
