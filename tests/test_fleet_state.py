"""The fleet's own state as it may be found: a sensor scope wider than the scan's guard
allows, a damaged job ledger, spool entries that are folders, FIFOs or partial files,
central.json and sensor.json with odd but valid JSON. Each is one line and an exit
code, or a job failed with its reason: never a traceback, a hang or a silent wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fleet_harness import dicomscan
from tests.test_fleet_inputs import central, one_line_error

WIDE = ["::/0", "0.0.0.0/0", "8.8.8.0/24", "10.0.0.0/7", "::ffff:0:0/96", "2001:db8::/32",
        "192.0.2.0/24", "172.15.0.0/16"]


@pytest.mark.parametrize("scope", WIDE)
def test_sensor_scope_that_may_hold_public_addresses_needs_allow_public(
        scope: str, tmp_path: Path) -> None:
    root = central(tmp_path)
    before = (root / "central.json").read_text()
    # It was accepted: the sensor then scanned any public address a job named.
    one_line_error(dicomscan("central", "add-sensor", str(root), "wide", "--scope",
                             "10.20.0.0/24", "--scope", scope), 2,
                   "it may hold public addresses", "--allow-public")
    assert not (root / "sensors" / "wide").exists()
    assert (root / "central.json").read_text() == before

    out = dicomscan("central", "add-sensor", str(root), "wide", "--scope", scope,
                    "--allow-public")
    assert out.returncode == 0, out.stderr
    bundle = json.loads((root / "sensors" / "wide" / "sensor.json").read_text())
    assert bundle["allow_public"] is True
    entry = json.loads((root / "central.json").read_text())["sensors"]["wide"]
    assert entry["allow_public"] is True


@pytest.mark.parametrize("scope", ["10.20.0.0/24", "127.0.0.1", "fd00::/8", "fe80::/64",
                                   "169.254.0.0/16", "100.64.0.0/10", "198.18.0.0/15"])
def test_sensor_scope_inside_non_public_networks_needs_nothing(scope: str,
                                                               tmp_path: Path) -> None:
    root = central(tmp_path)
    out = dicomscan("central", "add-sensor", str(root), "lan", "--scope", scope)
    assert out.returncode == 0, out.stderr
    assert json.loads((root / "sensors" / "lan" / "sensor.json").read_text())[
        "allow_public"] is False


def test_edited_wide_scope_without_allow_public_is_refused_on_reading(tmp_path: Path) -> None:
    root = central(tmp_path)
    conf = root / "central.json"
    doc = json.loads(conf.read_text())
    doc["sensors"]["s1"]["scope"] = ["0.0.0.0/0"]
    conf.write_text(json.dumps(doc))
    for args in (("jobs", str(root)),
                 ("submit", str(root), "--sensor", "s1", "8.8.8.8", "-p", "1",
                  "--allow-public")):
        one_line_error(dicomscan(*args), 2, "central.json", "0.0.0.0/0",
                       "may hold public addresses")
    bundle = root / "sensors" / "s1"
    doc = json.loads((bundle / "sensor.json").read_text())
    doc["scope"] = ["::/0"]
    (bundle / "sensor.json").write_text(json.dumps(doc))
    one_line_error(dicomscan("sensor", str(bundle), timeout=30), 2, "sensor.json", "::/0",
                   "may hold public addresses")
