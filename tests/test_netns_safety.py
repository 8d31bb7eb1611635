"""Counted with nftables: ``--plan`` sends nothing, and do-not-probe devices get no packet
in any phase (an address entry: nothing at all; a MAC entry: nothing after the ARP
answer that taught the MAC), with the embedded engine and with nmap.

Three namespaces (``safety-*``): the scanner, device A and device B, each device joined
to the scanner by its own veth pair, addresses in 198.18.0.0/15 only, no route beyond,
IPv6 off so the kernel's own neighbour chatter does not count. Each device counts every
frame arriving on its link (netdev ingress), and TCP ones apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import namespace_lab_marks

pytestmark = namespace_lab_marks("nft")

A, B = "198.18.6.2", "198.18.7.2"
MAC_B = "02:00:5e:00:07:02"
PORTS = "104,4242"


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@dataclass
class Lab:
    scanner: str
    a: str
    b: str

    def counts(self, ns: str) -> tuple[int, int]:
        """(all frames, TCP frames) that reached the device's link."""
        out = []
        for name in ("frames", "tcpframes"):
            text = sh("ip", "netns", "exec", ns, "nft", "list", "counter", "netdev", "safety",
                      name)
            found = re.search(r"packets (\d+)", text)
            assert found, text
            out.append(int(found.group(1)))
        return out[0], out[1]

    def reset(self) -> None:
        # Neighbour entries left by an earlier scan make the kernels confirm them later
        # (a device's ARP request, the scanner's reply): measured as one stray ARP frame
        # a few seconds after a scan. Without entries on either side nothing is in flight.
        for ns in (self.scanner, self.a, self.b):
            sh("ip", "-n", ns, "neigh", "flush", "all")
        time.sleep(1.0)
        for ns in (self.a, self.b):
            sh("ip", "netns", "exec", ns, "nft", "reset", "counters", "table", "netdev",
               "safety")

    def scan(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        return subprocess.run(
            ["ip", "netns", "exec", self.scanner, sys.executable, "-m", "scanner", "scan",
             *args],
            capture_output=True, text=True, timeout=180, env=env, cwd=os.getcwd(),
        )


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:6]
    lab = Lab(f"safety-s-{tag}", f"safety-a-{tag}", f"safety-b-{tag}")
    made: list[str] = []
    try:
        for ns in (lab.scanner, lab.a, lab.b):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            for key in ("all", "default"):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw",
                   f"net.ipv6.conf.{key}.disable_ipv6=1")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for side, ns, net, mac in (("a", lab.a, "198.18.6", None), ("b", lab.b, "198.18.7", MAC_B)):
            sh("ip", "-n", lab.scanner, "link", "add", f"s{side}", "type", "veth", "peer",
               "name", f"d{side}", "netns", ns)
            if mac:
                sh("ip", "-n", ns, "link", "set", f"d{side}", "address", mac)
            sh("ip", "-n", lab.scanner, "addr", "add", f"{net}.1/30", "dev", f"s{side}")
            sh("ip", "-n", ns, "addr", "add", f"{net}.2/30", "dev", f"d{side}")
            # The counters exist before the link is up: nothing can slip past them.
            nft = ["ip", "netns", "exec", ns, "nft"]
            sh(*nft, "add", "table", "netdev", "safety")
            sh(*nft, "add", "counter", "netdev", "safety", "frames")
            sh(*nft, "add", "counter", "netdev", "safety", "tcpframes")
            sh(*nft, "add", "chain", "netdev", "safety", "in",
               f"{{ type filter hook ingress device d{side} priority 0; }}")
            sh(*nft, "add", "rule", "netdev", "safety", "in", "counter", "name", "frames")
            sh(*nft, "add", "rule", "netdev", "safety", "in", "meta", "l4proto", "tcp",
               "counter", "name", "tcpframes")
            sh("ip", "-n", ns, "link", "set", f"d{side}", "up")
            sh("ip", "-n", lab.scanner, "link", "set", f"s{side}", "up")
        yield lab
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_counters_see_a_real_scan(lab: Lab) -> None:
    """The control: a scan without lists reaches both devices, with ARP and TCP."""
    lab.reset()
    r = lab.scan(A, B, "-p", PORTS, "--format", "json", "--fail-on", "never", "-q",
                 "--connect-timeout", "1")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["scan"]["discovery"]["used"] == "arp"
    assert doc["scan"]["skipped"] == []
    for ns in (lab.a, lab.b):
        frames, tcp = lab.counts(ns)
        assert frames > 0 and tcp > 0, (ns, frames, tcp)


@pytest.mark.parametrize("engine", ["embedded", "nmap"])
def test_plan_sends_nothing_and_matches_the_scan(lab: Lab, engine: str, tmp_path: Path) -> None:
    lab.reset()
    r = lab.scan(A, B, "198.18.6.0/30", "-p", PORTS, "--plan", "--format", "json",
                 "--engine", engine)
    assert r.returncode == 0, r.stderr
    assert lab.counts(lab.a) == (0, 0) and lab.counts(lab.b) == (0, 0)
    plan = json.loads(r.stdout)
    assert plan["discovery"] == "arp" and plan["ports"] == [104, 4242]
    assert plan["targets"] == [A, B, "198.18.6.1"]
    assert plan["max_rate"] == 50.0 and plan["per_host_connections"] == 2
    # The scan then does what the plan said: the same hosts, the same ports.
    r = lab.scan(A, B, "198.18.6.0/30", "-p", PORTS, "--format", "json", "--engine", engine,
                 "--fail-on", "never", "-q", "--connect-timeout", "1")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sorted(h["address"] for h in doc["hosts"]) == sorted(plan["targets"])
    assert doc["scan"]["ports"] == plan["ports"]


@pytest.mark.parametrize("engine", ["embedded", "nmap"])
def test_do_not_probe_devices_get_no_packet(lab: Lab, engine: str, tmp_path: Path) -> None:
    dnp = tmp_path / "dnp.txt"
    dnp.write_text(f"{A} CT console: vendor forbids scanning\n")
    policy = tmp_path / "site.yaml"
    policy.write_text(f"do_not_probe:\n  - mac: {MAC_B.upper()}\n    reason: MR console\n")
    lab.reset()
    r = lab.scan(A, B, "-p", PORTS, "--exclude-file", str(dnp), "--policy", str(policy),
                 "--engine", engine, "--format", "json", "--fail-on", "never", "-q",
                 "--connect-timeout", "1")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["hosts"] == []
    skipped = {s["address"]: s for s in doc["scan"]["skipped"]}
    assert skipped[A]["reason"] == "CT console: vendor forbids scanning"
    assert skipped[A]["when"] == "before discovery"
    assert skipped[B]["reason"] == "MR console"
    assert skipped[B]["when"].startswith("after discovery (MAC 02:00:5e:00:07:02")
    # A: not one frame, in any phase. B: its ARP answer taught the MAC; no TCP at all.
    assert lab.counts(lab.a) == (0, 0)
    frames, tcp = lab.counts(lab.b)
    assert tcp == 0 and frames > 0
