"""SNMP on UDP 161 against real snmpd (Net-SNMP) on a loopback address, and UDP port
states. snmpd runs with ``rocommunity public`` or with only a non-default community."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from probes.snmp import enterprise_of, exchange
from tests.conftest import ScanRun, run_scan
from tests.legacy_peers import free_port, snmpd

# A 127.x alias of its own, so the well-known port 161 is free for this test's snmpd.
ADDRESS = "127.77.0.161"


def _udp(run: ScanRun, port: int) -> dict[str, Any]:
    return next(p for p in run.doc["hosts"][0]["ports"] if p["port"] == port
                and p["protocol"] == "udp")


def _snmp_finding(run: ScanRun) -> dict[str, Any]:
    [f] = [f for f in run.doc["findings"] if f["rule_id"] == "snmp-default-community"]
    return f


def test_public_community_found_only_with_intrusive() -> None:
    with snmpd("public", address=ADDRESS, port=161):
        safe = run_scan(ADDRESS, "U:161")
        intrusive = run_scan(ADDRESS, "U:161", "--intrusive")
    for run in (safe, intrusive):
        port = _udp(run, 161)
        assert port["state"] == "open" and port["method"] == "snmpv3-discovery"
    [svc] = safe.doc["hosts"][0]["services"]
    assert svc["protocol"] == "udp" and svc["name"] == "snmp"
    [obs] = svc["observations"]
    assert obs["agent_answered"] and obs["enterprise"] == 8072  # net-snmp's IANA number
    assert obs["communities_tried"] == [] and obs["sys_descr"] is None
    assert _snmp_finding(safe)["status"] == "not-checked"
    f = _snmp_finding(intrusive)
    assert f["status"] == "fail" and f["severity"] == "high"
    assert f["evidence"]["community_accepted"] == "public"
    assert f["evidence"]["sysDescr"] == "dicomscan test snmpd (public)"
    assert f["evidence"]["snmp_version"] == "2c"  # rocommunity: both answer, v2c is named
    # A UDP port is not a TCP port: the port rules do not judge it.
    assert not [g for g in safe.doc["findings"]
                if g["rule_id"] == "port-not-allowed" and g["port"] == 161]


def test_agent_without_default_community_passes() -> None:
    with snmpd("secret42", address=ADDRESS, port=161):
        run = run_scan(ADDRESS, "U:161", "--intrusive", "--timeout", "2")
    [obs] = run.doc["hosts"][0]["services"][0]["observations"]
    assert [(a["community"], a["version"], a["answered"]) for a in obs["communities_tried"]] \
        == [("public", "2c", False), ("public", "1", False), ("private", "2c", False),
            ("private", "1", False)]
    assert obs["community_accepted"] is None and obs["sys_descr"] is None
    assert _snmp_finding(run)["status"] == "pass"


def test_a_community_taken_in_snmpv1_only_is_found() -> None:
    """An agent that takes ``public`` in SNMPv1 only leaves a v2c GET unanswered: that
    read as "refused", a pass. Both versions are asked, at once (one timeout)."""
    with snmpd("public", address=ADDRESS, port=161, v1_only=True):
        run = run_scan(ADDRESS, "U:161", "--intrusive", "--timeout", "2")
    [obs] = run.doc["hosts"][0]["services"][0]["observations"]
    assert [(a["community"], a["version"], a["answered"]) for a in obs["communities_tried"]] \
        == [("public", "2c", False), ("public", "1", True)]
    f = _snmp_finding(run)
    assert f["status"] == "fail" and f["evidence"]["snmp_version"] == "1"
    assert f["evidence"]["sysDescr"] == "dicomscan test snmpd (public)"
    assert f["evidence"]["tried"] == ["public (v2c)", "public (v1)"]


def test_udp_states_closed_and_open_filtered() -> None:
    # Nothing bound: loopback answers ICMP port unreachable, so closed; a bound socket
    # that never answers is open|filtered.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    quiet_port = silent.getsockname()[1]
    closed_port = free_port(socket.SOCK_DGRAM)
    try:
        run = run_scan("127.0.0.1", f"U:{closed_port},{quiet_port}", "--timeout", "1")
    finally:
        silent.close()
    assert _udp(run, closed_port)["state"] == "closed"
    assert _udp(run, closed_port)["reason"] == "port-unreachable"
    assert _udp(run, quiet_port)["state"] == "open|filtered"
    assert run.doc["scan"]["udp_ports"] == sorted([closed_port, quiet_port])


def test_empty_datagram_is_really_sent() -> None:
    # asyncio transports drop empty datagrams; the ICMP answer proves one left.
    assert asyncio.run(exchange("127.0.0.1", free_port(socket.SOCK_DGRAM), b"", 2)).refused


def test_enterprise_of_engine_id() -> None:
    assert enterprise_of(bytes.fromhex("80001f8880096f4151c9de0e6b00000000")) == 8072
    assert enterprise_of(bytes.fromhex("000001370300")) is None  # RFC 1910 format: no flag
