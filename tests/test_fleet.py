"""Sensors and a central server on loopback: real nats-server (Debian), real DCMTK storescp
as the scan target, central and sensors as the real commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.fleet import pki
from scanner.fleet.ledger import JobState, Ledger
from scanner.fleet.protocol import tls_context
from scanner.lab.peers import RunningPeer, start_storescp
from tests.fleet_harness import Fleet, dicomscan, loopback_settings

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(shutil.which("nats-server") is None, reason="needs nats-server"),
]


@pytest.fixture(scope="module")
def storescp() -> Iterator[RunningPeer]:
    peer = start_storescp()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("fleet"), ack_wait=3, max_deliver=3)
    f.add_sensor("alpha", "127.0.0.0/8")
    f.add_sensor("beta", "198.18.200.0/24")
    f.start_central()
    f.start_sensor("alpha")
    f.start_sensor("beta")
    f.wait_sensor_ready("alpha")
    f.wait_sensor_ready("beta")
    try:
        yield f
    finally:
        f.stop()


def scans_of(fleet: Fleet, scan_id: str) -> list[dict[str, Any]]:
    return [s for s in fleet.history_scans() if s["scan_id"] == scan_id]


def test_submit_scan_result_stored_once(fleet: Fleet, storescp: RunningPeer) -> None:
    job_id = fleet.submit("alpha", "127.0.0.1", "-p", str(storescp.info.port),
                          "--discovery", "none", "--job", "ct-room")
    row = fleet.wait_job(job_id)
    assert row.state is JobState.DONE, row
    assert row.scan_id == str(uuid.UUID(job_id)) and row.duplicates == 0  # scan ID = job ID
    stored = scans_of(fleet, row.scan_id)
    assert len(stored) == 1 and stored[0]["job"] == "alpha/ct-room"
    report = dicomscan("history", "show", row.scan_id, "--history",
                       str(fleet.dir / "history.sqlite"), "--format", "json")
    assert report.returncode == 0, report.stderr
    assert str(storescp.info.port) in report.stdout  # the storescp's port was found and stored
    waited = dicomscan("jobs", str(fleet.dir), "--wait", job_id[:8])
    assert waited.returncode == 0 and "done" in waited.stdout


def test_job_outside_scope_refused_at_submit(fleet: Fleet) -> None:
    out = dicomscan("submit", str(fleet.dir), "--sensor", "beta", "127.0.0.1", "-p", "104",
                    "--discovery", "none")
    assert out.returncode == 2 and "scope" in out.stderr and "Traceback" not in out.stderr


def publish_raw(fleet: Fleet, sensor: str, body: dict[str, Any]) -> str:
    """A job that did not come through ``submit`` (a compromised or buggy central)."""
    job_id = uuid.uuid4().hex
    body = {**body, "job_id": job_id, "sensor": sensor, "submitted_at": time.time()}
    ledger = Ledger(fleet.d.ledger)
    ledger.add(job_id, sensor, None, ["raw"], time.time())

    async def pub(js: Any) -> int:
        return int((await js.publish(f"jobs.{sensor}", json.dumps(body).encode())).seq)

    ledger.set_seq(job_id, fleet.central_call(pub))
    ledger.close()
    return job_id


def test_sensor_refuses_job_outside_its_bundle_scope(fleet: Fleet) -> None:
    settings = loopback_settings("104").model_dump(mode="json")
    job_id = publish_raw(fleet, "beta", {"settings": settings})
    row = fleet.wait_job(job_id)
    assert row.state is JobState.FAILED and "outside this sensor's scope" in (row.reason or "")
    assert "scanning" not in fleet.log("sensor-beta")  # nothing was scanned


def test_sensor_refuses_job_naming_local_files(fleet: Fleet) -> None:
    settings = loopback_settings("104").model_dump(mode="json")
    settings["client_key"] = "/etc/shadow"  # a central that was not ours
    job_id = publish_raw(fleet, "alpha", {"settings": settings})
    row = fleet.wait_job(job_id)
    assert row.state is JobState.FAILED and "names local files (client_key)" in (
        row.reason or "")


def test_poison_job_fails_after_max_deliveries(fleet: Fleet) -> None:
    job_id = publish_raw(fleet, "alpha", {"settings": {"from": "a newer central"}})
    row = fleet.wait_job(job_id, timeout=120)
    assert row.state is JobState.FAILED and row.reason == "no result after 3 deliveries"

    async def left(js: Any) -> int:
        return int((await js.stream_info("JOBS")).state.messages)

    deadline = time.monotonic() + 10
    while fleet.central_call(left) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fleet.central_call(left) == 0  # deleted from the work queue, not stuck there


def test_sensor_killed_mid_scan_job_redelivered_and_stored_once(
        fleet: Fleet, storescp: RunningPeer) -> None:
    # 60 closed ports at the safe profile's 0.1 s spacing: several seconds of scanning,
    # longer than the 3 s lease, so the lease is kept alive by in-progress acks.
    job_id = fleet.submit("alpha", "127.0.0.1", "-p", f"20000-20059,{storescp.info.port}",
                          "--discovery", "none")
    fleet.wait_job(job_id, state="running", timeout=60)
    time.sleep(1)
    fleet.kill_sensor("alpha")  # kill -9 mid-scan: no ack, no result
    assert fleet.job(job_id).state is JobState.RUNNING
    fleet.start_sensor("alpha")
    row = fleet.wait_job(job_id, timeout=120)
    assert row.state is JobState.DONE, row
    assert row.delivery >= 2  # redelivered after the lease ran out
    said = fleet.log("sensor-alpha")
    assert f"job {job_id} (delivery 2): scanning" in said  # rescanned by the new sensor
    assert len(scans_of(fleet, row.scan_id or "")) == 1


def sensor_connect(bundle: Path, ctx: ssl.SSLContext | None = None) -> Any:
    """Connect with a bundle's identity; returns (nc, errors seen by error_cb)."""
    import nats

    from scanner.fleet.layout import load_bundle

    b = load_bundle(bundle)
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    async def go() -> Any:
        nc = await nats.connect(b.servers, tls=ctx or tls_context(
            bundle / "ca.pem", bundle / "sensor.pem", bundle / "sensor.key"),
            tls_hostname=b.tls_hostname, inbox_prefix=f"_INBOX_{b.name}", error_cb=on_error,
            allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
        return nc

    return go, errors


def test_sensor_cannot_take_read_or_forge_another_sensors_work(fleet: Fleet) -> None:
    """beta tries everything on alpha's work; alpha's job stays alpha's."""
    fleet.kill_sensor("alpha")  # so alpha's next job waits in the queue
    job_id = fleet.submit("alpha", "127.0.0.1", "-p", "20100", "--discovery", "none")
    connect, errors = sensor_connect(fleet.d.bundle("beta"))

    async def attack() -> list[int]:
        from nats.errors import TimeoutError as NatsTimeout

        nc = await connect()
        js = nc.jetstream()
        got: list[int] = []
        sub = await js.pull_subscribe_bind(durable="alpha", stream="JOBS")
        with contextlib.suppress(TimeoutError, NatsTimeout):
            got.append(len(await sub.fetch(1, timeout=2)))
        await nc.subscribe("jobs.alpha")
        await nc.subscribe("_INBOX_alpha.>")
        await nc.subscribe(">")
        await nc.publish(f"results.alpha.{job_id}", b'{"forged": true}')
        await nc.publish("$JS.API.STREAM.MSG.GET.JOBS", b'{"seq": 1}')
        await nc.publish("$JS.API.CONSUMER.DURABLE.CREATE.JOBS.steal", b"{}")
        await nc.flush()
        await asyncio.sleep(1)
        await nc.close()
        return got

    got = asyncio.run(attack())
    said = " ".join(str(e) for e in errors).lower()  # nats-py lowercases subjects
    assert got == []
    for subject in ("$JS.API.CONSUMER.MSG.NEXT.JOBS.alpha", "jobs.alpha", "_INBOX_alpha.>",
                    f"results.alpha.{job_id}", "$JS.API.STREAM.MSG.GET.JOBS",
                    "$JS.API.CONSUMER.DURABLE.CREATE.JOBS.steal"):
        assert f'violation for publish to "{subject.lower()}"' in said or \
            f'violation for subscription to "{subject.lower()}"' in said, (subject, said)
    assert fleet.job(job_id).state is JobState.QUEUED  # untouched, and nothing forged
    fleet.start_sensor("alpha")
    row = fleet.wait_job(job_id)
    assert row.state is JobState.DONE and row.delivery == 1  # alpha gets it, first time


def test_client_without_the_central_ca_refused_at_handshake(fleet: Fleet,
                                                            tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    pki.make_ca(foreign)  # a CA of its own, issuing a cert that claims to be alpha
    pki.issue(foreign, foreign / "alpha.pem", foreign / "alpha.key", "alpha",
              client_name="alpha")
    bundle = fleet.d.bundle("alpha")
    ctx = tls_context(bundle / "ca.pem", foreign / "alpha.pem", foreign / "alpha.key")
    connect, _ = sensor_connect(bundle, ctx)
    with pytest.raises(Exception) as caught:
        asyncio.run(connect())
    assert "Authorization" not in str(caught.value)  # refused before any authorization
    deadline = time.monotonic() + 5
    while "TLS handshake error" not in (fleet.root / "central" / "nats" /
                                        "nats-server.log").read_text(errors="replace"):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def local_result(port: int = 20200) -> Any:
    """A real ScanResult of one closed loopback port, made here rather than by a sensor."""
    from scanner.engine.run import run_scan

    return run_scan(loopback_settings(str(port), "fast"))[0]


def as_scan(result: Any, scan_id: str) -> Any:
    """The result under another scan ID (a job's results carry the job's)."""
    return result.model_copy(update={"scan": result.scan.model_copy(update={"id": scan_id})})


def test_spooled_result_republished_after_crash_not_rescanned(fleet: Fleet) -> None:
    """A sensor that died after spooling a result (before its ack) publishes the spooled
    result on restart and acks the redelivered job without scanning it again."""
    from scanner.fleet.protocol import ResultMessage, ResultStatus
    from scanner.fleet.sensor import Spool

    fleet.kill_sensor("alpha")
    job_id = fleet.submit("alpha", "127.0.0.1", "-p", "20201", "--discovery", "none")
    spooled = as_scan(local_result(), str(uuid.UUID(job_id)))
    body = ResultMessage(job_id=job_id, sensor="alpha", status=ResultStatus.DONE,
                         result=spooled).model_dump_json().encode()
    Spool(fleet.d.bundle("alpha") / "spool").put(job_id, body)
    fleet.start_sensor("alpha")
    row = fleet.wait_job(job_id)
    assert row.state is JobState.DONE and row.scan_id == spooled.scan.id
    deadline = time.monotonic() + 30
    while f"job {job_id} acknowledged" not in fleet.log("sensor-alpha"):
        assert time.monotonic() < deadline, fleet.log("sensor-alpha")
        time.sleep(0.1)
    assert f"job {job_id} (delivery" not in fleet.log("sensor-alpha")  # never scanned
    assert not (fleet.d.bundle("alpha") / "spool" / f"{job_id}.json").exists()
    assert len(scans_of(fleet, spooled.scan.id)) == 1


def test_collector_stores_one_result_per_job(tmp_path: Path) -> None:
    """Central's own deduplication by job ID, past the stream's duplicate window: a second,
    different result for a done job (a rescan) is counted, never stored; a result on
    another sensor's subject is dropped."""
    from scanner.fleet.central import Collector
    from scanner.fleet.layout import CentralDir, init_central
    from scanner.fleet.protocol import ResultMessage, ResultStatus

    config = init_central(tmp_path / "c", "127.0.0.1", 4222, ["127.0.0.1"], None, 5, 3)
    d = CentralDir(tmp_path / "c")
    ledger = Ledger(d.ledger)
    job = uuid.uuid4()  # a job's ID and its scan's, as submit makes them
    ledger.add(job.hex, "alpha", None, ["127.0.0.1"], time.time())
    collector = Collector(d, config)
    first, second = (as_scan(local_result(port), str(job)) for port in (20210, 20211))

    def message(result: Any) -> bytes:
        return ResultMessage(job_id=job.hex, sensor="alpha", status=ResultStatus.DONE,
                             result=result).model_dump_json().encode()

    assert "dropped" in collector.handle_result(f"results.beta.{job.hex}", message(first))
    assert "stored" in collector.handle_result(f"results.alpha.{job.hex}", message(first))
    assert "duplicate" in collector.handle_result(f"results.alpha.{job.hex}", message(second))
    row = ledger.get(job.hex)
    assert row is not None and row.scan_id == first.scan.id and row.duplicates == 1
    assert [s.scan_id for s in collector.store.scans()] == [first.scan.id]
    collector.close()
    ledger.close()


def test_sensor_added_while_central_runs_gets_jobs(fleet: Fleet, storescp: RunningPeer) -> None:
    fleet.add_sensor("gamma", "127.0.0.1/32")  # reloads the server, creates its consumer
    assert "Reloaded server configuration" in (
        fleet.dir / "nats" / "nats-server.log").read_text(errors="replace")
    fleet.start_sensor("gamma")
    fleet.wait_sensor_ready("gamma")
    job_id = fleet.submit("gamma", "127.0.0.1", "-p", str(storescp.info.port),
                          "--discovery", "none")
    assert fleet.wait_job(job_id).state is JobState.DONE


def test_result_over_the_message_limit_fails_the_job_plainly(
        tmp_path: Path, storescp: RunningPeer) -> None:
    """A result the server would refuse is reported as a failure, not retried forever."""
    f = Fleet(tmp_path, ack_wait=5, max_deliver=2)
    try:
        f.add_sensor("small", "127.0.0.0/8")
        conf = f.d.server_conf.read_text()
        f.d.server_conf.write_text(conf.replace("max_payload: 8388608", "max_payload: 8192"))
        f.start_central()
        f.start_sensor("small")
        f.wait_sensor_ready("small")
        job_id = f.submit("small", "127.0.0.1", "-p", str(storescp.info.port),
                          "--discovery", "none")  # about 20 kB of result
        row = f.wait_job(job_id)
        assert row.state is JobState.FAILED, row
        assert "exceeds the server's 8192-byte message limit" in (row.reason or "")
        assert not (f.d.bundle("small") / "spool" / f"{job_id}.json").exists()
    finally:
        f.stop()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_central_run_leaves_no_nats_server_behind(tmp_path: Path, how: int) -> None:
    from scanner.fleet.server import running_pid

    f = Fleet(tmp_path)
    try:
        f.start_central()
        server = running_pid(f.d)
        assert server is not None
        assert f.central is not None
        f.central.send_signal(how)
        f.central.wait(15)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{server}").exists() and b"nats-server" in Path(
                f"/proc/{server}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "nats-server outlived 'central run'"
            time.sleep(0.1)
    finally:
        f.stop()


def test_job_that_could_not_be_queued_is_failed_not_left_queued(tmp_path: Path) -> None:
    """A server without the streams (central run never ran): the publish finds no stream."""
    from scanner.fleet import server

    f = Fleet(tmp_path)
    f.add_sensor("alpha", "127.0.0.0/8")
    proc = server.start(f.d, "127.0.0.1", f.port)
    try:
        out = dicomscan("submit", str(f.dir), "--sensor", "alpha", "127.0.0.1", "-p", "104")
        assert out.returncode == 3 and "not queued" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        rows = Ledger(f.d.ledger).all()
        assert len(rows) == 1 and rows[0].state is JobState.FAILED
    finally:
        server.stop(proc)


def test_do_not_probe_list_travels_with_the_job(fleet: Fleet, storescp: RunningPeer,
                                                tmp_path: Path) -> None:
    """--exclude-file is read at central and enforced by the sensor's engine."""
    never = tmp_path / "never.txt"
    never.write_text("127.0.0.1 the test's own peer: do not touch\n")
    job_id = fleet.submit("alpha", "127.0.0.1", "127.0.0.2", "-p", str(storescp.info.port),
                          "--discovery", "none", "--exclude-file", str(never))
    row = fleet.wait_job(job_id)
    assert row.state is JobState.DONE, row
    from scanner.history.store import HistoryStore

    store = HistoryStore.open(fleet.dir / "history.sqlite")
    result = store.load(row.scan_id or "")
    store.close()
    assert "127.0.0.1" not in {h.address for h in result.hosts if h.ports}


def test_result_central_cannot_read_as_its_own_is_refused_and_recorded(fleet: Fleet) -> None:
    """Results a sensor publishes (from its spool, with its own credentials) that are of
    another major schema version, do not validate, are not JSON or carry another job's
    scan: each job fails with the reason in the ledger and in 'jobs', nothing is stored.
    The schema version and the scan ID were never checked: a 2.x result was stored as
    1.x, and a result naming another scan replaced that scan in the history."""
    from scanner.fleet.sensor import Spool

    fleet.kill_sensor("alpha")
    victim = fleet.submit("alpha", "127.0.0.1", "-p", "20205", "--discovery", "none")
    fleet.start_sensor("alpha")
    assert fleet.wait_job(victim).state is JobState.DONE
    fleet.kill_sensor("alpha")
    stored_before = fleet.history_scans()

    good = local_result(20206)

    def body(job_id: str, **change: Any) -> bytes:
        result = as_scan(good, str(uuid.UUID(job_id))).model_dump(mode="json")
        doc = {"job_id": job_id, "sensor": "alpha", "status": "done", "result": result}
        for key, value in change.items():
            if key == "result":
                doc["result"] = {**result, **value}
            else:
                doc[key] = value
        return json.dumps(doc).encode()

    cases = {
        "2.0": (lambda j: body(j, result={"schema_version": "2.0"}),
                "result refused: scan result of schema version '2.0'; this central reads "
                "schema 1.x"),
        "no version": (lambda j: body(j, result={"schema_version": None}),
                       "result refused: scan result of schema version 'None'"),
        "invalid": (lambda j: body(j, result={"hosts": "all of them"}),
                    "result refused: not a valid result message: 1 problem(s), first: "
                    "result.hosts: Input should be a valid list"),
        "not json": (lambda j: b'{"job_id": "' + j.encode() + b'", "status": "do',
                     "result refused: not JSON"),
        "other scan": (lambda j: body(j, result={"scan": {**good.scan.model_dump(mode="json"),
                                                          "id": str(uuid.UUID(victim))}}),
                       f"the result is scan '{uuid.UUID(victim)}', not the job's scan"),
    }
    spool = Spool(fleet.d.bundle("alpha") / "spool")
    jobs: dict[str, str] = {}
    for name, (make, _reason) in cases.items():
        job_id = fleet.submit("alpha", "127.0.0.1", "-p", "20207", "--discovery", "none")
        spool.put(job_id, make(job_id))
        jobs[name] = job_id
    fleet.start_sensor("alpha")  # republishes its spool first
    for name, (_make, reason) in cases.items():
        row = fleet.wait_job(jobs[name])
        assert row.state is JobState.FAILED and row.scan_id is None, (name, row)
        assert row.reason is not None and reason in row.reason, (name, row.reason)
    listed = dicomscan("jobs", str(fleet.dir), "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    waited = dicomscan("jobs", str(fleet.dir), "--wait", jobs["2.0"])
    assert waited.returncode == 3, waited.stdout + waited.stderr
    assert "schema version '2.0'" in waited.stdout + waited.stderr
    after = fleet.history_scans()
    assert [s["scan_id"] for s in after] == [s["scan_id"] for s in stored_before]
    victim_scan = next(s for s in after if s["scan_id"] == str(uuid.UUID(victim)))
    assert victim_scan["targets"] == ["127.0.0.1"] and victim_scan == next(
        s for s in stored_before if s["scan_id"] == victim_scan["scan_id"])


def test_damaged_spool_entries_are_set_aside_not_blocking_the_sensor(fleet: Fleet) -> None:
    """A FIFO, a folder, a symbolic link and a file larger than any message in the
    spool, and a truncated result: the sensor starts, sets the first four aside (the FIFO
    blocked it for ever, the folder stopped it, the large file was retried for ever),
    scans the queued job again, and central fails the job of the truncated result."""
    import os

    from scanner.fleet.layout import MAX_PAYLOAD

    fleet.kill_sensor("alpha")
    spool = fleet.d.bundle("alpha") / "spool"
    spool.mkdir(exist_ok=True)
    fifo_job = fleet.submit("alpha", "127.0.0.1", "-p", "20208", "--discovery", "none")
    cut_job = fleet.submit("alpha", "127.0.0.1", "-p", "20209", "--discovery", "none")
    os.mkfifo(spool / f"{fifo_job}.json")
    (spool / "0000folder.json").mkdir()
    (spool / "0000link.json").symlink_to("/etc/hostname")
    with (spool / "0000large.json").open("wb") as fh:
        fh.truncate(MAX_PAYLOAD + 1)  # sparse: no disk used
    body = json.dumps({"job_id": cut_job, "sensor": "alpha", "status": "done",
                       "result": local_result(20209).model_dump(mode="json")})
    (spool / f"{cut_job}.json").write_text(body[:len(body) // 2])
    fleet.start_sensor("alpha")
    fleet.wait_sensor_ready("alpha")
    row = fleet.wait_job(fifo_job)
    assert row.state is JobState.DONE, row
    cut = fleet.wait_job(cut_job)
    assert cut.state is JobState.FAILED and cut.reason == "result refused: not JSON", cut
    log = fleet.log("sensor-alpha")
    for name in (fifo_job, "0000folder", "0000link", "0000large"):
        assert (spool / f"{name}.unusable").exists() or (spool / f"{name}.unusable"
                                                         ).is_symlink(), name
        assert not (spool / f"{name}.json").exists() and not (
            spool / f"{name}.json").is_symlink(), name
    assert "is not a file; moved to" in log and "more than any message" in log
    assert "Traceback" not in log, log
