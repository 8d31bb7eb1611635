"""Discovery planning, MAC vendors and the engine options, without packets or root."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.engine import discovery_plan as discovery
from scanner.identify.oui import mac_vendor, medical_family, normalise_mac
from scanner.model import DiscoveryMethod, Host
from scanner.rules.baseline_model import Match
from scanner.rules.baseline_rules import host_facts, match_reasons

M = DiscoveryMethod


@pytest.fixture
def topology(monkeypatch: pytest.MonkeyPatch) -> None:
    """198.18.0.0/24 is on eth0, 198.19.0.0/24 is routed, 198.18.0.250 is ours."""
    monkeypatch.setattr(discovery, "onlink_interface",
                        lambda a, table=None: "eth0" if a.startswith("198.18.0.") else None)
    monkeypatch.setattr(discovery, "is_local_address", lambda a, spans=None: a == "198.18.0.250")


def test_loopback_and_none_need_no_discovery() -> None:
    assert discovery.plan(M.AUTO, ["127.0.0.1", "::1"], raw=True).used is M.NONE
    assert discovery.plan(M.NONE, ["198.18.0.1"], raw=True).used is M.NONE


@pytest.mark.usefixtures("topology")
def test_privilege_is_checked_only_when_the_choice_depends_on_it() -> None:
    """The check opens a packet socket (8-20 ms as root): not for loopback or none."""
    checks: list[int] = []

    def raw() -> bool:
        checks.append(1)
        return True

    assert discovery.plan(M.AUTO, ["127.0.0.1"], raw).used is M.NONE
    assert discovery.plan(M.NONE, ["198.18.0.1"], raw).used is M.NONE
    assert checks == []
    assert discovery.plan(M.AUTO, ["198.18.0.1"], raw).used is M.ARP
    assert checks == [1]


def test_a_loopback_scan_opens_no_packet_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from probes import discovery as probes_discovery
    from scanner.engine import discovery as engine_discovery
    from scanner.model import ScanSettings, Timeouts

    def refuse() -> bool:
        raise AssertionError("raw_sockets_allowed() called for a loopback scan")

    monkeypatch.setattr(engine_discovery, "raw_sockets_allowed", refuse)
    monkeypatch.setattr(probes_discovery, "raw_sockets_allowed", refuse)
    settings = ScanSettings(
        targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=[9], max_concurrency=8,
        per_host_connections=2, probe_spacing=0.0,
        timeouts=Timeouts(connect=3, dicom=5, dimse=5, host=120))
    info, found = asyncio.run(engine_discovery.run_discovery(settings, ["127.0.0.1"]))
    assert info.used is M.NONE and found is None


@pytest.mark.usefixtures("topology")
def test_auto_picks_by_privilege_and_topology() -> None:
    local = discovery.plan(M.AUTO, ["198.18.0.1", "198.18.0.250"], raw=True)
    assert (local.used, local.arp, local.local) == (M.ARP, {"eth0": ["198.18.0.1"]},
                                                    ["198.18.0.250"])
    routed = discovery.plan(M.AUTO, ["198.18.0.1", "198.19.0.1"], raw=True)
    assert (routed.used, routed.icmp) == (M.ICMP, ["198.18.0.1", "198.19.0.1"])
    unprivileged = discovery.plan(M.AUTO, ["198.18.0.1"], raw=False)
    assert (unprivileged.used, unprivileged.tcp) == (M.TCP, ["198.18.0.1"])
    assert "not root" in unprivileged.why


@pytest.mark.usefixtures("topology")
def test_explicit_methods_fall_back_with_a_note() -> None:
    no_raw = discovery.plan(M.ICMP, ["198.18.0.1"], raw=False)
    assert no_raw.used is M.TCP and "ICMP needs raw sockets" in no_raw.notes[0]
    arp = discovery.plan(M.ARP, ["198.18.0.1", "198.19.0.1", "fd00::1"], raw=True)
    assert (arp.arp, arp.icmp, arp.tcp) == ({"eth0": ["198.18.0.1"]}, ["198.19.0.1"],
                                           ["fd00::1"])
    assert len(arp.notes) == 2


def test_mac_vendor_from_the_offline_registry() -> None:
    assert mac_vendor("44-4B-5D-00-00-10") == "GE Healthcare"
    assert mac_vendor("70b3.d520.c001") == "Siemens Healthcare Diagnostics"  # a /36 block
    assert mac_vendor("02:00:00:00:00:01") is None  # locally administered
    assert normalise_mac("not a mac") is None and mac_vendor("zz") is None
    assert medical_family("Siemens AG, Healthcare Sector") == "Siemens Healthineers"
    assert medical_family("Siemens AG") is None


def test_baseline_match_on_mac_vendor() -> None:
    host = Host(address="198.18.0.11", mac="88:4b:39:00:00:11",
                mac_vendor="Siemens AG, Healthcare Sector")
    facts = host_facts(host)
    m = Match(mac_vendor="^Siemens Healthineers$")
    assert m.tier == 2
    assert match_reasons(m, facts) == [
        "MAC vendor 'Siemens Healthineers' matches /^Siemens Healthineers$/"]
    assert match_reasons(Match(mac_vendor="Philips"), facts) is None


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", "scan", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_engine_nmap_without_nmap_says_how_to_install(tmp_path: object) -> None:
    env = dict(os.environ, PATH=str(tmp_path))
    out = _cli("127.0.0.1", "--engine", "nmap", env=env)
    assert out.returncode == 2 and "apt-get install nmap" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_engine_options_are_usage_errors() -> None:
    assert _cli("127.0.0.1", "--service-version").returncode == 2
    assert _cli("127.0.0.1", "--discovery", "ping").returncode == 2


def test_the_registry_is_read_from_its_cache_and_rebuilt_when_that_is_bad(
        tmp_path: Path) -> None:
    from scanner.identify.oui import grouped, registry

    built = registry(tmp_path)
    assert built.get("44:4B:5D") == "GE Healthcare" and len(built) > 40_000
    [cached] = tmp_path.glob("manuf-*.marshal")
    written = cached.read_bytes()
    # What the cache holds is what a scan reads (scapy's 90 ms are skipped).
    cached.write_bytes(marshal.dumps(grouped({"44:4B:5D": "From the cache"})))
    assert registry(tmp_path).get("44:4B:5D") == "From the cache"
    for bad in (b"", b"\x00garbage", marshal.dumps(["not", "a", "table"]), marshal.dumps({}),
                marshal.dumps({"44:4B:5D": "the old format, one flat table"})):
        cached.write_bytes(bad)
        assert registry(tmp_path).get("44:4B:5D") == "GE Healthcare"
    assert cached.read_bytes() == written  # rebuilt and written again


def test_a_registry_lookup_reads_only_its_own_group() -> None:
    """A scan looks up a few MACs: unmarshalling all 50,000 names cost 20 ms a scan. A
    group that does not unmarshal (or holds a non-name) answers "unknown", not a crash."""
    from scanner.identify.oui import Registry, grouped

    groups = grouped({"44:4B:5D": "GE Healthcare", "88:4B:39": "Siemens AG",
                      "00:09:5C": "Philips"})
    groups["00"] = b"\x00not marshal"
    groups["AA"] = marshal.dumps({"AA:BB:CC": 42})
    reg = Registry(groups)
    assert reg.get("44:4B:5D") == "GE Healthcare"
    assert set(reg._open) == {"44"}
    assert reg.get("00:09:5C") is None and reg.get("AA:BB:CC") is None
    assert reg.get("12:34:56") is None


def test_the_registry_works_without_a_writable_cache(tmp_path: Path) -> None:
    from scanner.identify.oui import registry

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    assert registry(blocked).get("70:B3:D5:20:C0/36") == "Siemens Healthcare Diagnostics"


def test_the_routing_table_is_read_once_per_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A /16's plan read /proc/net/route once per address (65,534 times, seconds)."""
    import probes.discovery as probes_discovery

    reads: list[str] = []
    rows = probes_discovery._proc_rows
    monkeypatch.setattr(probes_discovery, "_proc_rows",
                        lambda path: reads.append(path) or rows(path))
    addresses = [f"198.18.{n // 256}.{n % 256}" for n in range(1, 1000)]
    p = discovery.plan(M.ARP, addresses, raw=True)
    assert reads.count("/proc/net/route") == 1
    # the same answers as reading the table for each address
    for a in addresses[:20]:
        assert (a in p.icmp) == (probes_discovery.onlink_interface(a) is None)


