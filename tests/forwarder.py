"""A counting TCP forwarder on loopback, in front of a real peer: what a scan costs the
device, counted on the wire (connections, and each one's first bytes), not by the
scanner's own bookkeeping. ``die()`` stops it listening, pending connections reset and
new ones refused, as when the device behind it goes down."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


class Forwarder:
    def __init__(self, upstream: int, on_closed: Callable[[int], None] | None = None,
                 on_data: Callable[[int, bytes], None] | None = None) -> None:
        self.upstream = upstream
        self.on_data = on_data  # called with what a client sent, before it is passed on
        # Called with a connection's index as soon as the client has closed it.
        self.on_closed = on_closed
        self.first_bytes: list[bytes] = []  # per connection, in accept order
        self.closed = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._listener.getsockname()[1]
        self._dead = False

    @property
    def connections(self) -> int:
        return len(self.first_bytes)

    def die(self) -> None:
        """Stop listening: connections waiting in the backlog are reset, new ones refused."""
        with self._lock:
            if self._dead:
                return
            self._dead = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() and resets the backlog
        self._listener.close()

    def serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                index = len(self.first_bytes)
                self.first_bytes.append(b"")
            threading.Thread(target=self._relay, args=(index, client), daemon=True).start()

    def _relay(self, index: int, client: socket.socket) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        except OSError:
            client.close()
            return
        back = threading.Thread(target=self._pump, args=(server, client, None), daemon=True)
        back.start()
        self._pump(client, server, index)  # until the client closes its side
        with self._lock:
            self.closed += 1
        if self.on_closed is not None:
            self.on_closed(index)
        back.join(10)
        client.close()
        server.close()

    def _pump(self, src: socket.socket, dst: socket.socket, index: int | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if index is not None:
                    if len(self.first_bytes[index]) < 16:
                        self.first_bytes[index] += data[:16]
                    if self.on_data is not None:
                        self.on_data(index, data)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def forwarding(upstream: int, on_closed: Callable[[int], None] | None = None,
               on_data: Callable[[int, bytes], None] | None = None) -> Iterator[Forwarder]:
    fwd = Forwarder(upstream, on_closed, on_data)
    thread = threading.Thread(target=fwd.serve, daemon=True)
    thread.start()
    try:
        yield fwd
    finally:
        fwd.die()
        thread.join(2)
