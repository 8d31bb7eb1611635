"""Running nats-server for a central directory: start, reload, stop.

Debian's ``nats-server`` package (bookworm: 2.9.10) or any newer binary on PATH; see the
README for which versions are fit for production.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

from scanner.fleet.layout import CentralDir, FleetError, read_state

_PR_SET_PDEATHSIG = 1
INSTALL_HINT = "install nats-server (Debian package 'nats-server', or upstream >= 2.11.16)"


def binary() -> str:
    found = shutil.which("nats-server")
    if found is None:
        raise FleetError(f"nats-server not found: {INSTALL_HINT}")
    return found


def check_config(d: CentralDir) -> None:
    d.check_pki("ca.pem", "server.pem", "server.key")
    done = subprocess.run([binary(), "-t", "-c", str(d.server_conf)], capture_output=True,
                          text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise FleetError(f"nats-server rejects {d.server_conf}: "
                         f"{(done.stderr or done.stdout).strip()}")


def running_pid(d: CentralDir) -> int | None:
    """The PID in the pid file when that process is alive and is a nats-server. A pid
    file that is a FIFO (read_text waited for ever) or a folder is FleetError."""
    try:
        text = read_state(d.pid_file)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FleetError(f"cannot read the pid file {d.pid_file}: {exc.strerror or exc}; "
                         "remove it if no nats-server runs for this directory") from None
    try:
        pid = int(text[:32].strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"nats-server" in cmdline else None


def _open_log(path: Path) -> BinaryIO:
    """The server's log for appending; a FIFO there (open waited for a reader) or a
    folder is FleetError."""
    if path.exists() and not path.is_file():
        raise FleetError(f"cannot write the nats-server log {path}: not a regular file")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise FleetError(f"cannot write the nats-server log {path}: "
                         f"{exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FleetError(f"cannot write the nats-server log {path}: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "ab")


def reload(d: CentralDir) -> bool:
    """Make a running server read its configuration again; False when none runs."""
    pid = running_pid(d)
    if pid is None:
        return False
    check_config(d)
    os.kill(pid, signal.SIGHUP)
    return True


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes],
                    timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FleetError(f"nats-server exited with {proc.returncode}; see its log")
        with contextlib.suppress(OSError), socket.create_connection(
                (host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise FleetError(f"nats-server not listening on {host}:{port} after {timeout:.0f} s")


def _die_with_parent() -> None:
    # nats-server goes when 'central run' goes, even on SIGKILL; --external-server is for
    # a server that should outlive it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _check_free(host: str, port: int) -> None:
    """Nothing else listens on the address: nats-server then exited at once, but the
    listening check found the other program and central dialled it for ever."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise FleetError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another "
                         "program listens there; --external-server connects to a "
                         "nats-server already running for this directory)") from None


def start(d: CentralDir, host: str, port: int, timeout: float = 20) -> subprocess.Popen[bytes]:
    """Start nats-server on the directory's configuration; return once it listens."""
    check_config(d)
    _check_free(host, port)
    log = _open_log(d.log_file)
    proc = subprocess.Popen(
        [binary(), "-c", str(d.server_conf), "-P", str(d.pid_file)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent)
    log.close()
    try:
        _wait_listening(host, port, proc, timeout)
    except FleetError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
