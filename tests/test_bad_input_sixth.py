"""Bad input, sixth pass: what was still accepted, a roundabout message or a traceback,
run as real processes (``--plan`` sends nothing; the syslog cases are refused before any
packet). Each test fails with its fix reverted, except those named as guards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.test_output_clashes import ROOT, assert_usage, run

DOTTED = "a numeric shorthand for 127.0.0.1; write the address dotted"


# --- numeric shorthands where dicomscan sends or listens ----------------------------------


@pytest.mark.parametrize("url", ["udp://0x7f000001:514", "tcp://127.1:514",
                                 "tls://0177.0.0.1:6514", "udp://2130706433:514"])
def test_syslog_host_shorthand(url: str, tmp_path: Path) -> None:
    """The findings went to whatever the resolver made of it (exit 0, 'sent')."""
    assert_usage(run("scan", "--plan", "127.0.0.2", "-p", "9", "--syslog", url,
                     cwd=tmp_path), "--syslog", "host ", DOTTED)


def test_syslog_host_shorthand_in_diff_and_site_configuration(tmp_path: Path) -> None:
    assert_usage(run("diff", "--syslog", "udp://127.1:514", "--history", "h.sqlite",
                     cwd=tmp_path), "--syslog", DOTTED)
    (tmp_path / "site.yaml").write_text(
        "version: 1\njobs:\n  night:\n    ports: '9'\n    targets: [127.0.0.2]\n"
        "    syslog: 'udp://0x7f000001:514'\n")
    assert_usage(run("config", "check", "site.yaml", cwd=tmp_path), "job night", DOTTED)


def test_syslog_dotted_host_and_name_still_parse() -> None:
    """Guard: what worked before still does."""
    from scanner.outputs.syslog import parse_url

    assert parse_url("udp://127.0.0.1:514") == ("udp", "127.0.0.1", 514)
    assert parse_url("tls://siem.example.org:6514") == ("tls", "siem.example.org", 6514)
    assert parse_url("tcp://[::1]:514") == ("tcp", "::1", 514)


@pytest.mark.parametrize(("args", "words"), [
    (("--address", "127.1"), ("--address 127.1: ", DOTTED)),
    (("--address", "ok.example", "--address", "0x7f000001"), ("--address 0x7f000001",)),
    (("--address", "c.example", "--listen", "0177.0.0.1:4222"), ("--listen host", DOTTED)),
], ids=["address", "second-address", "listen"])
def test_central_init_shorthand(args: tuple[str, ...], words: tuple[str, ...],
                                tmp_path: Path) -> None:
    """It was written into the server certificate and every sensor's bundle."""
    assert_usage(run("central", "init", "c", *args, cwd=tmp_path), *words)
    assert not (tmp_path / "c").exists()


def test_edited_fleet_files_with_a_shorthand(tmp_path: Path) -> None:
    init = run("central", "init", "c", "--address", "127.0.0.1", "--listen",
               "127.0.0.1:4999", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    add = run("central", "add-sensor", "c", "s1", "--scope", "127.0.0.0/8", cwd=tmp_path)
    assert add.returncode == 0, add.stderr
    bundle = tmp_path / "c" / "sensors" / "s1" / "sensor.json"
    doc = json.loads(bundle.read_text())
    doc["servers"] = ["tls://127.1:4999"]
    bundle.write_text(json.dumps(doc))
    assert_usage(run("sensor", "c/sensors/s1", cwd=tmp_path), "sensor.json", DOTTED)
    central = tmp_path / "c" / "central.json"
    doc = json.loads(central.read_text())
    doc["addresses"] = ["0x7f000001"]
    central.write_text(json.dumps(doc))
    assert_usage(run("central", "add-sensor", "c", "s2", "--scope", "127.0.0.0/8",
                     cwd=tmp_path), "central.json", "address 0x7f000001: ")


# --- history stores SQLite cannot open --------------------------------------------------

NO_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv: as root permission bits do not refuse")


def run_as(prefix: tuple[str, ...], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "scanner", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "HOME": str(cwd)})


def make_store(path: Path) -> bytes:
    from scanner.history.store import HistoryStore

    HistoryStore.open(path).close()
    return path.read_bytes()


