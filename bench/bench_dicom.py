#!/usr/bin/env python3
"""dicomscan against nmap on real DCMTK peers on loopback, in one run.

    python bench/bench_dicom.py [--peers N] [--hosts M] [--runs R] [--quick]
                                [--peer-nodelay] [--json FILE] [--cprofile FILE]

1. Detection: N DCMTK ``storescp`` peers on 127.0.0.1, three on the standard DICOM ports
   104, 11112 and 4242 when free, the rest on free high ports. ``dicomscan scan`` (fast
   profile, as a subprocess and in-process) and ``nmap -sT --script dicom-ping`` scan the
   same port set. nmap's dicom-ping only runs on 104, 2345, 2761, 2762, 4242 and 11112,
   so it misses the peers on other ports; dicomscan sends every open port an
   A-ASSOCIATE-RQ.
2. Throughput: M storescp peers, one per loopback address 127.77.0.1..M, scanned in one
   in-process ScanJob: DICOM services per second with the default follow-up checks, with
   detection only (follow-up probes switched off), and for a bare asyncio loop of
   ``probe_port`` + ``identify_service``.
3. TLS: one ``storescp +tls --profile-bcp195 -ic`` service, a full dicomscan scan of that
   port beside ``nmap --script ssl-enum-ciphers,ssl-cert``: time and TCP connections.

Every address is on loopback; every peer is stopped at the end, on Ctrl-C or error too.
Wall times are medians of R runs (hyperfine-like), after one unmeasured warm-up run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import ipaddress
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from scanner import __version__
from scanner.lab import peers
from scanner.model import ScanResult, ScanSettings

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
CERTS = ROOT / "fixtures" / "certs"
LOCALHOST = "127.0.0.1"
# The throughput lab: its own /24 inside 127.0.0.0/8, away from the tests' 127.0.0.1.
THROUGHPUT_NET = "127.77.0"
# nmap 7.93 dicom-ping's portrule: these ports, or a port whose service is already "dicom".
NMAP_DICOM_PORTS = (104, 2345, 2761, 2762, 4242, 11112)
STANDARD_PORTS = (104, 11112, 4242)
START_TIMEOUT = 20.0
_TCP_LISTEN = "0A"
_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- safety


def loopback_only(address: str) -> str:
    """Every address this script touches goes through here: loopback or nothing."""
    if not ipaddress.ip_address(address).is_loopback:
        raise SystemExit(f"refusing non-loopback address {address}")
    return address


# --------------------------------------------------------------------------- the machine


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


# --------------------------------------------------------------------------- peers
#
# scanner.lab.peers.start_storescp always takes a free port; the standard-port peers need
# a chosen one, and the throughput lab wants a hundred peers started at once rather than one
# after another. So this starter does what peers._launch does (the same LD_PRELOAD shim
# and DICOMSCAN_LAB_ADDR, own session, readiness and stray-listener checks read from
# /proc), for many peers in parallel, and hands back ordinary peers.RunningPeer objects.


def _proc_listeners() -> list[tuple[str, int, int]]:
    """(address, port, socket inode) of every listening IPv4 TCP socket."""
    found: list[tuple[str, int, int]] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != _TCP_LISTEN:
                continue
            hex_address, hex_port = fields[1].split(":")
            address = socket.inet_ntoa(struct.pack("=I", int(hex_address, 16)))
            found.append((address, int(hex_port, 16), int(fields[9])))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{entry}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((loopback_only(host), port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    # In the child before exec: SIGTERM when the bench dies, even by SIGKILL, so no peer
    # outlives it. Runs only while no other thread exists (peers start before the proxy).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _launch_storescp(
    host: str, port: int, args: Sequence[str] = (), aet: str = "STORESCP", nodelay: bool = False
) -> peers.RunningPeer:
    """Start /usr/bin/storescp on host:port under the loopback shim; does not wait."""
    env = dict(os.environ)
    env["DICOMSCAN_LAB_ADDR"] = loopback_only(host)
    # Debian's DCMTK 3.6.7 leaves Nagle on unless TCP_NODELAY=1 (see bench/README.md).
    env.pop("TCP_NODELAY", None)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    env["LD_PRELOAD"] = " ".join(
        p for p in (str(peers.loopback_shim()), env.get("LD_PRELOAD", "")) if p
    )
    tmpdir = Path(tempfile.mkdtemp(prefix="dicomscan-bench-storescp-"))
    incoming = tmpdir / "incoming"
    incoming.mkdir()
    argv = [str(peers.STORESCP_BIN), "--aetitle", aet, *args, "-od", str(incoming), str(port)]
    log_path = tmpdir / "peer.log"
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=tmpdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to us; we stop the peers ourselves
                preexec_fn=_die_with_parent,  # safe: no other thread runs at this point
            )
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    info = peers.PeerInfo("storescp", "DCMTK storescp", host, port, aet)
    return peers.RunningPeer(info, process, tmpdir, log_path)


def _wait_listening(pending: list[peers.RunningPeer], timeout: float) -> None:
    """Return once every peer's own socket listens on its loopback address and port."""
    deadline = time.monotonic() + timeout
    waiting = list(pending)
    while waiting:
        listeners = _proc_listeners()
        for peer in list(waiting):
            owned = _socket_inodes(peer.process.pid)
            mine = [(a, p) for a, p, inode in listeners if inode in owned]
            stray = [f"{a}:{p}" for a, p in mine if not ipaddress.ip_address(a).is_loopback]
            if stray:
                raise peers.PeerStartError("storescp", f"listened on {stray}; killed it")
            if (peer.info.host, peer.info.port) in mine:
                waiting.remove(peer)
            elif not peer.alive():
                raise peers.PeerStartError(
                    "storescp",
                    f"exited ({peer.process.returncode}) before listening on "
                    f"{peer.info.host}:{peer.info.port}",
                    peer.log_tail(),
                )
        if waiting and time.monotonic() > deadline:
            raise peers.PeerStartError("storescp", f"{len(waiting)} peers not listening in time")
        if waiting:
            time.sleep(0.05)


