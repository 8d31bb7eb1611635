"""What a bench_dicom run measured on, and how it times: machine(), Timing, repeat()."""

from __future__ import annotations

import compileall
import contextlib
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from scanner import __version__
from scanner.lab import peers

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def compile_bytecode() -> None:
    """Bytecode for the scanner's own modules, as an installed package has it: with
    PYTHONDONTWRITEBYTECODE set (or a read-only tree) every timed dicomscan process would
    otherwise compile them from source again (about 0.4 s a scan on 2 CPUs)."""
    for package in ("scanner", "probes"):
        compileall.compile_dir(ROOT / package, quiet=1)


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = "?"
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "dicomscan": __version__,
        "nmap": _first_line(["nmap", "--version"]).removeprefix("Nmap version ").split(" (")[0],
        "dcmtk": _first_line([str(peers.STORESCP_BIN), "--version"]).strip("$ "),
        "loadavg": load,
        "commit": _commit(),
    }


def _commit() -> str:
    """The code measured: other work may be in the tree, so say when it is not a commit."""
    head = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    status = ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]
    try:
        dirty = subprocess.run(status, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "not found"
    return next((line for line in out.splitlines() if line.strip()), "unknown")


@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU time per run

    @property
    def cpu_share(self) -> float:
        """Median CPU/wall of this process: near 1.0 means the scanner itself is the limit."""
        return statistics.median(c / w for c, w in zip(self.cpu, self.runs, strict=True))

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def spread(self) -> str:
        return f"{min(self.runs):.3f}-{max(self.runs):.3f}"


def repeat(fn: Callable[[], T], runs: int, warmup: bool = True) -> tuple[Timing, T]:
    """Like hyperfine: one unmeasured warm-up, then ``runs`` timed runs; the last result."""
    if warmup:
        fn()
    timing = Timing()
    result: T | None = None
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        timing.runs.append(time.perf_counter() - started)
        timing.cpu.append(time.process_time() - cpu)
    assert result is not None
    return timing, result
