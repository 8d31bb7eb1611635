"""Which services the engine health-checks, against a real DCMTK storescp.

The health checks (a C-ECHO before the follow-up probes, in the detection association
where it can be, another after) bracket those probes: a job that runs no follow-up probe
(detection only) has nothing for a device to fall over from, so it opens no association
beyond the identification's own and sends no C-ECHO in it."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest

from scanner.engine.job import ScanJob
from scanner.lab.peers import start_storescp
from scanner.model import ScanResult
from scanner.model.observations import HealthCheck
from tests.conftest import needs_dcmtk
from tests.fleet_harness import loopback_settings

pytestmark = [pytest.mark.peers, needs_dcmtk]


def _scan(port: int, detection_only: bool) -> ScanResult:
    job = ScanJob(loopback_settings(str(port), profile="fast"))
    if not detection_only:
        return asyncio.run(job.run())
    with mock.patch("scanner.engine.registry.follow_up_probes", lambda _settings: ()):
        return asyncio.run(job.run())


def _kinds(result: ScanResult, port: int) -> list[str]:
    (svc,) = [s for h in result.hosts for s in h.services if s.port == port]
    assert svc.name == "dicom"
    return [o.kind for o in svc.observations]


def test_detection_only_opens_one_association_and_no_health_check() -> None:
    with start_storescp(["-v"]) as peer:
        port = peer.info.port
        result = _scan(port, detection_only=True)
        assert "health-check" not in _kinds(result, port)
        assert peer.log().count("Association Received") == 1, peer.log()
        # Nor a C-ECHO inside the detection: that is the check before, made only for a job
        # that runs follow-up probes.
        assert "Received Echo Request" not in peer.log(), peer.log()


def test_follow_up_probes_are_bracketed_by_health_checks() -> None:
    with start_storescp(["-v"]) as peer:
        port = peer.info.port
        result = _scan(port, detection_only=False)
        (svc,) = [s for h in result.hosts for s in h.services if s.port == port]
        phases = [o.phase.value for o in svc.observations if isinstance(o, HealthCheck)]
        assert phases == ["before", "after"]
        assert peer.log().count("Received Echo Request") >= 2, peer.log()
