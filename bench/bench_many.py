#!/usr/bin/env python3
"""Many live DICOM devices: time and peak memory as the number of devices grows, beside
nmap's dicom-ping on the same targets, in one run (needs root).

    python bench/bench_many.py [--nets /26,/24,/23] [--runs R] [--smoke] [--json FILE]

A network namespace of its own (only ``lo``, no route anywhere) where one forking DCMTK
storescp, bound to the wildcard address, answers on every address of 127.0.0.0/8: a /24
is 254 real DICOM services, each association served by a process of its own. For each
network: ``dicomscan scan NET -p 11112 --profile fast --format json`` (the whole default
pipeline: detection, AE title and unknown-peer checks, health checks, rules, the JSON
document) against ``nmap -n -T4 -sT -p 11112 --script dicom-ping NET``. Each row is the
median wall time of R runs after one warm-up, the peak RSS of the process (wait4), and
the DICOM services each found. The sweep benchmark measures hosts with nothing open; this
one measures what each live device costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import compile_bytecode, machine  # noqa: E402  (bench/, the script's folder)

from scanner.lab.peers import STORESCP_BIN  # noqa: E402

PORT = 11112


def _in(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def start_devices(ns: str) -> None:
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(_in(ns, ["ip", "link", "set", "lo", "up"]), check=True)
    subprocess.Popen(_in(ns, [str(STORESCP_BIN), "--fork", str(PORT)]),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = f"import socket; socket.create_connection(('127.0.0.9', {PORT}), 1).close()"
    end = time.monotonic() + 20
    while subprocess.run(_in(ns, [sys.executable, "-c", probe]),
                         capture_output=True).returncode != 0:
        if time.monotonic() > end:
            raise SystemExit("storescp did not start in the namespace")
        time.sleep(0.1)


def stop_devices(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for pid in pids.stdout.split():
        subprocess.run(["kill", "-9", pid], check=False)
    subprocess.run(["ip", "netns", "del", ns], check=False)


def timed(argv: list[str]) -> tuple[float, int, bytes]:
    """Wall time, peak RSS (KB) of the process and its children (ip netns exec runs the
    command in its own process: wait4 reports the largest), and stdout."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        data = out.read()
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{argv[4:8]} failed ({status})")
    return wall, int(usage.ru_maxrss), data


def dicomscan_found(doc: bytes) -> int:
    hosts = json.loads(doc)["hosts"]
    return sum(s["name"] == "dicom" for h in hosts for s in h["services"])


def nmap_found(xml: bytes) -> int:
    return sum(1 for s in ET.fromstring(xml).iter("script")
               if s.get("id") == "dicom-ping" and "DICOM" in (s.get("output") or ""))


def measure(ns: str, net: str, runs: int) -> list[dict[str, Any]]:
    tools = {
        "dicomscan": ([sys.executable, "-m", "scanner", "scan", net, "-p", str(PORT),
                       "--profile", "fast", "--format", "json", "--fail-on", "never", "-q"],
                      dicomscan_found),
        "nmap": (["nmap", "-n", "-T4", "-sT", "-p", str(PORT), "--script", "dicom-ping",
                  net, "-oX", "-"], nmap_found),
    }
    rows = []
    for tool, (argv, count) in tools.items():
        walls, peaks, found = [], [], []
        for i in range(runs + 1):
            wall, rss, out = timed(_in(ns, argv))
            if i:  # the first run warms caches (bytecode, the MAC registry, nmap's data)
                walls.append(wall)
                peaks.append(rss)
                found.append(count(out))
        rows.append({"net": net, "tool": tool, "median_s": round(statistics.median(walls), 3),
                     "peak_rss_mb": round(max(peaks) / 1024, 1),
                     "found": f"{min(found)}" if min(found) == max(found)
                     else f"{min(found)}-{max(found)}"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--nets", default="/26,/24,/23",
                    help="prefix lengths inside 127.0.0.0/8 (default /26,/24,/23)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="a /28, one run: that it still works")
    ap.add_argument("--json", dest="json_file")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the namespace needs root")
    nets = ["127.0.0.0/28"] if a.smoke else [f"127.0.0.0{p}" for p in a.nets.split(",")]
    runs = 1 if a.smoke else a.runs
    compile_bytecode()
    figures: dict[str, Any] = {"machine": machine(), "rows": []}
    print(json.dumps(figures["machine"]))
    ns = f"bench-many-{uuid.uuid4().hex[:6]}"
    try:
        start_devices(ns)
        for net in nets:
            figures["rows"] += measure(ns, net, runs)
    finally:
        stop_devices(ns)
    print(f"\nlive DICOM devices (forking storescp on every address); median of {runs}")
    print(f"   {'':34} {'wall s':>7} {'peak MB':>8}  found  ratio (nmap/dicomscan)")
    for mine, theirs in zip(figures["rows"][::2], figures["rows"][1::2], strict=True):
        for r in (mine, theirs):
            ratio = (f"{theirs['median_s'] / mine['median_s']:.2f}x" if r is mine else "")
            print(f"   {r['net'] + ' ' + r['tool']:34} {r['median_s']:7.2f} "
                  f"{r['peak_rss_mb']:8.1f}  {r['found']:>5}  {ratio}")
    if a.json_file:
        Path(a.json_file).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
