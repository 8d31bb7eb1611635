"""Large target sets are counted, excluded, scoped and fenced as spans, never expanded
before they are counted: ``--plan`` of a /8 and the size guard's refusal of an oversized
list take a second and little memory (they took minutes and gigabytes), and the plan's
spans give exactly what the scan's address-by-address path gives."""

from __future__ import annotations

import ipaddress
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scanner.engine.do_not_probe import Fence, make_entries
from scanner.engine.spans import texts
from scanner.engine.targets import TargetError, build_targets, plan_targets
from scanner.model import ScanSettings, Timeouts

ROOT = Path(__file__).resolve().parent.parent
MEMORY_CAP = 1 << 30  # address space: listing a /8 needs more than 2 GB


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, preexec_fn=_cap_memory)


def test_plan_of_a_slash_8_counts_without_listing(tmp_path: Path) -> None:
    """Planning sends nothing, so a /8 of documentation-free private space is fine here."""
    fence = tmp_path / "dnp.txt"
    fence.write_text("10.1.0.0/20 lab VLAN of fragile modalities\n")
    out = run("scan", "--plan", "--format", "json", "10.0.0.0/8", "--max-addresses",
              "16777216", "--exclude", "10.128.0.0/9", "--exclude-file", str(fence))
    assert out.returncode == 0, out.stderr[-2000:]
    plan = json.loads(out.stdout)
    # 10.0.0.1-10.127.255.255 after the exclusion, less the fenced /20
    assert plan["host_count"] == (1 << 23) - 1 - 4096
    assert plan["targets"] is None  # too many to list: ranges instead
    # discovery is not worked out per address: the bounds assume the costliest method
    assert plan["discovery"] == "per address"
    assert plan["max_discovery_packets_per_host"] == 1
    assert plan["target_ranges"] == ["10.0.0.1-10.0.255.255", "10.1.16.0-10.127.255.255"]
    assert plan["skipped_count"] == 4096 and len(plan["skipped"]) == 4096
    assert plan["skipped"][0]["address"] == "10.1.0.0"
    assert plan["skipped"][0]["entry"] == "10.1.0.0/20"
    assert {s["source"] for s in plan["skipped"]} == {f"{fence}:1"}
    text = run("scan", "--plan", "10.0.0.0/8", "--max-addresses", "16777216",
               "--exclude-file", str(fence))
    assert text.returncode == 0, text.stderr[-2000:]
    assert ("Hosts: 16773118\n  10.0.0.1-10.0.255.255\n  10.1.16.0-10.255.255.254\n"
            in text.stdout)
    assert "Skipped (do not probe): 4096\n" in text.stdout
    assert "  ... and 3096 more\n" in text.stdout  # the first 1,000 shown


def test_size_guard_refuses_before_listing() -> None:
    """Two /9s, each under the raised limit, together over it: refused from their count
    (listing them first took 33 s and 2.1 GB)."""
    started = time.monotonic()
    out = run("scan", "127.0.0.0/9", "127.128.0.0/9", "--max-addresses", "16000000",
              "-p", "9", "-q", "--discovery", "none")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "the target list has 16777212 addresses, more than 16000000" in out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - started < 30  # a second or two; minutes before


def test_an_excluded_range_is_one_interval_not_one_network_per_address() -> None:
    """A range in --exclude was expanded into a /32 network per address (and refused
    beyond 65,536 as if it were a target); each target was then checked against each."""
    started = time.monotonic()
    got = plan_targets(["10.0.0.0/16"], exclude=["10.0.0.0-10.0.127.255"])
    assert time.monotonic() - started < 10  # over 30 s before
    assert got.count == 32767
    assert got.spans[0].text(got.spans[0].first) == "10.0.128.0"
    with pytest.raises(TargetError, match="no targets left"):
        build_targets(["127.0.0.1"], exclude=["0.0.0.0-255.255.255.255"])
    assert build_targets(["127.0.0.1", "::1"], exclude=["::-ffff:ffff:ffff:ffff:ffff:ffff:"
                                                        "ffff:ffff"]).addresses == ["127.0.0.1"]


def _settings(targets: list[str], entries: list[tuple[str, str]]) -> ScanSettings:
    return ScanSettings.model_validate(dict(
        targets=targets, target_specs=targets, ports=[9], max_concurrency=4,
        per_host_connections=1, probe_spacing=0.0, discovery="none",
        timeouts=Timeouts(connect=0.5, dicom=0.5, dimse=0.5, host=5),
        do_not_probe=[e for entry, reason in entries for e in make_entries(entry, reason, "t")]))


@pytest.mark.parametrize("seed", range(40))
def test_plan_spans_and_the_scans_addresses_agree(seed: int) -> None:
    """Random targets, exclusions and fence entries over a small IPv4 and IPv6 window: the
    plan's spans, expanded, are exactly the addresses the scan keeps, and its skipped
    records are the scan's, same order, same entry."""
    rnd = random.Random(seed)

    def v4() -> str:
        return f"10.0.{rnd.randrange(2)}.{rnd.randrange(256)}"

    def v6() -> str:
        return f"fd00::{rnd.randrange(512):x}"

    def spec() -> str:
        kind = rnd.randrange(5)
        if kind == 0:
            return v4()
        if kind == 1:
            return f"10.0.{rnd.randrange(2)}.{rnd.randrange(256)}/{rnd.randrange(23, 33)}"
        if kind == 2:
            a, b = sorted((v4(), v4()), key=lambda t: tuple(map(int, t.split("."))))
            return f"{a}-{b}"
        if kind == 3:
            return f"fd00::{rnd.randrange(512):x}/{rnd.randrange(119, 129)}"
        return v6()

    specs = [spec() for _ in range(rnd.randrange(1, 6))]
    exclude = [spec() for _ in range(rnd.randrange(0, 3))]
    entries = [(spec(), f"reason {i}") for i in range(rnd.randrange(0, 5))]
    try:
        planned = plan_targets(specs, exclude)
    except TargetError:
        with pytest.raises(TargetError):
            build_targets(specs, exclude)
        return
    listed = build_targets(specs, exclude)
    assert list(texts(planned.spans)) == listed.addresses
    settings = _settings(listed.addresses, entries)
    scan_fence = Fence(settings)
    kept = scan_fence.before_discovery(settings.targets)
    plan_kept, plan_skipped = Fence(settings).split_spans(planned.spans)
    assert list(texts(plan_kept)) == kept
    assert [r for s in plan_skipped for r in s.records()] == scan_fence.skipped
    # and both are what searching the list in order, address by address, finds
    first = {a: _first_entry(a, settings) for a in settings.targets}
    assert kept == [a for a in settings.targets if first[a] is None]
    assert [(k.address, k.entry) for k in scan_fence.skipped] == [
        (a, first[a]) for a in settings.targets if first[a] is not None]


def _first_entry(address: str, settings: ScanSettings) -> str | None:
    addr = ipaddress.ip_address(address)
    for e in settings.do_not_probe:
        net = ipaddress.ip_network(e.entry)
        if net.version == addr.version and addr in net:
            return e.entry
    return None
