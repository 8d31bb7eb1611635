"""The history store: every scan with its hosts, ports, services and findings, in SQLite
(default, a file in the user's data directory) or PostgreSQL, through SQLAlchemy 2.

A scan is written twice: ``begin`` records it as running before any packet is sent,
and ``record`` replaces that with the whole result in one transaction. A scan killed
in between stays ``running`` and reads as partial; a Ctrl-C'd one is ``interrupted``.
The schema is brought to the newest Alembic revision whenever a store is opened.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine, delete, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from scanner.history.drift import device_seen
from scanner.history.rows import (
    DamagedRow,
    bounded,
    column,
    invalid,
    raw_columns,
    shown,
    sized,
)
from scanner.history.schema import Base, FindingRow, HostRow, PortRow, ScanRow, ServiceRow
from scanner.history.sqlite_wal import WAIT_S, access_problem, lenient_text, switch_to_wal
from scanner.model import FindingStatus, ScanResult, utcnow
from scanner.model.base import Frozen

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic keeps its running context in module state: one upgrade at a time per process
# (the database lock below orders processes).
_UPGRADE = threading.Lock()
# Any constant works; it only has to be the same for every dicomscan process.
_PG_MIGRATION_LOCK = 0x6469636F


class HistoryError(Exception):
    """The store could not be opened or read: a bad location, URL or scan reference."""


class ScanStatus(StrEnum):
    RUNNING = "running"  # begun, never finished: killed, or still going
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"  # stopped early (Ctrl-C); what was found is stored


class StoredScan(Frozen):
    scan_id: str
    job: str | None
    status: ScanStatus
    started_at: datetime
    finished_at: datetime | None
    profile: str | None
    targets: list[str]
    hosts: int
    services: int
    findings: int
    failed: int

    @property
    def partial(self) -> bool:
        return self.status is not ScanStatus.COMPLETE


def default_location() -> Path:
    import platformdirs

    return platformdirs.user_data_path("dicomscan") / "history.sqlite"


def database_url(location: str | Path | None) -> str:
    """A SQLAlchemy URL from a path, a URL, or nothing (the default file)."""
    if location is None or (isinstance(location, Path)) or "://" not in str(location):
        path = Path(location) if location is not None else default_location()
        try:
            path.expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # its own text is "[Errno 17] File exists: '/x'"
            where, why = exc.filename, exc.strerror
            if isinstance(exc, FileExistsError | NotADirectoryError):
                where = next(p for p in path.expanduser().absolute().parents if p.exists())
                why = "not a folder"
            raise HistoryError(f"cannot create the folder of {path}: {where}: {why}") from None
        return f"sqlite:///{path.expanduser().absolute()}"
    url = str(location)
    # psycopg 3 is the driver we ship in the postgres extra.
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+psycopg://" + url[len(plain):]
    return url


def check_url(location: str) -> None:
    """A database URL's syntax and database kind, checked without connecting: for a URL
    kept to be opened later (``central init --store``), which otherwise failed only when
    central ran. HistoryError as ``open`` raises it; a path is not checked here."""
    if "://" not in location:
        return
    try:
        url = make_url(database_url(location))
        url.get_dialect()  # NoSuchModuleError for a scheme SQLAlchemy has no dialect for
        _ = url.port  # ValueError for a port that is not a number
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise HistoryError(f"not a usable database URL or path: {_shown(location)}: "
                           f"{_shown(exc)}") from None


def _shown(text: object) -> str:
    """A location for a message: a URL's password (user:PASSWORD@) replaced by ***, also
    when the URL is too broken for SQLAlchemy to parse and hide it itself."""
    return re.sub(r"(://[^/@:\s]*:)[^@/\s]*@", r"\1***@", str(text))


_CHUNK = 64


def _in_chunks(session: Session, rows: Iterable[Base]) -> None:
    it = iter(rows)
    while chunk := list(itertools.islice(it, _CHUNK)):  # itertools.batched is 3.12's
        session.add_all(chunk)
        session.flush()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": WAIT_S})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Take transactions into our own hands (BEGIN IMMEDIATE below): concurrent
        # writers then queue on the lock instead of failing to upgrade a read lock.
        dbapi_conn.isolation_level = None
        dbapi_conn.text_factory = lenient_text
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={WAIT_S * 1000}")
        switch_to_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class HistoryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # scan ID -> why it was left out of a list or a first/last seen (see note_damage)
        self.damaged: dict[str, str] = {}

    @classmethod
    def open(cls, location: str | Path | None = None, *, writing: bool = True) -> HistoryStore:
        """Open (creating and upgrading as needed) the store at a path or database URL.
        ``writing``: the caller will store scans, so a file it may only read is refused
        now (a scan found out only when recording itself, before any packet, as exit 3)."""
        url = database_url(location)
        backend = None
        try:
            backend = make_url(url).get_backend_name()
            if backend == "sqlite" and writing and \
                    (why := access_problem(make_url(url).database, writing)):
                raise HistoryError(f"cannot open the history {why}")
            engine = (_sqlite_engine(url) if backend == "sqlite"
                      else create_engine(url, pool_pre_ping=True))
            store = cls(engine)
            store.upgrade()
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise HistoryError(f"not a usable database URL or path: {_shown(location)}: "
                               f"{_shown(exc)}") from None
        except ImportError as exc:
            raise HistoryError(f"no database driver for {_shown(location)}: {exc} (PostgreSQL: "
                               "install dicomscan[postgres])") from None
        except DBAPIError as exc:  # the driver's text may span lines
            if backend == "sqlite" and (why := access_problem(make_url(url).database, writing)):
                raise HistoryError(f"cannot open the history {why}") from None
            raise HistoryError(f"cannot open the history {make_url(url).render_as_string()}: "
                               f"{' '.join(str(exc.orig).split())}") from None
        return store

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ---------------------------------------------------------------------

    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, to: str = "head") -> None:
        """Bring the schema to ``to`` in one transaction; concurrent openers wait."""
        cfg = self.alembic_config()
        script = ScriptDirectory.from_config(cfg)
        head = script.get_current_head()
        current = self.revision()
        if to == "head" and current == head:
            return
        if current is not None and current not in {r.revision for r in script.walk_revisions()}:
            # alembic's own answer is a CommandError traceback ("Can't locate revision").
            from scanner import __version__

            raise HistoryError(
                f"cannot open the history {self.engine.url.render_as_string()}: its schema "
                f"(revision {current!r}) is newer than this dicomscan {__version__} knows; "
                "open it with the version that wrote it")
        with _UPGRADE, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, to)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    # --- writing --------------------------------------------------------------------

    def begin(self, scan_id: str, job: str | None, targets: list[str],
              profile: str | None, started_at: datetime | None = None) -> None:
        """Record a scan as running before it starts, so a killed scan leaves a trace."""
        from scanner import __version__

        now = utcnow()
        with self.session() as s:
            s.add(ScanRow(scan_id=scan_id, job=job, status=ScanStatus.RUNNING.value,
                          started_at=started_at or now, finished_at=None, recorded_at=now,
                          tool_version=__version__, profile=profile, targets=targets,
                          meta=None, host_count=0, service_count=0, finding_count=0,
                          failed_count=0, pid=os.getpid(), node=socket.gethostname()))

    def record(self, result: ScanResult, job: str | None, interrupted: bool = False) -> None:
        """Store the whole result in one transaction (replacing its running row)."""
        meta = result.scan
        status = (ScanStatus.INTERRUPTED if interrupted or meta.interrupted
                  else ScanStatus.COMPLETE)
        with self.session() as s:
            s.execute(delete(ScanRow).where(ScanRow.scan_id == meta.id))
            s.flush()
            s.add(ScanRow(
                scan_id=meta.id, job=job, status=status.value, started_at=meta.started_at,
                finished_at=meta.finished_at, recorded_at=utcnow(),
                tool_version=meta.tool_version, profile=meta.profile.value,
                targets=meta.targets, meta=meta.model_dump(mode="json"),
                host_count=len(result.hosts),
                service_count=sum(len(h.services) for h in result.hosts),
                finding_count=len(result.findings),
                failed_count=sum(f.status is FindingStatus.FAIL for f in result.findings),
                pid=os.getpid(), node=socket.gethostname()))
            s.flush()
            # Rows go in a chunk at a time, flushed (still one transaction): the session
            # lets go of flushed rows, so a large scan's rows are never all in memory
            # (all at once, a /23 of live DICOM devices added 46 MB to the scan's peak).
            _in_chunks(s, (HostRow(
                scan_id=meta.id, ordinal=ordinal, device_id=host.device_id,
                address=host.address, mac=host.mac, seen=device_seen(host),
                data=host.model_dump(mode="json", exclude={"ports", "services"}),
                ports=[PortRow(scan_id=meta.id, port=p.port, protocol=p.protocol.value,
                               state=p.state.value, data=p.model_dump(mode="json"))
                       for p in host.ports],
                services=[ServiceRow(
                    scan_id=meta.id, port=v.port, protocol=v.protocol.value, name=v.name,
                    tls=v.tls, product=v.product, version=v.version,
                    observations=[o.model_dump(mode="json") for o in v.observations])
                    for v in host.services])
                for ordinal, host in enumerate(result.hosts)))
            _in_chunks(s, (FindingRow(
                scan_id=meta.id, ordinal=i, finding_id=f.finding_id, device_id=f.device_id,
                rule_id=f.rule_id, severity=f.severity.value, status=f.status.value,
                host=f.host, port=f.port, data=f.model_dump(mode="json"))
                for i, f in enumerate(result.findings)))

    # --- reading --------------------------------------------------------------------

    @staticmethod
    def _stored(row: Mapping[Any, Any]) -> StoredScan:
        """A raw ``scans`` row (see rows.py) as a StoredScan, or DamagedRow saying why not."""
        scan_id = str(row["scan_id"])
        where = "table scans"
        sized(scan_id, where, row)
        values = {
            "scan_id": scan_id, "job": row["job"], "status": row["status"],
            "started_at": column(scan_id, where, row, "started_at", "time"),
            "finished_at": column(scan_id, where, row, "finished_at", "time?"),
            "profile": row["profile"], "targets": column(scan_id, where, row, "targets", "json"),
            "hosts": row["host_count"], "services": row["service_count"],
            "findings": row["finding_count"], "failed": row["failed_count"]}
        try:
            return StoredScan.model_validate(values)
        except ValidationError as exc:
            raise invalid(scan_id, where, exc) from None

    def note_damage(self, damage: DamagedRow) -> None:
        """A damaged scan left out of a list or a first/last seen: kept for the caller to
        say (once per scan), since this layer prints nothing."""
        self.damaged.setdefault(damage.scan_id, str(damage))

    def scans(self, job: str | None = None, *, complete_only: bool = False,
              limit: int | None = None) -> list[StoredScan]:
        """Scans, newest first; damaged ones are left out and noted (``damaged``)."""
        query = (select(*raw_columns(ScanRow.__table__))  # type: ignore[arg-type]
                 .order_by(ScanRow.started_at.desc(), ScanRow.recorded_at.desc()))
        if job is not None:
            query = query.where(ScanRow.job == job)
        if complete_only:
            query = query.where(ScanRow.status == ScanStatus.COMPLETE.value)
        found: list[StoredScan] = []
        with Session(self.engine) as s:
            for row in s.execute(query).mappings():  # streamed: stop at the limit
                try:
                    found.append(self._stored(row))
                except DamagedRow as damage:
                    self.note_damage(damage)
                    continue
                if limit is not None and len(found) >= limit:
                    break
        return found

    def find(self, ref: str) -> StoredScan:
        """A scan by its ID or a unique prefix of it (at least 4 characters)."""
        # autoescape: a reference is a prefix, not a LIKE pattern ('____' matched all)
        query = (select(*raw_columns(ScanRow.__table__))  # type: ignore[arg-type]
                 .where(ScanRow.scan_id.startswith(ref, autoescape=True)).limit(2))
        with Session(self.engine) as s:
            rows = list(s.execute(query).mappings()) if len(ref) >= 4 else []
        if len(rows) != 1:
            why = "no scan" if not rows else "more than one scan"
            raise HistoryError(f"{why} matches {ref!r} (see 'dicomscan history list')")
        try:
            return self._stored(rows[0])
        except DamagedRow as damage:
            raise HistoryError(f"damaged row: {damage}") from None

    def load(self, ref: str) -> ScanResult:
        """The stored scan as the ScanResult it was recorded from; HistoryError naming the
        table, row and column when one of its rows is damaged."""
        stored = self.find(ref)
        try:
            return self._load(stored.scan_id)
        except DamagedRow as damage:
            raise HistoryError(f"damaged row: {damage}") from None

    def _load(self, scan_id: str) -> ScanResult:
        def rows(table: Any, order: Any) -> list[Mapping[Any, Any]]:
            query = (select(*raw_columns(table.__table__))
                     .where(table.scan_id == scan_id).order_by(order))
            return list(s.execute(query).mappings())

        with Session(self.engine) as s:
            scan = sized(scan_id, "table scans", s.execute(
                select(*bounded(ScanRow.meta, "meta"), ScanRow.status)
                .where(ScanRow.scan_id == scan_id)).mappings().one())
            # JSON null (SQLAlchemy's None) while running; SQL NULL only in a damaged row
            meta = column(scan_id, "table scans", scan, "meta",
                          "json?" if scan["status"] == ScanStatus.RUNNING.value else "json")
            if meta is None and scan["status"] == ScanStatus.RUNNING.value:
                raise HistoryError(f"scan {scan_id} was never finished: it has no "
                                   "results (status running)")
            ports: dict[object, list[Any]] = {}
            for p in rows(PortRow, PortRow.id):
                sized(scan_id, f"table ports row {p['id']}", p)
                ports.setdefault(p["host_id"], []).append(
                    column(scan_id, f"table ports row {p['id']}", p, "data", "json"))
            services: dict[object, list[Any]] = {}
            for v in rows(ServiceRow, ServiceRow.id):
                where = f"table services row {v['id']}"
                sized(scan_id, where, v)
                services.setdefault(v["host_id"], []).append({
                    **{k: v[k] for k in ("port", "protocol", "name", "product", "version")},
                    "tls": column(scan_id, where, v, "tls", "bool"),
                    "observations": column(scan_id, where, v, "observations", "json")})
            findings = [column(scan_id, f"table findings row {f['id']}",
                               sized(scan_id, f"table findings row {f['id']}", f), "data", "json")
                        for f in rows(FindingRow, FindingRow.ordinal)]
            hosts = []
            for h in rows(HostRow, HostRow.ordinal):
                sized(scan_id, f"table hosts row {h['id']}", h)
                data = column(scan_id, f"table hosts row {h['id']}", h, "data", "json")
                if not isinstance(data, dict):
                    raise DamagedRow(scan_id, f"scan {scan_id}: table hosts row {h['id']}: "
                                              f"data {shown(data)} is not a JSON object")
                hosts.append({**data, "ports": ports.get(h["id"], []),
                              "services": services.get(h["id"], [])})
        try:
            return ScanResult.model_validate({"scan": meta, "findings": findings,
                                              "hosts": hosts})
        except ValidationError as exc:
            raise invalid(scan_id, "its stored result", exc) from None
