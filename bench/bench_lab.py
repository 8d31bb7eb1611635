#!/usr/bin/env python3
"""dicomscan against nmap on a namespace imaging subnet, in one run (needs root).

    python bench/bench_lab.py [--devices N] [--tls K] [--runs R] [--json FILE]

Builds 198.18.0.0/24 with ``scanner.lab.netns``: N DCMTK storescp devices on port 104
(default 16), K of them also DICOM over TLS on 2762 (default 4), each with a vendor MAC,
and the scanner in a namespace of its own. Everything stays inside namespaces with no
route out. Then, each timed as the median of R runs after one warm-up:

1. ARP sweep of the /24: dicomscan's discovery (``run_discovery``, in a fresh process)
   against ``nmap -n -sn``.
2. The full default scan: ``dicomscan scan 198.18.0.0/24 --profile fast`` (embedded
   engine, and ``--engine nmap``) against ``nmap -n -T4 -sT -p 104,11112,2761,2762,4242,
   22,80,443 --script dicom-ping,ssl-cert,ssl-enum-ciphers``, with the DICOM services each
   found (dicomscan's JSON, nmap's XML).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import compile_bytecode  # noqa: E402  (bench/, the script's folder)

from scanner import __version__  # noqa: E402
from scanner.lab.netns import NetnsLab, running_lab  # noqa: E402
from scanner.lab.netns_spec import DeviceSpec, LabSpec, ServiceSpec  # noqa: E402

SUBNET = "198.18.0.0/24"
CERTS = ROOT / "fixtures" / "certs"
OUIS = ("44:4b:5d", "88:4b:39", "00:09:5c", "00:1d:4a")  # GE, Siemens, Philips, Carestream
NMAP_PORTS = "104,11112,2761,2762,4242,22,80,443"
NMAP_SCAN = ["nmap", "-n", "-T4", "-sT", "-p", NMAP_PORTS, "--script",
             "dicom-ping,ssl-cert,ssl-enum-ciphers", SUBNET, "-oX", "-"]
SWEEP = """\
import asyncio, json, sys, time
t = time.perf_counter()
from scanner.engine.settings import build_settings
from scanner.engine.discovery import run_discovery
from scanner.engine.rate import RateCap
from scanner.model import DiscoveryMethod, ProfileName, ScanSettings, Timeouts
s = ScanSettings(targets=[f"198.18.0.{i}" for i in range(1, 255)], target_specs=["x"],
                 ports=[104], profile=ProfileName.FAST, max_concurrency=1024,
                 per_host_connections=64, probe_spacing=0, discovery=DiscoveryMethod.ARP,
                 timeouts=Timeouts(connect=1, dicom=3, dimse=3, host=60))
# The fast profile's rate cap, as a scan paces its ARP requests.
info, found = asyncio.run(run_discovery(s, s.targets, rate=RateCap(5000.0)))
print(json.dumps({"alive": sorted(found or {}), "used": info.used.value,
                  "sweep_s": info.elapsed_ms / 1000, "process_s": time.perf_counter() - t}))
