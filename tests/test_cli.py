"""The command line as a user meets it: help, errors and exit codes, run as a real process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_is_fast_and_teaches() -> None:
    started = time.perf_counter()
    out = run("--help")
    elapsed = time.perf_counter() - started
    assert out.returncode == 0
    assert "dicomscan demo" in out.stdout and "Exit codes" in out.stdout
    # The whole interpreter start plus help stays well under a second when heavy
    # modules (pynetdicom, scapy, pydantic) are not imported at start.
    assert elapsed < 2.0


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from scanner.cli.main import main\n"
        "CliRunner().invoke(main, ['scan', '--help'])\n"
        "heavy = [m for m in ('pynetdicom', 'pydicom', 'scapy', 'nmap', 'pydantic') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (("scan",), "no targets"),
        (("scan", "10.0.0.999"), "not an address"),
        (("scan", "8.8.8.8"), "--allow-public"),
        (("scan", "127.0.0.1", "-p", "0"), "outside 1-65535"),
        (("scan", "127.0.0.1", "--profile", "reckless"), "Invalid value"),
        (("scan", "127.0.0.1", "--calling-ae", "WAY_TOO_LONG_FOR_AN_AE"), "not a valid AE title"),
        (("scan", "-T", "/nonexistent/targets.txt"), "cannot read targets file"),
        (("scan", "127.0.0.1", "--scope", "198.18.0.0/15"), "outside --scope"),
        # click's FloatRange lets NaN through: the scan waited NaN seconds, or crashed
        (("scan", "127.0.0.1", "-p", "9", "--max-rate", "nan"), "not a finite number"),
        (("scan", "127.0.0.1", "-p", "9", "--timeout", "nan"), "not a finite number"),
        (("scan", "127.0.0.1", "-p", "9", "--connect-timeout", "NaN"), "not a finite number"),
        (("jobs", "/nonexistent", "--timeout", "nan"), "not a finite number"),
        # an output that names no file failed only after the scan, or made a file 'json:'
        (("scan", "127.0.0.1", "-p", "9", "-o", ""), "an empty value"),
        (("scan", "127.0.0.1", "-p", "9", "-o", "json:"), "names no file"),
        (("scan", "127.0.0.1", "-p", "9", "-o", "/tmp"), "is a folder, not a file"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    out = run(*args)
    assert out.returncode == 2, out
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_unusable_tls_files_are_refused_before_any_packet(tmp_path: Path) -> None:
    # They were read only when a TLS service asked, and then failed on every one of them.
    certs = Path(__file__).parent.parent / "fixtures" / "certs"
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    key = tmp_path / "SECRET-KEY-PATH.key"
    key.write_bytes((certs / "server.key").read_bytes())  # not the client's key
    cases = [
        (("--ca", str(junk)), "CA bundle"),
        (("--client-cert", str(junk), "--client-key", str(junk)), "do not load"),
        (("--client-cert", str(certs / "client.pem"), "--client-key", str(key)),
         "KEY_VALUES_MISMATCH"),
    ]
    for extra, message in cases:
        out = run("scan", "127.0.0.1", "-p", "9", *extra)
        assert out.returncode == 2 and message in out.stderr, out
        assert key.name not in out.stderr and "Traceback" not in out.stderr
    good = run("scan", "127.0.0.1", "-p", "9", "--ca", str(certs / "ca.pem"), "--client-cert",
               str(certs / "client.pem"), "--client-key", str(certs / "client.key"))
    assert good.returncode == 0, good


def test_absurdly_nested_documents_are_input_errors(tmp_path: Path) -> None:
    # libyaml's loader recursed in C and crashed (SIGSEGV) on a user's baseline file;
    # the other readers ended in a RecursionError traceback.
    deep_yaml = tmp_path / "deep.yaml"
    deep_yaml.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    deep_json = tmp_path / "deep.json"
    deep_json.write_text("[" * 200_000 + "]" * 200_000)
    commands = [
        ("baselines", "validate", str(deep_yaml)),
        ("config", "check", str(deep_yaml)),
        ("scan", "127.0.0.1", "-p", "9", "--policy", str(deep_yaml)),
        ("report", str(deep_json)),
        ("audit", "--from", str(deep_json)),
    ]
    for command in commands:
        out = run(*command)
        assert out.returncode == 2, (command, out)
        assert "nested" in out.stderr and "Traceback" not in out.stderr, (command, out.stderr)


def test_an_unknown_stored_scan_is_an_input_error(tmp_path: Path) -> None:
    # It exited 1, the code that means "failed findings", so a script took it for a result.
    from scanner.history.store import HistoryStore

    # an empty store: a missing one is "no history at ..." (also exit 2)
    HistoryStore.open(tmp_path / "h.sqlite").close()
    for command in (("history", "show"), ("diff",)):
        out = run(*command, "nothing-like-it", "--history", str(tmp_path / "h.sqlite"))
        assert out.returncode == 2, out
        assert "no scan matches" in out.stderr and "Traceback" not in out.stderr


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_scan_with_nothing_open_exits_0_and_reports_closed(closed_port: int) -> None:
    out = run("scan", "127.0.0.1", "-p", str(closed_port), "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"schema_version", "scan", "hosts", "findings"}
    [host] = doc["hosts"]
    assert host["address"] == "127.0.0.1"
    assert host["ports"] == [
        {
            "port": closed_port,
            "protocol": "tcp",
            "state": "closed",
            "method": "tcp-connect",
            "reason": "connection refused",
            "rtt_ms": host["ports"][0]["rtt_ms"],
            "observed_at": host["ports"][0]["observed_at"],
        }
    ]
    assert host["services"] == []
    assert doc["findings"] == []


def test_output_file_and_table_format(tmp_path, closed_port: int) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "report.txt"
    out = run("scan", "127.0.0.1", "-p", str(closed_port), "-o", str(target))
    assert out.returncode == 0
    text = target.read_text()
    assert "Hosts and open ports" in text and "127.0.0.1" in text


def test_targets_file_and_exclude(tmp_path, closed_port: int) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "targets.txt"
    f.write_text("# lab\n127.0.0.1\n127.0.0.2\n")
    out = run("scan", "-T", str(f), "--exclude", "127.0.0.2", "-p", str(closed_port),
              "--format", "json")
    assert out.returncode == 0
    assert [h["address"] for h in json.loads(out.stdout)["hosts"]] == ["127.0.0.1"]


def test_help_lists_every_command_with_its_short_help() -> None:
    """Commands load lazily (scanner/cli/main.py); --help still names each one with the first
    line of its help, and each name leads to the command of that name."""
    from click.testing import CliRunner

    from scanner.cli.main import COMMANDS, main

    out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0
    listed = out.output.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listed] == sorted(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(click.Context(main), name)
        assert command is not None and command.name == name
        line = next(x for x in listed if x.split()[0] == name)
        assert line.split(None, 1)[1][:20] == command.get_short_help_str(200)[:20]
