"""A ProbeContext for driving one probe against a loopback peer, without a whole scan."""

from __future__ import annotations

import asyncio

from probes.context import HostGate, HostState, ProbeContext
from scanner.model import ScanSettings, Timeouts


def settings(ports: list[int], intrusive: bool = False) -> ScanSettings:
    return ScanSettings(
        targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=ports, max_concurrency=8,
        per_host_connections=2, probe_spacing=0.0, intrusive=intrusive,
        timeouts=Timeouts(connect=3, dicom=5, dimse=5, host=120),
    )


def context(ports: list[int], intrusive: bool = False) -> ProbeContext:
    s = settings(ports, intrusive)
    gate = HostGate(asyncio.Semaphore(s.max_concurrency), s.per_host_connections, 0.0)
    return ProbeContext("127.0.0.1", s, gate, HostState("127.0.0.1", None))
