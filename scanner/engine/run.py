"""Running a scan job to the end from synchronous code, keeping what was found on Ctrl-C."""

from __future__ import annotations

import asyncio

from scanner.engine.job import ProgressCallback, ScanJob
from scanner.model import ScanResult, ScanSettings


def run_scan(
    settings: ScanSettings, progress: ProgressCallback | None = None
) -> tuple[ScanResult, bool]:
    """Run the job; on Ctrl-C return what was found so far. Second value: interrupted."""
    job = ScanJob(settings, progress=progress)
    try:
        result = asyncio.run(job.run())  # cheap to repr (see ScanResult.__repr__)
    except KeyboardInterrupt:
        return job.result(interrupted=True), True
    return result, result.scan.interrupted
