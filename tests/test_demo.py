"""``dicomscan demo``: the newcomer's first command, with real peers and with the fallback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scanner.lab import demo_lab

pytestmark = pytest.mark.peers


def test_demo_scans_the_real_lab_and_stops_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scanner", "demo", "--format", "json"],
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    products = {(s["product"], s["version"]) for h in doc["hosts"] for s in h["services"]}
    assert ("Orthanc (built on DCMTK 3.6.7)", None) in products
    assert ("DCMTK", "3.6.7") in products
    rules = {f["rule_id"] for f in doc["findings"] if f["status"] == "fail"}
    assert "dicom-query-open" in rules  # the demo Orthanc allows C-FIND from anyone
    assert "lab stopped" in out.stderr


def test_demo_falls_back_to_pynetdicom(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(
        demo_lab, "which_available",
        lambda: {"orthanc": False, "dcmtk": False, "ctn": False, "pynetdicom": True},
    )
    assert demo_lab.run_demo("json", "fast") == 0
    doc = json.loads(capsys.readouterr().out)
    [host] = doc["hosts"]
    [svc] = host["services"]
    assert svc["name"] == "dicom" and svc["product"] == "pynetdicom"
