"""The sweep and start-up benchmark still runs (a /28, one run): its output, not its speed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import namespace_lab_marks, needs_dcmtk

ROOT = Path(__file__).resolve().parent.parent


def namespace_lab(test: Any) -> Any:
    for mark in namespace_lab_marks():
        test = mark(test)
    return test


@pytest.mark.skipif(shutil.which("nmap") is None, reason="the benchmark compares with nmap")
def test_bench_sweep_smoke(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_sweep.py"), "--smoke", "--json",
         str(figures)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "start-up: one closed port" in out.stdout and "/28 nmap" in out.stdout
    doc = json.loads(figures.read_text())
    assert [r["label"] for r in doc["sweeps"]][-1] == "/28 nmap -n -sT -Pn -T4"
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 for r in doc["sweeps"])
    assert doc["imports"], "the -X importtime top entries are missing"


@pytest.mark.skipif(shutil.which("nmap") is None, reason="the benchmark compares with nmap")
@needs_dcmtk
@namespace_lab
def test_bench_many_devices_smoke(tmp_path: Path) -> None:
    """The live-devices benchmark (a namespace of its own, a /28 of storescp): it runs and
    both tools find DICOM on the devices."""
    figures = tmp_path / "figures.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_many.py"), "--smoke", "--json",
         str(figures)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "127.0.0.0/28 dicomscan" in out.stdout and "127.0.0.0/28 nmap" in out.stdout
    rows = json.loads(figures.read_text())["rows"]
    assert [r["tool"] for r in rows] == ["dicomscan", "nmap"]
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 and int(r["found"].split("-")[0]) > 0
               for r in rows)