@needs_setpriv
def test_history_file_that_may_only_be_read(tmp_path: Path) -> None:
    """A scan opened it, found out only when recording itself ("attempt to write a readonly
    database", exit 3); now exit 2 naming file and reason. Reading it still works."""
    before = make_store(tmp_path / "h.sqlite")
    (tmp_path / "h.sqlite").chmod(0o444)
    out = run_as(NO_DAC, "scan", "127.0.0.1", "-p", "9", "--history", "h.sqlite",
                 cwd=tmp_path)
    assert_usage(out, f"cannot open the history {tmp_path}/h.sqlite: ",
                 "cannot be opened for writing: Permission denied")
    assert (tmp_path / "h.sqlite").read_bytes() == before
    listed = run_as(NO_DAC, "history", "list", "--history", "h.sqlite", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr


@needs_setpriv
def test_plan_refuses_a_history_file_that_may_only_be_read(tmp_path: Path) -> None:
    """``scan --plan`` checks the history file as the scan does, without writing."""
    before = make_store(tmp_path / "h.sqlite")
    (tmp_path / "h.sqlite").chmod(0o444)
    out = run_as(NO_DAC, "scan", "127.0.0.1", "-p", "9", "--plan", "--history", "h.sqlite",
                 cwd=tmp_path)
    assert_usage(out, f"cannot open the history {tmp_path}/h.sqlite: ",
                 "cannot be opened for writing: Permission denied")
    assert (tmp_path / "h.sqlite").read_bytes() == before


@needs_setpriv
@pytest.mark.parametrize("args", [("scan", "127.0.0.1", "-p", "9", "-q"),
                                  ("history", "list"), ("diff",)])
def test_history_in_a_folder_that_takes_no_new_file(args: tuple[str, ...],
                                                    tmp_path: Path) -> None:
    """SQLite makes -wal and -shm beside the store, to read too: it said only "attempt to
    write a readonly database" or "unable to open database file"."""
    (tmp_path / "d").mkdir()
    make_store(tmp_path / "d" / "h.sqlite")
    (tmp_path / "d").chmod(0o555)
    try:
        out = run_as(NO_DAC, *args, "--history", "d/h.sqlite", cwd=tmp_path)
    finally:
        (tmp_path / "d").chmod(0o755)
    assert_usage(out, f"cannot open the history {tmp_path}/d/h.sqlite: its folder "
                      f"{tmp_path}/d does not take new files (Permission denied)")
    assert "unable to open" not in out.stderr and "readonly database" not in out.stderr


@needs_setpriv
def test_new_history_in_a_folder_that_takes_no_new_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o555)
    out = run_as(NO_DAC, "scan", "127.0.0.1", "-p", "9", "--history", "d/new.sqlite",
                 cwd=tmp_path)
    assert_usage(out, f"{tmp_path}/d does not take new files (Permission denied): the store "
                      "cannot be made there")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for a read-only mount")
def test_history_on_a_read_only_mount(tmp_path: Path) -> None:
    """Root is refused too where the file system is read-only."""
    (tmp_path / "ro").mkdir()
    make_store(tmp_path / "ro" / "h.sqlite")
    ro = str(tmp_path / "ro")
    mount = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && exec "$@"',
             "sh")
    out = run_as(mount, "scan", "127.0.0.1", "-p", "9", "--history", "ro/h.sqlite",
                 cwd=tmp_path)
    if "mount:" in out.stderr:
        pytest.skip(f"no read-only bind mount here: {out.stderr[-200:]}")
    assert_usage(out, f"{ro}/h.sqlite cannot be opened for writing: Read-only file system")
    out = run_as(mount, "history", "list", "--history", "ro/h.sqlite", cwd=tmp_path)
    assert_usage(out, f"its folder {ro} does not take new files (Read-only file system)")


@pytest.mark.parametrize("under", ["f/h.sqlite", "f/a/b/h.sqlite"])
def test_history_under_a_file(under: str, tmp_path: Path) -> None:
    """It was "[Errno 17] File exists: '...'" or "[Errno 20] Not a directory: '.../f/a/b'"."""
    (tmp_path / "f").write_text("x")
    out = run("scan", "127.0.0.1", "-p", "9", "--history", under, cwd=tmp_path)
    assert_usage(out, f"cannot create the folder of {under}: {tmp_path}/f: not a folder")


