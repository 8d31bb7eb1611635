"""The fleet commands' bad input: a clear message and exit 2, never a traceback; and the
permissions each sensor is granted."""

from __future__ import annotations

from pathlib import Path

from scanner.fleet.layout import CentralDir
from tests.fleet_harness import dicomscan


def init(tmp_path: Path) -> Path:
    root = tmp_path / "c"
    out = dicomscan("central", "init", str(root), "--listen", "127.0.0.1:4999")
    assert out.returncode == 0, out.stderr
    return root


def assert_usage(out: object, words: str) -> None:
    assert out.returncode == 2, out
    err = out.stderr
    assert words in err and "Traceback" not in err, err


def test_bad_input_exits_2(tmp_path: Path) -> None:
    root = init(tmp_path)
    assert_usage(dicomscan("central", "init", str(root), "--listen", "127.0.0.1:4999"),
                 "already holds")
    assert_usage(dicomscan("central", "init", str(tmp_path / "x"), "--listen", "nonsense"),
                 "HOST:PORT")
    assert_usage(dicomscan("central", "add-sensor", str(root), "Bad.Name", "--scope",
                           "198.18.0.0/16"), "bad sensor name")
    assert_usage(dicomscan("central", "add-sensor", str(root), "ok", "--scope", "198.18.0.0/33"),
                 "not a network")
    assert_usage(dicomscan("central", "add-sensor", str(tmp_path / "none"), "ok", "--scope",
                           "198.18.0.0/16"), "not a central directory")
    assert_usage(dicomscan("sensor", str(tmp_path)), "not a sensor bundle")
    assert_usage(dicomscan("jobs", str(tmp_path / "none")), "not a central directory")
    # It exited 3 ("the scan failed"): a wrong directory is the user's input.
    assert_usage(dicomscan("central", "run", str(tmp_path / "none")), "not a central directory")
    assert_usage(dicomscan("submit", str(root), "--sensor", "ghost", "127.0.0.1", "-p", "104"),
                 "no sensor 'ghost'")


def test_each_sensor_granted_only_its_own_subjects(tmp_path: Path) -> None:
    root = init(tmp_path)
    for name, net in (("site-a", "198.18.1.0/24"), ("site-b", "198.18.2.0/24")):
        assert dicomscan("central", "add-sensor", str(root), name, "--scope", net
                         ).returncode == 0
    conf = CentralDir(root).server_conf.read_text()
    line_a = next(line for line in conf.splitlines() if '"site-a@dicomscan.fleet"' in line)
    assert "site-b" not in line_a and ">" not in line_a.replace("-a.>", "")
    assert '"_INBOX_site-a.>"' in line_a and '"$JS.API.CONSUMER.MSG.NEXT.JOBS.site-a"' in line_a
    key = (CentralDir(root).bundle("site-a") / "sensor.key")
    assert key.stat().st_mode & 0o077 == 0  # the private key is the owner's only
