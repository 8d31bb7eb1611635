"""The sweep's bulk connector on real loopback sockets: open, refused, silent (timeout),
cancelled, and many at once; nothing is ever sent on a connection it opens."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from probes import connector
from probes.ports import probe_port
from scanner.model import PortState

pytestmark = pytest.mark.skipif(not connector.AVAILABLE, reason="epoll is Linux only")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv
    srv.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def test_open_refused_and_nothing_sent(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    refused = closed_port()

    async def main() -> tuple[object, object, object]:
        c = connector.Connector(1.0)
        try:
            opened = await probe_port("127.0.0.1", port, 1.0, c)
            shut = await probe_port("127.0.0.1", refused, 1.0, c)
            return opened, shut, c
        finally:
            c.close()

    (obs, conn), (shut, none), _ = asyncio.run(main())  # type: ignore[misc]
    assert obs.state is PortState.OPEN and conn is not None
    assert shut.state is PortState.CLOSED and none is None
    peer, _ = listener.accept()
    peer.settimeout(0.3)
    with pytest.raises((TimeoutError, socket.timeout)):
        peer.recv(1)  # the connection was handed over with not one byte sent
    peer.close()


def test_silent_port_times_out_and_a_cancelled_connect_is_dropped() -> None:
    # A listener whose accept queue is full drops further SYNs: the connect never completes.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    time.sleep(0.1)

    async def main() -> tuple[str, float, int]:
        c = connector.Connector(0.3)
        try:
            started = time.monotonic()
            obs, _ = await probe_port("127.0.0.1", port, 0.3, c)
            took = time.monotonic() - started
            task = asyncio.ensure_future(c.connect("127.0.0.1", port))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return obs.state.value, took, len(c._waiting)
        finally:
            c.close()

    try:
        state, took, left = asyncio.run(main())
    finally:
        for f in fillers:
            f.close()
        srv.close()
    assert state == "filtered"
    assert 0.25 <= took < 2.0
    assert left == 0  # the cancelled connect is no longer watched


def test_many_at_once_each_answered() -> None:
    refused = closed_port()

    async def main() -> list[PortState]:
        c = connector.Connector(2.0)
        try:
            hosts = [f"127.0.{i // 200}.{i % 200 + 1}" for i in range(600)]
            results = await asyncio.gather(*(probe_port(h, refused, 2.0, c) for h in hosts))
            return [obs.state for obs, _ in results]
        finally:
            c.close()

    states = asyncio.run(main())
    assert states == [PortState.CLOSED] * 600
