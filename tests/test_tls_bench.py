"""Benchmark: the TLS probe beside nmap's ssl-enum-ciphers + ssl-cert on one service.

Both scanners go through the same counting TCP proxy in front of DCMTK
``storescp +tls --profile-bcp195 -ic``, so connection counts are measured the same
way and the proxy's small delay hits both. Run: ``pytest -m bench -s tests/test_tls_bench.py``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.conftest import needs_dcmtk
from tests.tls_peers import dcmtk_tls, generate_certs, of_kind, run_probe

pytestmark = [pytest.mark.bench, pytest.mark.peers]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextmanager
def counting_proxy(upstream: int) -> Iterator[tuple[int, list[int]]]:
    """A loopback TCP forwarder; yields (its port, [connections accepted so far])."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.1)
    count = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            count[0] += 1
            server = socket.create_connection(("127.0.0.1", upstream))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], count
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@needs_dcmtk
@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap not installed")
def test_tls_probe_beats_nmap(tmp_path: Path) -> None:
    certs = generate_certs(tmp_path / "certs")
    with (
        dcmtk_tls(certs, "--profile-bcp195", "-ic") as peer,
        counting_proxy(peer.info.port) as (port, count),
    ):
        started = time.perf_counter()
        subprocess.run(
            ["nmap", "-Pn", "-n", "-p", str(port), "--script", "ssl-enum-ciphers,ssl-cert",
             "127.0.0.1"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        nmap_s, nmap_conns = time.perf_counter() - started, count[0]
        count[0] = 0
        svc, _, cold_s = run_probe(port, per_host=64)  # includes importing pynetdicom
        conns = count[0]
        _, _, warm_s = run_probe(port, per_host=64)
        _, _, safe_s = run_probe(port, per_host=2, spacing=0.1)  # the default "safe" profile
    [summary] = of_kind(svc, "tls-summary")
    print(
        f"\nTLS grading of one DCMTK storescp +tls --profile-bcp195 -ic service:\n"
        f"  nmap ssl-enum-ciphers,ssl-cert      : {nmap_s:6.3f} s  {nmap_conns:3d} connections\n"
        f"  dicomscan TLS probe, first run      : {cold_s:6.3f} s  {conns:3d} connections\n"
        f"  dicomscan TLS probe, warm           : {warm_s:6.3f} s\n"
        f"  dicomscan TLS probe, safe profile   : {safe_s:6.3f} s  (2 at once, 0.1 s apart)"
    )
    assert conns == summary.connections
    assert conns < nmap_conns
    assert cold_s < nmap_s
