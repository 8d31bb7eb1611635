"""Which targets are this host's own addresses (discovery marks them alive without a
packet), read from the kernel's local routing table instead of a bind per target.

In a network namespace of the test's own: a link with a primary and a secondary address,
and a /32 on loopback. With ``ip_nonlocal_bind`` on (HAProxy and keepalived
hosts run so), binding succeeds for any address, so the bind test took every target for
this host's own and discovery probed none of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import namespace_lab_marks, remove_namespace

pytestmark = namespace_lab_marks()

ROOT = Path(__file__).resolve().parent.parent
OURS = {"198.18.0.1", "198.18.0.77", "198.19.3.3"}
CHECK = """
import json, sys
from probes.discovery import is_local_address, local_ipv4_spans
from scanner.engine.discovery_plan import plan
from scanner.model import DiscoveryMethod
targets = [f"198.18.0.{i}" for i in range(1, 255)] + ["198.19.3.3", "198.19.3.4", "127.0.0.9"]
spans = local_ipv4_spans()
p = plan(DiscoveryMethod.AUTO, targets, True)
print(json.dumps({"spans": [a for a in targets if is_local_address(a, spans)],
                  "binds": [a for a in targets if is_local_address(a)],
                  "plan_local": p.local}))
"""


@pytest.fixture
def namespace() -> Iterator[str]:
    ns = f"dscan-local-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        # A veth pair inside the namespace (this kernel may lack the dummy link type).
        for argv in (["link", "set", "lo", "up"],
                     ["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                     ["addr", "add", "198.18.0.1/24", "dev", "d0"],
                     ["addr", "add", "198.18.0.77/24", "dev", "d0"],
                     ["addr", "add", "198.19.3.3/32", "dev", "lo"],
                     ["link", "set", "d0", "up"], ["link", "set", "d1", "up"]):
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        yield ns
    finally:
        remove_namespace(ns)


def _local(ns: str) -> dict[str, list[str]]:
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CHECK],
                         capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout)


def test_the_local_table_gives_what_a_bind_gives(namespace: str) -> None:
    seen = _local(namespace)
    assert set(seen["spans"]) == set(seen["binds"]) == OURS | {"127.0.0.9"}
    assert set(seen["plan_local"]) == OURS | {"127.0.0.9"}


def test_with_nonlocal_bind_only_our_addresses_are_ours(namespace: str) -> None:
    subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
                    "net.ipv4.ip_nonlocal_bind=1"], check=True)
    seen = _local(namespace)
    assert len(seen["binds"]) == 257  # a bind succeeds for any address now
    assert set(seen["plan_local"]) == OURS | {"127.0.0.9"}  # every other target is probed
