"""A rule that fails on one host's data costs that host its findings, never the scan.

Each host is judged when its probes are over (scanner/engine/job.py). A real DCMTK
storescp answers on 127.0.0.1 and another on 127.0.0.2, on the same port; a rule family
is made to fail on the second host only (fault injection: no real rule fails today).
The first host keeps every finding it earns, the second is listed with its services,
and the failure is a scan error naming the host."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
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


CLI = """
import sys
from unittest import mock
from scanner.cli.main import main
from scanner.rules import evaluate as rules
from tests.test_rules_containment import _fails_on_bad
with mock.patch.object(rules, "RULE_FAMILIES", (*rules.RULE_FAMILIES, _fails_on_bad)):
    main(sys.argv[1:])
"""


def test_a_host_left_unjudged_never_exits_clean() -> None:
    """Its missing findings could be failures: exit 3, unless a finding gives 1."""
    root = str(Path(__file__).resolve().parent.parent)

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", CLI, "scan", *args, "-p", str(port),
                               "--profile", "fast", "--discovery", "none", "-q",
                               "--format", "json"],
                              capture_output=True, text=True, timeout=120, cwd=root)

    with start_storescp() as peer, start_storescp(host=BAD, port=peer.info.port):
        port = peer.info.port
        alone = scan(BAD, "--fail-on", "critical")
        both = scan(GOOD, BAD, "--fail-on", "high")  # GOOD's known-vulnerable DCMTK: high
        never = scan(BAD, "--fail-on", "never")
    assert alone.returncode == 3, alone.stderr
    [error] = json.loads(alone.stdout)["scan"]["errors"]
    assert error["unjudged"] and error["host"] == BAD
    assert both.returncode == 1, both.stderr
    assert never.returncode == 0, never.stderr
    assert "Traceback" not in alone.stderr + both.stderr + never.stderr