@needs_setpriv
def test_job_ledger_in_a_folder_that_takes_no_new_file(tmp_path: Path) -> None:
    init = run("central", "init", "c", "--address", "127.0.0.1", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    (tmp_path / "c").chmod(0o555)
    try:
        out = run_as(NO_DAC, "jobs", "c", cwd=tmp_path)
    finally:
        (tmp_path / "c").chmod(0o755)
    assert_usage(out, "cannot open the job ledger c/jobs.sqlite: its folder c does not take "
                      "new files (Permission denied)")


# --- AE titles of only spaces --------------------------------------------------------------


@pytest.mark.parametrize(("option", "value"), [("--calling-ae", " "),
                                               ("--ae-title", " " * 16)])
def test_ae_title_of_only_spaces(option: str, value: str, tmp_path: Path) -> None:
    """DICOM forbids it; pynetdicom refused every association with it, and a scan of a
    real storescp reported no DICOM service at all, exit 0."""
    # on the command line the check of every blank value answers first
    assert_usage(run("scan", "--plan", "127.0.0.1", "-p", "9", option, value, cwd=tmp_path),
                 option, "an empty value")


def test_ae_title_of_only_spaces_in_a_site_configuration(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "version: 1\njobs:\n  night:\n    ports: '9'\n    targets: [127.0.0.2]\n"
        "    calling_ae: '  '\n")
    assert_usage(run("config", "check", "site.yaml", cwd=tmp_path), "job night",
                 "only spaces")


def test_ae_title_of_only_spaces_in_a_job_from_a_centre() -> None:
    """A job arrives as JSON: the model refuses what the command line refuses."""
    from pydantic import ValidationError

    from scanner.model import ScanSettings, Timeouts

    good = ScanSettings(targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=[104],
                        max_concurrency=1, per_host_connections=1, probe_spacing=0,
                        timeouts=Timeouts(connect=1, dicom=1, dimse=1, host=1))
    doc = good.model_dump(mode="json")
    for key, value in (("calling_ae", "   "), ("ae_titles", ["PACS", " "]),
                       ("ae_wordlist", ["  "]), ("calling_ae", "X" * 17)):
        with pytest.raises(ValidationError, match="not a valid AE title"):
            ScanSettings.model_validate({**doc, key: value})
    assert ScanSettings.model_validate({**doc, "calling_ae": " X "}).calling_ae == " X "


# --- blank values --------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--policy", ""),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--exclude-file", "fence.txt", "--config", ""),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "-T", ""),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--baseline", ""),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--syslog", ""),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--events", ""),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--job", " "),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--history", ""),
    ("scan", "--plan", "127.0.0.1", "-p", "9", "--exclude", "127.0.0.3", "--exclude", " "),
    ("report", "saved.json", "--events", ""),
    ("diff", "--history", "h.sqlite", "-o", ""),
    ("diff", "--history", "h.sqlite", "--syslog", ""),
    ("history", "list", "--history", "h.sqlite", "--job", ""),
    ("central", "init", "--address", "127.0.0.1", ""),
], ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_a_blank_value_is_refused(args: tuple[str, ...], tmp_path: Path) -> None:
    """``--policy "$POLICY"`` with the variable unset was no policy, its do-not-probe list
    silently dropped; ``central init ''`` made a centre in the current folder;
    ``--history ''`` the default store, ``--syslog ''`` no syslog, ``diff
    -o ''`` exit 4 after the work: each exit 0 (``diff -o ''`` 4)."""
    from tests.test_output_clashes import SAVED

    shutil.copy(SAVED, tmp_path / "saved.json")
    (tmp_path / "fence.txt").write_text("198.18.9.9 fragile\n")
    make_store(tmp_path / "h.sqlite")
    assert_usage(run(*args, cwd=tmp_path), "an empty value (leave the option out for its "
                                           "default)")


def _commands() -> list[tuple[str, click.Command]]:
    from scanner.cli.main import COMMANDS, main

    ctx = click.Context(main)
    out = []
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None
        subs = command.commands if isinstance(command, click.Group) else {"": command}
        out += [(f"{name} {sub}".strip(), c) for sub, c in subs.items()]
    return out


def test_every_option_of_every_command_refuses_a_blank_value() -> None:
    """Parsed by each real command (its callbacks run, its body does not)."""
    seen = 0
    for name, command in _commands():
        for param in command.params:
            if isinstance(param, click.Option) and (param.is_flag or param.count):
                continue
            flag = param.opts[-1] if isinstance(param, click.Option) else None
            for blank in ("", "  "):
                args = [flag, blank] if flag else [blank]
                # a choice or a number refuses it as its type; text and paths were taken
                with pytest.raises(click.BadParameter) as refused:
                    command.make_context(name, args)
                if isinstance(param.type, click.types.StringParamType) or \
                        (isinstance(param.type, click.Path) and not param.type.exists):
                    assert "an empty value" in refused.value.message, (name, flag)
                seen += 1
    assert seen > 150  # every command was walked


# --- job names given on the command line --------------------------------------------------


@pytest.mark.parametrize("name", ["a\nb", "j\x1b]0;owned\x07", "x" * 65, "night/1", "-j"])
def test_a_job_name_is_kept_plain(name: str, tmp_path: Path) -> None:
    """Filed in the history as given (without --config): a newline, a terminal sequence
    or 100,000 characters went into every table that shows it; a site configuration's
    job names were already held to this."""
    out = run("scan", "127.0.0.1", "-p", "9", "-q", "--job", name, "--history", "h.sqlite",
              cwd=tmp_path)
    assert_usage(out, "--job", "letters, digits, '-' and '_' only")
    assert not (tmp_path / "h.sqlite").exists()


