"""A rule that fails on one host's data costs that host its findings, never the scan.

Each host is judged when its probes are over (scanner/engine/job.py). A real DCMTK
storescp answers on 127.0.0.1 and another on 127.0.0.2, on the same port; a rule family
is made to fail on the second host only (fault injection: no real rule fails today).
The first host keeps every finding it earns, the second is listed with its services,
and the failure is a scan error naming the host."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import pytest

from scanner.engine.job import ScanJob
from scanner.lab.peers import start_storescp
from scanner.model import Host
from scanner.rules import evaluate as rules
from tests.conftest import needs_dcmtk

pytestmark = [pytest.mark.peers, needs_dcmtk]
GOOD, BAD = "127.0.0.1", "127.0.0.2"


def _settings(port: int) -> Any:
    from scanner.engine.settings import build_settings

    return build_settings({
        "targets": [GOOD, BAD], "targets_file": None, "exclude": (), "scope": (),
        "allow_public": False, "ports": str(port), "profile": "fast",
        "calling_ae": "DICOMSCAN", "ae_title": (), "ae_guess": None, "ae_wordlist": None,
        "intrusive": False, "discovery": "none"})


def _fails_on_bad(host: Host) -> list[Any]:
    if host.address == BAD:
        raise KeyError("a rule bug")
    return []


def test_a_failing_rule_costs_one_host_its_findings() -> None:
    with start_storescp() as peer, start_storescp(host=BAD, port=peer.info.port):
        settings = _settings(peer.info.port)
        clean = asyncio.run(ScanJob(settings).run())
        with mock.patch.object(rules, "RULE_FAMILIES", (*rules.RULE_FAMILIES, _fails_on_bad)):
            result = asyncio.run(ScanJob(settings).run())
    assert [h.address for h in result.hosts] == [GOOD, BAD]
    assert [[s.name for s in h.services] for h in result.hosts] == [["dicom"], ["dicom"]]
    assert {f.host for f in clean.findings} == {GOOD, BAD}
    good = {(f.rule_id, f.status) for f in result.findings if f.host == GOOD}
    assert good and good == {(f.rule_id, f.status) for f in clean.findings if f.host == GOOD}
    assert not [f for f in result.findings if f.host == BAD]
    [error] = result.scan.errors
    assert error.host == BAD and "internal error in the rules: KeyError" in error.message
