"""A fragile legacy device on a namespace subnet survives discovery by TCP ping.

MIR CTN's simple_storage exits when a connection closes without a byte. The TCP ping
(the discovery method without root, or ``--discovery tcp``) connects to imaging ports,
so the connection that opens must go on to service identification, never be closed
empty, and the port scan must reuse what it found rather than connect again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.lab.netns import NetnsLab, running_lab
from scanner.lab.netns_spec import LabSpec
from tests.conftest import namespace_lab_marks

pytestmark = namespace_lab_marks("simple_storage")

LEGACY = "198.18.1.20"
SPEC = {
    "name": "fragile",
    "subnet": "198.18.1.0/24",
    "scanner": {"name": "scanner", "address": "198.18.1.250"},
    "devices": [
        {"name": "legacy", "address": LEGACY,
         "services": [{"kind": "ctn", "port": 104, "aet": "CTN_STORE"}]},
    ],
}


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsLab]:
    with running_lab(LabSpec.model_validate(SPEC)) as running:
        yield running


def scan(lab: NetnsLab) -> dict[str, Any]:
    argv = [sys.executable, "-m", "scanner", "scan", "198.18.1.16/28", "--discovery", "tcp",
            "-p", "104", "--format", "json", "--fail-on", "never", "--connect-timeout", "1",
            "-q"]
    out = subprocess.run(lab.in_scanner(argv), capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _ctn_alive(lab: NetnsLab) -> bool:
    return ":104 " in lab.exec(lab.ns_of("legacy"), ["ss", "-ltnH"])


def test_ctn_survives_tcp_ping_discovery_in_the_safe_profile(lab: NetnsLab) -> None:
    for _ in range(2):  # the second scan finds it only if the first did not kill it
        doc = scan(lab)
        assert doc["scan"]["discovery"]["used"] == "tcp"
        [host] = doc["hosts"]
        assert host["address"] == LEGACY and host["discovery"]["method"] == "tcp"
        # 104 connects, 11112 refuses: whichever answered first marks the host alive. If
        # the ping's connection to 104 opened, it carried the A-ASSOCIATE-RQ and the port
        # scan reused it instead of connecting again.
        [port] = host["ports"]
        assert (port["port"], port["state"]) == (104, "open")
        assert port["reason"] in ("connected (discovery TCP ping)", "connected")
        [svc] = host["services"]
        assert svc["name"] == "dicom"
        assert _ctn_alive(lab)
