"""The fleet's own state as it may be found: a sensor scope wider than the scan's guard
allows, a damaged job ledger, spool entries that are folders, FIFOs or partial files,
central.json and sensor.json with odd but valid JSON. Each is one line and an exit
code, or a job failed with its reason: never a traceback, a hang or a silent wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fleet_harness import dicomscan
from tests.sqlite_damage import damage_table_page
from tests.test_fleet_inputs import central, one_line_error

WIDE = ["::/0", "0.0.0.0/0", "8.8.8.0/24", "10.0.0.0/7", "::ffff:0:0/96", "172.15.0.0/16",
        "2000::/3", "100.0.0.0/8"]


@pytest.mark.parametrize("scope", WIDE)
def test_sensor_scope_that_may_hold_public_addresses_needs_allow_public(
        scope: str, tmp_path: Path) -> None:
    root = central(tmp_path)
    before = (root / "central.json").read_text()
    # It was accepted: the sensor then scanned any public address a job named.
    one_line_error(dicomscan("central", "add-sensor", str(root), "wide", "--scope",
                             "10.20.0.0/24", "--scope", scope), 2,
                   "holds public addresses (", "--allow-public")
    assert not (root / "sensors" / "wide").exists()
    assert (root / "central.json").read_text() == before

    out = dicomscan("central", "add-sensor", str(root), "wide", "--scope", scope,
                    "--allow-public")
    assert out.returncode == 0, out.stderr
    bundle = json.loads((root / "sensors" / "wide" / "sensor.json").read_text())
    assert bundle["allow_public"] is True
    entry = json.loads((root / "central.json").read_text())["sensors"]["wide"]
    assert entry["allow_public"] is True


@pytest.mark.parametrize("scope", ["10.20.0.0/24", "127.0.0.1", "fd00::/8", "fe80::/64",
                                   "169.254.0.0/16", "100.64.0.0/10", "198.18.0.0/15",
                                   "192.0.2.0/24", "2001:db8::/32", "::1/128"])
def test_sensor_scope_inside_non_public_networks_needs_nothing(scope: str,
                                                               tmp_path: Path) -> None:
    root = central(tmp_path)
    out = dicomscan("central", "add-sensor", str(root), "lan", "--scope", scope)
    assert out.returncode == 0, out.stderr
    assert json.loads((root / "sensors" / "lan" / "sensor.json").read_text())[
        "allow_public"] is False


def test_edited_wide_scope_without_allow_public_is_refused_on_reading(tmp_path: Path) -> None:
    root = central(tmp_path)
    conf = root / "central.json"
    doc = json.loads(conf.read_text())
    doc["sensors"]["s1"]["scope"] = ["0.0.0.0/0"]
    conf.write_text(json.dumps(doc))
    for args in (("jobs", str(root)),
                 ("submit", str(root), "--sensor", "s1", "8.8.8.8", "-p", "1",
                  "--allow-public")):
        one_line_error(dicomscan(*args), 2, "central.json", "0.0.0.0/0",
                       "holds public addresses")
    bundle = root / "sensors" / "s1"
    doc = json.loads((bundle / "sensor.json").read_text())
    doc["scope"] = ["::/0"]
    (bundle / "sensor.json").write_text(json.dumps(doc))
    one_line_error(dicomscan("sensor", str(bundle), timeout=30), 2, "sensor.json", "::/0",
                   "holds public addresses")


def _ledger_with_three_jobs(root: Path) -> list[str]:
    import time

    from scanner.fleet.layout import CentralDir
    from scanner.fleet.ledger import JobState, Ledger

    ledger = Ledger(CentralDir(root).ledger)
    ids = [f"{n}" * 32 for n in "abc"]
    for i, job_id in enumerate(ids):
        ledger.add(job_id, "s1", None, ["127.0.0.1"], time.time() + i)
    ledger.finish(ids[0], JobState.DONE, time.time(), scan_id="scan-a")
    ledger.close()
    return ids


@pytest.mark.parametrize(("sql", "problem"), [
    ("UPDATE jobs SET state = 'lost' WHERE job_id = :job",
     "state 'lost': Input should be 'queued', 'running', 'done' or 'failed'"),
    ("UPDATE jobs SET submitted_at = 'soon' WHERE job_id = :job",
     "submitted_at 'soon': Input should be a valid number"),
    ("UPDATE jobs SET delivery = 'x' WHERE job_id = :job", "delivery 'x'"),
], ids=["state", "float", "int"])
def test_damaged_ledger_row_is_named_and_left_out(sql: str, problem: str,
                                                  tmp_path: Path) -> None:
    import sqlite3

    root = central(tmp_path)
    ids = _ledger_with_three_jobs(root)
    with sqlite3.connect(root / "jobs.sqlite") as db:
        db.execute(sql, {"job": ids[1]})
    said = f"damaged job ledger row: job '{ids[1]}': {problem}"
    listed = dicomscan("jobs", str(root), "--json")
    # It was a pydantic ValidationError traceback. Exit 3: the list is incomplete.
    assert listed.returncode == 3 and "Traceback" not in listed.stderr, listed.stderr
    assert [json.loads(line)["job_id"] for line in listed.stdout.splitlines()] == [
        ids[2], ids[0]]
    assert listed.stderr.startswith(f"dicomscan: left out a {said}"), listed.stderr
    assert listed.stderr.count("\n") == 1, listed.stderr
    one_line_error(dicomscan("jobs", str(root), "--wait", ids[1][:8]), 2, said)
    done = dicomscan("jobs", str(root), "--wait", ids[0][:8], "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["scan_id"] == "scan-a"


def test_text_that_is_not_utf8_reads_instead_of_failing_every_row(tmp_path: Path) -> None:
    import sqlite3

    root = central(tmp_path)
    ids = _ledger_with_three_jobs(root)
    with sqlite3.connect(root / "jobs.sqlite") as db:
        db.execute("UPDATE jobs SET targets = CAST(x'ff3132372e302e302e31' AS TEXT) "
                   "WHERE job_id = ?", (ids[1],))
    out = dicomscan("jobs", str(root), "--json")
    # sqlite3 raised OperationalError ("Could not decode to UTF-8") for the whole query.
    assert out.returncode == 0, out.stderr
    targets = {json.loads(line)["job_id"]: json.loads(line)["targets"]
               for line in out.stdout.splitlines()}
    assert targets[ids[1]] == "\ufffd127.0.0.1" and len(targets) == 3


def test_damaged_ledger_page_is_one_line(tmp_path: Path) -> None:
    root = central(tmp_path)
    _ledger_with_three_jobs(root)
    damage_table_page(root / "jobs.sqlite", "jobs")
    one_line_error(dicomscan("jobs", str(root)), 2, "cannot read the job ledger",
                   "database disk image is malformed")


ODD = [
    ("listen_port", True, "listen_port: Input should be a valid integer"),
    ("ack_wait", 1e308, "ack_wait: Input should be less than or equal to 3600"),
    ("ack_wait", True, "ack_wait: Input should be a valid number"),
    ("max_deliver", 10**22, "max_deliver: Input should be less than or equal to 100"),
    ("max_deliver", 4.0, "max_deliver: Input should be a valid integer"),
    ("listen_host", "", "listen_host: String should have at least 1 character"),
    ("addresses", ["central\nExecStart=x"], "is neither an IP address nor a host name"),
]


@pytest.mark.parametrize(("key", "value", "words"), ODD, ids=[f"{k}={v!r}"[:30]
                                                             for k, v, _ in ODD])
def test_central_json_with_odd_but_valid_json_is_one_line(key: str, value: object,
                                                          words: str, tmp_path: Path) -> None:
    root = central(tmp_path)
    conf = root / "central.json"
    doc = json.loads(conf.read_text())
    doc[key] = value
    conf.write_text(json.dumps(doc))
    # Each was taken: JSON true as port 1, a lease of 1e308 seconds handed to nats-server.
    one_line_error(dicomscan("jobs", str(root)), 2, "central.json", words)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("ack_wait", 1e308, "ack_wait: Input should be less than or equal to 3600"),
    ("ack_wait", False, "ack_wait: Input should be a valid number"),
    ("tls_hostname", "", "tls_hostname: String should have at least 1 character"),
])
def test_sensor_json_with_odd_values_is_one_line(key: str, value: object, words: str,
                                                 tmp_path: Path) -> None:
    root = central(tmp_path)
    path = root / "sensors" / "s1" / "sensor.json"
    doc = json.loads(path.read_text())
    doc[key] = value
    path.write_text(json.dumps(doc))
    one_line_error(dicomscan("sensor", str(path.parent), timeout=30), 2, "sensor.json", words)


@pytest.mark.parametrize("kind", ["fifo", "large"])
def test_central_and_sensor_json_that_are_not_plain_files(kind: str, tmp_path: Path) -> None:
    import os

    root = central(tmp_path)
    for path, args in ((root / "central.json", ("jobs", str(root))),
                       (root / "sensors" / "s1" / "sensor.json",
                        ("sensor", str(root / "sensors" / "s1")))):
        saved = path.read_bytes()
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)  # opening it for reading waited for a writer, for ever
        else:
            with path.open("wb") as fh:
                fh.truncate(17 << 20)
        why = "not a regular file" if kind == "fifo" else "larger than 16 MiB"
        one_line_error(dicomscan(*args, timeout=30), 2, f"cannot read {path}: {why}")
        path.unlink()
        path.write_bytes(saved)


def test_progress_with_numbers_beyond_sqlite_is_ignored(tmp_path: Path) -> None:
    """A sensor's progress report with a 30-digit count raised OverflowError in central's
    handler (SQLite integers end at 2**63); it is now an unreadable report, ignored."""
    import time

    from scanner.fleet.central import Collector
    from scanner.fleet.layout import CentralDir
    from scanner.fleet.ledger import JobState, Ledger

    root = central(tmp_path)
    d = CentralDir(root)
    ledger = Ledger(d.ledger)
    ledger.add("a" * 32, "s1", None, ["127.0.0.1"], time.time())
    collector = Collector(d, d.load())
    try:
        for field in ("done", "total", "delivery"):
            report = {"job_id": "a" * 32, "sensor": "s1", "delivery": 1, "done": 1,
                      "total": 2, "at": time.time(), field: 10**30}
            collector.handle_progress(json.dumps(report).encode())
        collector.handle_progress(json.dumps({"job_id": "a" * 32, "sensor": "s1",
                                              "delivery": 1, "done": 1, "total": 2,
                                              "at": time.time()}).encode())
        row = ledger.get("a" * 32)
        assert row is not None and row.state is JobState.RUNNING and row.total == 2
    finally:
        collector.close()
        ledger.close()


def test_site_config_empty_calendar_or_history_is_refused(tmp_path: Path) -> None:
    from tests.test_input_limits import assert_input_error, run

    for line, key in (("    schedule: {on_calendar: ''}\n", "on_calendar"),
                      ("history: ''\n", "history")):
        site = tmp_path / "site.yaml"
        top = line if not line.startswith(" ") else ""
        job = line if line.startswith(" ") else ""
        site.write_text(f"version: 1\n{top}jobs:\n  night:\n    targets: [10.20.0.0/30]\n"
                        f"    discovery: none\n{job}", encoding="utf-8")
        # An empty OnCalendar= made a timer that never fires; '' a history in the cwd.
        assert_input_error(run("config", "check", str(site)), key,
                           "String should have at least 1 character")


def test_refusal_with_a_long_reason_still_makes_a_valid_message(tmp_path: Path) -> None:
    """A refusal naming a long scope is cut to the message's 2,000 characters: the
    sensor's message would not validate and the job was redelivered until it failed."""
    import asyncio

    from scanner.fleet.protocol import ResultMessage
    from scanner.fleet.sensor import Sensor

    root = central(tmp_path)
    sensor = Sensor(root / "sensors" / "s1", tmp_path / "spool")
    sent: list[bytes] = []

    async def publish(job_id: str, body: bytes) -> None:
        sent.append(body)

    async def ack(msg: object, job_id: str) -> bool:
        return True

    sensor.publish_result = publish  # type: ignore[method-assign]
    sensor._ack = ack  # type: ignore[method-assign]
    asyncio.run(sensor._refuse(None, "a" * 32, "targets outside: " + "10.0.0.1, " * 1000))
    msg = ResultMessage.model_validate_json(sent[0])
    assert msg.reason is not None and len(msg.reason) == 2000


