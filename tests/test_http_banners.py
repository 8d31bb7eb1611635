"""Remote-access banners: real OpenSSH, vsftpd and busybox telnetd on loopback ports,
and scripted peers.

The sshd is Debian's openssh-server binary (``sshd`` on PATH or /usr/sbin/sshd) run as
a throwaway daemon with its own host key in a temporary directory; as root it is run as
``nobody`` because the sandbox's privilege-separation user may not exist. vsftpd
(Debian's ``vsftpd``) and busybox's telnetd (Debian's ``busybox-static``; the dynamic
``busybox`` lacks the applet) run standalone with their own settings. Each is on a free
high port, so the tests also show that remote access is recognised by its answer, not
by its port number. The VNC, RDP and FTP peers further down are SCRIPTED (a thread sending a
fixed greeting), not real servers: they stand for the greeting bytes only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.banners import parse
from scanner.lab.peers import free_port
from tests.conftest import IN_CI, ScanRun, run_scan

SSHD = os.environ.get("DICOMSCAN_SSHD") or shutil.which("sshd") or "/usr/sbin/sshd"
VSFTPD = "/usr/sbin/vsftpd"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def _has_telnetd() -> bool:
    if not Path(BUSYBOX).is_file():
        return False
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout
    return "telnetd" in applets.split()


# CI installs all three (README's test command): there a missing one fails, not skips.
needs_sshd = pytest.mark.skipif(
    not (Path(SSHD).is_file() and shutil.which("ssh-keygen")) and not IN_CI,
    reason="openssh-server missing",
)
needs_vsftpd = pytest.mark.skipif(
    not Path(VSFTPD).is_file() and not IN_CI, reason="vsftpd missing"
)
needs_telnetd = pytest.mark.skipif(
    not _has_telnetd() and not IN_CI, reason="busybox-static (telnetd applet) missing"
)


def _wait_banner(port: int, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 1.0) as s:
                return s.recv(256)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def _daemon(argv: list[str], port: int) -> Iterator[int]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            _wait_banner(port)
        except OSError as exc:  # say why the daemon is not there, not only that
            proc.terminate()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"{argv[0]} on port {port} did not answer ({exc}); exit "
                               f"{proc.returncode}: {err.decode(errors='replace')[-500:]}") from exc
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def sshd() -> Iterator[int]:
    with tempfile.TemporaryDirectory(prefix="dicomscan-sshd-") as tmp:
        key = Path(tmp) / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        config = Path(tmp) / "sshd_config"
        config.write_text("")  # nothing but the options below
        port = free_port()
        argv = [
            str(Path(SSHD).resolve()),
            "-D",
            "-e",
            "-p",
            str(port),
            "-o",
            "ListenAddress=127.0.0.1",
            "-o",
            "PidFile=none",
            "-h",
            str(key),
            "-f",
            str(config),
        ]
        if os.geteuid() == 0:  # no privilege-separation user needed when not root
            shutil.chown(tmp, "nobody")
            for f in Path(tmp).iterdir():
                shutil.chown(f, "nobody")
            argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
        with _daemon(argv, port):
            yield port


@needs_sshd
def test_real_sshd_banner(sshd: int) -> None:
    expected = _wait_banner(sshd).split(b"\r\n")[0].decode()
    assert expected.startswith("SSH-2.0-OpenSSH_")
    run = run_scan("127.0.0.1", str(sshd), "--profile", "fast")
    svc = run.service(sshd)
    assert svc["name"] == "ssh"
    [info] = run.observations(sshd, "service-banner")
    software, _, comment = expected.removeprefix("SSH-2.0-").partition(" ")
    assert info == {
        "kind": "service-banner",
        "protocol": "ssh",
        "category": "remote-access",
        "answered": True,
        "banner": expected,
        "protocol_version": "2.0",
        "software": software,
        "comment": comment or None,
    }
    # No HTTP request went to it.
    assert run.observations(sshd, "http-check") == []
    _assert_remote_access_failed(run, sshd, {"protocol": "ssh", "banner": expected,
                                             "protocol_version": "2.0", "software": software})


def _assert_remote_access_failed(run: ScanRun, port: int, service: dict[str, str]) -> None:
    """The generic baseline judges the service as remote access though the port is not
    one of the conventional remote-access ports."""
    finding = run.finding(port, "remote-access-exposed")
    assert finding["status"] == "fail"
    assert finding["evidence"]["service"] == service
    assert finding["evidence"]["verdict"] == (
        "remote-access service (identified by its answer) the baseline does not allow"
    )


@pytest.fixture
def vsftpd(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    root = tmp_path / "anon"
    root.mkdir()
    conf = tmp_path / "vsftpd.conf"
    conf.write_text(
        "\n".join([
            "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1", f"listen_port={port}",
            "background=NO", "anonymous_enable=YES", f"anon_root={root}",
            "ftp_username=nobody", "local_enable=NO", "write_enable=NO",
            f"secure_chroot_dir={tmp_path}",
        ]) + "\n"
    )
    with _daemon([VSFTPD, str(conf)], port):
        yield port


@pytest.fixture
def telnetd() -> Iterator[int]:
    port = free_port()
    # -l /bin/false: whoever logs in gets no shell; the scanner never logs in anyway.
    argv = [BUSYBOX, "telnetd", "-F", "-p", str(port), "-b", "127.0.0.1", "-l", "/bin/false"]
    with _daemon(argv, port):
        yield port


@needs_vsftpd
def test_real_vsftpd_banner_is_judged(vsftpd: int) -> None:
    run = run_scan("127.0.0.1", str(vsftpd), "--profile", "fast")
    assert run.service(vsftpd)["name"] == "ftp-or-smtp"
    [info] = run.observations(vsftpd, "service-banner")
    banner = info["banner"]
    assert banner.startswith("220 (vsFTPd ")
    assert (info["protocol"], info["software"]) == ("ftp", banner[4:])
    _assert_remote_access_failed(run, vsftpd, {"protocol": "ftp", "banner": banner,
                                               "software": banner[4:]})


@needs_telnetd
def test_real_telnetd_is_judged(telnetd: int) -> None:
    run = run_scan("127.0.0.1", str(telnetd), "--profile", "fast")
    assert run.service(telnetd)["name"] == "telnet"
    [info] = run.observations(telnetd, "service-banner")
    # busybox telnetd prints /etc/issue.net after its option negotiation.
    issue = Path("/etc/issue.net").read_text().strip().splitlines()
    expected = {"protocol": "telnet", "banner": issue[0]} if issue else {"protocol": "telnet"}
    assert {k: v for k, v in info.items() if k in expected} == expected
    assert info["answered"] is True
    _assert_remote_access_failed(run, telnetd, expected)


class ScriptedPeer:
    """SCRIPTED greeting server: sends ``greeting`` on connect, reads a little, closes."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                if self.greeting:
                    conn.sendall(self.greeting)
                conn.settimeout(1.0)
                with contextlib.suppress(OSError):
                    conn.recv(4096)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.mark.parametrize(
    ("greeting", "name", "expected"),
    [
        (b"RFB 003.008\n", "vnc", {"protocol": "vnc", "protocol_version": "3.8"}),
        # An RDP X.224 Connection Confirm: its TPKT header (03 00) must not pass for an
        # A-ASSOCIATE-RJ, whose length is always 4.
        (
            bytes.fromhex("030000130ed000001234000200080001000000"),
            "rdp",
            {"protocol": "rdp", "banner": None},
        ),
        (
            b"220 (vsFTPd 3.0.3)\r\n",
            "ftp-or-smtp",
            {"protocol": "ftp", "software": "(vsFTPd 3.0.3)", "banner": "220 (vsFTPd 3.0.3)"},
        ),
    ],
)
def test_scripted_greetings(greeting: bytes, name: str, expected: dict[str, object]) -> None:
    peer = ScriptedPeer(greeting)
    try:
        run = run_scan("127.0.0.1", str(peer.port), "--profile", "fast")
    finally:
        peer.close()
    assert run.service(peer.port)["name"] == name
    [info] = run.observations(peer.port, "service-banner")
    assert info["answered"] is True and info["category"] == "remote-access"
    assert {k: info[k] for k in expected} == expected


def test_parse_units() -> None:
    ssh = parse("ssh", b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n")
    assert (ssh.protocol_version, ssh.software, ssh.comment) == (
        "2.0",
        "OpenSSH_9.2p1",
        "Debian-2+deb12u10",
    )
    assert parse("ssh", b"SSH-1.99-Cisco-1.25\n").protocol_version == "1.99"
    assert parse("vnc", b"RFB 003.889\n").protocol_version == "3.889"
    telnet = parse("telnet", b"\xff\xfd\x18\xff\xfd\x20")
    assert telnet.answered and telnet.banner is None
    telnet = parse("telnet", b"\xff\xfd\x01\xff\xfa\x18\x01\xff\xf0\r\nHost OS 1\r\nlogin: ")
    assert telnet.banner == "Host OS 1"
    smb = parse("smb", b"")
    assert (smb.answered, smb.category) == (False, "remote-access")
    hl7 = parse("hl7-mllp", b"\x0bMSH|^~\\&|...")
    assert (hl7.category, hl7.answered, hl7.banner) == ("hl7", True, None)
