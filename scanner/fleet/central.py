"""The central process: queue jobs, collect results into the history exactly once, and
keep each job's state.

Results arrive on the RESULTS stream (deduplicated by job ID within its window) and are
read by one durable consumer; each is stored, then the job marked done in the ledger,
then acknowledged. A crash between those steps redelivers the same result, which the
store replaces by scan ID and the ledger then counts as a duplicate: stored once. A job
whose sensor gave up (or kept dying) ends in the max-deliveries advisory, kept in its own
stream; central marks the job failed and deletes it from the work queue, where it would
otherwise stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from pydantic import ValidationError

from scanner.fleet.layout import JOBS, CentralConfig, CentralDir, FleetError
from scanner.fleet.ledger import JobState, Ledger
from scanner.fleet.protocol import (
    CENTRAL_CONSUMER,
    EVENTS_CONSUMER,
    Job,
    Progress,
    ResultRefused,
    ResultStatus,
    check_job_scope,
    connect_options,
    ensure_streams,
    fetch_or_stop,
    jobs_subject,
    now,
    read_result,
    tls_context,
)
from scanner.model import ScanSettings

log = logging.getLogger("dicomscan.central")


async def _log_error(exc: Exception) -> None:
    log.warning("nats: %s", exc)


async def connect_central(d: CentralDir, config: CentralConfig, reconnect: bool = True,
                          ) -> Any:
    import nats

    failures: list[Exception] = []

    async def remember(exc: Exception) -> None:  # one message at the end, not one a try
        failures.append(exc)

    d.check_pki("ca.pem", "central.pem", "central.key")
    try:
        ctx = tls_context(d.pki / "ca.pem", d.pki / "central.pem", d.pki / "central.key")
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise FleetError(f"cannot use central's certificate in {d.pki}: {exc}") from None
    opts = connect_options([config.url], ctx, config.addresses[0], "dicomscan-central",
                           None, _log_error if reconnect else remember)
    if not reconnect:
        # nats-py gives a server up only after a positive number of attempts: 0 retried it
        # forever, so 'submit' hung while central was down. 1 is a try and one retry.
        opts.update(allow_reconnect=False, max_reconnect_attempts=1)
    try:
        return await nats.connect(**opts)
    except Exception as exc:  # nats-py raises several unrelated types here
        cause = failures[-1] if failures else exc  # "no servers available" hides why
        raise FleetError(f"cannot reach the central nats-server at {config.url}: "
                         f"{type(cause).__name__}: {cause} (is 'dicomscan central run' up?)"
                         ) from None


async def prepare_sensor(d: CentralDir, name: str) -> None:
    """Create a new sensor's job consumer on the running server (after its reload)."""
    config = d.load()
    nc = await connect_central(d, config, reconnect=False)
    try:
        await ensure_streams(nc.jetstream(), [name], config.ack_wait, config.max_deliver)
    finally:
        await nc.close()


class Submitter:
    """Queues jobs on one connection: each recorded in the ledger before it is sent."""

    def __init__(self, d: CentralDir) -> None:
        self.d = d
        self.config = d.load()
        self.ledger = Ledger(d.ledger)
        self.nc: Any = None

    async def __aenter__(self) -> Submitter:
        self.nc = await connect_central(self.d, self.config, reconnect=False)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.nc.close()
        self.ledger.close()

    def check(self, sensor: str, settings: ScanSettings) -> None:
        sensors = self.config.sensors
        if sensor not in sensors:
            raise FleetError(f"no sensor {sensor!r} (known: {', '.join(sensors) or 'none'})")
        outside = check_job_scope(settings, sensors[sensor].scope)
        if outside:
            raise FleetError(f"targets outside sensor {sensor}'s scope "
                             f"{', '.join(sensors[sensor].scope)}: {', '.join(outside[:5])}")

    async def submit(self, sensor: str, settings: ScanSettings, name: str | None = None) -> str:
        self.check(sensor, settings)
        job_uuid = uuid.uuid4()
        # The scan's ID is the job's: every run of the job (a redelivery, a rescan) is the
        # same scan to the store, and two jobs never share one even with shared settings.
        job = Job(job_id=job_uuid.hex, sensor=sensor, name=name, submitted_at=now(),
                  settings=settings.model_copy(update={"scan_id": str(job_uuid)}))
        self.ledger.add(job.job_id, sensor, name, settings.target_specs, job.submitted_at)
        try:
            ack = await self.nc.jetstream().publish(
                jobs_subject(sensor), job.model_dump_json().encode(), timeout=10,
                headers={"Nats-Msg-Id": job.job_id})
        except Exception as exc:  # never queued: say so rather than leave it "queued"
            self.ledger.finish(job.job_id, JobState.FAILED, now(),
                               reason=f"not queued: {type(exc).__name__}: {exc}")
            raise FleetError(f"job {job.job_id} not queued: {type(exc).__name__}: {exc}"
                             ) from None
        self.ledger.set_seq(job.job_id, ack.seq)
        return job.job_id


async def submit(d: CentralDir, sensor: str, settings: ScanSettings,
                 name: str | None = None) -> str:
    """Queue one job for ``sensor``; its ID."""
    submitter = Submitter(d)
    submitter.check(sensor, settings)  # before any connection: a usage error stays one
    async with submitter:
        return await submitter.submit(sensor, settings, name)


