"""The batched port phase on real loopback sockets: the in-process sweep and its helper
processes. Open, refused and silent ports; nothing but the A-ASSOCIATE-RQ is ever the
first thing a port hears; caps and the rate cap hold across processes; a helper that
dies costs no host."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from probes import sweep, sweep_remote
from probes.sweep_core import Attempt
from scanner.engine import job as job_module
from scanner.engine.job import ScanJob
from scanner.engine.settings import build_settings
from scanner.lab.process import free_port
from scanner.model import PortState, ScanResult
from tests.listeners import listening

pytestmark = pytest.mark.skipif(not sweep.AVAILABLE, reason="epoll is Linux only")


@dataclass
class Peer:
    """Listeners on many loopback addresses; each connection's arrival time, first bytes
    and how many were open at once per address are kept. A connection is closed as soon
    as its first bytes are in (or after a moment of silence)."""

    port: int
    first: dict[str, bytes] = field(default_factory=dict)
    arrivals: dict[str, float] = field(default_factory=dict)  # each host's first connection
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, conn: socket.socket, host: str, first: bool) -> None:
        with conn:
            conn.settimeout(2.0)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if first:  # the host's first connection: the sweep's
                with self.lock:
                    self.first[host] = data


@pytest.fixture
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    hosts: list[str] = request.param
    p = Peer(free_port())

    def ready(listener: socket.socket, host: str) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with p.lock:
            first = host not in p.arrivals
            p.arrivals.setdefault(host, time.monotonic())
        conn.setblocking(True)
        threading.Thread(target=p.serve, args=(conn, host, first), daemon=True).start()

    with listening([(host, p.port) for host in hosts], ready):
        yield p


def run_job(target: str, ports: str, *extra: str) -> ScanResult:
    from scanner.cli.scan import scan as scan_command

    args = [target, "-p", ports, "--profile", "fast", "--discovery", "none", *extra]
    settings = build_settings(scan_command.make_context("scan", args).params)
    return asyncio.run(ScanJob(settings).run())


def test_open_refused_silent_and_nothing_sent_first() -> None:
    """The in-process sweep alone: an open socket is handed over with nothing sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    open_port = listener.getsockname()[1]
    # A listener whose accept queue is full drops further SYNs: the connect never completes.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    silent = full.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", silent))
        fillers.append(f)
    time.sleep(0.1)
    refused = free_port()
    opened: list[socket.socket] = []
    done: dict[str, list[Attempt]] = {}

    async def main() -> float:
        s = sweep.Sweep(timeout=0.3, slots=sweep.Slots(16), per_host=8, spacing=0.0,
                        pace=lambda now: 0.0,
                        on_open=lambda h, p, sock, rtt: opened.append(sock),
                        on_done=lambda h, attempts: done.__setitem__(h, attempts))
        started = time.monotonic()
        try:
            s.add("127.0.0.1", (open_port, refused, silent))
            s.no_more()
            await s.finished()
            return time.monotonic() - started
        finally:
            s.close()

    try:
        took = asyncio.run(main())
        states = {port: (state, reason) for port, state, reason, _ in done["127.0.0.1"]}
        assert states[open_port] == ("open", "connected")
        assert states[refused] == ("closed", "connection refused")
        assert states[silent] == ("filtered", "no answer within timeout")
        assert 0.25 <= took < 2.0
        peer_side, _ = listener.accept()
        peer_side.settimeout(0.3)
        with pytest.raises((TimeoutError, socket.timeout)):
            peer_side.recv(1)  # handed over with not one byte sent
        peer_side.close()
    finally:
        for sock in (*opened, *fillers, listener, full):
            sock.close()


HOSTS = [f"127.0.21.{i}" for i in range(1, 129)]


