"""Real Samba, xrdp and snmpd started on loopback for the legacy-Windows probes' tests.

Each peer runs from a fresh temporary directory with its own configuration (nothing
outside it is read or written: smbd with --configfile and every state directory inside,
xrdp with --config, snmpd with -C and SNMP_PERSISTENT_DIR) and is stopped with its
process. ``need(binary)`` skips a test with the Debian package to install when the
program is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
PACKAGES = {"smbd": "samba", "xrdp": "xrdp", "snmpd": "snmpd"}


def need(binary: str) -> str:
    sbin = f"/usr/sbin/{binary}"
    path = shutil.which(binary) or (sbin if os.path.exists(sbin) else None)
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package {PACKAGES[binary]})")
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15.0,
              address: str = LOOPBACK) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}: {log.read_text()[-2000:]}")
        # smbd and xrdp survive a connection closed without data (unlike some DICOM peers).
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.3):
            return
        time.sleep(0.1)
    tail = log.read_text()[-2000:]
    raise RuntimeError(f"peer did not listen on {port} within {timeout} s: {tail}")


@contextlib.contextmanager
def _run(cmd: list[str], workdir: Path, env: dict[str, str] | None = None) -> Iterator[
    tuple[subprocess.Popen[bytes], Path]
]:
    log = workdir / "peer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                env=env, start_new_session=True)
    try:
        yield proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


SMB_CONF = """[global]
  workgroup = TESTGRP
  netbios name = DICOMTEST
  server string = dicomscan test smbd
  server role = standalone server
  security = user
  map to guest = Bad User
  passdb backend = tdbsam:{d}/private/passdb.tdb
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  ncalrpc dir = {d}/ncalrpc
  binddns dir = {d}/binddns
  log file = {d}/log/log.%m
  max log size = 0
  log level = 1
  smb ports = {port}
{bind}
  disable netbios = yes
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  usershare path =
  rpc start on demand helpers = no
  server min protocol = {min_protocol}
  server signing = {signing}
[pub]
  path = {d}/share
  guest ok = yes
  read only = yes
"""


@contextlib.contextmanager
def samba(min_protocol: str, signing: str, address: str = LOOPBACK,
          port: int | None = None) -> Iterator[int]:
    """smbd on ``address`` (loopback) with ``server min protocol`` and ``server signing``."""
    smbd = need("smbd")
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="legacy-smb-") as tmp:
        d = Path(tmp)
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns", "log",
                    "share"):
            (d / sub).mkdir()
        conf = d / "smb.conf"
        env = None
        bind = "  bind interfaces only = yes\n  interfaces = 127.0.0.1"
        if address != LOOPBACK:
            # smbd binds only addresses configured on an interface; 127.x aliases are not, so
            # it binds the wildcard and the lab's loopback shim turns that into ``address``.
            from scanner.lab.shim import loopback_shim

            bind = "  bind interfaces only = no"
            env = {**os.environ, "LD_PRELOAD": str(loopback_shim()),
                   "DICOMSCAN_LAB_ADDR": address}
        conf.write_text(SMB_CONF.format(d=d, port=port, bind=bind, min_protocol=min_protocol,
                                        signing=signing))
        cmd = [smbd, "--foreground", "--no-process-group", "--debug-stdout",
               f"--configfile={conf}"]
        with _run(cmd, d, env) as (proc, log):
            _wait_tcp(port, proc, log, address=address)
            yield port


XRDP_INI = """[Globals]
ini_version=1
fork=false
port=tcp://127.0.0.1:{port}
use_vsock=false
security_layer={layer}
crypt_level=high
certificate={d}/server.pem
key_file={d}/server.key
ssl_protocols=TLSv1.2, TLSv1.3
autorun=
allow_channels=true
max_bpp=32
[Logging]
LogFile={d}/xrdp.log
LogLevel=INFO
EnableSyslog=false
EnableConsole=true
ConsoleLevel=INFO
[Channels]
rdpdr=false
rdpsnd=false
drdynvc=false
cliprdr=false
rail=false
xrdpvr=false
"""


@contextlib.contextmanager
def xrdp(layer: str) -> Iterator[int]:
    """xrdp's listener on 127.0.0.1 with ``security_layer`` = rdp, tls or negotiate."""
    binary = need("xrdp")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="legacy-xrdp-") as tmp:
        d = Path(tmp)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-keyout", str(d / "server.key"),
             "-out", str(d / "server.pem")],
            check=True, capture_output=True, timeout=60,
        )
        (d / "xrdp.ini").write_text(XRDP_INI.format(d=d, port=port, layer=layer))
        with _run([binary, "--nodaemon", "--config", str(d / "xrdp.ini")], d) as (proc, log):
            _wait_tcp(port, proc, log)
            yield port


@contextlib.contextmanager
def snmpd(community: str, address: str = LOOPBACK, port: int | None = None,
          v1_only: bool = False) -> Iterator[int]:
    """snmpd on UDP ``address`` answering read-only to ``community`` from loopback; with
    ``v1_only`` in SNMPv1 only (Net-SNMP's view-based access: a v2c GET goes unanswered),
    as agents of old devices do."""
    binary = need("snmpd")
    port = port or free_port(socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory(prefix="legacy-snmp-") as tmp:
        d = Path(tmp)
        (d / "persist").mkdir()
        # Not named snmpd.conf: snmpd rewrites $SNMP_PERSISTENT_DIR/snmpd.conf on exit.
        access = (f"com2sec legacy 127.0.0.0/8 {community}\ngroup legacy v1 legacy\n"
                  "view all included .1\naccess legacy \"\" v1 noauth exact all none none\n"
                  if v1_only else f"rocommunity {community} 127.0.0.0/8\n")
        (d / "agent.conf").write_text(
            f"{access}sysDescr dicomscan test snmpd ({community})\nsysName dicomscan-snmp\n")
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(d / "persist"), "MIBS": ""}
        cmd = [binary, "-f", "-Lo", "-C", "-c", str(d / "agent.conf"), "-p", str(d / "pid"),
               f"udp:{address}:{port}"]
        with _run(cmd, d, env) as (proc, log):
            deadline = time.monotonic() + 15
            # Ready once the socket is bound: read /proc/net/udp, sending nothing.
            while not _udp_bound(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"snmpd did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield port


def _udp_bound(port: int) -> bool:
    text = Path("/proc/net/udp").read_text()
    return f":{port:04X} " in text
