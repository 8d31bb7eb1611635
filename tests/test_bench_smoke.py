"""The sweep and start-up benchmark still runs (a /28, one run): its output, not its speed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
