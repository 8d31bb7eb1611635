"""Shared test helpers: run the real CLI against real peers and read its JSON."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from scanner.lab.peers import which_available


@dataclass
class ScanRun:
    returncode: int
    doc: dict[str, Any]
    stderr: str

    def service(self, port: int, host: str = "127.0.0.1") -> dict[str, Any]:
        for h in self.doc["hosts"]:
            if h["address"] == host:
                for s in h["services"]:
                    if s["port"] == port:
                        return s
        raise AssertionError(f"no service on {host}:{port}: {self.doc['hosts']}")

    def observations(self, port: int, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.service(port)["observations"] if o["kind"] == kind]

    def association(self, port: int, purpose: str) -> dict[str, Any]:
        found = [
            o for o in self.observations(port, "dicom-association")
            if purpose in o["purpose"].split(",")
        ]
        assert found, f"no {purpose} association on {port}"
        return found[0]

    def operations(self, port: int) -> dict[str, dict[str, Any]]:
        return {o["operation"]: o for o in self.observations(port, "dicom-operation")}

    def verdicts(self, port: int) -> dict[str, str]:
        return {
            f["rule_id"]: f["status"] for f in self.doc["findings"] if f["port"] == port
        }

    def finding(self, port: int, rule_id: str) -> dict[str, Any]:
        [f] = [f for f in self.doc["findings"] if f["port"] == port and f["rule_id"] == rule_id]
        return f


def run_scan(target: str, ports: str, *extra: str, timeout: float = 120) -> ScanRun:
    out = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", target, "-p", ports, "--format", "json",
         "--fail-on", "never", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return ScanRun(out.returncode, json.loads(out.stdout), out.stderr)


AVAILABLE = which_available()
# In CI a missing peer is a broken install step, so it fails there instead of skipping.
IN_CI = bool(os.environ.get("CI"))


def _needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not AVAILABLE[name] and not IN_CI, reason=f"{name} not installed")


needs_orthanc = _needs("orthanc")
needs_dcmtk = _needs("dcmtk")
needs_ctn = _needs("ctn")


@contextlib.contextmanager
def plain_listener(address: str, port: int) -> Iterator[int]:
    """A TCP listener that accepts and closes (a stand-in for any service that is only
    open, such as telnet or RDP on its port); yields its port. Skips when it cannot bind."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        pytest.skip(f"cannot bind {address}:{port}: {exc}")
    sock.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def namespace_lab_marks(*binaries: str) -> list[pytest.MarkDecorator]:
    """Marks of a module that builds network namespaces: root-only, real peers, and
    skipped outside CI when root or a needed program is missing (CI fails instead)."""
    missing = [b for b in ("ip", *binaries) if shutil.which(b) is None]
    return [
        pytest.mark.root,
        pytest.mark.peers,
        pytest.mark.skipif(
            (os.geteuid() != 0 or bool(missing)) and not IN_CI,
            reason=f"needs root and {', '.join(('iproute2', *binaries))} (network namespaces)",
        ),
    ]


def remove_namespace(ns: str) -> None:
    """Kill whatever still runs in a test's network namespace, then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for pid in pids.stdout.split():
        subprocess.run(["kill", "-9", pid], check=False)
    subprocess.run(["ip", "netns", "del", ns], check=False)
