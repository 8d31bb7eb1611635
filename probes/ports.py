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
import time
from dataclasses import dataclass

from scanner.model import PortObservation, PortState, utcnow

METHOD = "tcp-connect"

# errno values that mean "something on the path said no" rather than "the host said no".
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


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
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


async def open_stream(host: str, port: int, timeout: float) -> OpenConnection:
    """Open a TCP connection or raise OSError / TimeoutError."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=1 << 20), timeout
    )
    return OpenConnection(reader, writer, host, port)


async def probe_port(
    host: str, port: int, timeout: float
) -> tuple[PortObservation, OpenConnection | None]:
    """Connect once. Returns the observation and, when open, the live connection."""
    started = time.perf_counter()
    conn: OpenConnection | None = None
    try:
        conn = await open_stream(host, port, timeout)
        state, reason = PortState.OPEN, "connected"
    except TimeoutError:
        state, reason = PortState.FILTERED, "no answer within timeout"
    except ConnectionRefusedError:
        state, reason = PortState.CLOSED, "connection refused"
    except ConnectionResetError:
        # A refusal is an RST to the SYN (ECONNREFUSED); a reset means the handshake was
        # completed and the peer then reset it: open, whatever the timing.
        state, reason = PortState.OPEN, "connected, then reset by the peer"
    except OSError as exc:
        if exc.errno in _UNREACHABLE:
            state, reason = PortState.FILTERED, f"unreachable ({exc.strerror})"
        elif exc.errno == errno.ECONNREFUSED:
            state, reason = PortState.CLOSED, "connection refused"
        else:
            state, reason = PortState.FILTERED, f"error: {exc.strerror or exc}"
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
