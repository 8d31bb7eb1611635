"""Running a scan job to the end from synchronous code, keeping what was found when it is
interrupted: Ctrl-C (SIGINT) or SIGTERM (a service manager stopping the scan) both cancel
the job, whose open associations are aborted, and the partial result is returned."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from scanner.engine.job import ProgressCallback, ScanJob
from scanner.model import ScanResult, ScanSettings

LOG = logging.getLogger("dicomscan")
# Settings that must never reach a log: the key's path says where the secret lives.
SECRET_SETTINGS = ("client_key",)


def loggable(settings: ScanSettings) -> dict[str, object]:
    """The settings as a log line may show them: secrets redacted, long lists counted."""
    doc = settings.model_dump(mode="json", exclude={"ae_wordlist", "policy"})
    for key in SECRET_SETTINGS:
        if doc.get(key):
            doc[key] = "[redacted]"
    if len(doc["targets"]) > 20:
        doc["targets"] = f"{len(doc['targets'])} addresses"
    return doc


async def _until_done_or_terminated(job: ScanJob) -> ScanResult:
    """The job, cancelled on SIGTERM as asyncio cancels it on Ctrl-C."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed = False
    if task is not None:
        # Only the main thread may handle signals; a job run elsewhere keeps the default.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            installed = True
    try:
        return await job.run()
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


def run_scan(
    settings: ScanSettings, progress: ProgressCallback | None = None
) -> tuple[ScanResult, bool]:
    """Run the job; on Ctrl-C or SIGTERM return what was found so far. Second value:
    interrupted."""
    job = ScanJob(settings, progress=progress)
    LOG.info("scan settings: %s", loggable(settings))
    try:
        # cheap to repr (see ScanResult.__repr__)
        result = asyncio.run(_until_done_or_terminated(job))
    except (KeyboardInterrupt, asyncio.CancelledError):
        LOG.info("scan interrupted: partial results")
        return job.result(interrupted=True), True
    LOG.info("scan finished: %d hosts, %d findings, %d skipped (do not probe)",
             len(result.hosts), len(result.findings), len(result.scan.skipped))
    return result, result.scan.interrupted
