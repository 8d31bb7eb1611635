"""The loopback peer lab: DCMTK storescp peers on chosen loopback addresses and ports.

scanner.lab.peers.start_storescp always takes a free port; the standard-port peers need
a chosen one, and the throughput lab wants a hundred peers started at once rather than one
after another. So this starter does what peers._launch does (the same LD_PRELOAD shim
and DICOMSCAN_LAB_ADDR, own session, readiness and stray-listener checks read from
/proc), for many peers in parallel, and hands back ordinary peers.RunningPeer objects.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from scanner.lab import peers

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 20.0
_TCP_LISTEN = "0A"
_PR_SET_PDEATHSIG = 1


def loopback_only(address: str) -> str:
    """Every address this script touches goes through here: loopback or nothing."""
    if not ipaddress.ip_address(address).is_loopback:
        raise SystemExit(f"refusing non-loopback address {address}")
    return address


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
