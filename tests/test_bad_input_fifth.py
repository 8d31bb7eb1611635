"""Bad input, fifth pass: files a user names that are no file to read. A named pipe
nobody writes to (it waited for ever), a pipe or device where a TLS file is read again
at each connection, an empty file (an empty fence list or policy fenced and waived
nothing, silently; a read-only history command wrote a whole store into it), a broken
link, UTF-16, other encodings and NUL bytes. Each is exit 2 and one line. Run as real
processes; the pipe waits with a bound of 1 s instead of 30 s (the same code path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.test_output_clashes import ROOT, SAVED, assert_usage, run

CERTS = ROOT / "fixtures" / "certs"
SITE = "version: 1\njobs:\n  night:\n    targets: [127.0.0.1]\n    ports: '9'\n"

# Every command reading a user's text file, with FILE where the file goes.
TEXT_READERS = [
    ("scan", "--plan", "-p", "9", "-T", "FILE"),
    ("scan", "--plan", "-p", "9", "127.0.0.1", "--exclude-file", "FILE"),
    ("scan", "--plan", "-p", "9", "127.0.0.1", "--ae-guess", "--ae-wordlist", "FILE"),
    ("scan", "--plan", "-p", "9", "127.0.0.1", "--policy", "FILE"),
    ("scan", "--plan", "--config", "FILE"),
    ("config", "check", "FILE"),
    ("schedule", "--print", "cron", "--config", "FILE"),
    ("baselines", "validate", "FILE"),
    ("report", "FILE"),
    ("audit", "--from", "FILE"),
]
IDS = [" ".join(a[:1] + a[-2:-1]) for a in TEXT_READERS]


def _with(args: tuple[str, ...], path: str) -> list[str]:
    return [path if a == "FILE" else a for a in args]


def run_waiting(*args: str, cwd: Path, wait: float = 1.0) -> subprocess.CompletedProcess[str]:
    """``python -m scanner ARGS`` with the pipe wait shortened (documents.PIPE_WAIT)."""
    code = ("import sys, scanner.model.documents as d\n"
            f"d.PIPE_WAIT = {wait}\n"
            f"sys.argv = ['dicomscan', *{list(args)!r}]\n"
            "from scanner.cli.entry import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env={"PYTHONPATH": str(ROOT), "HOME": str(cwd),
                                                    "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("args", TEXT_READERS, ids=IDS)
def test_named_pipe_nobody_writes_to_is_refused_in_time(args: tuple[str, ...],
                                                        tmp_path: Path) -> None:
    """It waited for a writer for ever (as cat does)."""
    os.mkfifo(tmp_path / "pipe")
    started = time.monotonic()
    out = run_waiting(*_with(args, "pipe"), cwd=tmp_path)
    assert_usage(out, "pipe", "nothing came from it for 1 s (a named pipe needs a writer")
    assert time.monotonic() - started < 30


def test_named_pipe_with_a_slow_writer_is_read(tmp_path: Path) -> None:
    """The wait is for silence, not the whole read: a writer that pauses still works."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as fh:  # opens once the scanner has it open to read
            fh.write("127.0.0.1\n")
            fh.flush()
            time.sleep(0.6)
            fh.write("127.0.0.2\n")

    writer = threading.Thread(target=write)
    writer.start()
    out = run_waiting("scan", "--plan", "-p", "9", "-T", "pipe", "--format", "json",
                      cwd=tmp_path)
    writer.join(10)
    assert out.returncode == 0, out.stderr
    assert "127.0.0.2" in out.stdout


def test_standard_input_as_a_targets_file_still_works(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "scanner", "scan", "--plan", "-p", "9", "-T",
                          "/dev/stdin"], input="127.0.0.1\n", capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("option", "kind"), [
    ("--ca", "pipe"), ("--ca", "/dev/zero"), ("--client-cert", "pipe"),
    ("--client-key", "pipe"), ("--client-cert", "/dev/urandom"), ("--syslog-ca", "pipe"),
])
def test_tls_file_must_be_a_regular_file(option: str, kind: str, tmp_path: Path) -> None:
    """A TLS file is loaded again at each connection: a named pipe hung the check before
    the scan (OpenSSL waited for a writer), and could never serve the second load."""
    os.mkfifo(tmp_path / "pipe")
    pair = {"--client-cert": ["--client-key", str(CERTS / "client.key")],
            "--client-key": ["--client-cert", str(CERTS / "client.pem")]}.get(option, [])
    args = (["report", str(SAVED), "--syslog", "udp://127.0.0.1:9"] if option == "--syslog-ca"
            else ["scan", "--plan", "-p", "9", "127.0.0.1"])
    out = run(*args, option, kind, *pair, cwd=tmp_path)
    what = "a named pipe" if kind == "pipe" else "a device"
    assert_usage(out, option, f"{what}, not a regular file")


