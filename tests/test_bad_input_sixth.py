"""Bad input, sixth pass: what was still accepted, a roundabout message or a traceback,
run as real processes (``--plan`` sends nothing; the syslog cases are refused before any
packet). Each test fails with its fix reverted, except those named as guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_output_clashes import assert_usage, run

DOTTED = "a numeric shorthand for 127.0.0.1; write the address dotted"


# --- numeric shorthands where dicomscan sends or listens ----------------------------------


@pytest.mark.parametrize("url", ["udp://0x7f000001:514", "tcp://127.1:514",
                                 "tls://0177.0.0.1:6514", "udp://2130706433:514"])
def test_syslog_host_shorthand(url: str, tmp_path: Path) -> None:
    """The findings went to whatever the resolver made of it (exit 0, 'sent')."""
    assert_usage(run("scan", "--plan", "127.0.0.2", "-p", "9", "--syslog", url,
                     cwd=tmp_path), "--syslog", "host ", DOTTED)


def test_syslog_host_shorthand_in_diff_and_site_configuration(tmp_path: Path) -> None:
    assert_usage(run("diff", "--syslog", "udp://127.1:514", "--history", "h.sqlite",
                     cwd=tmp_path), "--syslog", DOTTED)
    (tmp_path / "site.yaml").write_text(
        "version: 1\njobs:\n  night:\n    ports: '9'\n    targets: [127.0.0.2]\n"
        "    syslog: 'udp://0x7f000001:514'\n")
    assert_usage(run("config", "check", "site.yaml", cwd=tmp_path), "job night", DOTTED)


def test_syslog_dotted_host_and_name_still_parse() -> None:
    """Guard: what worked before still does."""
    from scanner.outputs.syslog import parse_url

    assert parse_url("udp://127.0.0.1:514") == ("udp", "127.0.0.1", 514)
    assert parse_url("tls://siem.example.org:6514") == ("tls", "siem.example.org", 6514)
    assert parse_url("tcp://[::1]:514") == ("tcp", "::1", 514)


@pytest.mark.parametrize(("args", "words"), [
    (("--address", "127.1"), ("--address 127.1: ", DOTTED)),
    (("--address", "ok.example", "--address", "0x7f000001"), ("--address 0x7f000001",)),
    (("--address", "c.example", "--listen", "0177.0.0.1:4222"), ("--listen host", DOTTED)),
], ids=["address", "second-address", "listen"])
def test_central_init_shorthand(args: tuple[str, ...], words: tuple[str, ...],
                                tmp_path: Path) -> None:
    """It was written into the server certificate and every sensor's bundle."""
    assert_usage(run("central", "init", "c", *args, cwd=tmp_path), *words)
    assert not (tmp_path / "c").exists()


def test_edited_fleet_files_with_a_shorthand(tmp_path: Path) -> None:
    init = run("central", "init", "c", "--address", "127.0.0.1", "--listen",
               "127.0.0.1:4999", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    add = run("central", "add-sensor", "c", "s1", "--scope", "127.0.0.0/8", cwd=tmp_path)
    assert add.returncode == 0, add.stderr
    bundle = tmp_path / "c" / "sensors" / "s1" / "sensor.json"
    doc = json.loads(bundle.read_text())
    doc["servers"] = ["tls://127.1:4999"]
    bundle.write_text(json.dumps(doc))
    assert_usage(run("sensor", "c/sensors/s1", cwd=tmp_path), "sensor.json", DOTTED)
    central = tmp_path / "c" / "central.json"
    doc = json.loads(central.read_text())
    doc["addresses"] = ["0x7f000001"]
    central.write_text(json.dumps(doc))
    assert_usage(run("central", "add-sensor", "c", "s2", "--scope", "127.0.0.0/8",
                     cwd=tmp_path), "central.json", "address 0x7f000001: ")
