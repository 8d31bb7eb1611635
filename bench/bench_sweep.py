#!/usr/bin/env python3
"""dicomscan against nmap on loopback sweeps and on start-up, in one run, with peak memory.

    python bench/bench_sweep.py [--sizes 20,18,16] [--runs R] [--max-rate N]
                                [--ports 104,11112] [--json FILE] [--smoke] [--checkout]

"dicomscan" is this checkout as a user installs it: a plain ``pip install`` into a venv of
its own (``.bench-venv``, made on first use; see bench/install.py), so an editable install
and the machine's own site hooks are not counted. ``--checkout`` (and ``--smoke``) run
``python -m scanner`` from the tree instead; the start-up table shows both.

1. Start-up: ``dicomscan scan 127.0.0.1 -p 9 --format json`` (one closed port), the whole
   process, beside ``nmap -n -sT -p 9 127.0.0.1``; then the ten slowest imports of that
   command from ``python -X importtime``.
2. Sweeps: ``dicomscan scan 127.0.0.0/P -p 104,11112 --profile fast --discovery none`` for
   each prefix P, once with the fast profile's rate cap and once with ``--max-rate``
   (default 100000, the highest the CLI takes), beside ``nmap -n -sT -Pn -T4`` on the same
   addresses and ports. Each row: median wall time, peak RSS of the process (wait4), and
   nmap/this (above 1.0: dicomscan was faster).

Only loopback addresses (127.0.0.0/8) are ever scanned. No peers are started: the ports are
closed unless something else on the machine listens there (it then gets the
A-ASSOCIATE-RQ that every open port gets first). No root needed. ``--smoke`` runs a tiny
version (a /28, one run) for CI: it checks the benchmark works, not its speed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from install import VENV, clean_env, installed_dicomscan  # siblings: the script's folder
from measure import compile_bytecode  # is on sys.path

ROOT = Path(__file__).resolve().parent.parent
NET = "127.0.0.0"


@dataclass
class Measured:
    label: str
    walls: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    note: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def rss_mb(self) -> float:
        return max(self.rss_kb) / 1024


def loopback_only(target: str) -> None:
    net = ipaddress.ip_network(target, strict=False)
    if not net.is_loopback:
        raise SystemExit(f"refusing {target}: the benchmark scans loopback only")


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall time, peak RSS (KB) of the process and its stderr tail; raises on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, cwd=ROOT)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # 1: findings (--fail-on never makes it 0 anyway)
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {err[-1500:].decode()}")
    return wall, int(usage.ru_maxrss), err.decode(errors="replace")


# What "dicomscan" runs: a regular install in a venv of its own (main() sets it), or this
# checkout through the machine's interpreter (--checkout, and --smoke).
PROGRAM: list[str] = [sys.executable, "-m", "scanner"]
INSTALLED = False


def dicomscan(*args: str) -> list[str]:
    return [*PROGRAM, "scan", *args]


def checkout(*args: str) -> list[str]:
    return [sys.executable, "-m", "scanner", "scan", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def env_for(argv: Sequence[str]) -> dict[str, str]:
    """The venv's programs run without the PYTHONPATH that points at this checkout."""
    return clean_env() if argv[0].startswith(str(VENV)) else env()


def measure(label: str, argv: list[str], runs: int, note: str = "") -> Measured:
    return measure_together([(label, argv, note)], runs)[0]


def measure_together(commands: list[tuple[str, list[str], str]], runs: int) -> list[Measured]:
    """Each run runs every command once, in turn, so a change in the machine's load
    between runs falls on all of them alike."""
    rows = [Measured(label, note=note) for label, _, note in commands]
    for _ in range(runs):
        for m, (_, argv, _) in zip(rows, commands, strict=True):
            wall, rss, _ = timed(argv, env_for(argv))
            m.walls.append(wall)
            m.rss_kb.append(rss)
    return rows


STARTUP_RUNS = 10


def startup(runs: int) -> tuple[list[Measured], list[str]]:
    args = ("127.0.0.1", "-p", "9", "--format", "json", "--fail-on", "never")
    cmd = dicomscan(*args)
    python = str(Path(PROGRAM[0]).with_name("python")) if INSTALLED else sys.executable
    commands = [
        ("dicomscan scan 127.0.0.1 -p 9", cmd,
         "installed in a venv" if INSTALLED else "this checkout, python -m scanner"),
        ("python -c pass (the interpreter alone)", [python, "-c", "pass"], ""),
    ]
    if INSTALLED:  # what this machine's interpreter and an editable install add
        commands += [("the same from this checkout", checkout(*args), "python -m scanner"),
                     ("python -c pass, the machine's interpreter",
                      [sys.executable, "-c", "pass"], "")]
    commands.append(("nmap -n -sT -p 9 127.0.0.1",
                     ["nmap", "-n", "-sT", "-p", "9", "127.0.0.1"], ""))
    for _, argv, _ in commands:
        timed(argv, env_for(argv))  # warm-up: the file cache
    rows = measure_together(commands, runs)
    traced = [python, "-X", "importtime", *(cmd if INSTALLED else cmd[1:])]
    _, _, err = timed(traced, env_for(traced))
    return rows, slowest_imports(err)


