"""The fleet's own files as a person may leave them: an edited central.json, a sensor
bundle from elsewhere, an interrupted add-sensor, central not running. Each is one line
and an exit code, never a traceback or a wait without end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from scanner.lab.process import free_port
from tests.fleet_harness import dicomscan


def central(tmp_path: Path, port: int = 4999) -> Path:
    root = tmp_path / "c"
    out = dicomscan("central", "init", str(root), "--listen", f"127.0.0.1:{port}")
    assert out.returncode == 0, out.stderr
    assert dicomscan("central", "add-sensor", str(root), "s1", "--scope", "127.0.0.0/8"
                     ).returncode == 0
    return root


def one_line_error(out: object, code: int, *words: str) -> None:
    err = out.stderr  # type: ignore[attr-defined]
    assert out.returncode == code, err  # type: ignore[attr-defined]
    assert "Traceback" not in err and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


EDITS = [
    ("addresses", [], "addresses: List should have at least 1 item"),
    ("sensors", {"s1": {"scope": ["garbage"]}}, "--scope 'garbage' is not a network"),
    ("sensors", {"../../etc": {"scope": ["127.0.0.0/8"]}}, "bad sensor name '../../etc'"),
    ("sensors", [], "sensors: Input should be an object"),
]


@pytest.mark.parametrize(("key", "value", "words"), EDITS, ids=[e[2][:30] for e in EDITS])
def test_edited_central_json_is_one_line_and_exit_2(key: str, value: object, words: str,
                                                    tmp_path: Path) -> None:
    root = central(tmp_path)
    conf = root / "central.json"
    doc = json.loads(conf.read_text())
    doc[key] = value
    conf.write_text(json.dumps(doc))
    for args in (("jobs", str(root)),
                 ("submit", str(root), "--sensor", "s1", "127.0.0.1", "-p", "1"),
                 ("central", "add-sensor", str(root), "s2", "--scope", "127.0.0.0/8")):
        one_line_error(dicomscan(*args), 2, "central.json", words)
    assert not (root / "sensors" / "s2").exists()


def test_sensor_bundle_without_servers_is_refused(tmp_path: Path) -> None:
    root = central(tmp_path)
    bundle = root / "sensors" / "s1"
    doc = json.loads((bundle / "sensor.json").read_text())
    doc["servers"] = []  # nats-py, told to reconnect forever, spun on an empty list
    (bundle / "sensor.json").write_text(json.dumps(doc))
    one_line_error(dicomscan("sensor", str(bundle), timeout=30), 2,
                   "servers: List should have at least 1 item")


def test_add_sensor_over_a_leftover_folder_says_what_to_do(tmp_path: Path) -> None:
    root = central(tmp_path)
    (root / "sensors" / "s2").mkdir()  # as an interrupted add-sensor used to leave it
    one_line_error(dicomscan("central", "add-sensor", str(root), "s2", "--scope",
                             "127.0.0.0/8"), 2, "exists but central.json has no sensor 's2'")
    (root / "sensors" / "s2").rmdir()
    assert dicomscan("central", "add-sensor", str(root), "s2", "--scope", "127.0.0.0/8"
                     ).returncode == 0
    assert sorted(p.name for p in (root / "sensors").iterdir()) == ["s1", "s2"]


def test_submit_while_central_is_down_gives_up(tmp_path: Path) -> None:
    root = central(tmp_path, free_port("127.0.0.1"))  # nothing listens there
    started = time.monotonic()
    out = dicomscan("submit", str(root), "--sensor", "s1", "127.0.0.1", "-p", "1", timeout=90)
    # It retried for ever, printing a line every 2 s.
    assert time.monotonic() - started < 30
    one_line_error(out, 3, "cannot reach the central nats-server", "ConnectionRefusedError")


@pytest.mark.parametrize("damage", ["garbage", "folder"])
def test_damaged_job_ledger_is_one_line(damage: str, tmp_path: Path) -> None:
    root = central(tmp_path)
    ledger = root / "jobs.sqlite"
    ledger.unlink(missing_ok=True)
    if damage == "garbage":
        ledger.write_bytes(b"\x8f\x01 not sqlite " * 300)
    else:
        ledger.mkdir()
    # jobs and submit died with an sqlalchemy traceback.
    one_line_error(dicomscan("jobs", str(root)), 2, "cannot open the job ledger")
    one_line_error(dicomscan("submit", str(root), "--sensor", "s1", "127.0.0.1", "-p", "1"),
                   3, "cannot open the job ledger")


@pytest.mark.parametrize("address", ["", "a" * 300, "é.example", "foo bar", "x\ny"],
                         ids=["empty", "long", "unicode", "space", "newline"])
def test_central_init_checks_addresses_before_writing(address: str, tmp_path: Path) -> None:
    root = tmp_path / "c"
    out = dicomscan("central", "init", str(root), "--listen", "127.0.0.1:4999",
                    "--address", address)
    # The first three were cryptography's ValueError traceback, the others a certificate
    # and a bundle naming a host no sensor can dial.
    if address:
        one_line_error(out, 2, "is neither an IP address nor a host name")
    else:  # every option refuses a blank value first, as a usage error
        assert out.returncode == 2 and "an empty value" in out.stderr, out.stderr
    assert not root.exists()


def test_central_init_in_a_folder_that_cannot_be_made() -> None:
    one_line_error(dicomscan("central", "init", "/proc/no/such", "--listen", "127.0.0.1:4999"),
                   2, "cannot write the central directory /proc/no/such")


def test_sensor_spool_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    root = central(tmp_path)
    out = dicomscan("sensor", str(root / "sensors" / "s1"), "--spool", "/proc/no/such",
                    timeout=30)
    one_line_error(out, 2, "cannot make the spool folder /proc/no/such")
