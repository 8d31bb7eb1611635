"""Odd inputs a user can hand the command line: each is a one-line error and exit 2, never
a traceback, a hang or memory without bound. Run as real processes under a memory cap."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEMORY_CAP = 2 << 30  # address space; the readers' caps are 16 and 256 MiB


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], capture_output=True, text=True,
        timeout=timeout, cwd=ROOT, preexec_fn=_cap_memory, **kw,  # type: ignore[call-overload]
    )


def assert_input_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    for word in words:
        assert word in out.stderr, out.stderr[-2000:]


# Every file a user names, given /dev/zero: an endless stream of NUL bytes.
ENDLESS = [
    ("scan", "--plan", "-T", "/dev/zero"),
    ("scan", "--plan", "127.0.0.1", "--exclude-file", "/dev/zero"),
    ("scan", "--plan", "127.0.0.1", "--ae-wordlist", "/dev/zero"),
    ("scan", "--plan", "127.0.0.1", "--policy", "/dev/zero"),
    ("scan", "--plan", "127.0.0.1", "--ca", "/dev/zero"),
    ("scan", "--plan", "--config", "/dev/zero"),
    ("config", "check", "/dev/zero"),
    ("baselines", "validate", "/dev/zero"),
    ("schedule", "--print", "cron", "--config", "/dev/zero"),
    ("report", "/dev/zero"),
    ("audit", "--from", "/dev/zero"),
]


@pytest.mark.parametrize("args", ENDLESS, ids=lambda a: " ".join(a))
def test_endless_file_is_refused_with_bounded_memory(args: tuple[str, ...]) -> None:
    assert_input_error(run(*args), "/dev/zero", "MiB")
