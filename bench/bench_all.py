#!/usr/bin/env python3
"""The scale and speed targets in one run: ``bench_sweep.py`` then ``bench_lab.py``, each
printing its own figures, then one table of the targets with met or missed; then
``bench_many.py`` (what each live DICOM device costs: no target, figures only).

    python bench/bench_all.py [--runs R] [--lab-runs R] [--json FILE]

Needs root (the namespace lab) and nmap; scans only 127.0.0.0/8 and the lab's own
198.18.0.0/24. About 9 minutes on 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SWEEP_RATIO, PEAK_MB, STARTUP_S, LAB_RATIO = 1.0, 150.0, 0.25, 3.0


def run(script: str, *args: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, str(HERE / script), *args, "--json", out.name],
                       check=True)
        doc: dict[str, Any] = json.loads(Path(out.name).read_text())
    return doc


def row(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    return next(r for r in rows if r["label"] == label)


def verdicts(sweep: dict[str, Any], lab: dict[str, Any]) -> list[tuple[str, str, str]]:
    sweeps = sweep["sweeps"]
    fast = row(sweeps, "/18 dicomscan --max-rate 100000")["median_s"]
    nmap = row(sweeps, "/18 nmap -n -sT -Pn -T4")["median_s"]
    peaks = [r["peak_rss_mb"] for r in sweeps if r["label"].split()[1] == "dicomscan"]
    one = row(sweep["startup"], "dicomscan scan 127.0.0.1 -p 9")["median_s"]
    rows = lab["rows"]
    scan = next(r for r in rows if r["what"] == "dicomscan scan --profile fast")
    theirs = next(r for r in rows if r["what"].startswith("nmap -n -T4"))
    found, expected = scan["found"].split()[0].split("/")
    lab_ratio = theirs["median_s"] / scan["median_s"]

    def said(ok: bool) -> str:
        return "met" if ok else "MISSED"

    return [
        ("sweep /18 vs nmap -sT (--max-rate 100000)", f"{nmap / fast:.2f}x",
         said(nmap / fast >= SWEEP_RATIO)),
        ("peak RSS of the scan process, /20 to /16", f"{min(peaks):.0f}-{max(peaks):.0f} MB",
         said(max(peaks) < PEAK_MB)),
        ("one closed port, whole process", f"{one:.3f} s", said(one < STARTUP_S)),
        ("namespace lab vs nmap, DICOM services found",
         f"{lab_ratio:.2f}x, {found}/{expected}",
         said(lab_ratio >= LAB_RATIO and "-" not in found and found == expected)),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per sweep figure (3)")
    ap.add_argument("--lab-runs", type=int, default=5, help="runs per lab figure (5)")
    ap.add_argument("--json", type=Path, help="keep both scripts' figures and the verdicts")
    a = ap.parse_args()
    sweep = run("bench_sweep.py", "--runs", str(a.runs))
    lab = run("bench_lab.py", "--runs", str(a.lab_runs))
    table = verdicts(sweep, lab)
    print("\n== the targets ==")
    for what, figure, verdict in table:
        print(f"   {what:48} {figure:>16}   {verdict}")
    many = run("bench_many.py", "--runs", str(a.runs))
    if a.json:
        a.json.write_text(json.dumps({"sweep": sweep, "lab": lab, "targets": table,
                                      "many": many}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