"""


def lab_spec(devices: int, tls: int) -> LabSpec:
    tls_args = ["+tls", str(CERTS / "server.key"), str(CERTS / "server.pem"),
                "--profile-bcp195", "-ic"]
    devs = []
    for i in range(devices):
        services = [ServiceSpec(kind="storescp", port=104, aet=f"DEV{i:02d}")]
        if i < tls:
            services.append(ServiceSpec(kind="storescp", port=2762, aet=f"DEV{i:02d}",
                                        args=tls_args))
        devs.append(DeviceSpec(name=f"dev{i}", address=f"198.18.0.{10 + i}",
                               mac=f"{OUIS[i % len(OUIS)]}:00:00:{10 + i:02x}",
                               services=services))
    scanner = DeviceSpec(name="scanner", address="198.18.0.250")
    return LabSpec(name="bench", subnet=SUBNET, scanner=scanner, devices=devs)


@dataclass(frozen=True)
class Run:
    """Medians over the timed runs: wall time, and CPU time (user + system) of the process
    and its children, which says how much of the wall time was work on a busy machine."""

    wall: float
    cpu: float
    low: float
    high: float


def timed(lab: NetnsLab, argv: list[str], runs: int) -> tuple[Run, list[str]]:
    """Median wall and CPU time of ``argv`` in the scanner namespace after one warm-up
    run, and the output of every timed run (each is checked, not only the last)."""
    outs: list[str] = []
    times: list[float] = []
    cpus: list[float] = []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(lab.in_scanner(argv), capture_output=True, text=True, cwd=ROOT,
                              timeout=600)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        if i:
            times.append(elapsed)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            outs.append(proc.stdout)
    return Run(statistics.median(times), statistics.median(cpus), min(times), max(times)), outs


def spread(counts: list[int]) -> str:
    return str(counts[0]) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def dicomscan_services(doc: dict[str, Any]) -> list[str]:
    return sorted(f"{h['address']}:{s['port']}" for h in doc["hosts"] for s in h["services"]
                  if s["name"] in ("dicom", "dicom-tls"))


def nmap_services(xml: str) -> list[str]:
    found = []
    for host in ET.fromstring(xml).iter("host"):
        addr = host.find("address").get("addr")  # type: ignore[union-attr]
        for port in host.iter("port"):
            script = port.find("script[@id='dicom-ping']")
            if script is not None and "DICOM" in (script.get("output") or ""):
                found.append(f"{addr}:{port.get('portid')}")
    return sorted(found)


def nmap_up(xml: str) -> list[str]:
    return sorted(h.find("address").get("addr", "")  # type: ignore[union-attr]
                  for h in ET.fromstring(xml).iter("host")
                  if h.find("status").get("state") == "up")  # type: ignore[union-attr]


def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), "?")
    nmap_v = subprocess.run(["nmap", "--version"], capture_output=True, text=True).stdout
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "kernel": platform.release(), "load": os.getloadavg(),
            "nmap": nmap_v.splitlines()[0] if nmap_v else "missing",
            "dicomscan": __version__, "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                cwd=ROOT).stdout.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--tls", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", dest="json_file")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the namespace lab needs root")
    compile_bytecode()
    figures: dict[str, Any] = {"machine": machine()}
    print(json.dumps(figures["machine"]))
    scan = [sys.executable, "-m", "scanner", "scan", SUBNET, "--profile", "fast",
            "--format", "json", "--fail-on", "never", "-q"]
    with running_lab(lab_spec(a.devices, a.tls)) as lab:
        expected = a.devices + a.tls
        rows: list[tuple[str, Run, str]] = []
        run, outs = timed(lab, [sys.executable, "-c", SWEEP], a.runs)
        sweeps = [json.loads(o) for o in outs]
        rows.append(("dicomscan ARP sweep (process)", run,
                     f"{spread([len(s['alive']) for s in sweeps])} up; sweep itself "
                     f"{statistics.median(s['sweep_s'] for s in sweeps):.2f} s"))
        run, outs = timed(lab, ["nmap", "-n", "-sn", SUBNET, "-oX", "-"], a.runs)
        rows.append(("nmap -n -sn", run, f"{spread([len(nmap_up(o)) for o in outs])} up"))
        for label, extra in (("dicomscan scan --profile fast", []),
                             ("dicomscan scan --profile fast --engine nmap", ["--engine", "nmap"])):
            run, outs = timed(lab, [*scan, *extra], a.runs)
            found = [len(dicomscan_services(json.loads(o))) for o in outs]
            rows.append((label, run, f"{spread(found)}/{expected} DICOM services"))
        run, outs = timed(lab, NMAP_SCAN, a.runs)
        rows.append((" ".join(NMAP_SCAN[:6]) + " ... dicom-ping,ssl-*", run,
                     f"{spread([len(nmap_services(o)) for o in outs])}/{expected} DICOM services"))
    print(f"\n{a.devices} devices on {SUBNET} ({a.tls} with TLS on 2762); median of {a.runs}")
    print(f"  {'':58} {'wall s':>6}  {'[min-max]':>11}  {'cpu s':>5}")
    for label, run, what in rows:
        spans = f"{run.low:5.2f}-{run.high:<5.2f}"
        print(f"  {label:58} {run.wall:6.2f}  {spans}  {run.cpu:5.2f}  {what}")
    scan_run, nmap_run = rows[2][1], rows[4][1]
    print(f"  full scan: nmap/dicomscan {nmap_run.wall / scan_run.wall:.2f}x (target >= 3x)")
    figures["rows"] = [{"what": r[0], "median_s": round(r[1].wall, 3), "min_s": round(r[1].low, 3),
                        "max_s": round(r[1].high, 3), "cpu_s": round(r[1].cpu, 3), "found": r[2]}
                       for r in rows]
    if a.json_file:
        Path(a.json_file).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
