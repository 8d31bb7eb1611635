"""One broken device never costs another's results.

Each hostile peer (tests/hostile.py) is scanned in the same run as a healthy real DCMTK
storescp on the same loopback host: the healthy service keeps its fingerprint and its
``software-vulnerable-version`` finding (DCMTK 3.6.7 is in the advisories), the exit code
stays 1 (a high finding, ``--fail-on high``), and the broken peer's oddity is recorded as
an observation on its own service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scanner.engine import registry
from scanner.engine.job import ScanJob
from scanner.lab import peers
from scanner.model import ScanResult, ScanSettings, Timeouts
from scanner.outputs.table import to_table
from tests.bad_certs import bad_ders, good_der, server_flight
from tests.conftest import needs_dcmtk
from tests.hostile import MARKUP_UID, hostile_peer
from tests.tls_peers import read_client_hello, scripted

TIMEOUT = "2"
# The scanner's own peak RSS for a two-port loopback scan is ~80-110 MB; before the cap on
# command fragments a fragment stream grew it by ~270 MB a second.
RSS_BOUND_MB = 250

pytestmark = [needs_dcmtk, pytest.mark.peers]


@dataclass
class Scan:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float

    @property
    def doc(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    def service(self, port: int) -> dict[str, Any]:
        [host] = self.doc["hosts"]
        [svc] = [s for s in host["services"] if s["port"] == port]
        return svc

    def kinds(self, port: int, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.service(port)["observations"] if o["kind"] == kind]

    def verdict(self, port: int, rule: str) -> str | None:
        found = [f["status"] for f in self.doc["findings"] if f["port"] == port
                 and f["rule_id"] == rule]
        return found[0] if found else None


# Runs the scan as a grandchild so ru_maxrss (RUSAGE_CHILDREN) is the scan's alone.
_MEASURE = """
import resource, subprocess, sys
out = subprocess.run(sys.argv[1:], capture_output=True)
sys.stdout.buffer.write(out.stdout)
sys.stderr.buffer.write(out.stderr)
sys.stderr.write("\\nMAXRSS_KB=%d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(out.returncode)
"""


def scan(ports: list[int], *extra: str, fmt: str = "json", timeout: float = 120) -> Scan:
    argv = [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p",
            ",".join(map(str, ports)), "--format", fmt, "--fail-on", "high",
            "--timeout", TIMEOUT, *extra]
    out = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True,
                         timeout=timeout)
    stderr, _, rss = out.stderr.decode(errors="replace").rpartition("\nMAXRSS_KB=")
    return Scan(out.returncode, out.stdout.decode(errors="replace"), stderr,
                int(rss.strip()) / 1024)


def assert_healthy(run: Scan, port: int) -> None:
    """The real storescp keeps everything a scan of it alone earns."""
    assert "Traceback" not in run.stderr, run.stderr
    svc = run.service(port)
    assert svc["name"] == "dicom"
    assert svc["product"] == "DCMTK", svc
    assert run.verdict(port, "software-vulnerable-version") == "fail"
    assert run.verdict(port, "dicom-echo-open") == "fail"
    assert run.returncode == 1, run.stderr


@pytest.mark.parametrize(
    "behaviour, detail",
    [
        ("status-missing", "response without a Status"),
        ("status-short", "Status element is 1 bytes long, not 2"),
        ("status-odd", "Status element is 3 bytes long, not 2"),
        ("pdv-overrun", "PDV declares"),
        ("tiny-pdu", "maximum PDU length of 4 bytes"),
    ],
)
def test_broken_dimse_peer_is_an_observation(behaviour: str, detail: str) -> None:
    with peers.start_storescp() as healthy, hostile_peer(behaviour) as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    echo = [o for o in run.kinds(bad.port, "dicom-operation") if o["operation"] == "C-ECHO"]
    assert echo and echo[0]["outcome"] == "error" and detail in echo[0]["detail"], echo
    assert run.kinds(bad.port, "probe-error") == []  # read as an answer, not a crash
    assert run.doc["scan"]["errors"] == []
    # An echo answered with garbage is no evidence of an open echo: never a pass.
    assert run.verdict(bad.port, "dicom-echo-open") != "pass"


def _settings(ports: list[int]) -> ScanSettings:
    return ScanSettings(
        targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=ports,
        max_concurrency=64, per_host_connections=8, probe_spacing=0.0,
        timeouts=Timeouts(connect=2.0, dicom=2.0, dimse=2.0, host=60.0),
    )


def test_probe_crash_is_contained_to_its_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a probe raises on one service, the other services, the later probes and
    the host analysis still run; the crash is an observation and a scan error."""
    original = registry.follow_up_probes

    with peers.start_storescp() as healthy, hostile_peer("reject") as bad:
        async def crash(ctx: Any, svc: Any) -> None:
            if svc.port == bad.port:
                raise ValueError("peer-made \x1b[31m state")

        monkeypatch.setattr(registry, "follow_up_probes", lambda s: (crash, *original(s)))
        result: ScanResult = asyncio.run(ScanJob(_settings([healthy.info.port, bad.port])).run())
    [host] = result.hosts
    services = {s.port: s for s in host.services}
    assert services[healthy.info.port].product == "DCMTK"
    assert host.role is not None  # the host analysis ran
    [error] = [o for o in services[bad.port].observations if o.kind == "probe-error"]
    assert (error.probe, error.exception) == ("crash", "ValueError")
    assert [e.message for e in result.scan.errors] == [
        f"port {bad.port}: crash failed: ValueError: peer-made \x1b[31m state"
    ]
    rules = {(f.port, f.rule_id): f.status.value for f in result.findings}
    assert rules[(healthy.info.port, "software-vulnerable-version")] == "fail"
    assert "\x1b" not in to_table(result)  # the error line is escaped too


def test_command_fragments_without_end_keep_memory_bounded() -> None:
    with peers.start_storescp() as healthy, hostile_peer("fragments") as bad:
        run = scan([healthy.info.port, bad.port], "--timeout", "4")
    assert run.max_rss_mb < RSS_BOUND_MB, f"peak RSS {run.max_rss_mb:.0f} MB"
    assert_healthy(run, healthy.info.port)
    echo = [o for o in run.kinds(bad.port, "dicom-operation") if o["operation"] == "C-ECHO"]
    assert "command set exceeds" in echo[0]["detail"], echo


def test_peer_text_is_escaped_in_the_table_and_exact_in_json() -> None:
    with peers.start_storescp() as healthy, hostile_peer("markup") as bad:
        table = scan([healthy.info.port, bad.port], fmt="table")
        run = scan([healthy.info.port, bad.port])
    assert "Traceback" not in table.stderr, table.stderr
    assert table.returncode == 1
    assert "fo-dicom [/x]" in table.stdout
    assert "\x1b" not in table.stdout
    # Quiet: pydicom's warning on the control characters in the UID stays off stderr.
    assert "Warning" not in table.stderr and "warn" not in table.stderr, table.stderr
    # ... and -v records it in the log instead, as text.
    with peers.start_storescp() as other, hostile_peer("markup") as odd:
        verbose = scan([other.info.port, odd.port], "-v")
    assert "peer A-ASSOCIATE-AC:" in verbose.stderr, verbose.stderr
    assert "\x1b" not in verbose.stderr.split("peer A-ASSOCIATE-AC:", 1)[1].split("\n", 1)[0]
    [detect] = [o for o in run.kinds(bad.port, "dicom-association") if "detect" in o["purpose"]]
    assert detect["peer"]["implementation_class_uid"] == MARKUP_UID.decode()
    assert detect["peer"]["implementation_version_name"] == "fo-dicom [/x]"
    assert_healthy(run, healthy.info.port)
    # An ANSI/OSC sequence in any peer string is shown as text, never sent to the terminal.
    doc = run.doc
    for svc in doc["hosts"][0]["services"]:
        if svc["port"] == bad.port:
            svc["version"] = "[/x] \x1b]0;pwned\x07\x1b[2J\x9b31m"
    text = to_table(ScanResult.model_validate(doc))
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m" in text


def test_one_byte_reject_is_dicom_and_gets_no_client_hello() -> None:
    with peers.start_storescp() as healthy, hostile_peer("rj-1byte") as bad:
        run = scan([healthy.info.port, bad.port])
        received = bad.received
    assert_healthy(run, healthy.info.port)
    assert run.service(bad.port)["name"] == "dicom"
    assert all(r[:1] == b"\x01" for r in received if r), [r[:6] for r in received]


@pytest.mark.parametrize("name", ["version", "duplicate-extension"])
def test_refused_server_certificate_is_recorded(name: str) -> None:
    der = bad_ders()[name]

    def serve(conn: socket.socket) -> None:
        hello = read_client_hello(conn)
        if hello[:1] == b"\x16":
            conn.sendall(server_flight(hello, der))
        conn.settimeout(0.3)
        with contextlib.suppress(OSError):
            conn.recv(65536)

    with peers.start_storescp() as healthy, scripted(serve) as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    assert run.service(bad.port)["tls"] is True
    errors = run.kinds(bad.port, "probe-error")
    certs = run.kinds(bad.port, "tls-certificate")
    if name == "version":
        assert [e["probe"] for e in errors] == ["tls-certificate"], errors
        assert "InvalidVersion" in errors[0]["message"]
    else:
        assert certs and certs[0]["sans"] == [] and errors == []
    assert run.doc["scan"]["errors"] == []


def test_device_that_stops_after_one_association_gets_no_pass() -> None:
    """It accepted Verification on the detection association and then took no more
    connections: no C-ECHO was ever sent, so dicom-echo-open is not-checked, not a pass."""
    with peers.start_storescp() as healthy, hostile_peer("one-shot") as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    assert run.kinds(bad.port, "dicom-operation") == []
    for rule in ("dicom-echo-open", "dicom-query-open", "dicom-retrieve-open",
                 "dicom-store-open"):  # fmt: skip
        assert run.verdict(bad.port, rule) == "not-checked", rule
    [echo] = [f for f in run.doc["findings"] if f["port"] == bad.port
              and f["rule_id"] == "dicom-echo-open"]  # fmt: skip
    assert "C-ECHO was never sent" in echo["evidence"]["reason"]


def test_a_device_too_busy_for_the_access_checks_gets_no_pass() -> None:
    """Accepted on the detection association, then every association rejected as
    transient congestion: a refusal of nobody in particular, so whether it lets unknown
    calling AEs in, and what they may do, is not-checked (it read as refused: a pass)."""
    with peers.start_storescp() as healthy, hostile_peer("busy-after-first") as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    assert run.verdict(bad.port, "dicom-called-ae-not-enforced") == "fail"  # it said so
    for rule in ("dicom-calling-ae-not-validated", "dicom-echo-open", "dicom-query-open",
                 "dicom-retrieve-open", "dicom-store-open"):
        assert run.verdict(bad.port, rule) == "not-checked", rule
    [calling] = [f for f in run.doc["findings"] if f["port"] == bad.port
                 and f["rule_id"] == "dicom-calling-ae-not-validated"]
    assert "rejected-transient" in calling["evidence"]["reject"]
    assert "not about the caller" in calling["evidence"]["reason"]


def test_ae_guessing_cut_short_by_a_busy_device_is_no_pass(tmp_path: Path) -> None:
    """A few titles refused, then the device turned busy: the titles left untried prove
    nothing (that was a pass, "no title guessable"), and a busy rejection recognises no
    title (it read as "title right, calling AE refused": a fail)."""
    words = tmp_path / "titles.txt"
    words.write_text("".join(f"GUESS{i}\n" for i in range(20)))
    with peers.start_storescp() as healthy, hostile_peer("enforce-then-busy") as bad:
        run = scan([healthy.info.port, bad.port], "--ae-guess", "--ae-wordlist", str(words))
    assert_healthy(run, healthy.info.port)
    [guess] = run.kinds(bad.port, "dicom-ae-guess")
    assert guess["accepted_titles"] == [] and 1 <= guess["tried"] < 20
    assert guess["stopped"].startswith(f"stopped after {guess['tried']} of 20 titles")
    assert "rejected-transient" in guess["stopped"]
    [finding] = [f for f in run.doc["findings"] if f["port"] == bad.port
                 and f["rule_id"] == "dicom-ae-title-guessable"]
    assert finding["status"] == "not-checked"
    assert finding["evidence"]["reason"] == guess["stopped"]


def test_a_device_out_of_resources_gets_no_pass() -> None:
    """Every request answered "Refused: Out of Resources" (0xA700): the device is at
    capacity, which says nothing about whether an unknown peer may echo, query or
    retrieve (it read as refused: three passes)."""
    with peers.start_storescp() as healthy, hostile_peer("out-of-resources") as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    ops = [o for o in run.kinds(bad.port, "dicom-operation") if o["operation"] != "C-STORE"]
    assert {o["operation"] for o in ops} >= {"C-ECHO", "C-FIND"}
    assert {o["outcome"] for o in ops} == {"busy"} and {o["status"] for o in ops} == {0xA700}
    for rule in ("dicom-echo-open", "dicom-query-open", "dicom-retrieve-open"):
        assert run.verdict(bad.port, rule) == "not-checked", rule


@pytest.mark.parametrize(("behaviour", "status"),
                         [("processing-failure", 0x0110), ("identifier-mismatch", 0xA900)])
def test_a_device_that_fails_every_request_gets_no_pass(behaviour: str, status: int) -> None:
    """Every request answered with a failure that refuses nothing: "Processing failure"
    or "Identifier does not match SOP Class". The request failed, which says nothing about
    whether an unknown peer may make it (it read as refused: three passes)."""
    with peers.start_storescp() as healthy, hostile_peer(behaviour) as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    ops = [o for o in run.kinds(bad.port, "dicom-operation") if o["operation"] != "C-STORE"]
    assert {o["operation"] for o in ops} >= {"C-ECHO", "C-FIND"}
    assert {o["outcome"] for o in ops} == {"failed"} and {o["status"] for o in ops} == {status}
    for rule in ("dicom-echo-open", "dicom-query-open", "dicom-retrieve-open"):
        assert run.verdict(bad.port, rule) == "not-checked", rule


def test_tarpit_ports_do_not_cost_the_healthy_service_its_findings() -> None:
    """32 silent ports beside a real storescp, safe-profile gate (2 connections, 0.1 s
    apart): identification fits the host's time, their follow-ups do not. The host
    analysis still runs on what was found, so DCMTK keeps its fingerprint and findings."""
    with contextlib.ExitStack() as stack:
        silent = [stack.enter_context(hostile_peer("silent")).port for _ in range(32)]
        healthy = stack.enter_context(peers.start_storescp())
        ports = sorted([*silent, healthy.info.port])
        settings = ScanSettings(
            targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=ports,
            max_concurrency=64, per_host_connections=2, probe_spacing=0.1,
            timeouts=Timeouts(connect=1.0, dicom=1.0, dimse=1.0, host=24.0),
        )
        result: ScanResult = asyncio.run(ScanJob(settings).run())
    [host] = result.hosts
    assert any("host time limit" in e for e in host.errors), host.errors
    services = {s.port: s for s in host.services}
    assert services[healthy.info.port].product == "DCMTK"
    rules = {(f.port, f.rule_id): f.status.value for f in result.findings}
    assert rules[(healthy.info.port, "software-vulnerable-version")] == "fail"
    assert rules[(healthy.info.port, "dicom-echo-open")] == "fail"


def test_catch_all_web_server_with_endless_body_is_no_pacs() -> None:
    with peers.start_storescp() as healthy, hostile_peer("http-endless") as bad:
        run = scan([healthy.info.port, bad.port])
    assert_healthy(run, healthy.info.port)
    svc = run.service(bad.port)
    assert svc["name"] == "http" and svc["product"] is None
    checks = run.kinds(bad.port, "http-check")
    assert checks and all(c["body_complete"] is False for c in checks if c["status"] == 200)
    assert run.verdict(bad.port, "http-unauthenticated") == "not-checked"


def test_reset_right_after_accept_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether the RST beats connect() home is timing; the verdict must not be."""
    from probes import ports

    async def reset(host: str, port: int, timeout: float) -> ports.OpenConnection:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(ports, "open_stream", reset)
    obs, conn = asyncio.run(ports.probe_port("127.0.0.1", 9, 1.0))
    assert (obs.state.value, conn) == ("open", None)
    assert "reset" in obs.reason
    with hostile_peer("rst") as bad:  # and on a real socket, whichever way the race goes
        run = scan([bad.port])
    [port] = run.doc["hosts"][0]["ports"]
    assert port["state"] == "open", port


@contextlib.contextmanager
def one_at_a_time_tls(hold: float) -> Iterator[int]:
    """A TLS-ish server with one worker: it answers each connection in turn, ``hold``
    seconds after its hello (the scripted flight of tests/bad_certs.py, one suite); the
    others wait in the backlog, as on a device that serves one connection at a time."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                hello = read_client_hello(conn)
                time.sleep(hold)  # a slow device: each connection takes its time
                if hello[:1] == b"\x16":
                    conn.sendall(server_flight(hello, good_der()))
                conn.settimeout(0.2)
                with contextlib.suppress(TimeoutError):
                    conn.recv(65536)

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        worker.join(5)
        listener.close()


def test_one_connection_at_a_time_server_is_measured_in_turn() -> None:
    """With 64 connections at once (fast), the hellos queue behind each other and time
    out; asked again one at a time, every version is measured, so the TLS rules judge."""
    with peers.start_storescp() as healthy, one_at_a_time_tls(0.4) as port:
        run = scan([healthy.info.port, port], "--profile", "fast", "--timeout", "1.5")
    assert_healthy(run, healthy.info.port)
    versions = {v["version"]: v["outcome"] for v in run.kinds(port, "tls-version")}
    assert "no-answer" not in versions.values(), versions
    assert run.verdict(port, "tls-legacy-protocol") == "fail"  # TLS 1.0 is accepted
    assert run.verdict(port, "tls-weak-cipher") in ("pass", "fail")