def test_submit_into_a_damaged_ledger_is_a_fleet_error(tmp_path: Path) -> None:
    """submit records the job before sending it: a damaged ledger page was sqlalchemy's
    DatabaseError traceback there; it is FleetError (one line, exit 3 from submit)."""
    import time

    from scanner.fleet.layout import CentralDir, FleetError
    from scanner.fleet.ledger import Ledger

    root = central(tmp_path)
    _ledger_with_three_jobs(root)
    damage_table_page(root / "jobs.sqlite", "jobs")
    ledger = Ledger(CentralDir(root).ledger)
    try:
        with pytest.raises(FleetError, match=r"cannot write the job ledger .*: database "
                                             r"disk image is malformed"):
            ledger.add("d" * 32, "s1", None, ["127.0.0.1"], time.time())
    finally:
        ledger.close()


@pytest.mark.parametrize("what", ["pid-fifo", "pid-folder", "log-fifo", "log-folder"])
def test_nats_state_files_that_are_not_files(what: str, tmp_path: Path) -> None:
    """The nats-server pid file or log replaced by a FIFO or a folder: add-sensor and
    central run waited for ever on the FIFO (reading the pid file, opening the log) or
    stopped with a traceback on the folder. No nats-server is left running either way."""
    import os

    root = central(tmp_path)
    nats = root / "nats"
    nats.mkdir(exist_ok=True)
    target = nats / ("nats-server.pid" if what.startswith("pid") else "nats-server.log")
    target.unlink(missing_ok=True)
    if what.endswith("fifo"):
        os.mkfifo(target)
    else:
        target.mkdir()
    which = "pid file" if what.startswith("pid") else "nats-server log"
    if what.startswith("pid"):
        one_line_error(dicomscan("central", "add-sensor", str(root), "s2", "--scope",
                                 "10.20.0.0/24", timeout=30), 2, f"cannot read the {which}")
    out = dicomscan("central", "run", str(root), timeout=30)
    one_line_error(out, 3, f"{which} {target}")


