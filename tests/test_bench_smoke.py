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


def smoke(script: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A benchmark's --smoke run: what it printed and the figures it wrote."""
    figures = tmp_path / "figures.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke", "--json", str(figures)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(figures.read_text())
    return out.stdout, doc


def namespace_lab(test: Any) -> Any:
    for mark in namespace_lab_marks():
        test = mark(test)
    return test


@pytest.mark.skipif(shutil.which("nmap") is None, reason="the benchmark compares with nmap")
def test_bench_sweep_smoke(tmp_path: Path) -> None:
    stdout, doc = smoke("bench_sweep.py", tmp_path)
    assert "start-up: one closed port" in stdout and "/28 nmap" in stdout
    assert [r["label"] for r in doc["sweeps"]][-1] == "/28 nmap -n -sT -Pn -T4"
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 for r in doc["sweeps"])
    assert doc["imports"], "the -X importtime top entries are missing"


@pytest.mark.skipif(shutil.which("nmap") is None, reason="the benchmark compares with nmap")
@needs_dcmtk
@namespace_lab
def test_bench_many_devices_smoke(tmp_path: Path) -> None:
    """The live-devices benchmark (a namespace of its own, a /28 of storescp): it runs and
    both tools find DICOM on the devices."""
    stdout, doc = smoke("bench_many.py", tmp_path)
    assert "127.0.0.0/28 dicomscan" in stdout and "127.0.0.0/28 nmap" in stdout
    rows = doc["rows"]
    assert [r["tool"] for r in rows] == ["dicomscan", "nmap"]
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 and int(r["found"].split("-")[0]) > 0
               for r in rows)
