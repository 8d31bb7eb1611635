"""Caps, spacing and the global rate, measured by the peer: a local listener on several
loopback addresses records when each connection arrives and how many are open at once
per host, and the scanner (a real process) is run against it under each profile."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from scanner.engine.profiles import PROFILES
from scanner.model import ProfileName
from tests.listeners import listening

HOSTS = [f"127.0.0.{i}" for i in range(1, 5)]
HOLD = 0.3  # the peer keeps each connection this long, so connections overlap


@dataclass
class CountingPeer:
    ports: list[int]
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    open_now: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, conn: socket.socket, host: str) -> None:
        with conn:
            conn.settimeout(HOLD)
            end = time.monotonic() + HOLD
            try:
                while time.monotonic() < end and conn.recv(65536):
                    pass
            except OSError:
                pass
            # Counted down before the close the scanner sees: once it has seen it, it may
            # connect again, and that accept must not find this one still counted.
            with self.lock:
                self.open_now[host] -= 1

    def accepted(self, srv: socket.socket) -> None:
        conn, _ = srv.accept()
        host = srv.getsockname()[0]
        with self.lock:
            self.arrivals.append((time.monotonic(), host))
            self.open_now[host] += 1
            self.most[host] = max(self.most[host], self.open_now[host])
        threading.Thread(target=self.handle, args=(conn, host), daemon=True).start()


@pytest.fixture
def peer() -> Iterator[CountingPeer]:
    # Free ports that are free on every one of the hosts.
    probe = [socket.socket() for _ in range(6)]
    for s in probe:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in probe]
    for s in probe:
        s.close()
    p = CountingPeer(ports)
    with listening([(host, port) for host in HOSTS for port in ports],
                   lambda listener, _host: p.accepted(listener), backlog=128):
        yield p


def scan(peer: CountingPeer, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", f"{HOSTS[0]}-{HOSTS[-1].rsplit('.', 1)[1]}",
         "-p", ",".join(map(str, peer.ports)), "--format", "json", "--fail-on", "never",
         "-q", "--timeout", "1", *extra],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def most_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("profile", [p.value for p in ProfileName])
def test_caps_spacing_and_rate_hold_under_each_profile(peer: CountingPeer, profile: str) -> None:
    prof = PROFILES[ProfileName(profile)]
    doc = scan(peer, "--profile", profile)
    assert doc["scan"]["max_rate"] == prof.max_rate  # type: ignore[index]
    everyone = sorted(t for t, _ in peer.arrivals)
    # Every port of every host was connected to at least once.
    assert len(everyone) >= len(HOSTS) * len(peer.ports)
    for host in HOSTS:
        assert 1 <= peer.most[host] <= prof.per_host_connections, (host, peer.most[host])
        mine = sorted(t for t, h in peer.arrivals if h == host)
        # Accept times jitter by the peer's scheduling (tens of ms on a loaded machine): a
        # burst would show gaps near zero, so single gaps get a wide margin, and runs of
        # five starts, which jitter cannot compress much, a tight one.
        gaps = [b - a for a, b in itertools.pairwise(mine)]
        assert min(gaps) >= prof.probe_spacing * 0.2, (host, min(gaps))
        spans = [b - a for a, b in zip(mine, mine[4:], strict=False)]
        assert min(spans) >= 4 * prof.probe_spacing * 0.8, (host, min(spans))
    assert most_in_window(everyone, 1.0) <= prof.max_rate + 1


def test_global_rate_cap_binds_across_hosts(peer: CountingPeer) -> None:
    # safe spaces each host by 0.1 s: 4 hosts alone would reach 40 connections/s.
    rate = 8.0
    started = time.monotonic()
    doc = scan(peer, "--profile", "safe", "--max-rate", str(rate))
    assert doc["scan"]["max_rate"] == rate  # type: ignore[index]
    everyone = sorted(t for t, _ in peer.arrivals)
    n = len(everyone)
    assert n >= len(HOSTS) * len(peer.ports)
    assert most_in_window(everyone, 1.0) <= rate + 1
    # A burst would arrive milliseconds apart; the peer's own scheduling jitters each
    # arrival by tens of ms on a busy machine, so single gaps get a wide margin and
    # runs of five arrivals a tight one.
    gaps = [b - a for a, b in itertools.pairwise(everyone)]
    assert min(gaps) >= 0.25 / rate, min(gaps)
    spans = [b - a for a, b in zip(everyone, everyone[4:], strict=False)]
    assert min(spans) >= 4 / rate * 0.8, min(spans)
    # And the whole scan took at least as long as the rate implies.
    assert everyone[-1] - started >= (n - 1) / rate * 0.9