def test_plain_job_names_and_central_labels_still_work(tmp_path: Path) -> None:
    """Guards: a plain name is stored; history and diff still filter by the sensor/name
    labels central files its results under."""
    out = run("scan", "127.0.0.1", "-p", "9", "-q", "--job", "night_1-a", "--history",
              "h.sqlite", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run("history", "list", "--history", "h.sqlite", "--job", "sensor-a/nightly",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr


# --- digits that are not ASCII ------------------------------------------------------------


@pytest.mark.parametrize("value", ["\u00b9", "1\u00b2", "\uff14\uff12\uff14\uff12",
                                   "\u0664"])
def test_port_numbers_are_ascii_digits(value: str, tmp_path: Path) -> None:
    """str.isdigit() passed them: '¹' and '1²' were a ValueError traceback (exit 1), the
    others read as 4242 and 4 by int() while other tools read them otherwise."""
    assert_usage(run("scan", "--plan", "127.0.0.1", "-p", value, cwd=tmp_path),
                 "is not a port number")
    assert_usage(run("central", "init", "c", "--address", "127.0.0.1", "--listen",
                     f"127.0.0.1:{value}", cwd=tmp_path), "is not HOST:PORT")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("cron", ["\u0664 2 * * *", "*/\u0664 * * * *", "\u00b9 2 * * *",
                                  "0 2 * * \u0664"])
def test_cron_fields_are_ascii_digits(cron: str, tmp_path: Path) -> None:
    """'٤ 2 * * *' passed the check and was written into the crontab line, which cron
    refuses; '¹' was "invalid literal for int() with base 10"."""
    (tmp_path / "site.yaml").write_text(
        "version: 1\njobs:\n  night:\n    ports: '9'\n    targets: [127.0.0.2]\n"
        f"    schedule: {{cron: '{cron}'}}\n")
    for args in (("config", "check", "site.yaml"),
                 ("schedule", "--print", "cron", "--config", "site.yaml")):
        out = run(*args, cwd=tmp_path)
        assert_usage(out, "not a value, range or step")
        assert out.stdout == ""


def test_http_peer_with_a_superscript_length_beside_a_real_peer() -> None:
    """A Content-Length of b'\\xb9' (latin-1 '¹') was a ValueError inside the HTTP probe:
    its checks of that service were lost. Now it is an answer of unknown length."""
    from scanner.lab import peers
    from tests.hostile import hostile_peer
    from tests.test_robust import assert_healthy, scan

    with peers.start_storescp() as healthy, hostile_peer("http-superscript") as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    assert run.service(bad.port)["name"] == "http"
    checks = run.kinds(bad.port, "http-check")
    assert checks and any(c["status"] == 200 for c in checks), checks
    assert not any("ValueError" in e for h in run.doc["hosts"] for e in h.get("errors", []))


# --- a database password on a scheduled command line --------------------------------------


@pytest.mark.parametrize(("kind", "where"), [("cron", "command line"),
                                             ("systemd", "config file"),
                                             ("systemd-write", "command line")])
def test_schedule_keeps_a_database_password_off_the_command_line(kind: str, where: str,
                                                                 tmp_path: Path) -> None:
    """It was written into the crontab line or ExecStart= as given, and every local user
    saw it in the process list at each run."""
    history = "postgresql://scan:s3cret@db.example/dicomscan"
    top = f"history: '{history}'\n" if where == "config file" else ""
    (tmp_path / "site.yaml").write_text(
        f"version: 1\n{top}jobs:\n  night:\n    ports: '9'\n    targets: [127.0.0.2]\n")
    args = ["schedule", "--print", kind.removesuffix("-write"), "--config", "site.yaml"]
    if where == "command line":
        args += ["--history", history]
    if kind.endswith("-write"):
        args += ["--write", "units"]
    out = run(*args, cwd=tmp_path)
    assert_usage(out, "postgresql://scan:***@db.example/dicomscan holds a password",
                 "~/.pgpass")
    assert "s3cret" not in out.stdout + out.stderr
    assert not (tmp_path / "units").exists()


def test_schedule_with_a_database_url_without_password_still_works(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "version: 1\njobs:\n  night:\n    ports: '9'\n    targets: [127.0.0.2]\n")
    out = run("schedule", "--print", "cron", "--config", "site.yaml", "--history",
              "postgresql://scan@db.example/dicomscan", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--history postgresql://scan@db.example/dicomscan" in out.stdout