def test_job_reference_is_a_prefix_not_a_pattern(tmp_path: Path) -> None:
    """'jobs --wait ____' matched any job ID (SQL LIKE): with one job in the ledger it
    waited on that job as if its ID began so."""
    import time

    from scanner.fleet.layout import CentralDir
    from scanner.fleet.ledger import JobState, Ledger

    root = central(tmp_path)
    ledger = Ledger(CentralDir(root).ledger)
    ledger.add("e" * 32, "s1", None, ["127.0.0.1"], time.time())
    ledger.finish("e" * 32, JobState.DONE, time.time(), scan_id="scan-e")
    ledger.close()
    for ref in ("____", "%%%%", "ee%_"):
        one_line_error(dicomscan("jobs", str(root), "--wait", ref), 2, "no single job matches")
    assert dicomscan("jobs", str(root), "--wait", "eeee").returncode == 0


@pytest.mark.parametrize("name", ["ca.pem", "central.key", "ca.key"])
@pytest.mark.parametrize("kind", ["fifo", "garbage"])
def test_central_certificates_that_are_not_usable(name: str, kind: str,
                                                  tmp_path: Path) -> None:
    """A FIFO in place of a certificate or key made submit and add-sensor wait for ever
    (OpenSSL reads it), a garbage CA was a traceback in add-sensor."""
    import os

    root = central(tmp_path)
    path = root / "pki" / name
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_text("garbage\n")
    why = (f"cannot read {path}: not a regular file" if kind == "fifo" else
           "cannot use central's certificate" if name != "ca.key" else "")
    submit = dicomscan("submit", str(root), "--sensor", "s1", "127.0.0.1", "-p", "1",
                       timeout=30)
    if name != "ca.key":  # submit does not read the CA's key
        one_line_error(submit, 3, why)
    if name != "central.key":  # add-sensor reads the CA only
        one_line_error(dicomscan("central", "add-sensor", str(root), "s2", "--scope",
                                 "10.20.0.0/24", timeout=30), 2,
                       why if kind == "fifo" else "cannot use the central CA")
        assert not (root / "sensors" / "s2").exists()


