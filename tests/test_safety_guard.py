"""The scope guard, the size guard and do-not-probe lists, through names, ranges and files,
as a user meets them (a real process, exit codes and messages) and as the job applies
them (a job built elsewhere cannot skip them)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.engine.do_not_probe import Fence, make_entry, read_exclude_file
from scanner.engine.job import ScanJob
from scanner.engine.targets import TargetError, build_targets, guard_addresses
from scanner.model import ScanSettings, Timeouts


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                          text=True, timeout=timeout)


def settings(**kw: object) -> ScanSettings:
    base: dict[str, object] = dict(
        targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=[9], max_concurrency=4,
        per_host_connections=1, probe_spacing=0.0, discovery="none",
        timeouts=Timeouts(connect=0.5, dicom=0.5, dimse=0.5, host=5),
    )
    return ScanSettings.model_validate({**base, **kw})


# --- scope guard: names are checked after resolution --------------------------------------

def test_name_resolving_outside_scope_is_refused_with_exit_2() -> None:
    # localhost resolves without DNS (the resolver's own rule / nss), to loopback.
    r = run("scan", "localhost", "--scope", "198.18.0.0/16", "-p", "9", "-q")
    assert r.returncode == 2, r.stderr
    assert "localhost resolves to 127.0.0.1" in r.stderr
    assert "outside --scope 198.18.0.0/16" in r.stderr
    assert "Traceback" not in r.stderr


def test_name_resolving_to_a_public_address_is_refused() -> None:
    with pytest.raises(TargetError, match="public"):
        build_targets(["pacs.example"], resolver=lambda name: ["8.8.8.8"])
    with pytest.raises(TargetError, match=r"pacs.example resolves to 198.19.2.3"):
        build_targets(["pacs.example"], scope=["198.18.0.0/16"],
                      resolver=lambda name: ["198.19.2.3"])


def test_ranges_and_files_are_scoped_like_the_command_line(tmp_path: Path) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("127.0.0.1\n127.0.1.250-127.0.2.3  # crosses the scope's edge\n")
    r = run("scan", "-T", str(targets), "--scope", "127.0.0.0/23", "-p", "9", "-q")
    assert r.returncode == 2
    assert "127.0.2.0 (127.0.1.250-127.0.2.3)" in r.stderr


def test_size_guard_counts_the_whole_list_and_needs_an_explicit_raise(tmp_path: Path) -> None:
    # A /16 and a /17: each alone is under the default limit, together over it.
    r = run("scan", "198.18.0.0/16", "198.19.0.0/17", "-p", "9", "--plan")
    assert r.returncode == 2
    assert "more than 65536" in r.stderr and "--max-addresses" in r.stderr
    r = run("scan", "127.0.0.0/29", "--max-addresses", "4", "-p", "9", "--plan")
    assert r.returncode == 2 and "more than 4" in r.stderr
    r = run("scan", "127.0.0.0/29", "--max-addresses", "8", "-p", "9", "--plan")
    assert r.returncode == 0, r.stderr
    assert "Hosts: 6" in r.stdout


def test_the_job_rechecks_scope_public_and_size() -> None:
    with pytest.raises(TargetError, match="outside the job's scope"):
        guard_addresses(["127.0.0.1"], False, ["198.18.0.0/16"])
    with pytest.raises(TargetError, match="public"):
        guard_addresses(["8.8.8.8"], False)
    with pytest.raises(TargetError, match="more than 1"):
        guard_addresses(["127.0.0.1", "127.0.0.2"], False, max_addresses=1)
    job = ScanJob(settings(scope=["198.18.0.0/16"]))
    with pytest.raises(TargetError):
        asyncio.run(job.run())


# --- do-not-probe lists -------------------------------------------------------------------

def test_exclude_file_entries_and_reasons(tmp_path: Path) -> None:
    entries = read_exclude_file(
        "# site list\n198.18.0.5 CT console, vendor forbids\n198.18.1.0/24\n"
        "00-11-22-AA-BB-CC  MR console\nct1.radiology\n", "dnp.txt")
    kinds = [(e.entry, e.kind.value, e.reason, e.source) for e in entries]
    assert kinds == [
        ("198.18.0.5", "address", "CT console, vendor forbids", "dnp.txt:2"),
        ("198.18.1.0/24", "network", "listed in dnp.txt", "dnp.txt:3"),
        ("00:11:22:aa:bb:cc", "mac", "MR console", "dnp.txt:4"),
        ("ct1.radiology", "name", "listed in dnp.txt", "dnp.txt:5"),
    ]
    bad = tmp_path / "bad.txt"
    bad.write_text("198.18.0.0/33 nope\n")
    r = run("scan", "127.0.0.1", "--exclude-file", str(bad), "-p", "9", "--plan")
    assert r.returncode == 2 and "bad.txt:1" in r.stderr and "Traceback" not in r.stderr


def test_fence_skips_address_network_name_and_mac() -> None:
    s = settings(
        targets=["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"],
        hostnames={"127.0.0.3": "ct1.radiology"},
        do_not_probe=[make_entry("127.0.0.1", "a", "t"), make_entry("127.0.0.2/32", "b", "t"),
                      make_entry("CT1.radiology", "c", "t"),
                      make_entry("00:11:22:aa:bb:cc", "d", "t")],
    )
    # The name resolves elsewhere: the target given by that name is still kept out.
    fence = Fence(s, resolver=lambda name: ["127.0.0.99"])
    assert fence.before_discovery(s.targets) == ["127.0.0.4"]
    assert not fence.allows("127.0.0.4", "00-11-22-AA-BB-CC", "after discovery")
    assert [(k.address, k.reason) for k in fence.skipped] == [
        ("127.0.0.1", "a"), ("127.0.0.2", "b"), ("127.0.0.3", "c"), ("127.0.0.4", "d")]
    assert "MAC 00:11:22:aa:bb:cc" in fence.skipped[-1].when


def test_policy_do_not_probe_reaches_the_result(tmp_path: Path) -> None:
    policy = tmp_path / "site.yaml"
    policy.write_text("do_not_probe:\n  - host: 127.0.0.2\n    reason: fragile modality\n"
                      "  - cidr: 127.0.0.4/31\n    reason: vendor VLAN\n")
    r = run("scan", "127.0.0.1-5", "--policy", str(policy), "-p", "9", "--format", "json",
            "--fail-on", "never", "--connect-timeout", "0.5", "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [h["address"] for h in doc["hosts"]] == ["127.0.0.1", "127.0.0.3"]
    skipped = {s["address"]: (s["reason"], s["source"]) for s in doc["scan"]["skipped"]}
    assert skipped == {
        "127.0.0.2": ("fragile modality", f"{policy} do_not_probe[0]"),
        "127.0.0.4": ("vendor VLAN", f"{policy} do_not_probe[1]"),
        "127.0.0.5": ("vendor VLAN", f"{policy} do_not_probe[1]"),
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("do_not_probe:\n  - host: 127.0.0.2\n    mac: 00:11:22:33:44:55\n"
                   "    reason: both\n")
    r = run("scan", "127.0.0.1", "--policy", str(bad), "-p", "9", "--plan")
    assert r.returncode == 2 and "exactly one of 'host', 'cidr' and 'mac'" in r.stderr


def test_nmap_gets_the_do_not_probe_networks_as_exclude() -> None:
    from scanner.engine.nmap_engine import fence_args

    s = settings(max_rate=20, do_not_probe=[
        make_entry("198.18.0.5", "a", "t"), make_entry("198.19.0.0/16", "b", "t"),
        make_entry("fd00::5", "c", "t"), make_entry("00:11:22:33:44:55", "d", "t")])
    assert fence_args(s, six=False) == ["--exclude", "198.18.0.5,198.19.0.0/16",
                                        "--max-rate", "20"]
    assert fence_args(s, six=True)[:2] == ["--exclude", "fd00::5"]


def test_profiles_show_their_rate_caps_and_max_rate_overrides() -> None:
    r = run("profiles")
    assert r.returncode == 0
    for rate in ("max rate 50 ", "max rate 200 ", "max rate 5000 "):
        assert rate in r.stdout, r.stdout
    r = run("scan", "127.0.0.1", "-p", "9", "--plan", "--max-rate", "7", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["max_rate"] == 7.0


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
@pytest.mark.parametrize("path", [("timeouts", "dicom"), ("max_rate",), ("probe_spacing",)])
def test_a_job_from_elsewhere_with_a_non_finite_number_is_refused(
        value: str, path: tuple[str, ...]) -> None:
    # A job can come as JSON from a centre (Python's json reads NaN and Infinity); a
    # sensor must refuse it rather than wait NaN seconds or pace connections at infinity.
    job = json.loads(settings().model_dump_json())
    *parents, key = path
    where = job
    for name in parents:
        where = where[name]
    where[key] = float(value)
    with pytest.raises(ValueError, match="finite"):
        ScanSettings.model_validate_json(json.dumps(job))


@pytest.mark.parametrize("option", ["timeout", "connect_timeout", "max_rate"])
def test_options_given_without_the_command_line_are_checked_too(option: str) -> None:
    # A lab or a script builds settings from an options dict: NaN gets a SettingsError
    # naming the problem, not a traceback and not a scan that waits NaN seconds.
    from scanner.cli.scan import scan as scan_command
    from scanner.engine.settings import SettingsError, build_settings

    opts = scan_command.make_context("scan", ["127.0.0.1", "-p", "9"]).params
    with pytest.raises(SettingsError, match="finite"):
        build_settings({**opts, option: float("nan")})
