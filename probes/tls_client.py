"""The scanner's TLS client: a context that negotiates with anything, and TLS
connections through the host's gate. Shared by the TLS probe and the DICOM checks run
inside TLS, so neither probe package needs the other for it.

The context is deliberately permissive (no verification, every suite, every version
OpenSSL still has, security level 0): the scanner must reach the server to describe it,
and describing is not trusting. Key material is only handed to OpenSSL by file name and
never read, printed or logged here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probes.context import ProbeContext


class RecordingSSLObject(ssl.SSLObject):
    """Keeps what the handshake established at the moment it completes.

    A server that refuses the client afterwards (TLS 1.3 alert 116) can have the
    connection torn down before the caller gets to ask, and then ``getpeercert``
    says "handshake not done yet" (measured against DCMTK 3.6.7).
    """

    peer_der: bytes | None = None
    negotiated_version: str | None = None
    negotiated_cipher: str | None = None

    def do_handshake(self) -> None:
        super().do_handshake()
        self.peer_der = self.getpeercert(binary_form=True)
        self.negotiated_version = self.version()
        cipher = self.cipher()
        self.negotiated_cipher = cipher[0] if cipher else None


def client_context(cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """A context that negotiates with anything and verifies nothing."""
    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sslctx.sslobject_class = RecordingSSLObject
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    sslctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):  # COMPLEMENTOFALL adds the NULL suites
        sslctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    if cert:
        # An encrypted key must fail, not make OpenSSL prompt on the terminal.
        sslctx.load_cert_chain(cert, key, password=lambda: b"")
    return sslctx


@dataclass
class TlsConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    handshake_s: float  # TCP connect + TLS handshake, not the wait for a gate slot


@contextlib.asynccontextmanager
async def connect_tls(
    ctx: ProbeContext, port: int, sslctx: ssl.SSLContext, *, watched: bool = True
) -> AsyncIterator[TlsConnection]:
    """Like ``ctx.connect`` but TLS from the first byte, inside the host's gate.

    The TCP connect is reported to the host's connection watch, as ``ctx.connect`` does:
    a device that refuses TLS connections is backed off and stopped like any other. The
    handshake is not: a server that resets an offer it dislikes is answering, not dying.
    ``watched=False`` only for the engine's health checks."""
    from probes.ports import connect_socket

    s = ctx.settings
    async with ctx.gate.slot(watched=watched):
        started = time.perf_counter()
        connecting = connect_socket(ctx.host, port, s.timeouts.connect)
        sock = await (ctx.watched(connecting) if watched else connecting)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    sock=sock,
                    ssl=sslctx,
                    server_hostname=ctx.state.hostname or ctx.host,
                    ssl_handshake_timeout=s.timeouts.dicom,
                    ssl_shutdown_timeout=1.0,
                    limit=1 << 20,
                ),
                s.timeouts.dicom + 1.0,
            )
        except BaseException:
            sock.close()
            raise
        try:
            yield TlsConnection(reader, writer, time.perf_counter() - started)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
