"""What travels between central and sensors, and how both connect.

A job, a result and a progress report are frozen pydantic models sent as JSON. Every
connection is mutual TLS to nats-server; a sensor uses its own inbox prefix (its
permissions allow it to receive nothing else), reconnects forever and pings often so a
silent cut is noticed in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from scanner.fleet.layout import EVENTS, JOBS, MAX_DELIVERIES_SUBJECT, PROGRESS, RESULTS
from scanner.model import SCHEMA_VERSION, ScanResult, ScanSettings
from scanner.model.base import Frozen

PING_INTERVAL = 3  # seconds; a third ping with two unanswered: the link counts as cut
RECONNECT_WAIT = 2  # seconds between attempts, forever
RESULTS_DUPLICATE_WINDOW = 24 * 3600.0  # the ledger deduplicates beyond it
CENTRAL_CONSUMER = "central"
EVENTS_CONSUMER = "central-events"


class ResultStatus(StrEnum):
    DONE = "done"
    REFUSED = "refused"  # outside the sensor's scope or not addressed to it
    FAILED = "failed"  # scanned, but the result cannot be delivered (too large)


class Job(Frozen):
    job_id: str
    sensor: str
    name: str | None = None
    submitted_at: float = Field(description="Unix time central queued it")
    settings: ScanSettings


# A sensor's numbers go into the ledger's SQLite integers (at most 2**63 - 1): bounded,
# or one report with a 30-digit count raised OverflowError in central's handler.
_COUNT = Field(ge=0, le=2**53)


class Progress(Frozen):
    job_id: str = Field(max_length=64)
    sensor: str = Field(max_length=64)
    delivery: int = _COUNT
    done: int = _COUNT
    total: int = _COUNT
    at: float


class ResultMessage(Frozen):
    job_id: str
    sensor: str
    status: ResultStatus
    reason: str | None = Field(default=None, max_length=2000)  # shown by 'jobs'
    picked_at: float | None = None
    result: ScanResult | None = None


class ResultRefused(ValueError):
    """A result message central does not take as this version's: the reason, one line."""


def job_scan_id(job_id: str) -> str:
    """The scan ID of a job's result: central makes the job ID from it (submit)."""
    import uuid

    try:
        return str(uuid.UUID(hex=job_id))
    except ValueError:
        return job_id


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"])) or "message"
    return f"{exc.error_count()} problem(s), first: {where}: {first['msg']}"[:300]