ARP_TABLE = """IP address       HW type     Flags       HW address            Mask     Device
198.18.0.10      0x1         0x2         02:AA:00:00:00:10     *        eth0
198.18.0.1       0x1         0x0         00:00:00:00:00:00     *        eth1
198.18.0.1       0x1         0x2         02:AA:00:00:00:01     *        eth0
198.18.0.2       0x1         0x0         00:00:00:00:00:00     *        eth0
"""


def test_neighbour_mac_takes_the_complete_row_of_that_very_address(tmp_path: Path) -> None:
    from probes.discovery import neighbour_mac

    table = tmp_path / "arp"
    table.write_text(ARP_TABLE)
    # Not 198.18.0.10's row (same prefix), not the incomplete row on eth1.
    assert neighbour_mac("198.18.0.1", str(table)) == "02:aa:00:00:00:01"
    assert neighbour_mac("198.18.0.10", str(table)) == "02:aa:00:00:00:10"
    assert neighbour_mac("198.18.0.2", str(table)) is None  # never answered
    assert neighbour_mac("198.18.0.3", str(table)) is None
    assert neighbour_mac("IP", str(table)) is None  # the header is no row
    assert neighbour_mac("198.18.0.1", str(tmp_path / "missing")) is None


def test_neighbour_mac_agrees_with_the_kernel_table() -> None:
    from probes.discovery import neighbour_mac, neighbour_macs

    table = neighbour_macs()
    for address, mac in table.items():
        assert neighbour_mac(address) == mac
    assert neighbour_mac("127.0.0.1") is None
