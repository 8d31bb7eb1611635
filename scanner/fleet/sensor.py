"""A sensor: inside an imaging VLAN, it dials out to central and runs the jobs it pulls.

It listens on nothing. One job at a time: fetch from its own durable consumer, check
the job against the scope its bundle was issued with, run the scan (in a worker thread,
so the connection keeps its pings and the lease its in-progress acks), write the result
to the spool and fsync it, publish it with the job ID as message ID, and ack the job
only after the publish was acknowledged. A job redelivered after a crash or a cut link
whose result is already in the spool is republished, not rescanned; what the spool holds
at start is republished too. A job it cannot read is NAKed (a newer sensor may read it):
after the maximum deliveries central marks it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scanner.fleet.layout import JOBS, MAX_PAYLOAD, FleetError, SensorBundle, load_bundle
from scanner.fleet.protocol import (
    Job,
    Progress,
    ResultMessage,
    ResultStatus,
    check_job_scope,
    connect_options,
    fetch_or_stop,
    now,
    progress_subject,
    results_subject,
    tls_context,
)

log = logging.getLogger("dicomscan.sensor")
FETCH_WAIT = 20.0  # seconds of long poll per fetch
RETRY_NAK_DELAY = 5.0
SPOOL_KEEP = 24 * 3600.0  # seconds


class SpoolError(FleetError):
    """A spool entry that cannot be sent as it is."""


class Spool:
    """Results waiting for their publish acknowledgement, one fsynced file per job."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:  # before any job: a spool that cannot hold a result is input
            raise FleetError(f"cannot make the spool folder {folder}: {exc}") from None

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def put(self, job_id: str, body: bytes) -> None:
        tmp = self.folder / f".{job_id}.tmp"
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path(job_id))
        fd = os.open(self.folder, os.O_RDONLY)  # the rename itself must survive a crash
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, job_id: str) -> bytes | None:
        """The spooled result, None if there is none; SpoolError for an entry that is
        not a regular file (a FIFO blocked the sensor for ever), is larger than any
        message the server takes, or cannot be read."""
        try:
            fd = os.open(self.path(job_id), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SpoolError(f"spool entry {self.path(job_id)}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SpoolError(f"spool entry {self.path(job_id)} is not a file")
            if info.st_size > MAX_PAYLOAD:
                raise SpoolError(f"spool entry {self.path(job_id)} holds {info.st_size} "
                                 f"bytes, more than any message ({MAX_PAYLOAD})")
            with os.fdopen(os.dup(fd), "rb") as fh:
                return fh.read(MAX_PAYLOAD + 1)
        except OSError as exc:
            raise SpoolError(f"spool entry {self.path(job_id)}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def set_aside(self, job_id: str) -> Path:
        """Move an entry that cannot be sent out of the way (kept for a person to see)."""
        aside = self.folder / f"{job_id}.unusable"
        with contextlib.suppress(OSError):
            os.replace(self.path(job_id), aside)
        return aside

    def drop(self, job_id: str) -> None:
        self.path(job_id).unlink(missing_ok=True)

    def pending(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json"))


class Sensor:
    def __init__(self, folder: Path, spool: Path | None = None) -> None:
        self.folder = folder
        self.bundle: SensorBundle = load_bundle(folder)
        self.spool = Spool(spool or folder / "spool")
        self.nc: Any = None
        self.js: Any = None
        self.untrusted: list[Exception] = []  # central's certificate failed verification

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, ssl.SSLCertVerificationError) and self.nc is None:
            # Not a link that may come back: central's certificate is not one the
            # bundle's CA signed (a bundle of another centre, or a centre made again).
            self.untrusted.append(exc)
            return  # said once, as the reason the sensor stops
        log.warning("nats: %s", exc)

    async def connect(self) -> None:
        """Dial central until it answers (the first connect is retried too)."""
        import nats

        b = self.bundle
        ctx = tls_context(self.folder / "ca.pem", self.folder / "sensor.pem",
                          self.folder / "sensor.key")
        opts = connect_options(b.servers, ctx, b.tls_hostname, f"dicomscan-sensor-{b.name}",
                               f"_INBOX_{b.name}", self._on_error)
        wait = 1.0
        while True:
            try:
                self.nc = await nats.connect(**opts)
                break
            except Exception as exc:  # refused, unreachable, TLS: back off and retry
                log.warning("cannot reach central (%s: %s); again in %.0f s",
                            type(exc).__name__, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 30.0)
        self.js = self.nc.jetstream()

    async def publish_result(self, job_id: str, body: bytes) -> None:
        """Publish until central's stream acknowledges it (duplicates are dropped there)."""
        wait = 1.0
        while True:
            try:
                ack = await self.js.publish(results_subject(self.bundle.name, job_id), body,
                                            timeout=10, headers={"Nats-Msg-Id": job_id})
                log.info("result of job %s published (duplicate=%s)", job_id, ack.duplicate)
                return
            except Exception as exc:  # timeout or link down: the spool keeps it
                log.warning("publishing job %s: %s; again in %.0f s", job_id, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 30.0)

    async def republish_spool(self) -> None:
        for job_id in self.spool.pending():
            try:
                body = self.spool.get(job_id)
            except SpoolError as exc:  # the job, if still queued, comes back and is scanned
                log.warning("%s; moved to %s, not sent", exc, self.spool.set_aside(job_id))
                continue
            if body is not None and self._too_large(job_id, body):
                continue
            if body is not None:
                await self.publish_result(job_id, body)
            # Kept while its job may still come back to be acked; past the results'
            # duplicate window central's ledger is what stops a second copy anyway.
            with contextlib.suppress(OSError):
                if now() - self.spool.path(job_id).stat().st_mtime > SPOOL_KEEP:
                    self.spool.drop(job_id)

    def _too_large(self, job_id: str, body: bytes) -> bool:
        """A spooled body the server would refuse (it was retried for ever): set aside."""
        if len(body) <= self.nc.max_payload - 4096:  # headers and subject need room too
            return False
        log.warning("spool entry of job %s holds %d bytes, more than the server takes; "
                    "moved to %s, not sent", job_id, len(body), self.spool.set_aside(job_id))
        return True

    async def _refuse(self, msg: Any, job_id: str, reason: str) -> None:
        log.warning("refusing job %s: %s", job_id, reason)
        body = ResultMessage(job_id=job_id, sensor=self.bundle.name,
                             status=ResultStatus.REFUSED,
                             reason=reason[:2000]).model_dump_json()  # the message's cap
        await self.publish_result(job_id, body.encode())
        await self._ack(msg, job_id)

    async def handle(self, msg: Any) -> None:
        delivery = int(getattr(msg.metadata, "num_delivered", 1) or 1)
        try:
            job = Job.model_validate_json(msg.data)
        except ValidationError as exc:
            log.warning("unreadable job (delivery %d): %d error(s); NAK", delivery,
                        exc.error_count())
            await msg.nak()
            return
        if job.sensor != self.bundle.name:
            await self._refuse(msg, job.job_id, f"job addressed to {job.sensor}")
            return
        files = [k for k in ("client_cert", "client_key", "ca") if getattr(job.settings, k)]
        if files:  # paths on central's machine; on this one they could name any file
            await self._refuse(msg, job.job_id, f"job names local files ({', '.join(files)})")
            return
        outside = check_job_scope(job.settings, self.bundle.scope)
        if outside:
            await self._refuse(msg, job.job_id, "targets outside this sensor's scope "
                               f"({', '.join(self.bundle.scope)}): {', '.join(outside[:5])}")
            return
        try:
            body = self.spool.get(job.job_id)
        except SpoolError as exc:
            log.warning("%s; moved to %s; scanning again", exc, self.spool.set_aside(job.job_id))
            body = None
        if body is not None and self._too_large(job.job_id, body):
            body = None
        if body is None:
            body = await self.scan(msg, job, delivery)
            if body is None:
                return
            if len(body) > self.nc.max_payload - 4096:  # headers and subject need room too
                body = ResultMessage(
                    job_id=job.job_id, sensor=self.bundle.name, status=ResultStatus.FAILED,
                    reason=f"result of {len(body)} bytes exceeds the server's "
                           f"{self.nc.max_payload}-byte message limit").model_dump_json().encode()
            self.spool.put(job.job_id, body)
        await self.publish_result(job.job_id, body)
        if await self._ack(msg, job.job_id):
            self.spool.drop(job.job_id)  # kept otherwise: a redelivery republishes it

    async def _ack(self, msg: Any, job_id: str) -> bool:
        try:
            await msg.ack_sync(timeout=10)
        except Exception as exc:  # link down: the job comes back and finds the spool
            log.warning("job %s: ack not confirmed (%s); it will come back", job_id, exc)
            return False
        log.info("job %s acknowledged", job_id)
        return True

    async def scan(self, msg: Any, job: Job, delivery: int) -> bytes | None:
        """Run the scan, keeping the lease alive; the result message, or None (NAKed)."""
        from scanner.engine.run import run_scan

        picked = now()
        state = {"done": 0, "total": len(job.settings.targets) * len(job.settings.ports)}

        def progress(done: int, total: int, _what: str) -> None:
            state["done"], state["total"] = done, total  # plain ints: safe across threads

        async def report() -> None:
            p = Progress(job_id=job.job_id, sensor=self.bundle.name, delivery=delivery,
                         done=state["done"], total=state["total"], at=now())
            with contextlib.suppress(Exception):  # a report lost during a cut is harmless
                await self.nc.publish(progress_subject(self.bundle.name, job.job_id),
                                      p.model_dump_json().encode())

        async def keep_lease() -> None:
            while True:
                await asyncio.sleep(max(0.5, self.bundle.ack_wait / 3))
                with contextlib.suppress(Exception):
                    await msg.in_progress()
                await report()

        log.info("job %s (delivery %d): scanning %d target(s)", job.job_id, delivery,
                 len(job.settings.targets))
        await report()
        lease = asyncio.create_task(keep_lease())
        try:
            result, _ = await asyncio.to_thread(run_scan, job.settings, progress)
        except Exception as exc:  # the scan failed as a whole: let it be retried
            first = (str(exc).splitlines() or [""])[0]
            log.warning("job %s: scan failed: %s: %s; NAK", job.job_id, type(exc).__name__,
                        first)
            with contextlib.suppress(Exception):
                await msg.nak(delay=RETRY_NAK_DELAY)
            return None
        finally:
            lease.cancel()
        return ResultMessage(job_id=job.job_id, sensor=self.bundle.name,
                             status=ResultStatus.DONE, picked_at=picked,
                             result=result).model_dump_json().encode()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: a stop during a scan takes effect after that job."""
        # Dialling retries for ever: a stop must end it too (SIGTERM was ignored while
        # central could not be reached).
        connecting = asyncio.ensure_future(self.connect())
        stopper = asyncio.ensure_future(stop.wait())
        while not (connecting.done() or stopper.done() or self.untrusted):
            await asyncio.wait({connecting, stopper}, timeout=0.2,
                               return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            if self.untrusted:
                why = getattr(self.untrusted[0], "verify_message", "") or self.untrusted[0]
                raise FleetError(f"central at {', '.join(self.bundle.servers)} fails the "
                                 f"certificate check of bundle {self.folder}: {why} (a "
                                 "bundle of another centre, or one made before central was "
                                 "initialised again?)")
            log.warning("stopped before central could be reached")
            return
        connecting.result()
        await self.republish_spool()
        sub = await self.js.pull_subscribe_bind(durable=self.bundle.name, stream=JOBS)
        log.info("sensor %s connected; waiting for jobs", self.bundle.name)
        while not stop.is_set():
            try:
                msgs = await fetch_or_stop(sub, 1, FETCH_WAIT, stop)
            except Exception as exc:  # link down: nats-py reconnects on its own
                log.warning("fetch: %s", exc)
                await asyncio.sleep(1)
                continue
            for m in msgs:
                try:
                    await self.handle(m)
                except Exception:  # a sensor keeps serving; the job is redelivered
                    log.exception("job message %s failed unexpectedly", m.subject)
        with contextlib.suppress(Exception):
            await self.nc.close()
