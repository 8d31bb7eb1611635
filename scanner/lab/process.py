"""Running one peer process on loopback: launch it in its own session and temporary
directory, wait until the kernel shows *its own* socket listening on 127.0.0.1 (read from
``/proc/net/tcp{,6}``, never by connecting: a connection closed without data kills MIR
CTN), and stop it with its whole process group. Linux only. ``peers`` builds each real
implementation on top of this.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scanner.lab.errors import PeerStartError
from scanner.lab.shim import loopback_shim

LOOPBACK = "127.0.0.1"
DEFAULT_TIMEOUT = 20.0
STOP_GRACE = 5.0

_TCP_LISTEN = "0A"  # socket state code in /proc/net/tcp
_LOG_TAIL_LINES = 40
_POLL_INTERVAL = 0.05



@dataclass(frozen=True)
class PeerInfo:
    """Where a started peer can be reached."""

    name: str
    product: str
    host: str
    port: int
    ae_title: str
    extra_ports: dict[str, int] = field(default_factory=dict)


class RunningPeer:
    """A started peer process with its temporary directory and log file."""

    def __init__(
        self, info: PeerInfo, process: subprocess.Popen[bytes], tmpdir: Path, log_path: Path
    ) -> None:
        self.info = info
        self.process = process
        self.tmpdir = tmpdir
        self.log_path = log_path
        self._final_log: str | None = None

    def __repr__(self) -> str:
        state = "alive" if self.alive() else "stopped"
        return f"<RunningPeer {self.info.name} {self.info.host}:{self.info.port} {state}>"

    def __enter__(self) -> RunningPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the peer wrote to stdout and stderr (kept after ``stop()``)."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s, then remove the temporary directory. Idempotent."""
        # Signal the whole process group (its own session, see launch) so forked
        # children die too, but only while the leader is unreaped: a reaped pid may
        # already belong to somebody else.
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        if self._final_log is None:
            self._final_log = self.log()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(sig)


# --------------------------------------------------------------------------- ports


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` (a loopback address) right now."""
    address = ipaddress.ip_address(host)
    if not address.is_loopback:
        raise ValueError(f"lab peers stay on loopback, not {host}")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _decode_proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # The kernel prints each 32-bit word of the address in host byte order.
    raw = b"".join(
        struct.pack("=I", int(hex_address[i : i + 8], 16)) for i in range(0, len(hex_address), 8)
    )
    return ipaddress.ip_address(raw)


def _listeners(port: int) -> list[tuple[str, int]]:
    """(address, socket inode) of every TCP socket listening on ``port``."""
    found: list[tuple[str, int]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            hex_address, hex_port = local.split(":")
            if state == _TCP_LISTEN and int(hex_port, 16) == port:
                found.append((str(_decode_proc_address(hex_address)), inode))
    return found


def listening_addresses(port: int) -> list[str]:
    """The local addresses on which some socket listens on TCP ``port`` (from /proc)."""
    return [address for address, _ in _listeners(port)]


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for entry in entries:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


# --------------------------------------------------------------------------- launching


def launch(
    *,
    name: str,
    product: str,
    argv: Sequence[str],
    port: int,
    ae_title: str,
    tmpdir: Path,
    extra_ports: dict[str, int] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    needs_shim: bool = True,
    host: str = LOOPBACK,
) -> RunningPeer:
    """Start ``argv`` in ``tmpdir`` and wait until it listens on loopback on every port."""
    try:
        env = dict(os.environ)
        env["DICOMSCAN_LAB_ADDR"] = host
        if needs_shim:
            env["LD_PRELOAD"] = " ".join(
                p for p in (str(loopback_shim()), env.get("LD_PRELOAD", "")) if p
            )
        log_path = tmpdir / "peer.log"
        with log_path.open("wb") as log_file:
            # Its own session: stop() can signal the process group, forked children included.
            process = subprocess.Popen(
                list(argv),
                cwd=tmpdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except BaseException as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise PeerStartError(name, f"cannot run {argv[0]}: {exc}") from exc
        raise
    info = PeerInfo(name, product, host, port, ae_title, dict(extra_ports or {}))
    peer = RunningPeer(info, process, tmpdir, log_path)
    try:
        wait_listening(peer, [port, *info.extra_ports.values()], timeout)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a half-started peer behind.
        peer.stop()
        raise
    return peer


def wait_listening(peer: RunningPeer, ports: Sequence[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(ports)
    while True:
        owned = _socket_inodes(peer.process.pid)
        for port in sorted(waiting):
            mine = [address for address, inode in _listeners(port) if inode in owned]
            stray = [address for address in mine if not _is_loopback(address)]
            if stray:
                # _launch stops it.
                raise PeerStartError(
                    peer.info.name,
                    f"listened on {', '.join(stray)} port {port}, not only loopback; killed it",
                    peer.log_tail(),
                )
            if peer.info.host in mine:
                waiting.discard(port)
        if not waiting:
            return
        if not peer.alive():
            code = peer.process.returncode
            raise PeerStartError(
                peer.info.name, f"exited with status {code} before listening", peer.log_tail()
            )
        if time.monotonic() > deadline:
            missing = ", ".join(str(p) for p in sorted(waiting))
            raise PeerStartError(
                peer.info.name,
                f"not listening on {peer.info.host} port {missing} after {timeout:g} s",
                peer.log_tail(),
            )
        time.sleep(_POLL_INTERVAL)
