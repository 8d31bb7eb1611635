"""Many DICOM devices in one scan: a namespace of the test's own (only ``lo``, no route
anywhere) where one forking DCMTK storescp, bound to the wildcard address, answers on
every address of 127.0.0.0/8, so a /26 is 62 real DICOM services.

The terminal table lists failed findings one by one only up to a limit; beyond it they
are grouped by rule, each group counting the hosts that the JSON document lists with
that failed finding (a /22 of such devices took rich about 11 s to draw one row each)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.lab.peers import STORESCP_BIN
from scanner.outputs.table import LIST_AT_MOST
from tests.conftest import namespace_lab_marks, needs_dcmtk, remove_namespace

pytestmark = [*namespace_lab_marks(), needs_dcmtk]
PORT = 11112


def _in(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


@pytest.fixture
def devices() -> Iterator[str]:
    """A namespace whose every loopback address is a storescp."""
    ns = f"dscn-many-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(_in(ns, "ip", "link", "set", "lo", "up"), check=True)
        subprocess.Popen(_in(ns, str(STORESCP_BIN), "--fork", str(PORT)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = f"import socket; socket.create_connection(('127.0.0.9', {PORT}), 1).close()"
        end = time.monotonic() + 20
        while subprocess.run(_in(ns, sys.executable, "-c", probe),
                             capture_output=True).returncode != 0:
            assert time.monotonic() < end, "storescp did not start"
            time.sleep(0.1)
        yield ns
    finally:
        remove_namespace(ns)


def test_many_failed_findings_are_grouped_by_rule_in_the_table(
        devices: str, tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    done = subprocess.run(
        _in(devices, sys.executable, "-m", "scanner", "scan", "127.0.0.0/26", "-p", str(PORT),
            "--profile", "fast", "--fail-on", "never", "-q", "-o", "table:-",
            "-o", f"json:{out}"),
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    dicom = [h for h in doc["hosts"] if any(s["name"] == "dicom" for s in h["services"])]
    # One accept loop serves all 62 (a rig, not a network): a busy machine may time one out.
    assert len(dicom) >= 55, len(dicom)
    failed = [f for f in doc["findings"] if f["status"] == "fail"]
    assert len(failed) > LIST_AT_MOST
    hosts_per_rule = Counter(rule for rule, _ in {(f["rule_id"], f["host"]) for f in failed})
    table = done.stdout
    assert f"Findings ({len(failed)} failed, grouped by rule" in table
    for rule, hosts in hosts_per_rule.items():
        row = re.search(rf"│ {re.escape(rule)}\s+│.*?│\s+(\d+)\s+│ (127\.0\.0\.\d+)", table)
        assert row is not None, (rule, table)
        # The count is the JSON's; the first example is the lowest address, numerically.
        assert int(row.group(1)) == hosts
        first = min((f["host"] for f in failed if f["rule_id"] == rule),
                    key=lambda a: tuple(int(x) for x in a.split(".")))
        assert row.group(2) == first
    # Not one row per finding: one per rule (plus the hosts table's rows).
    assert len(table.splitlines()) < len(dicom) * 2 + 4 * len(hosts_per_rule) + 40
