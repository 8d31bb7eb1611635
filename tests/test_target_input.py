"""Odd targets through the command line, as a user meets them: IPv6 zones that name no
interface, digits that are not ASCII, addresses that name no host. Each is a one-line
error and exit 2, wherever targets are parsed (arguments, --exclude, a configuration
job's targets, with or without --plan); nothing is sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def assert_input_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    [error] = [ln for ln in out.stderr.splitlines() if ln.startswith("Error:")]
    for word in words:
        assert word in error, error


ZONE = "zone 'badzone' names no network interface of this machine"


@pytest.mark.parametrize("plan", [("--plan",), ()])
def test_a_zone_that_names_no_interface_is_exit_2(plan: tuple[str, ...]) -> None:
    common = (*plan, "-p", "9", "-q", "--discovery", "none")
    assert_input_error(run("scan", "fe80::1%badzone", *common), ZONE, "interfaces: lo")
    assert_input_error(run("scan", "127.0.0.1", "--exclude", "fe80::1%badzone", *common), ZONE)


def test_a_zone_in_a_configuration_job_is_exit_2(tmp_path: Path) -> None:
    conf = tmp_path / "site.yaml"
    conf.write_text(json.dumps({"jobs": {"a": {"targets": ["fe80::1%badzone"]}}}))
    assert_input_error(run("scan", "--config", str(conf), "--plan"), ZONE)


def test_a_real_zone_is_accepted() -> None:
    out = run("scan", "--plan", "--format", "json", "fe80::1%lo", "-p", "9")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["targets"] == ["fe80::1%lo"]


@pytest.mark.parametrize(("spec", "words"), [
    ("127.0.0.5-\u0664\u0660", ("bad end",)),  # Arabic-Indic 40: read as 40 before
    ("127.0.0.1-::1", ("the start is IPv4 and the end IPv6",)),
    ("0.0.0.0/29", ("name no host", "'this network'")),
    ("::/0", ("has 340282366920938463463374607431768211456 addresses",)),
])
def test_odd_targets_are_exit_2(spec: str, words: tuple[str, ...]) -> None:
    assert_input_error(run("scan", "--plan", spec, "-p", "9"), *words)


def test_a_huge_exclusion_range_is_no_size_error() -> None:
    # Was: "range ... has 4294967296 addresses, more than 65536 ... --max-addresses"
    out = run("scan", "--plan", "127.0.0.0/30", "::1", "-p", "9",
              "--exclude", "0.0.0.0-255.255.255.255")
    assert out.returncode == 0, out.stderr
    assert "Hosts: 1\n  ::1\n" in out.stdout


def test_an_error_names_the_option_it_is_in() -> None:
    # Every target, exclusion and scope error said "Invalid value for TARGET".
    assert_input_error(run("scan", "--plan", "127.0.0.1", "--exclude", "fe80::1%badzone"),
                       "Invalid value for --exclude", ZONE)
    assert_input_error(run("scan", "--plan", "127.0.0.1", "--scope", "10.0.0.0/33"),
                       "Invalid value for --scope", "invalid network")