@pytest.mark.parametrize("server", ["tls://127.0.0.1:{port}", "tls://no-such-host.invalid:4222"])
def test_sensor_that_cannot_reach_central_stops_on_sigterm(server: str,
                                                           tmp_path: Path) -> None:
    """While dialling (a refused port, a name that does not resolve) the sensor ignored
    SIGTERM and Ctrl-C and had to be killed."""
    import signal
    import subprocess
    import sys
    import time

    from scanner.lab.process import free_port

    root = central(tmp_path)
    bundle = root / "sensors" / "s1"
    doc = json.loads((bundle / "sensor.json").read_text())
    doc["servers"] = [server.format(port=free_port("127.0.0.1"))]
    (bundle / "sensor.json").write_text(json.dumps(doc))
    proc = subprocess.Popen([sys.executable, "-m", "scanner", "sensor", str(bundle), "-v"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(4)  # a few attempts
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "stopped before central could be reached" in text and "Traceback" not in text


@pytest.mark.parametrize("server", ["garbage", "tls://127.0.0.1:99999", "tls://[::1",
                                    "http://127.0.0.1:4222", "tls://:4222"])
def test_sensor_json_server_that_is_not_a_tls_url(server: str, tmp_path: Path) -> None:
    """It was dialled for ever ('Name or service not known' every 2 s)."""
    root = central(tmp_path)
    path = root / "sensors" / "s1" / "sensor.json"
    doc = json.loads(path.read_text())
    doc["servers"] = [server]
    path.write_text(json.dumps(doc))
    one_line_error(dicomscan("sensor", str(path.parent), timeout=30), 2, "sensor.json",
                   f"server {server!r} is not tls://HOST:PORT")