def read_result(data: bytes, job_id: str, sensor: str) -> ResultMessage:
    """A sensor's result message for ``job_id``, checked as a saved scan is: JSON, a
    result of this major schema version that validates, and the job's own scan (a
    result naming another scan ID would replace that scan in the history)."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise ResultRefused("not JSON") from None
    result = raw.get("result") if isinstance(raw, dict) else None
    version = result.get("schema_version") if isinstance(result, dict) else None
    major = SCHEMA_VERSION.split(".")[0]
    if isinstance(result, dict) and (not isinstance(version, str)
                                     or version.split(".")[0] != major):
        raise ResultRefused(f"scan result of schema version {str(version)[:20]!r}; this "
                            f"central reads schema {major}.x (upgrade the older side)")
    try:
        msg = ResultMessage.model_validate(raw)
    except ValidationError as exc:
        raise ResultRefused(f"not a valid result message: {_first_problem(exc)}") from None
    if msg.job_id != job_id or msg.sensor != sensor:
        raise ResultRefused(f"the message names job {msg.job_id[:64]!r} of sensor "
                            f"{msg.sensor[:64]!r}, not its subject's")
    if msg.result is not None and msg.result.scan.id != job_scan_id(job_id):
        raise ResultRefused(f"the result is scan {msg.result.scan.id[:64]!r}, not the job's "
                            f"scan {job_scan_id(job_id)}")
    return msg


def check_job_scope(settings: ScanSettings, scope: list[str]) -> list[str]:
    """Targets of the job outside ``scope`` (empty when all are inside)."""
    import ipaddress

    nets = [ipaddress.ip_network(s) for s in scope]
    outside = []
    for target in settings.targets:
        try:
            addr = ipaddress.ip_address(target)
        except ValueError:
            outside.append(target)
            continue
        if not any(addr.version == n.version and addr in n for n in nets):
            outside.append(target)
    return outside


async def fetch_or_stop(sub: Any, batch: int, wait: float, stop: asyncio.Event) -> list[Any]:
    """One long-poll fetch that a stop request cuts short; [] on timeout or stop."""
    from nats.errors import TimeoutError as NatsTimeout

    fetch = asyncio.ensure_future(sub.fetch(batch, timeout=wait))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({fetch, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not fetch.done():
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await fetch  # retrieved, so a closing connection's error is not reported
        return []
    try:
        return list(fetch.result())
    except (TimeoutError, NatsTimeout):
        return []


def jobs_subject(sensor: str) -> str:
    return f"jobs.{sensor}"


def results_subject(sensor: str, job_id: str) -> str:
    return f"results.{sensor}.{job_id}"


def progress_subject(sensor: str, job_id: str) -> str:
    return f"progress.{sensor}.{job_id}"


def now() -> float:
    return time.time()


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


ErrorCb = Callable[[Exception], Awaitable[None]]


def connect_options(servers: list[str], ctx: ssl.SSLContext, tls_hostname: str, name: str,
                    inbox_prefix: str | None, error_cb: ErrorCb) -> dict[str, Any]:
    """nats-py's connect arguments: reconnect forever, short pings, our own error handler
    (its default prints tracebacks), the link's state in the log."""
    import logging

    log = logging.getLogger("dicomscan.fleet")

    async def lost() -> None:
        log.warning("link to central lost; reconnecting")

    async def back() -> None:
        log.warning("link to central back")

    opts: dict[str, Any] = {
        "disconnected_cb": lost, "reconnected_cb": back,
        "servers": servers, "tls": ctx, "tls_hostname": tls_hostname, "name": name,
        "allow_reconnect": True, "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT, "ping_interval": PING_INTERVAL,
        "max_outstanding_pings": 2, "connect_timeout": 5, "error_cb": error_cb,
    }
    if inbox_prefix:
        opts["inbox_prefix"] = inbox_prefix
    return opts


async def ensure_streams(js: Any, sensors: list[str], ack_wait: float,
                         max_deliver: int) -> None:
    """Create (or leave as they are) the streams and every sensor's job consumer."""
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )
    from nats.js.errors import NotFoundError

    wanted = [
        StreamConfig(name=JOBS, subjects=["jobs.*"], retention=RetentionPolicy.WORK_QUEUE,
                     storage=StorageType.FILE, duplicate_window=3600.0),
        StreamConfig(name=RESULTS, subjects=["results.*.*"], storage=StorageType.FILE,
                     duplicate_window=RESULTS_DUPLICATE_WINDOW, max_age=30 * 86400.0),
        StreamConfig(name=PROGRESS, subjects=["progress.*.*"], storage=StorageType.FILE,
                     max_age=3600.0),
        # The max-deliveries advisory is a plain message: kept here so a central that
        # was down when it fired still marks the job failed.
        StreamConfig(name=EVENTS, subjects=[MAX_DELIVERIES_SUBJECT],
                     storage=StorageType.FILE, max_age=30 * 86400.0),
    ]
    for config in wanted:
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
    for sensor in sensors:
        await js.add_consumer(JOBS, ConsumerConfig(
            durable_name=sensor, filter_subject=jobs_subject(sensor),
            ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_deliver=max_deliver,
            max_ack_pending=1))
    for durable, stream in ((CENTRAL_CONSUMER, RESULTS), (EVENTS_CONSUMER, EVENTS)):
        await js.add_consumer(stream, ConsumerConfig(
            durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=60.0))
