"""A large sweep keeps only hosts with something to report and counts the rest, so its
memory and report do not grow with the empty addresses; a small scan lists every host.
Real scans (the CLI as a process) of loopback ranges, one real listener in the range."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from scanner.engine.job import SUMMARISE_ABOVE

SCHEMA = Path(__file__).resolve().parent.parent / "scanner" / "schema" / "report.schema.json"
LIVE = "127.0.9.7"  # inside 127.0.8.0/23 (510 addresses, above the threshold)


@pytest.fixture
def listener() -> Iterator[int]:
    """Accepts, reads what arrives for a moment, closes: an open port that speaks nothing."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((LIVE, 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.2)
                with contextlib.suppress(OSError):
                    conn.recv(4096)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


def scan(target: str, port: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", target, "-p", str(port), "--profile", "fast",
         "--discovery", "none", "--format", "json", "--fail-on", "never", "-q"],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, object] = json.loads(out.stdout)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    return doc


def test_large_sweep_lists_the_open_host_and_counts_the_rest(listener: int) -> None:
    doc = scan("127.0.8.0/23", listener)
    hosts = doc["hosts"]
    assert [h["address"] for h in hosts] == [LIVE]  # type: ignore[index,union-attr]
    assert hosts[0]["ports"][0]["state"] == "open"  # type: ignore[index]
    quiet = doc["scan"]["quiet"]  # type: ignore[index]
    assert quiet == {"hosts": 509, "refused": 509}, quiet


def test_small_scan_lists_every_host(listener: int) -> None:
    assert SUMMARISE_ABOVE >= 4
    doc = scan("127.0.9.5-8", listener)
    addresses = [h["address"] for h in doc["hosts"]]  # type: ignore[union-attr]
    assert addresses == ["127.0.9.5", "127.0.9.6", LIVE, "127.0.9.8"]
    assert doc["scan"]["quiet"] is None  # type: ignore[index]
