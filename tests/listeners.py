"""Listening sockets on several loopback addresses at once, served by one selector
thread, for the tests that count what a scan's connections do (tests/test_sweep.py,
tests/test_safety_rate.py)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Callable, Iterable, Iterator


@contextlib.contextmanager
def listening(endpoints: Iterable[tuple[str, int]],
              ready: Callable[[socket.socket, str], None], backlog: int = 64) -> Iterator[None]:
    """Listen on each (address, port); ``ready(listener, address)`` runs in the selector
    thread whenever a listener has a connection waiting. All closed on leaving."""
    sel = selectors.DefaultSelector()
    servers = []
    try:
        for host, port in endpoints:
            srv = socket.socket()
            servers.append(srv)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((host, port))
            srv.listen(backlog)
            srv.setblocking(False)
            sel.register(srv, selectors.EVENT_READ, host)
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                for key, _ in sel.select(0.05):
                    ready(key.fileobj, key.data)  # type: ignore[arg-type]

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(2)
    finally:
        for srv in servers:
            srv.close()
        sel.close()