@pytest.mark.parametrize("args", TEXT_READERS, ids=IDS)
def test_empty_file_is_refused(args: tuple[str, ...], tmp_path: Path) -> None:
    """An empty --exclude-file fenced nothing and an empty --policy waived and pinned
    nothing, both silently (exit 0); the others said something less direct."""
    (tmp_path / "empty.txt").write_bytes(b"")
    assert_usage(run(*_with(args, "empty.txt"), cwd=tmp_path), "empty (0 bytes)")


@pytest.mark.parametrize("command", [("history", "list"), ("history", "show", "abcd"),
                                     ("diff",)], ids=" ".join)
def test_empty_file_is_no_history_and_stays_empty(command: tuple[str, ...],
                                                  tmp_path: Path) -> None:
    """SQLite took it as a new store: a command that only reads wrote 86 KB of schema
    into it and listed no scans (exit 0)."""
    store = tmp_path / "h.sqlite"
    store.write_bytes(b"")
    assert_usage(run(*command, "--history", "h.sqlite", cwd=tmp_path),
                 "no history at h.sqlite: the file is empty (0 bytes)")
    assert store.stat().st_size == 0


@pytest.mark.parametrize("kind", ["pipe", "/dev/zero"])
def test_history_that_is_a_pipe_or_device(kind: str, tmp_path: Path) -> None:
    """SQLite said "disk I/O error"."""
    os.mkfifo(tmp_path / "pipe")
    what = "a named pipe" if kind == "pipe" else "a device"
    for command in (("history", "list"), ("scan", "127.0.0.1", "-p", "9")):
        assert_usage(run(*command, "--history", kind, cwd=tmp_path),
                     f"no history at {kind}: {what}, not a history file")


@pytest.mark.parametrize("args", TEXT_READERS, ids=IDS)
def test_broken_link_names_where_it_points(args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "gone.txt").symlink_to(tmp_path / "moved" / "targets.txt")
    assert_usage(run(*_with(args, "gone.txt"), cwd=tmp_path),
                 f"a link to '{tmp_path}/moved/targets.txt', which does not exist")


@pytest.mark.parametrize(("data", "words"), [
    ("127.0.0.1\n".encode("utf-16"), "UTF-16 text (it starts with a UTF-16 byte order mark)"),
    (b"127.0.0.1\ncaf\xe9\n", "not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"),
    (b"127.0.0.1\n\x00\x00\n", "a NUL byte on line 2: not a text file"),
], ids=["utf-16", "latin-1", "nul"])
@pytest.mark.parametrize("args", TEXT_READERS, ids=IDS)
def test_text_that_is_not_utf8_says_what_it_is(args: tuple[str, ...], data: bytes,
                                               words: str, tmp_path: Path) -> None:
    (tmp_path / "odd.txt").write_bytes(data)
    assert_usage(run(*_with(args, "odd.txt"), cwd=tmp_path), words)


def test_utf8_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows editors start UTF-8 with a BOM: the first target was '\\ufeff127.0.0.1', not
    an address, and a saved scan was "not JSON"."""
    bom = b"\xef\xbb\xbf"
    (tmp_path / "t.txt").write_bytes(bom + b"127.0.0.1\n")
    (tmp_path / "fence.txt").write_bytes(bom + b"127.0.0.9 fragile\n")
    (tmp_path / "site.yaml").write_bytes(bom + SITE.encode())
    (tmp_path / "saved.json").write_bytes(bom + SAVED.read_bytes())
    for args in (("scan", "--plan", "-p", "9", "-T", "t.txt", "--exclude-file", "fence.txt"),
                 ("config", "check", "site.yaml"), ("report", "saved.json")):
        out = run(*args, cwd=tmp_path)
        assert out.returncode in (0, 1), (args, out.stderr)  # report: 1 = failed findings
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize("kind", ["folder", "named pipe"])
def test_folder_or_pipe_named_in_a_site_configuration(kind: str, tmp_path: Path) -> None:
    """Paths inside the file are not checked by the command line's option types; it said
    "no such file"."""
    if kind == "folder":
        (tmp_path / "policy").mkdir()
    else:
        os.mkfifo(tmp_path / "policy")
    (tmp_path / "site.yaml").write_text(SITE + "    policy: policy\n")
    assert_usage(run("config", "check", "site.yaml", cwd=tmp_path),
                 f"jobs.night.policy: a {kind}, not a file")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to drop the capability to read anything")
def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    """As root permission bits do not refuse; without CAP_DAC_OVERRIDE they do. A guard:
    this was already one line."""
    (tmp_path / "policy.yaml").write_text("waivers: []\n")
    (tmp_path / "policy.yaml").chmod(0)
    (tmp_path / "site.yaml").write_text(SITE + "    policy: policy.yaml\n")
    out = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                          sys.executable, "-m", "scanner", "config", "check", "site.yaml"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    assert_usage(out, "Permission denied")