def slowest_imports(stderr: str, top: int = 10) -> list[str]:
    """The top-level imports (as the command made them) with the most cumulative time."""
    entries: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|", 2)
        depth = len(name) - len(name.lstrip(" "))
        if depth <= 3:  # the command's own imports, not their insides
            entries.append((int(cumulative), name.strip()))
    entries.sort(reverse=True)
    return [f"{us / 1000:7.1f} ms  {name}" for us, name in entries[:top]]


def sweeps(sizes: Sequence[int], ports: str, runs: int, max_rate: float) -> list[Measured]:
    rows: list[Measured] = []
    for prefix in sizes:
        target = f"{NET}/{prefix}"
        loopback_only(target)
        addresses = 2 ** (32 - prefix)
        connects = addresses * len(ports.split(","))
        base = ["-p", ports, "--profile", "fast", "--discovery", "none", "--format", "json",
                "--fail-on", "never", "-q"]
        if addresses > 65536:
            base += ["--max-addresses", str(addresses)]
        note = f"{connects} connects"
        rows += measure_together([
            (f"/{prefix} dicomscan, fast profile's rate cap", dicomscan(target, *base), note),
            (f"/{prefix} dicomscan --max-rate {max_rate:g}",
             dicomscan(target, *base, "--max-rate", f"{max_rate:g}"), note),
            (f"/{prefix} nmap -n -sT -Pn -T4",
             ["nmap", "-n", "-sT", "-Pn", "-T4", "-p", ports, target, "-oX", "-"], note),
        ], runs)
    return rows


def report(start: tuple[list[Measured], list[str]], sweep: list[Measured], runs: int) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs, load average {' '.join(load)}; "
          f"median of {runs} runs; nmap/this > 1 means dicomscan was faster")
    rows, imports = start
    nmap = rows[-1].wall
    print(f"\n== start-up: one closed port, whole process, median of {len(rows[0].walls)} runs ==")
    for m in rows:
        print(f"   {m.label:46} {m.wall:7.3f} s {m.rss_mb:7.1f} MB {nmap / m.wall:7.2f}x")
    print("   slowest top-level imports (python -X importtime, cumulative):")
    for line in imports:
        print(f"     {line}")
    print("\n== sweeps on loopback, ports closed ==")
    for i in range(0, len(sweep), 3):
        group = sweep[i:i + 3]
        nmap = group[-1].wall
        for m in group:
            print(f"   {m.label:46} {m.wall:7.3f} s {m.rss_mb:7.1f} MB {nmap / m.wall:7.2f}x"
                  f"  ({m.note})")


def as_json(start: tuple[list[Measured], list[str]], sweep: list[Measured]) -> dict[str, Any]:
    def row(m: Measured) -> dict[str, Any]:
        return {"label": m.label, "median_s": m.wall, "runs_s": m.walls,
                "peak_rss_mb": m.rss_mb, "note": m.note}

    return {"startup": [row(m) for m in start[0]], "imports": start[1],
            "sweeps": [row(m) for m in sweep]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="20,18,16", help="prefix lengths (default 20,18,16)")
    parser.add_argument("--ports", default="104,11112")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-rate", type=float, default=100_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoke", action="store_true", help="a /28, one run (CI)")
    parser.add_argument("--checkout", action="store_true",
                        help="run python -m scanner from this checkout instead of a regular "
                             "install in a venv of its own (.bench-venv, made on first use)")
    opts = parser.parse_args(argv)
    if shutil.which("nmap") is None:
        print("nmap not found: apt-get install nmap", file=sys.stderr)
        return 2
    sizes = [28] if opts.smoke else [int(s) for s in opts.sizes.split(",")]
    if any(not 16 <= s <= 32 for s in sizes):
        parser.error("--sizes: prefix lengths between 16 and 32")
    runs = 1 if opts.smoke else opts.runs
    compile_bytecode()  # as an installed package has it (bench/measure.py)
    if not (opts.smoke or opts.checkout):
        global PROGRAM, INSTALLED
        PROGRAM, INSTALLED = [str(installed_dicomscan())], True
    print(f"dicomscan: {' '.join(PROGRAM)}"
          + (" (this checkout, a regular install in a venv)" if INSTALLED else ""))
    # A start-up run takes a third of a second, and one run of it swings by a third with the
    # machine's load: at least 10 runs, hyperfine's own minimum for short commands.
    start = startup(runs if opts.smoke else max(runs, STARTUP_RUNS))
    sweep = sweeps(sizes, opts.ports, runs, opts.max_rate)
    report(start, sweep, runs)
    if opts.json:
        opts.json.write_text(json.dumps(as_json(start, sweep), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