class Collector:
    def __init__(self, d: CentralDir, config: CentralConfig) -> None:
        from scanner.history.store import HistoryStore

        self.d, self.config = d, config
        self.ledger = Ledger(d.ledger)
        self.store = HistoryStore.open(d.store_location(config))
        self.stored = 0

    def close(self) -> None:
        self.ledger.close()
        self.store.close()

    def handle_result(self, subject: str, data: bytes) -> str:
        """Store one result message; what happened, for the log. A result central cannot
        take as this version's (unreadable, another major schema version, not valid, not
        the job's scan) fails its job with the reason, and nothing is stored."""
        _, sensor, job_id = [*subject.split(".", 2), "", ""][:3]
        try:
            job = self.ledger.get(job_id)
        except FleetError as exc:  # acked: NAKed it would come back every 10 s for ever
            return f"result on {subject} not stored: {exc} (kept in the RESULTS stream)"
        # The subject's sensor is the publisher's (permissions); the job must be its own.
        if job is None or job.sensor != sensor:
            return f"result on {subject} for a job not assigned to {sensor}; dropped"
        if job.state in (JobState.DONE, JobState.FAILED):
            self.ledger.finish(job_id, JobState.DONE, now())  # counts the duplicate
            return f"duplicate result for job {job_id}; not stored again"
        try:
            msg = read_result(data, job_id, sensor)
        except ResultRefused as exc:
            self.ledger.finish(job_id, JobState.FAILED, now(), reason=f"result refused: {exc}")
            return f"job {job_id}: result from {sensor} refused: {exc}"
        if msg.status is not ResultStatus.DONE or msg.result is None:
            self.ledger.finish(job_id, JobState.FAILED, now(),
                               reason=f"sensor {msg.status.value}: {msg.reason}")
            return f"job {job_id} {msg.status.value} by {sensor}: {msg.reason}"
        label = f"{sensor}/{job.name}" if job.name else sensor
        self.store.record(msg.result, job=label)
        self.ledger.finish(job_id, JobState.DONE, now(), scan_id=msg.result.scan.id)
        self.stored += 1
        return f"job {job_id} done: scan {msg.result.scan.id} stored"

    def handle_event(self, seq: int, deliveries: int, job_id: str | None) -> str:
        """A job message delivered the maximum number of times: its job failed."""
        try:
            job = (self.ledger.get(job_id) if job_id else None) or self.ledger.by_seq(seq)
        except FleetError as exc:
            return f"max deliveries for job message {seq}: {exc}"
        if job is None:
            return f"max deliveries for unknown job message {seq}"
        self.ledger.finish(job.job_id, JobState.FAILED, now(),
                           reason=f"no result after {deliveries} deliveries")
        return f"job {job.job_id} failed after {deliveries} deliveries"

    def handle_progress(self, data: bytes) -> None:
        with contextlib.suppress(ValidationError):
            p = Progress.model_validate_json(data)
            self.ledger.progress(p.job_id, p.delivery, p.done, p.total, p.at)


async def _pump(sub: Any, handle: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            msgs = await fetch_or_stop(sub, 32, 5.0, stop)
        except Exception as exc:  # link down: nats-py reconnects, we try again
            log.warning("fetch: %s", exc)
            await asyncio.sleep(1)
            continue
        for m in msgs:
            try:
                await handle(m)
            except Exception:  # e.g. an ack lost with the link: the message comes back
                log.exception("handling %s", m.subject)


async def _job_id_at(js: Any, seq: int) -> str | None:
    """The job ID of the work-queue message at ``seq`` (which stays there after its last
    delivery): from its message-ID header, else from its body."""
    try:
        raw = await js.get_msg(JOBS, seq)
    except Exception:  # deleted meanwhile: the ledger's seq is all there is
        return None
    header = (raw.headers or {}).get("Nats-Msg-Id")
    if header:
        return str(header)
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        value = json.loads(raw.data or b"").get("job_id")
        return str(value) if value else None
    return None


async def run_central(d: CentralDir, stop: asyncio.Event) -> None:
    """Collect until ``stop`` is set. The server must be listening."""
    config = d.load()
    # A server that accepts but never answers (--external-server on the wrong port)
    # was dialled for ever, SIGTERM and Ctrl-C unheard: a stop ends the dialling too.
    connecting = asyncio.ensure_future(connect_central(d, config))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting
        raise FleetError(f"stopped before the nats-server at {config.url} answered")
    nc = connecting.result()
    js = nc.jetstream()
    await ensure_streams(js, sorted(config.sensors), config.ack_wait, config.max_deliver)
    collector = Collector(d, config)

    async def on_result(m: Any) -> None:
        try:
            said = await asyncio.to_thread(collector.handle_result, m.subject, m.data)
        except Exception:  # the store is down, say: the result comes back later
            log.exception("result on %s not stored; retried in 10 s", m.subject)
            with contextlib.suppress(Exception):
                await m.nak(delay=10)
            return
        log.info("%s", said)
        await m.ack_sync(timeout=5)

    async def on_event(m: Any) -> None:
        try:
            event = json.loads(m.data)
            seq, deliveries = int(event["stream_seq"]), int(event.get("deliveries", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable advisory; dropped")
            await m.ack_sync(timeout=5)
            return
        job_id = await _job_id_at(js, seq)  # the ledger may not know the seq yet
        log.info("%s", await asyncio.to_thread(collector.handle_event, seq, deliveries, job_id))
        with contextlib.suppress(Exception):  # already gone: nothing to delete
            await js.delete_msg(JOBS, seq)
        await m.ack_sync(timeout=5)

    async def on_progress(m: Any) -> None:
        await asyncio.to_thread(collector.handle_progress, m.data)

    results = await js.pull_subscribe_bind(durable=CENTRAL_CONSUMER, stream="RESULTS")
    events = await js.pull_subscribe_bind(durable=EVENTS_CONSUMER, stream="JOBEVENTS")
    await nc.subscribe("progress.*.*", cb=on_progress)
    log.info("central collecting into %s", d.store_location(config))
    try:
        await asyncio.gather(_pump(results, on_result, stop), _pump(events, on_event, stop))
    finally:
        collector.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)