class Lab:
    """Peers started by this run; ``stop()`` ends them all, whatever happened."""

    def __init__(self, nodelay: bool = False) -> None:
        self.running: list[peers.RunningPeer] = []
        self.nodelay = nodelay

    def storescp(
        self, endpoints: Sequence[tuple[str, int]], args: Sequence[str] = ()
    ) -> list[peers.RunningPeer]:
        started = []
        for host, port in endpoints:
            peer = _launch_storescp(host, port, args, nodelay=self.nodelay)
            self.running.append(peer)  # registered before waiting: stopped even if it fails
            started.append(peer)
        _wait_listening(started, START_TIMEOUT)
        return started

    def stop(self) -> None:
        # Signal every process group first, then reap: a hundred peers stop in one grace
        # period, not one after another. Only unreaped leaders are signalled (pid reuse).
        for peer in self.running:
            if peer.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(peer.process.pid, signal.SIGTERM)
        for peer in self.running:
            peer.stop()
        self.running.clear()


@contextlib.contextmanager
def lab(nodelay: bool = False) -> Iterator[Lab]:
    the_lab = Lab(nodelay)
    try:
        yield the_lab
    finally:
        the_lab.stop()


def _exit_on_signal(signum: int, _frame: Any) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks stop the peers.
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- timing


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
    from scanner.cli import build_settings

    return build_settings(scan_opts(targets, ports))


