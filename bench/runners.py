"""One scan at a time: dicomscan (CLI or in-process ScanJob) or nmap, and what it found.

Also the counting proxy, which tells how many TCP connections a scan opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from loopback_lab import LOCALHOST, loopback_only

from scanner.model import ScanResult, ScanSettings

# --------------------------------------------------------------------------- dicomscan


def dicomscan_argv() -> list[str]:
    # The console script next to this interpreter, not a pyenv shim on PATH (a shell
    # script that adds ~0.1 s of its own); python -m scanner if there is none.
    script = Path(sys.executable).parent / "dicomscan"
    if script.is_file():
        return [str(script)]
    found = shutil.which("dicomscan")
    return [found] if found else [sys.executable, "-m", "scanner"]


def scan_opts(targets: Sequence[str], ports: Sequence[int]) -> dict[str, Any]:
    """The options `dicomscan scan TARGETS -p PORTS --profile fast` builds its job from."""
    for target in targets:
        loopback_only(target.split("-")[0])
    return {
        "targets": tuple(targets),
        "targets_file": None,
        "exclude": (),
        "scope": ("127.0.0.0/8",),  # a second guard: the job refuses anything else
        "allow_public": False,
        "ports": ",".join(str(p) for p in ports),
        "profile": "fast",
        "calling_ae": "DICOMSCAN",
        "ae_title": (),
        "ae_guess": None,
        "ae_wordlist": None,
        "intrusive": False,
        "timeout": None,
        "connect_timeout": None,
        "client_cert": None,
        "client_key": None,
        "ca": None,
    }


def scan_settings(targets: Sequence[str], ports: Sequence[int]) -> ScanSettings:
    from scanner.engine.settings import build_settings

    return build_settings(scan_opts(targets, ports))


def run_job(settings: ScanSettings, detection_only: bool = False) -> ScanResult:
    """One ScanJob as ``dicomscan scan`` runs it: ``asyncio.run(job.run())``.

    ``detection_only`` switches the follow-up probes off.
    """
    from scanner.engine.job import ScanJob

    job = ScanJob(settings.model_copy(update={"scan_id": f"bench-{time.monotonic_ns()}"}))
    with contextlib.ExitStack() as stack:
        if detection_only:
            # The engine looks follow_up_probes up at run time; none: connect + identify only.
            stack.enter_context(
                mock.patch("scanner.engine.registry.follow_up_probes", lambda _settings: ())
            )
        result = asyncio.run(job.run())
    if result.scan.interrupted:  # the job swallows Ctrl-C and returns partial results
        raise KeyboardInterrupt
    return result


def run_cli(targets: Sequence[str], ports: Sequence[int]) -> dict[str, Any]:
    for target in targets:
        loopback_only(target.split("-")[0])
    argv = [
        *dicomscan_argv(),
        "scan",
        *targets,
        "-p",
        ",".join(str(p) for p in ports),
        "--format",
        "json",
        "--profile",
        "fast",
        "--fail-on",
        "never",
        "-q",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"dicomscan exited {done.returncode}: {done.stderr[-2000:]}")
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def dicom_ports_json(document: dict[str, Any]) -> set[tuple[str, int]]:
    return {
        (host["address"], svc["port"])
        for host in document["hosts"]
        for svc in host["services"]
        if svc["name"] == "dicom"
    }


def dicom_ports_result(result: ScanResult) -> set[tuple[str, int]]:
    return {(h.address, s.port) for h in result.hosts for s in h.services if s.name == "dicom"}


# --------------------------------------------------------------------------- nmap


def run_nmap(ports: Sequence[int], scripts: str, target: str = LOCALHOST) -> ET.Element:
    argv = ["nmap", "-n", "-sT", "-p", ",".join(str(p) for p in ports)]
    loopback_only(target.split("-")[0])
    argv += ["--script", scripts, target, "-oX", "-"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"nmap exited {done.returncode}: {done.stderr[-2000:]}")
    return ET.fromstring(done.stdout)


def nmap_dicom_count(root: ET.Element) -> int:
    """How many (host, port) pairs dicom-ping reported as DICOM."""
    return sum(
        1
        for port in root.iter("port")
        for script in port.iter("script")
        if script.get("id") == "dicom-ping"
        and any(elem.get("key") == "dicom" for elem in script.iter("elem"))
    )


def nmap_dicom_ports(root: ET.Element) -> set[int]:
    """Ports where dicom-ping reported "DICOM Service Provider discovered!"."""
    found: set[int] = set()
    for port in root.iter("port"):
        for script in port.iter("script"):
            if script.get("id") == "dicom-ping" and any(
                elem.get("key") == "dicom" for elem in script.iter("elem")
            ):
                found.add(int(port.get("portid", "0")))
    return found


# --------------------------------------------------------------------------- counting proxy
#
# The idea of tests/test_tls_bench.py: both scanners talk to the service through the same
# loopback forwarder, which counts the connections it accepts. Only the counting runs go
# through it; the timed runs talk to the service directly, so the proxy's delay is not timed.


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def counting_proxy(upstream: int) -> Iterator[tuple[int, list[int]]]:
    """A loopback TCP forwarder to 127.0.0.1:upstream; yields (its port, [connections])."""
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen(256)
    listener.settimeout(0.1)
    count = [0]
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            count[0] += 1
            try:
                server = socket.create_connection((LOCALHOST, upstream), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            sockets.extend((client, server))
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
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