@pytest.mark.parametrize("peer", [HOSTS], indirect=True)
def test_helper_process_shares_the_sweep_and_the_rate(peer: Peer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One helper process takes half the hosts. Every open port is found and first hears
    an A-ASSOCIATE-RQ (passed over from the helper untouched), and the rate cap holds for
    the two processes together: each has half of it."""
    reported: list[str] = []
    real_done = sweep_remote.RemoteSweep._done

    def counting(self: sweep_remote.RemoteSweep, line: str) -> None:
        reported.append(line.split("\t", 1)[0])
        real_done(self, line)

    monkeypatch.setattr(sweep_remote.RemoteSweep, "_done", counting)
    monkeypatch.setattr(job_module, "helpers_for", lambda settings: 1)
    rate = 200
    result = run_job("127.0.21.0/24", str(peer.port), "--max-rate", str(rate))
    found = {h.address for h in result.hosts
             if any(p.port == peer.port and p.state is PortState.OPEN for p in h.ports)}
    assert found == set(HOSTS)
    assert 100 <= len(reported) <= 154, len(reported)  # about half of the 254 hosts
    assert {peer.first[h][:1] for h in HOSTS} == {b"\x01"}  # A-ASSOCIATE-RQ, every one
    # Each host's first connection is the sweep's. The helper's share of the rate is half:
    # its 64 or so listening hosts (they come first) take at least 63 / 100 s to start.
    # At the whole rate (no share) they would take half that.
    helper_open = sorted(peer.arrivals[h] for h in set(reported) & set(HOSTS))
    assert len(helper_open) >= 50
    least = (len(helper_open) - 1) / (rate / 2)
    assert helper_open[-1] - helper_open[0] >= 0.7 * least, (helper_open[-1] - helper_open[0])


def test_the_scan_keeps_only_its_share_of_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.cli.scan import scan as scan_command

    monkeypatch.setattr(job_module, "helpers_for", lambda settings: 3)
    args = ["127.0.0.0/20", "-p", "104", "--profile", "fast", "--max-rate", "1000"]
    job = ScanJob(build_settings(scan_command.make_context("scan", args).params))
    assert job._rate.take(100.0) == 0.0
    assert job._rate.take(100.0) == pytest.approx(4 / 1000)  # 250/s: a quarter of the cap


@pytest.mark.parametrize("peer", [HOSTS[:8]], indirect=True)
def test_a_finished_helper_gives_its_slots_and_rate_back(
        peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the helper has ended and every socket it passed over is released, its share of
    the connection slots and of the rate is the scan's again, so the live hosts' follow-up
    probes are not left with half of either for the rest of the scan."""
    from scanner.cli.scan import scan as scan_command

    made: list[sweep.Slots] = []

    class Kept(sweep.Slots):
        def __init__(self, value: int) -> None:
            super().__init__(value)
            made.append(self)

    opened_by_helper: list[str] = []
    real_open = sweep_remote.RemoteSweep.__init__

    def watching(self: sweep_remote.RemoteSweep, **kwargs: Any) -> None:
        on_open = kwargs["on_open"]

        def noting(host: str, *rest: Any) -> None:
            opened_by_helper.append(host)
            on_open(host, *rest)

        real_open(self, **{**kwargs, "on_open": noting})

    monkeypatch.setattr(sweep, "Slots", Kept)
    monkeypatch.setattr(sweep_remote.RemoteSweep, "__init__", watching)
    monkeypatch.setattr(job_module, "helpers_for", lambda settings: 1)
    args = ["127.0.21.0/27", "-p", str(peer.port), "--profile", "fast", "--discovery", "none",
            "--max-rate", "1000"]
    settings = build_settings(scan_command.make_context("scan", args).params)
    job = ScanJob(settings)
    assert job._rate.take(100.0) == 0.0
    assert job._rate.take(100.0) == pytest.approx(2 / 1000)  # half the rate while it sweeps
    result = asyncio.run(job.run())
    assert sorted(h.address for h in result.hosts
                  if any(p.state is PortState.OPEN for p in h.ports)) == HOSTS[:8]
    assert opened_by_helper  # the helper passed open sockets over, and they were released
    [slots] = made
    assert slots.total == settings.max_concurrency
    assert slots._value == slots.total  # every slot back and free
    now = time.monotonic() + 100.0
    assert job._rate.take(now) == 0.0
    assert job._rate.take(now) == pytest.approx(1 / 1000)  # the whole rate again


@pytest.mark.parametrize("peer", [HOSTS[:8]], indirect=True)
@pytest.mark.parametrize("helper", ["alive", "dies", "garbles"])
def test_a_large_sweep_counts_quiet_hosts_and_a_dead_helper_costs_none(
        peer: Peer, helper: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A scan of more than 256 addresses: the helper counts its quiet hosts itself (Q
    records); one that dies at once, or sends what does not parse, hands every host back
    to the scan."""
    scripts = {
        "dies": "import sys\nsys.exit(3)\n",
        "garbles": ("import socket, sys, time\n"
                    "s = socket.socket(fileno=int(sys.argv[1]))\n"
                    "s.recv(65536)\ns.send(b'D no tabs here')\ntime.sleep(30)\n"),
    }
    if helper in scripts:
        fake = tmp_path / "fake_worker.py"
        fake.write_text(scripts[helper])
        monkeypatch.setattr(sweep_remote, "WORKER", fake)
    monkeypatch.setattr(job_module, "helpers_for", lambda settings: 1)
    result = run_job("127.0.21.0/23", str(peer.port))
    found = sorted(h.address for h in result.hosts
                   if any(p.state is PortState.OPEN for p in h.ports))
    assert found == HOSTS[:8]
    assert result.scan.quiet is not None
    assert result.scan.quiet.hosts + len(result.hosts) == 510  # every address accounted for
    assert ("sweep helper ended early (exit 3)" in caplog.text) == (helper == "dies")
    assert ("could not be read (ValueError" in caplog.text) == (helper == "garbles")


def test_per_host_cap_and_spacing_in_the_sweep() -> None:
    """A gentle profile through the sweep: one connection at a time per host (an open one
    holds its host slot until released), each start spaced from the last."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    ports = (srv.getsockname()[1], *(free_port() for _ in range(3)))
    starts: list[float] = []
    hold = 0.2
    spacing = 0.05

    def pace(now: float) -> float:
        starts.append(now)  # called right before each connect (no rate cap: always 0)
        return 0.0

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def opened(h: str, p: int, sock: socket.socket, rtt: float) -> None:
            def release() -> None:
                sock.close()
                s.release(h)
            loop.call_later(hold, release)

        s = sweep.Sweep(timeout=0.5, slots=sweep.Slots(32), per_host=1, spacing=spacing,
                        pace=pace, on_open=opened, on_done=lambda h, attempts: None)
        try:
            s.add("127.0.0.1", ports)
            s.no_more()
            await s.finished()
        finally:
            s.close()

    asyncio.run(main())
    srv.close()
    assert len(starts) == 4
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= hold - 0.01  # the open port held the only host slot
    assert all(g >= spacing - 0.002 for g in gaps), gaps


@pytest.mark.parametrize("failures", [3, 10_000])
def test_out_of_descriptors_waits_then_says_not_measured(
        failures: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """socket() failing with EMFILE: a few times, the sweep waits and goes on with every
    result right; for good, each port is reported not measured and the sweep still ends."""
    import _socket
    import errno
    import types

    from probes import sweep_core

    calls = 0

    def flaky(*args: int) -> _socket.socket:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise OSError(errno.EMFILE, "Too many open files")
        return _socket.socket(*args)

    monkeypatch.setattr(sweep_core, "_socket", types.SimpleNamespace(socket=flaky))
    monkeypatch.setattr(sweep_core, "CREATE_TRIES", 5)
    refused = [free_port() for _ in range(3)]
    done: dict[str, list[Attempt]] = {}

    async def main() -> None:
        s = sweep.Sweep(timeout=0.5, slots=sweep.Slots(8), per_host=8, spacing=0.0,
                        pace=lambda now: 0.0, on_open=lambda *a: None,
                        on_done=lambda h, attempts: done.__setitem__(h, attempts))
        try:
            s.add("127.0.0.1", tuple(refused))
            s.no_more()
            await asyncio.wait_for(s.finished(), 10)
        finally:
            s.close()

    asyncio.run(main())
    states = sorted((state, reason) for _, state, reason, _ in done["127.0.0.1"])
    if failures == 3:
        assert states == [("closed", "connection refused")] * 3
    else:
        assert states == [("filtered", "not measured: Too many open files")] * 3


@pytest.mark.parametrize("peer", [HOSTS[:2]], indirect=True)
def test_without_epoll_each_port_is_connected_on_its_own(
        peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the sweep is not available the engine connects port by port through the
    host's gate, with the same results."""
    monkeypatch.setattr(sweep, "AVAILABLE", False)
    closed = free_port()
    result = run_job("127.0.21.1-2", f"{peer.port},{closed}")
    for host in result.hosts:
        states = {p.port: (p.state, p.reason) for p in host.ports}
        assert states == {peer.port: (PortState.OPEN, "connected"),
                          closed: (PortState.CLOSED, "connection refused")}
    assert {peer.first[h][:1] for h in HOSTS[:2]} == {b"\x01"}


@pytest.mark.parametrize("peer", [HOSTS[:2]], indirect=True)
def test_a_helper_that_cannot_start_leaves_the_scan_to_sweep_alone(
        peer: Peer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import errno

    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(sweep_remote.subprocess, "Popen", no_process)
    monkeypatch.setattr(job_module, "helpers_for", lambda settings: 1)
    result = run_job("127.0.21.1-2", str(peer.port))
    assert sorted(h.address for h in result.hosts
                  if any(p.state is PortState.OPEN for p in h.ports)) == HOSTS[:2]
    assert "sweep helper could not start" in caplog.text
