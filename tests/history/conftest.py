"""Fixtures and builders shared by the history tests: every store-using test runs twice, on a SQLite
file and on a real PostgreSQL started for the session."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scanner.model import (
    Finding,
    FindingStatus,
    Host,
    PortObservation,
    PortState,
    ScanMeta,
    ScanResult,
    Service,
    Severity,
)
from scanner.model.observations import (
    Association,
    AssociationOutcome,
    Confidence,
    Operation,
    OperationOutcome,
)
from scanner.model.tls_observations import TlsSummary
from tests.history import pg_server

_names = itertools.count()
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    why = pg_server.unavailable()
    if why is not None:
        pytest.skip(why)
    with pg_server.postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty history store lives: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    server = request.getfixturevalue("postgres")
    return pg_server.fresh_database(server, f"history_{next(_names)}")


def scan(n: int, hosts: list[Host], findings: list[Finding] = (), *,  # type: ignore[assignment]
         ports: list[int] | None = None, interrupted: bool = False) -> ScanResult:
    """A synthetic scan number ``n`` (its start time is T0 + n hours)."""
    started = T0 + timedelta(hours=n)
    scanned = ports or sorted({p.port for h in hosts for p in h.ports} | {104})
    return ScanResult(
        scan=ScanMeta(id=f"scan-{n:04d}-{next(_names)}", started_at=started,
                      finished_at=started + timedelta(seconds=30), targets=["198.18.0.0/29"],
                      profile="safe", ports=scanned, interrupted=interrupted),
        hosts=hosts, findings=list(findings))


def host(address: str, open_ports: list[int], services: list[Service] = (),  # type: ignore[assignment]
         mac: str | None = None) -> Host:
    obs = [PortObservation(port=p, state=PortState.OPEN, method="tcp-connect",
                           reason="connected", observed_at=T0) for p in open_ports]
    return Host(address=address, mac=mac, ports=obs, services=list(services))


def dicom(port: int, *, tls_versions: list[str] | None = None, called_ae: str = "rejected",
          echo: str = "authorised", version: str = "3.6.7", **extra: Any) -> Service:
    observations: list[Any] = [
        Association(purpose="called-ae", calling_ae="DICOMSCAN", called_ae="DSCNX",
                    outcome=AssociationOutcome(called_ae), elapsed_ms=1.0),
        Operation(operation="C-ECHO", sop_class="1.2.840.10008.1.1", sop_class_name="Verification",
                  outcome=OperationOutcome(echo), confidence=Confidence.CONFIRMED),
    ]
    if tls_versions is not None:
        observations.append(TlsSummary(speaks_tls=bool(tls_versions), outcome="tls",
                                       versions_accepted=tls_versions))
    return Service(port=port, name="dicom", tls=bool(tls_versions), product="DCMTK",
                   version=version, observations=observations, **extra)


def finding(rule: str, address: str, port: int | None, status: str = "fail") -> Finding:
    return Finding(rule_id=rule, severity=Severity.HIGH, status=FindingStatus(status),
                   host=address, port=port, title=rule)
