"""A short coverage-guided fuzz run of the PDU and TLS parsers (tests/fuzz_parsers.py),
for CI: ~10 s, skipped where atheris is not installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probes.dicom import codes
from probes.dicom.pdu import associate_rq
from tests import hostile_pdus as pdus
from tests.bad_certs import good_der, server_flight

FUZZ_SECONDS = 10


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_parsers_survive_a_short_fuzz_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rq = associate_rq("DICOMSCAN", "ANY", codes.SERVICE_CONTEXTS)
    pdata = pdus.pdata(1, 0x03, pdus.echo_rsp(b"\x00\x00"))
    hello = b"\x16\x03\x01\x00\x00\x01\x00\x00\x00\x03\x03" + bytes(33) + b"\x00\x02\x00\x2f"
    seeds = {
        "ac": b"\x00" + pdus.associate_ac(rq),
        "rj": b"\x00" + bytes.fromhex("03 00 00000004 00 01 01 07"),
        "pdata": b"\x01" + pdata[6:],
        "tls": b"\x02" + server_flight(hello, good_der()),
    }
    for name, seed in seeds.items():
        (corpus / name).write_bytes(seed)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, str(root / "tests" / "fuzz_parsers.py"), str(corpus),
         f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=1024", "-timeout=5"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=FUZZ_SECONDS * 6,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Done" in out.stderr, out.stderr[-2000:]
