"""A do-not-probe host name keeps out every address it resolves to (forwards, when the
job's fence is built), however a target reaches that address: a network, a range or
another name. A name that does not resolve refuses the scan (exit 2), since the device
it stands for could not be kept out."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scanner.engine.do_not_probe import DoNotProbeError, Fence, read_exclude_file
from scanner.engine.targets import TargetError
from scanner.model import ScanSettings, Timeouts
from tests.conftest import needs_dcmtk

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "ct-scanner-3.invalid"  # the reserved .invalid TLD never resolves


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def settings(targets: list[str], listed: str) -> ScanSettings:
    return ScanSettings.model_validate(dict(
        targets=targets, target_specs=targets, ports=[9], max_concurrency=4,
        per_host_connections=1, probe_spacing=0.0, discovery="none",
        timeouts=Timeouts(connect=0.5, dicom=0.5, dimse=0.5, host=5),
        do_not_probe=read_exclude_file(listed, "dnp.txt")))


def test_a_name_entry_keeps_out_the_addresses_it_resolves_to() -> None:
    s = settings([f"127.0.0.{i}" for i in range(1, 7)],
                 "127.0.0.6 console\nCT-Scanner-3.example.org.  fragile CT\n")
    table = {"ct-scanner-3.example.org": ["127.0.0.2", "127.0.0.6", "::1"]}
    fence = Fence(s, resolver=table.__getitem__)
    assert fence.before_discovery(s.targets) == ["127.0.0.1", "127.0.0.3", "127.0.0.4",
                                                 "127.0.0.5"]
    # The first entry that covers an address is the one recorded, as in the list.
    assert [(k.address, k.entry, k.reason, k.source) for k in fence.skipped] == [
        ("127.0.0.2", "ct-scanner-3.example.org", "fragile CT", "dnp.txt:2"),
        ("127.0.0.6", "127.0.0.6", "console", "dnp.txt:1")]


def test_a_name_that_does_not_resolve_refuses_the_job() -> None:
    s = settings(["127.0.0.1"], f"{NOWHERE} fragile CT\n")

    def nowhere(name: str) -> list[str]:
        raise TargetError(f"cannot resolve host name {name!r}")

    with pytest.raises(DoNotProbeError, match=rf"dnp.txt:1: do-not-probe name '{NOWHERE}'"):
        Fence(s, resolver=nowhere)


@pytest.mark.parametrize("plan", [True, False])
def test_unresolvable_name_is_exit_2_naming_file_and_line(plan: bool, tmp_path: Path) -> None:
    listed = tmp_path / "dnp.txt"
    listed.write_text(f"# fragile devices\n127.0.0.9 infusion pump\n{NOWHERE}  fragile CT\n")
    out = run("scan", *(["--plan"] if plan else []), "127.0.0.1", "-p", "9", "-q",
              "--discovery", "none", "--exclude-file", str(listed))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    [error] = [ln for ln in out.stderr.splitlines() if ln.startswith("Error:")]
    assert f"{listed}:3: do-not-probe name '{NOWHERE}' does not resolve" in error
    assert "refusing to scan" in error


def test_unresolvable_name_in_the_policy_is_exit_2(tmp_path: Path) -> None:
    policy = tmp_path / "site.yaml"
    policy.write_text(f"do_not_probe:\n  - host: {NOWHERE}\n    reason: fragile CT\n")
    out = run("scan", "--plan", "127.0.0.1", "-p", "9", "--policy", str(policy))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"do_not_probe[0]: do-not-probe name '{NOWHERE}' does not resolve" in out.stderr
    assert "--policy" in out.stderr


def test_plan_shows_a_names_addresses_as_skipped(tmp_path: Path) -> None:
    listed = tmp_path / "dnp.txt"
    listed.write_text("localhost  loopback console\n")
    out = run("scan", "--plan", "--format", "json", "127.0.0.0/30", "-p", "9",
              "--exclude-file", str(listed))
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["targets"] == ["127.0.0.2"]
    assert [(s["address"], s["entry"], s["source"]) for s in plan["skipped"]] == [
        ("127.0.0.1", "localhost", f"{listed}:1")]


@contextmanager
def recorder(address: str) -> Iterator[tuple[int, list[str]]]:
    """A listener that records every connection it accepts: proof of a packet received."""
    sock = socket.socket()
    sock.bind((address, 0))
    sock.listen(16)
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            seen.append(peer[0])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(sock.getsockname()[1]), seen
    finally:
        sock.close()


@pytest.mark.peers
@needs_dcmtk
def test_real_scan_never_touches_a_named_device(tmp_path: Path) -> None:
    from scanner.lab import peers

    listed = tmp_path / "dnp.txt"
    listed.write_text("localhost  the console that must never be probed\n")
    with peers.start_storescp(host="127.0.0.2") as dicom, recorder("127.0.0.1") as (port, seen):
        ports = f"{dicom.info.port},{port}"
        common = ("scan", "127.0.0.0/30", "-p", ports, "--format", "json", "--fail-on",
                  "never", "--discovery", "none", "--profile", "fast", "-q")
        out = run(*common, "--exclude-file", str(listed))
        assert out.returncode == 0, out.stderr
        assert seen == []  # not one connection reached 127.0.0.1
        doc = json.loads(out.stdout)
        [host] = doc["hosts"]
        assert host["address"] == "127.0.0.2"
        assert [p["port"] for p in host["ports"] if p["state"] == "open"] == [dicom.info.port]
        assert [(s["address"], s["entry"]) for s in doc["scan"]["skipped"]] == [
            ("127.0.0.1", "localhost")]
        # Without the list the same scan reaches the recorder: the check above can fail.
        control = run(*common)
        assert control.returncode == 0, control.stderr
        assert "127.0.0.1" in seen


def test_nmap_excludes_the_addresses_of_a_name_too() -> None:
    from scanner.engine.nmap_engine import fence_args

    s = settings(["127.0.0.1"], "localhost console\n127.0.0.9 pump\n")
    assert fence_args(s, six=False)[:2] == ["--exclude", "127.0.0.1,127.0.0.9"]


def test_a_tab_separates_entry_and_reason() -> None:
    # "127.0.0.2<TAB>infusion pump" was one entry that is no address: exit 2 for a list
    # written the way a spreadsheet exports it.
    entries = read_exclude_file("127.0.0.2\tinfusion pump\nct3.example.org\t\tCT\n", "dnp.txt")
    assert [(e.entry, e.kind.value, e.reason) for e in entries] == [
        ("127.0.0.2", "address", "infusion pump"), ("ct3.example.org", "name", "CT")]


def test_a_site_jobs_do_not_probe_list_takes_names_and_macs_and_says_why(
        tmp_path: Path) -> None:
    """A job's do_not_probe list in the site configuration is a do-not-probe list, not
    --exclude: a host name or a MAC there was refused ('invalid exclusion'), so the
    nightly scan of a site that listed its CT by name failed every night."""
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\njobs:\n  night:\n    targets: [127.0.0.0/29]\n"
                    "    ports: [9]\n    discovery: none\n"
                    "    do_not_probe: [localhost, 127.0.0.5-6, '00:11:22:33:44:55']\n",
                    encoding="utf-8")
    out = run("scan", "--config", str(site), "--plan", "--format", "json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    skipped = {s["address"]: s for s in plan["skipped"]}
    assert set(skipped) == {"127.0.0.1", "127.0.0.5", "127.0.0.6"}
    assert skipped["127.0.0.1"]["entry"] == "localhost"
    assert skipped["127.0.0.1"]["source"] == f"{site} do_not_probe[0]"
    assert "127.0.0.1" not in plan["targets"] and "127.0.0.2" in plan["targets"]
    assert any("MAC" in note for note in plan["notes"])  # checked when discovery learns it
    checked = run("config", "check", str(site))
    assert checked.returncode == 0, checked.stderr
