"""Odd inputs a user can hand the command line: each is a one-line error and exit 2, never
a traceback, a hang or memory without bound. Run as real processes under a memory cap."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEMORY_CAP = 2 << 30  # address space; the readers' caps are 16 and 256 MiB


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], capture_output=True, text=True,
        timeout=timeout, cwd=ROOT, preexec_fn=_cap_memory, **kw,  # type: ignore[call-overload]
    )


def assert_input_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    for word in words:
        assert word in out.stderr, out.stderr[-2000:]


# Every file a user names, given /dev/zero: an endless stream of NUL bytes. (The TLS files
# take regular files only: tests/test_bad_input_fifth.py.)
ENDLESS = [
    ("scan", "--plan", "-T", "/dev/zero"),
    ("scan", "--plan", "127.0.0.1", "--exclude-file", "/dev/zero"),
    ("scan", "--plan", "127.0.0.1", "--ae-wordlist", "/dev/zero"),
    ("scan", "--plan", "127.0.0.1", "--policy", "/dev/zero"),
    ("scan", "--plan", "--config", "/dev/zero"),
    ("config", "check", "/dev/zero"),
    ("baselines", "validate", "/dev/zero"),
    ("schedule", "--print", "cron", "--config", "/dev/zero"),
    ("report", "/dev/zero"),
    ("audit", "--from", "/dev/zero"),
]


@pytest.mark.parametrize("args", ENDLESS, ids=lambda a: " ".join(a))
def test_endless_file_is_refused_with_bounded_memory(args: tuple[str, ...]) -> None:
    assert_input_error(run(*args), "/dev/zero", "MiB")


# --- text from a peer or another user's file is shown, never obeyed by the terminal ------

ESCAPES = "\x1b]0;owned\x07\x1b[31m\x9b2J"


def test_plan_shows_exclude_reasons_without_terminal_sequences(tmp_path: Path) -> None:
    excludes = tmp_path / "dnp.txt"
    excludes.write_text(f"127.0.0.2 infusion pump {ESCAPES}\n", encoding="utf-8")
    out = run("scan", "--plan", "127.0.0.0/30", "--exclude-file", str(excludes))
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("  127.0.0.2:"))
    assert not set(line) & {"\x1b", "\x07", "\x9b"}, line
    assert "infusion pump \\x1b]0;owned\\x07\\x1b[31m\\x9b2J" in line


def test_jobs_table_shows_a_sensors_failure_reason_without_terminal_sequences(
        tmp_path: Path) -> None:
    from scanner.fleet.layout import CentralDir
    from scanner.fleet.ledger import JobState, Ledger

    root = tmp_path / "central"
    assert run("central", "init", str(root), "--listen", "127.0.0.1:4999").returncode == 0
    ledger = Ledger(CentralDir(root).ledger)
    try:
        ledger.add("job0123456789", "site-a", None, ["127.0.0.1"], 1.0)
        ledger.finish("job0123456789", JobState.FAILED, 2.0, reason=f"sensor failed: {ESCAPES}")
    finally:
        ledger.close()
    out = run("jobs", str(root))
    assert out.returncode == 0, out.stderr
    assert "sensor failed: \\x1b]0;owned" in out.stdout
    assert not set(out.stdout) & {"\x1b", "\x07", "\x9b"}, out.stdout


def test_history_list_shows_a_job_name_without_terminal_sequences(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    # Port 1 on loopback: closed, so the scan is quick and sends nothing elsewhere.
    out = run("scan", "127.0.0.1", "-p", "1", "--discovery", "none", "-q", "--format", "json",
              "--job", "j", "--history", str(store))
    assert out.returncode == 0, out.stderr
    # scan --job now refuses such a name; a store may still hold one (another version,
    # a hand-edited ledger's job filed by central as sensor/name)
    with sqlite3.connect(store) as db:
        db.execute("UPDATE scans SET job = ?", (f"j{ESCAPES}",))
    out = run("history", "list", "--history", str(store))
    assert out.returncode == 0, out.stderr
    assert "j\\x1b]0;owned" in out.stdout
    assert not set(out.stdout) & {"\x1b", "\x07", "\x9b"}, out.stdout


def test_drift_table_shows_a_peers_product_text_without_terminal_sequences() -> None:
    from datetime import UTC, datetime

    from scanner.model.drift import Drift, DriftChange, DriftKind, ScanRef
    from scanner.outputs.drift_events import drift_to_table

    at = datetime(2026, 1, 1, tzinfo=UTC)
    change = DriftChange(kind=DriftKind.SERVICE_CHANGED, device_id="d", address="127.0.0.1",
                         port=104, field="service.product", before="DCMTK", after=ESCAPES,
                         summary=f"127.0.0.1:104 service product: DCMTK -> {ESCAPES}")
    table = drift_to_table(Drift(old=ScanRef(scan_id="a" * 8, started_at=at),
                                 new=ScanRef(scan_id="b" * 8, job=ESCAPES, started_at=at),
                                 changes=[change]))
    assert "DCMTK -> \\x1b]0;owned\\x07" in table
    assert not set(table) & {"\x1b", "\x07", "\x9b"}, table


# --- standard output that cannot be written ------------------------------------------------

STDOUT_COMMANDS = [("rules", "list"), ("scan", "--plan", "127.0.0.0/30"),
                   ("report", "fixtures/scans/orthanc-find-open.json")]


def _run_to(stdout: Any, *args: str, close_stdout: bool = False
            ) -> subprocess.CompletedProcess[str]:
    def setup() -> None:
        _cap_memory()
        if close_stdout:
            os.close(1)

    return subprocess.run([sys.executable, "-m", "scanner", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT,
                          preexec_fn=setup)


@pytest.mark.parametrize("args", STDOUT_COMMANDS, ids=lambda a: " ".join(a))
def test_full_disk_on_stdout_is_exit_4_with_one_line(args: tuple[str, ...]) -> None:
    with open("/dev/full", "w") as full:
        out = _run_to(full, *args)
    assert out.returncode == 4, out.stderr[-2000:]
    assert out.stderr == "dicomscan: cannot write standard output: No space left on device\n"


@pytest.mark.parametrize("args", STDOUT_COMMANDS, ids=lambda a: " ".join(a))
def test_closed_stdout_is_exit_4_with_one_line(args: tuple[str, ...]) -> None:
    out = _run_to(None, *args, close_stdout=True)
    assert out.returncode == 4, out.stderr[-2000:]
    assert out.stderr == "dicomscan: cannot write standard output: Bad file descriptor\n"


def test_closed_stdout_does_not_stop_a_file_output(tmp_path: Path) -> None:
    target = tmp_path / "scan.json"
    out = _run_to(None, "report", "fixtures/scans/orthanc-find-open.json", "-o", str(target),
                  close_stdout=True)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert json.loads(target.read_text())["scan"]["id"]


@pytest.mark.parametrize("args", STDOUT_COMMANDS, ids=lambda a: " ".join(a))
def test_reader_gone_is_exit_4_quietly_not_1(args: tuple[str, ...]) -> None:
    # click's own answer to a broken pipe was exit 1, which reads as "failed findings".
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = _run_to(write_end, *args)
    finally:
        os.close(write_end)
    assert out.returncode == 4, out.stderr[-2000:]
    assert out.stderr == ""


# --- saved scans a user may hand 'report' and 'audit --from' ------------------------------

SAVED = ROOT / "fixtures" / "scans" / "orthanc-find-open.json"


@pytest.mark.parametrize("command", [("report",), ("audit", "--from")], ids=" ".join)
def test_saved_scan_with_a_number_thousands_of_digits_long(command: tuple[str, ...],
                                                          tmp_path: Path) -> None:
    text = SAVED.read_text(encoding="utf-8").replace('"port": 41699', '"port": ' + "9" * 5000, 1)
    bad = tmp_path / "scan.json"
    bad.write_text(text, encoding="utf-8")
    assert_input_error(run(*command, str(bad)), "thousands of digits")


@pytest.mark.parametrize("command", [("report",), ("audit", "--from")], ids=" ".join)
def test_saved_scan_of_another_major_schema_is_refused(command: tuple[str, ...],
                                                       tmp_path: Path) -> None:
    doc = json.loads(SAVED.read_text(encoding="utf-8"))
    assert doc["schema_version"].startswith("1.")
    doc["schema_version"] = "2.0"
    newer = tmp_path / "scan.json"
    newer.write_text(json.dumps(doc), encoding="utf-8")
    assert_input_error(run(*command, str(newer)), "schema version '2.0'", "reads schema 1.x")
    doc["schema_version"] = "1.7"  # a later minor version only adds fields: still read
    newer.write_text(json.dumps(doc), encoding="utf-8")
    assert run("report", str(newer)).returncode == 0


# --- YAML scalars the loader matches but Python cannot build -------------------------------

HUGE = "9" * 5000
JOB = f"jobs:\n  a:\n    targets: [127.0.0.1]\n    max_rate: {HUGE}\n"


@pytest.mark.parametrize(("command", "text"), [
    (("config", "check"), JOB),
    (("scan", "--plan", "--config"), JOB),
    (("scan", "--plan", "127.0.0.1", "--policy"),
     f"waivers:\n  - rule: dicom-echo-open\n    host: 127.0.0.1\n    reason: {HUGE}\n"),
    (("baselines", "validate"), f"id: x\ntitle: t\nversion: {HUGE}\n"),
], ids=["config check", "scan --config", "scan --policy", "baselines validate"])
def test_yaml_integer_of_thousands_of_digits(command: tuple[str, ...], text: str,
                                              tmp_path: Path) -> None:
    doc = tmp_path / "doc.yaml"
    doc.write_text(text, encoding="utf-8")
    assert_input_error(run(*command, str(doc)), "more than 4,300 digits")


def test_yaml_date_that_does_not_exist(tmp_path: Path) -> None:
    doc = tmp_path / "b.yaml"
    doc.write_text("id: x\ntitle: t\nversion: 2026-13-45\n", encoding="utf-8")
    assert_input_error(run("baselines", "validate", str(doc)), "month must be in 1..12")


# --- outputs: a named pipe, a syslog URL or CA that cannot work -----------------------------


def test_output_to_a_named_pipe_nobody_reads_is_exit_4_and_kept(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # It waited for a reader for ever (a blocking open of the FIFO).
    out = run("report", str(SAVED), "-o", f"json:{fifo}", timeout=30)
    assert out.returncode == 4, out.stderr
    assert "a named pipe that no process reads; results kept in " in out.stderr
    kept = Path(out.stderr.rsplit("results kept in ", 1)[1].strip())
    try:
        assert json.loads(kept.read_text())["scan"]["id"]
    finally:
        kept.unlink()


def test_output_to_a_named_pipe_with_a_reader_is_written_whole(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        # cat opens the FIFO soon after it starts; retry the write until it has.
        while True:
            out = run("report", str(SAVED), "-o", f"json:{fifo}", timeout=30)
            if out.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert out.returncode == 0, out.stderr
        data, _ = reader.communicate(timeout=30)
    finally:
        reader.kill()
        reader.wait()
    assert json.loads(data)["scan"]["id"] == json.loads(SAVED.read_text())["scan"]["id"]


@pytest.mark.parametrize(("url", "words"), [
    ("tls://[::1", "not a URL"),
    ("udp://127.0.0.1:0", "give a host and a port"),
])
def test_syslog_url_that_cannot_work_is_a_usage_error(url: str, words: str) -> None:
    assert_input_error(run("report", str(SAVED), "--syslog", url), "--syslog", words)


def test_syslog_ca_without_a_certificate_is_refused_before_sending(tmp_path: Path) -> None:
    import socket

    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    with socket.socket() as listener:  # a receiver that must see no connection
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        out = run("report", str(SAVED), "--syslog", f"tls://127.0.0.1:{port}",
                  "--syslog-ca", str(not_pem))
        with pytest.raises(TimeoutError):
            listener.accept()
    # It was exit 4 after the outputs were written, as an unreachable receiver is.
    assert_input_error(out, "--syslog-ca", "no PEM certificate in it")


# --- schedule: what goes into a crontab line or a systemd unit ------------------------------


def _site(tmp_path: Path, history: str = "/var/lib/dicomscan/h.sqlite",
          cron: str = "0 2 * * *", on_calendar: str = "daily") -> Path:
    conf = tmp_path / "site.yaml"
    conf.write_text(json.dumps({"history": history, "jobs": {"a": {
        "targets": ["127.0.0.1"], "schedule": {"cron": cron, "on_calendar": on_calendar}}}}))
    return conf


INJECTED = "\nExecStartPre=/bin/touch /tmp/owned"


@pytest.mark.parametrize(("kind", "fields"), [
    ("cron", {"history": "/var/lib/dicomscan/h.sqlite" + INJECTED}),
    ("systemd", {"history": "/var/lib/dicomscan/h.sqlite" + INJECTED}),
    ("cron", {"cron": "0 2 * *\n*"}),  # five fields, and a second crontab line
    ("systemd", {"on_calendar": "daily" + INJECTED}),
], ids=["cron history", "systemd history", "cron fields", "systemd calendar"])
def test_schedule_refuses_a_newline_that_would_add_a_line(kind: str, fields: dict[str, str],
                                                          tmp_path: Path) -> None:
    out = run("schedule", "--print", kind, "--config", str(_site(tmp_path, **fields)))
    assert_input_error(out, "control character")
    assert "ExecStartPre" not in out.stdout


def test_schedule_systemd_escapes_percent_but_keeps_the_credentials_specifier(
        tmp_path: Path) -> None:
    ca = tmp_path / "100%ca.pem"
    # A real CA bundle: schedule refuses a job whose scan would refuse it.
    ca.write_bytes((Path(__file__).resolve().parent.parent / "fixtures" / "certs"
                    / "ca.pem").read_bytes())
    conf = tmp_path / "site.yaml"
    conf.write_text(json.dumps({"jobs": {"a": {"targets": ["127.0.0.1"], "ca": str(ca)}}}))
    out = run("schedule", "--print", "systemd", "--config", str(conf),
              "--history", "/var/lib/dicomscan/50%.sqlite")
    assert out.returncode == 0, out.stderr
    exec_start = next(x for x in out.stdout.splitlines() if x.startswith("ExecStart="))
    assert "/var/lib/dicomscan/50%%.sqlite" in exec_start and "--ca %d/ca" in exec_start
    assert f"LoadCredential=ca:{tmp_path}/100%%ca.pem" in out.stdout


def test_schedule_exec_with_an_unclosed_quote(tmp_path: Path) -> None:
    out = run("schedule", "--print", "cron", "--config", str(_site(tmp_path)), "--exec", "'x")
    assert_input_error(out, "--exec", "No closing quotation")


def test_history_written_by_a_newer_version_is_one_line(tmp_path: Path) -> None:
    import sqlite3

    store = tmp_path / "h.sqlite"
    out = run("scan", "127.0.0.1", "-p", "1", "--discovery", "none", "-q", "--format", "json",
              "--job", "night", "--history", str(store))
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(store) as db:  # as a later dicomscan's migration would leave it
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed9999'")
    for args in (("history", "list"), ("diff", "--job", "night"),
                 ("scan", "127.0.0.1", "-p", "1", "--discovery", "none", "-q", "--job", "n")):
        out = run(*args, "--history", str(store))
        # It was alembic's CommandError traceback ("Can't locate revision").
        assert_input_error(out, "'f00dfeed9999'", "newer than this dicomscan")
        assert out.stderr.count("\n") == 1, out.stderr


def test_ctrl_c_while_reading_an_input_is_130_not_1(tmp_path: Path) -> None:
    import errno
    import signal

    fifo = tmp_path / "targets"
    os.mkfifo(fifo)
    child = subprocess.Popen([sys.executable, "-m", "scanner", "scan", "--plan", "-T", str(fifo)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    writer = None
    try:
        deadline = time.monotonic() + 30
        while writer is None:  # succeeds once the scanner has the pipe open to read
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO and time.monotonic() < deadline
                time.sleep(0.05)
        child.send_signal(signal.SIGINT)  # it waits in read() for targets
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
        if writer is not None:
            os.close(writer)
    # click's Abort was exit 1: "failed findings" to a script.
    assert child.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "Aborted!"


def test_http_json_nested_deeper_than_python_recurses_is_no_json() -> None:
    from probes.http import _MAX_BODY, Answer, count_items

    half = _MAX_BODY // 2
    answer = Answer(status=200, headers={"content-type": "application/json"},
                    body=b"[" * half + b"]" * half, complete=True)
    # It raised RecursionError, which containment then reported as a probe error.
    assert count_items(answer) is None


@pytest.mark.parametrize("command", [("scan", "--plan", "127.0.0.1", "--policy"),
                                     ("baselines", "validate")], ids=" ".join)
@pytest.mark.parametrize(("text", "problem"), [
    ("? [a, b]\n: c\n", "line 1: found unhashable key"),
    ('"\\ud800"\n', "line 1: found invalid Unicode character escape code"),
    ("jobs: [\n", "line 2: did not find expected node content"),
])
def test_yaml_syntax_error_is_one_line(command: tuple[str, ...], text: str, problem: str,
                                       tmp_path: Path) -> None:
    doc = tmp_path / "doc.yaml"
    doc.write_text(text, encoding="utf-8")
    out = run(*command, str(doc))
    assert_input_error(out, f"{doc}: not valid YAML: {problem}")
    # PyYAML's text spanned five lines and quoted the file back.
    assert out.stderr.strip().splitlines()[-1].startswith("Error:")
    assert "<unicode string>" not in out.stderr


# --- do-not-probe lists ---------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["127.0.0.2-127.0.0.5", "127.0.0.2-5"])
def test_do_not_probe_range_keeps_every_address_in_it_out(entry: str, tmp_path: Path) -> None:
    listed = tmp_path / "dnp.txt"
    listed.write_text(f"{entry} infusion pumps\n")
    out = run("scan", "--plan", "--format", "json", "127.0.0.0/29", "--exclude-file", str(listed))
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    # A range was taken for a host name that no target has: nothing was kept out.
    assert sorted(s["address"] for s in plan["skipped"]) == [f"127.0.0.{i}" for i in (2, 3, 4, 5)]
    assert plan["targets"] == ["127.0.0.1", "127.0.0.6"]
    assert {s["reason"] for s in plan["skipped"]} == {"infusion pumps"}


def test_do_not_probe_range_in_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("do_not_probe:\n  - host: 127.0.0.2-3\n    reason: ventilators\n")
    out = run("scan", "--plan", "--format", "json", "127.0.0.0/29", "--policy", str(policy))
    assert out.returncode == 0, out.stderr
    assert sorted(s["address"] for s in json.loads(out.stdout)["skipped"]) == [
        "127.0.0.2", "127.0.0.3"]


def test_do_not_probe_backwards_range_is_an_input_error(tmp_path: Path) -> None:
    listed = tmp_path / "dnp.txt"
    listed.write_text("127.0.0.9-1 pumps\n")
    assert_input_error(run("scan", "--plan", "127.0.0.0/29", "--exclude-file", str(listed)),
                       "dnp.txt:1", "the end comes before the start")


@pytest.mark.parametrize(("line", "problem"), [
    ('    ports: [1, "x"]', "'x' in '1,x' is not a port number"),
    ("    ports: [99999]", "port 99999 in '99999' is outside 1-65535"),
    ('    calling_ae: ""', "'' is not a valid AE title"),
    ('    exclude: [""]', "invalid exclusion ''"),
    ('    syslog: "tls://[::1"', "syslog: 'tls://[::1': not a URL"),
], ids=["port word", "port range", "calling AE", "exclusion", "syslog"])
def test_config_check_refuses_what_the_scan_would(line: str, problem: str,
                                                  tmp_path: Path) -> None:
    conf = tmp_path / "site.yaml"
    conf.write_text(f"jobs:\n  night:\n    targets: [127.0.0.1]\n{line}\n")
    # 'config check' said ok, and the scheduled scan then failed with exit 2 every night.
    assert_input_error(run("config", "check", str(conf)), f"job night: {problem}")
    assert run("scan", "--plan", "--config", str(conf)).returncode == 2


@pytest.mark.parametrize("url", ["bogus://u:s3cret@127.0.0.1/db", "postgresql://u:s3cret@[::1/db",
                                 "postgresql://u:s3cret@127.0.0.1:1/db"],
                         ids=["unknown scheme", "unclosed bracket", "refused"])
def test_history_url_error_hides_the_password_on_one_line(url: str) -> None:
    out = run("history", "list", "--history", url)
    # The first two printed the URL as given, password and all; the driver's refusal
    # spanned two lines.
    assert_input_error(out, "u:***@")
    assert "s3cret" not in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_drift_file_that_cannot_be_written_is_4_not_1(tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    out = run("scan", "127.0.0.1", "-p", "1", "--discovery", "none", "-q", "--format", "json",
              "--history", str(store))
    scan_id = json.loads(out.stdout)["scan"]["id"]
    target = tmp_path / "missing" / "drift.jsonl"
    out = run("diff", scan_id, scan_id, "--history", str(store), "--format", "jsonl",
              "-o", str(target))
    # click's FileError made it exit 1, which reads as "drift found".
    assert out.returncode == 4, out.stderr
    assert f"cannot write {target}: No such file or directory; results kept in " in out.stderr
    Path(out.stderr.rsplit("results kept in ", 1)[1].strip()).unlink()


def test_history_list_limit_beyond_sqlite_integers_is_a_usage_error(tmp_path: Path) -> None:
    out = run("history", "list", "--history", str(tmp_path / "h.sqlite"), "--limit", "9" * 20)
    assert_input_error(out, "--limit")  # it was an OverflowError traceback