def run_job(settings: ScanSettings, detection_only: bool = False) -> ScanResult:
    """One ScanJob as ``dicomscan scan`` runs it: ``asyncio.run(job.run())``.

    ``detection_only`` switches the follow-up probes off.
    """
    from scanner.engine import ScanJob

    job = ScanJob(settings.model_copy(update={"scan_id": f"bench-{time.monotonic_ns()}"}))
    with contextlib.ExitStack() as stack:
        if detection_only:
            # The engine looks follow_up_probes up at run time; none: connect + identify only.
            stack.enter_context(
                mock.patch("scanner.registry.follow_up_probes", lambda _settings: ())
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


# --------------------------------------------------------------------------- 1. detection


@dataclass
class Row:
    label: str
    wall: Timing
    found: int
    of: int
    note: str = ""


def bench_detection(the_lab: Lab, n: int, runs: int) -> tuple[list[Row], list[str]]:
    standard = [p for p in STANDARD_PORTS if port_free(LOCALHOST, p)][:n]
    ports = list(standard)
    while len(ports) < n:
        port = peers.free_port(LOCALHOST)
        if port not in ports and port not in NMAP_DICOM_PORTS:
            ports.append(port)
    the_lab.storescp([(LOCALHOST, p) for p in ports])
    ports.sort()
    notes = [
        f"{n} storescp peers on 127.0.0.1, ports {', '.join(map(str, ports))} "
        f"({len(standard)} on nmap's DICOM ports)"
    ]
    if len(standard) < min(n, len(STANDARD_PORTS)):
        busy = sorted(set(STANDARD_PORTS) - set(standard))
        notes.append(f"standard port(s) {busy} busy on this machine: not used")

    cli_t, cli_doc = repeat(lambda: run_cli([LOCALHOST], ports), runs)
    settings = scan_settings([LOCALHOST], ports)
    job_t, job_res = repeat(lambda: run_job(settings), runs)
    det_t, det_res = repeat(lambda: run_job(settings, detection_only=True), runs)
    nmap_t, nmap_xml = repeat(lambda: run_nmap(ports, "dicom-ping"), runs)
    nmap_found = nmap_dicom_ports(nmap_xml)
    missed = sorted(set(ports) - nmap_found)
    rows = [
        Row("dicomscan scan (subprocess, full checks)", cli_t, len(dicom_ports_json(cli_doc)), n),
        Row(
            "dicomscan ScanJob in-process, full checks", job_t, len(dicom_ports_result(job_res)), n
        ),
        Row(
            "dicomscan ScanJob in-process, detect only", det_t, len(dicom_ports_result(det_res)), n
        ),
        Row("nmap -sT --script dicom-ping", nmap_t, len(nmap_found), n),
    ]
    notes.append(f"nmap dicom-ping missed ports: {', '.join(map(str, missed)) or 'none'}")
    return rows, notes


# --------------------------------------------------------------------------- 2. throughput


async def _raw_detection(
    endpoints: Sequence[tuple[str, int]], settings: ScanSettings, rounds: int, concurrency: int
) -> int:
    """A bare asyncio loop: probe_port + identify_service (detect, release), no engine."""
    from probes.identify import identify_service
    from probes.ports import probe_port

    slots = asyncio.Semaphore(concurrency)

    async def one(host: str, port: int) -> bool:
        async with slots:
            _, conn = await probe_port(host, port, settings.timeouts.connect)
            if conn is None:
                return False
            try:
                service = await identify_service(conn, settings)
            finally:
                await conn.close()
            return service.name == "dicom"

    work = [one(h, p) for _ in range(rounds) for h, p in endpoints]
    return sum(await asyncio.gather(*work))


def bench_throughput(
    the_lab: Lab, hosts: int, runs: int, rounds: int, cprofile: Path | None
) -> tuple[list[tuple[str, Timing, int]], list[str]]:
    addresses = [loopback_only(f"{THROUGHPUT_NET}.{i}") for i in range(1, hosts + 1)]
    # Port 104 on every host, as on an imaging network, unless something already has it.
    port = 104 if all(port_free(a, 104) for a in addresses) else peers.free_port(addresses[0])
    the_lab.storescp([(a, port) for a in addresses])
    spec = f"{addresses[0]}-{hosts}"
    settings = scan_settings([spec], [port])
    assert settings.targets == addresses, settings.targets

    full_t, full_res = repeat(lambda: run_job(settings), runs)
    det_t, det_res = repeat(lambda: run_job(settings, detection_only=True), runs)
    endpoints = [(a, port) for a in addresses]
    # One connection in flight per peer, as the engine has with one port per host.
    concurrency = len(endpoints)
    raw_t, raw_found = repeat(
        lambda: asyncio.run(_raw_detection(endpoints, settings, rounds, concurrency)), runs
    )
    # The same sweep end to end: the CLI (interpreter start-up included) against nmap.
    cli_runs = min(runs, 3)
    cli_t, cli_doc = repeat(lambda: run_cli([spec], [port]), cli_runs)
    nmap_t, nmap_root = repeat(lambda: run_nmap([port], "dicom-ping", spec), cli_runs)
    results = [
        ("dicomscan scan (subprocess, full checks)", cli_t, len(dicom_ports_json(cli_doc))),
        ("nmap -sT --script dicom-ping", nmap_t, nmap_dicom_count(nmap_root)),
        ("ScanJob, detect + default follow-up checks", full_t, len(dicom_ports_result(full_res))),
        ("ScanJob, detection only (follow-ups off)", det_t, len(dicom_ports_result(det_res))),
        ("bare loop: probe_port + identify_service", raw_t, raw_found),
    ]
    notes = [
        f"{hosts} storescp peers, one per address {addresses[0]}..{addresses[-1]}, port {port}; "
        f"bare loop: {rounds} rounds x {hosts} services, {concurrency} at a time",
        "cpu/wall: this process's CPU time over wall time (the peers run on the other core)",
    ]
    if cprofile is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        run_job(settings)
        profiler.disable()
        profiler.dump_stats(cprofile)
        notes.append(f"cProfile of one full ScanJob run written to {cprofile}")
    return results, notes


# --------------------------------------------------------------------------- 3. TLS


def bench_tls(the_lab: Lab, runs: int) -> tuple[list[tuple[str, Timing, int, str]], list[str]]:
    key, cert = CERTS / "server.key", CERTS / "server.pem"
    args = ["+tls", str(key), str(cert), "--profile-bcp195", "-ic"]
    port = peers.free_port(LOCALHOST)
    the_lab.storescp([(LOCALHOST, port)], args)

    nmap_scripts = "ssl-enum-ciphers,ssl-cert"
    nmap_t, nmap_xml = repeat(lambda: run_nmap([port], nmap_scripts), runs)
    cli_t, cli_doc = repeat(lambda: run_cli([LOCALHOST], [port]), runs)
    settings = scan_settings([LOCALHOST], [port])
    job_t, job_res = repeat(lambda: run_job(settings), runs)

    # Connections: one more run of each through the counting proxy.
    with counting_proxy(port) as (proxy_port, count):
        run_nmap([proxy_port], nmap_scripts)
        nmap_conns, count[0] = count[0], 0
        proxied = run_cli([LOCALHOST], [proxy_port])
        cli_conns, count[0] = count[0], 0
        run_job(scan_settings([LOCALHOST], [proxy_port]))
        job_conns = count[0]

    nmap_versions = sorted(
        table.get("key", "")
        for script in nmap_xml.iter("script")
        if script.get("id") == "ssl-enum-ciphers"
        for table in script.findall("table")
    )
    nmap_cert = any(s.get("id") == "ssl-cert" for s in nmap_xml.iter("script"))
    ours = _tls_summary(cli_doc)
    rows = [
        ("dicomscan scan (subprocess)", cli_t, cli_conns, ours),
        ("dicomscan ScanJob in-process", job_t, job_conns, _tls_summary_result(job_res)),
        (
            "nmap ssl-enum-ciphers,ssl-cert",
            nmap_t,
            nmap_conns,
            f"versions {', '.join(nmap_versions) or 'none'}; cert {'yes' if nmap_cert else 'no'}",
        ),
    ]
    notes = [
        f"storescp +tls server.key server.pem --profile-bcp195 -ic on 127.0.0.1:{port}; "
        f"connections counted on one more run of each through a counting proxy",
        f"dicomscan through the proxy: {_tls_summary(proxied)}",
    ]
    return rows, notes


def _services(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [svc for host in document["hosts"] for svc in host["services"]]


def _tls_summary(document: dict[str, Any]) -> str:
    for svc in _services(document):
        summary = next((o for o in svc["observations"] if o.get("kind") == "tls-summary"), None)
        if summary is None:
            return f"{svc['name']}: no TLS summary"
        return (
            f"{svc['name']}, versions {', '.join(summary['versions_accepted']) or 'none'}, "
            f"DICOM inside {summary['dicom_inside']}, profile {summary['best_profile']}, "
            f"client cert required {summary['client_cert_required']}"
        )
    return "no service"


def _tls_summary_result(result: ScanResult) -> str:
    document: dict[str, Any] = json.loads(result.model_dump_json())
    return _tls_summary(document)


# --------------------------------------------------------------------------- report

Detection = tuple[list[Row], list[str]]
Throughput = tuple[list[tuple[str, Timing, int]], list[str]]
Tls = tuple[list[tuple[str, Timing, int, str]], list[str]]


def print_report(
    info: dict[str, str], detection: Detection, throughput: Throughput, tls: Tls, runs: int
) -> None:
    print(
        f"\nmachine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"Linux {info['kernel']}, load average at start {info['loadavg']}\n"
        f"code: dicomscan {info['dicomscan']} at {info['commit']}\n"
        f"tools: nmap {info['nmap']}, {info['dcmtk']}"
        f"{' (peers with TCP_NODELAY=1)' if info.get('peer_nodelay') == 'yes' else ''}\n"
        f"times: median of {runs} runs after one warm-up [min-max]; "
        f"nmap/this > 1 means dicomscan was faster"
    )

    rows, notes = detection
    nmap_s = rows[-1].wall.median
    print("\n== 1. DICOM detection on the same port set (dicomscan --profile fast) ==")
    for note in notes:
        print(f"   {note}")
    print(f"   {'':44} {'wall s':>8} {'[min-max]':>13} {'DICOM found':>12} {'nmap/this':>10}")
    for row in rows:
        print(
            f"   {row.label:44} {row.wall.median:8.3f} {row.wall.spread():>13} "
            f"{f'{row.found}/{row.of}':>12} {nmap_s / row.wall.median:9.2f}x"
        )

    results, notes = throughput
    print("\n== 2. Throughput on loopback, fast profile: DICOM services detected per second ==")
    for note in notes:
        print(f"   {note}")
    print(
        f"   {'':44} {'wall s':>8} {'[min-max]':>13} {'services':>9} {'per s':>8} {'cpu/wall':>9}"
    )
    for label, timing, found in results:
        print(
            f"   {label:44} {timing.median:8.3f} {timing.spread():>13} {found:9d} "
            f"{found / timing.median:8.0f} {timing.cpu_share:9.2f}"
        )

    tls_rows, notes = tls
    nmap_tls = tls_rows[-1][1].median
    print("\n== 3. TLS grading of one DICOM-over-TLS service ==")
    for note in notes:
        print(f"   {note}")
    print(f"   {'':32} {'wall s':>8} {'[min-max]':>13} {'TCP conns':>10} {'nmap/this':>10}  what")
    for label, timing, conns, what in tls_rows:
        print(
            f"   {label:32} {timing.median:8.3f} {timing.spread():>13} {conns:10d} "
            f"{nmap_tls / timing.median:9.2f}x  {what}"
        )


def as_json(
    info: dict[str, str], detection: Detection, throughput: Throughput, tls: Tls
) -> dict[str, Any]:
    """The same figures, for keeping beside a README or comparing runs."""
    return {
        "machine": info,
        "detection": [
            {
                "label": r.label,
                "median_s": r.wall.median,
                "runs_s": r.wall.runs,
                "found": r.found,
                "peers": r.of,
            }
            for r in detection[0]
        ],
        "throughput": [
            {
                "label": label,
                "median_s": t.median,
                "runs_s": t.runs,
                "services": n,
                "per_s": n / t.median,
            }
            for label, t, n in throughput[0]
        ],
        "tls": [
            {"label": label, "median_s": t.median, "runs_s": t.runs, "connections": c, "what": w}
            for label, t, c, w in tls[0]
        ],
        "notes": detection[1] + throughput[1] + tls[1],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=8, help="detection peers (default 8)")
    parser.add_argument("--hosts", type=int, help="throughput peers, 1-254 (default 200; quick 40)")
    parser.add_argument("--runs", type=int, help="timed runs per figure (default 5; quick 3)")
    parser.add_argument("--quick", action="store_true", help="fewer peers and runs (~15 s)")
    parser.add_argument(
        "--peer-nodelay",
        action="store_true",
        help="start the peers with TCP_NODELAY=1 (Nagle off), unlike stock Debian DCMTK",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--cprofile", type=Path, help="write a cProfile of one full ScanJob")
    opts = parser.parse_args(argv)
    if opts.peers < 1 or (opts.hosts is not None and not 1 <= opts.hosts <= 254):
        parser.error("--peers must be at least 1 and --hosts between 1 and 254")
    hosts = opts.hosts or (40 if opts.quick else 200)
    runs = opts.runs or (3 if opts.quick else 5)
    rounds = 5 if opts.quick else 10
    if not os.access(peers.STORESCP_BIN, os.X_OK):
        print(f"{peers.STORESCP_BIN} not found: apt-get install dcmtk", file=sys.stderr)
        return 2
    if shutil.which("nmap") is None:
        print("nmap not found: apt-get install nmap", file=sys.stderr)
        return 2

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    info = machine()
    info["peer_nodelay"] = "yes" if opts.peer_nodelay else "no"
    started = time.perf_counter()
    try:
        with lab(opts.peer_nodelay) as the_lab:
            detection = bench_detection(the_lab, opts.peers, runs)
            throughput = bench_throughput(the_lab, hosts, runs, rounds, opts.cprofile)
            tls = bench_tls(the_lab, runs)
    except KeyboardInterrupt:
        print("\ninterrupted: all peers stopped", file=sys.stderr)
        return 130
    print_report(info, detection, throughput, tls, runs)
    if opts.json:
        opts.json.write_text(json.dumps(as_json(info, detection, throughput, tls), indent=2))
    with contextlib.suppress(OSError):
        end_load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(f"\nload average at end {end_load}", end="")
    print(f"\nbench took {time.perf_counter() - started:.1f} s; all peers stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
