"""TCP connect port probe: needs neither root nor nmap.

The connection that finds a port open is handed on, still open, to service
identification, so an open port costs one connection and no device ever sees
a connection closed without a byte sent (MIR CTN's ``simple_storage`` exits
when that happens).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from dataclasses import dataclass

from probes import sweep_core
from scanner.model import PortObservation, PortState, utcnow

METHOD = "tcp-connect"


@dataclass
class OpenConnection:
    """A connected stream pair that the next probe takes over."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    host: str
    port: int

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):  # no task per close, unlike wait_for
                await self.writer.wait_closed()


async def open_stream(host: str, port: int, timeout: float) -> OpenConnection:
    """Open a TCP connection or raise OSError / TimeoutError. The streams are made only
    once connected, so a refused or silent port costs a bare socket (``connect_socket``)."""
    return await _streams(await connect_socket(host, port, timeout), host, port)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if not fut.done():
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


async def connect_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A bare non-blocking connect: one socket, one wait for writability, no task, no
    streams (a sweep's refused connects cost a fraction of ``open_stream``'s). Raises
    OSError (its errno's subclass, e.g. ConnectionRefusedError) or TimeoutError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err == errno.EINPROGRESS:
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            fd = sock.fileno()
            loop.add_writer(fd, _settle, fut, None)
            expiry = loop.call_later(timeout, _settle, fut, TimeoutError())
            try:
                await fut
            finally:
                expiry.cancel()
                loop.remove_writer(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return sock


async def adopt(sock: socket.socket, host: str, port: int) -> OpenConnection:
    """Streams on a socket that is already connected (the sweep's): nothing is sent."""
    return await _streams(sock, host, port)


def classify_error(err: int) -> tuple[PortState, str]:
    """A finished connect's errno as a port state and the reason it gives."""
    state, reason = sweep_core.classify_error(err)
    return PortState(state), reason


async def _streams(sock: socket.socket, host: str, port: int) -> OpenConnection:
    try:
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    except BaseException:
        sock.close()
        raise
    return OpenConnection(reader, writer, host, port)


async def probe_port(
    host: str, port: int, timeout: float
) -> tuple[PortObservation, OpenConnection | None]:
    """Connect, once more after no answer (``sweep_core.RETRIES``, as the sweep does).
    Returns the observation and, when open, the live connection (nothing has been sent on
    it: the next probe's bytes are the first). A sweep's port phase uses ``probes.sweep``
    instead, which classifies the same way."""
    conn: OpenConnection | None = None
    for _ in range(1 + sweep_core.RETRIES):
        started = time.perf_counter()
        try:
            conn = await open_stream(host, port, timeout)
            state, reason = PortState.OPEN, "connected"
        except TimeoutError:
            state, reason = PortState.FILTERED, "no answer within timeout"
            continue
        except OSError as exc:
            state, reason = classify_error(exc.errno or errno.EIO)
        break
    rtt = (time.perf_counter() - started) * 1000
    obs = PortObservation(
        port=port,
        state=state,
        method=METHOD,
        reason=reason,
        rtt_ms=round(rtt, 3) if state is not PortState.FILTERED else None,
        observed_at=utcnow(),
    )
    return obs, conn
