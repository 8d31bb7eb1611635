"""Full TLS handshakes with Python's ``ssl``: mutual TLS, the certificate under TLS 1.3,
and the DICOM association inside TLS. The permissive client and the gated TLS connection
are in ``probes.tls_client``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from probes.tls.clienthello import ALERTS
from probes.tls_client import RecordingSSLObject, connect_tls
from scanner.model import ScanSettings
from scanner.model.observations import Association, AssociationOutcome
from scanner.model.tls_observations import HandshakeOutcome, TlsHandshake

if TYPE_CHECKING:
    from probes.context import ProbeContext

_ALERT_CODES = {name: code for code, name in ALERTS.items()}
# Alerts a server sends when the client certificate it demands is missing or unusable.
_CERT_ALERTS = {41, 42, 46, 48, 116}
_DICOM_OUTCOMES = {AssociationOutcome.ACCEPTED, AssociationOutcome.REJECTED,
                   AssociationOutcome.ABORTED}  # fmt: skip


def alert_of(exc: BaseException | None) -> int | None:
    """The TLS alert behind an ``ssl.SSLError`` (OpenSSL names it in ``reason``)."""
    if not isinstance(exc, ssl.SSLError) or not exc.reason:
        return None
    reason = str(exc.reason)
    if "ALERT_" not in reason:
        return None
    return _ALERT_CODES.get(reason.split("ALERT_", 1)[1].lower())


@dataclass
class HandshakeResult:
    observation: TlsHandshake
    leaf_der: bytes | None = None
    association: Association | None = None


def _failed(
    exc: BaseException, with_cert: bool, cert_requested: bool | None, started: float
) -> TlsHandshake:
    alert = alert_of(exc)
    if isinstance(exc, TimeoutError):
        outcome, detail = HandshakeOutcome.NO_ANSWER, "handshake did not finish in time"
    elif with_cert and alert in _CERT_ALERTS:
        outcome, detail = HandshakeOutcome.CLIENT_CERT_REJECTED, "server refused our certificate"
    elif alert in _CERT_ALERTS or (alert == 40 and cert_requested and not with_cert):
        outcome, detail = HandshakeOutcome.CLIENT_CERT_REQUIRED, "server refused the handshake"
    elif isinstance(exc, ssl.SSLError):
        outcome, detail = HandshakeOutcome.FAILED, str(exc.reason or exc)
    else:
        outcome, detail = HandshakeOutcome.ERROR, f"{type(exc).__name__}: {exc}"
    return TlsHandshake(
        with_client_cert=with_cert,
        outcome=outcome,
        alert=alert,
        alert_text=ALERTS.get(alert) if alert is not None else None,
        detail=detail,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


async def handshake_and_dicom(
    ctx: ProbeContext,
    port: int,
    sslctx: ssl.SSLContext,
    with_cert: bool,
    cert_requested: bool | None,
    purpose: str,
) -> HandshakeResult:
    """One full handshake, then the standard DICOM detection association inside it.

    Under TLS 1.3 the client's handshake is over before the server has seen the
    client's (empty) Certificate, so a server that demands one answers with alert 116
    only afterwards. That verdict is awaited (``_settle``) before the association, and
    the stream is checked again after it; an alert there means the handshake was refused.
    """
    from probes.dicom.client import detect_association

    started = time.perf_counter()
    try:
        async with connect_tls(ctx, port, sslctx) as conn:
            reader, writer = conn.reader, conn.writer
            tls = writer.get_extra_info("ssl_object")
            if not isinstance(tls, RecordingSSLObject):
                raise ssl.SSLError("no TLS session on the connection")
            version, cipher, leaf = tls.negotiated_version, tls.negotiated_cipher, tls.peer_der
            if version == "TLSv1.3":
                await _settle(reader, tls, conn.handshake_s, ctx.settings)
            assoc = None
            if reader.exception() is None:
                assoc = await detect_association(
                    reader, writer, settings=ctx.settings, purpose=purpose
                )
            late = reader.exception()
    except (OSError, TimeoutError) as exc:
        return HandshakeResult(_failed(exc, with_cert, cert_requested, started))
    elapsed = round((time.perf_counter() - started) * 1000, 3)
    alert = alert_of(late)
    if alert is not None and not dicom_answered(assoc):
        outcome = HandshakeOutcome.FAILED
        if alert in _CERT_ALERTS or (alert == 40 and not with_cert):
            outcome = (
                HandshakeOutcome.CLIENT_CERT_REJECTED
                if with_cert
                else HandshakeOutcome.CLIENT_CERT_REQUIRED
            )
        obs = TlsHandshake(
            with_client_cert=with_cert,
            outcome=outcome,
            version=version,
            cipher=cipher,
            alert=alert,
            alert_text=ALERTS.get(alert),
            detail="server sent an alert after the client's Finished",
            elapsed_ms=elapsed,
        )
        return HandshakeResult(obs, leaf)
    obs = TlsHandshake(
        with_client_cert=with_cert,
        outcome=HandshakeOutcome.COMPLETED,
        version=version,
        cipher=cipher,
        detail="" if assoc else f"connection failed after the handshake: {late!r}",
        elapsed_ms=elapsed,
    )
    return HandshakeResult(obs, leaf, assoc)


async def _settle(
    reader: asyncio.StreamReader, tls: ssl.SSLObject, handshake_s: float, settings: ScanSettings
) -> None:
    """Wait, briefly, for the TLS 1.3 server's verdict on our (empty) client Certificate.

    A server that accepts it sends NewSessionTicket; one that demands a certificate sends
    alert 116 and closes. Sending the A-ASSOCIATE-RQ before that verdict arrives races the
    alert: the server closes with our RQ unread, its kernel answers with a reset, and the
    alert is lost (measured on DCMTK 3.6.7). Servers without tickets cost the bound.
    """
    bound = min(settings.timeouts.dicom, max(0.2, 4 * handshake_s))
    deadline = time.perf_counter() + bound
    while time.perf_counter() < deadline:
        session = tls.session
        if (session is not None and session.has_ticket) or reader.exception() or reader.at_eof():
            return
        await asyncio.sleep(0.002)


def dicom_answered(assoc: Association | None) -> bool:
    return assoc is not None and assoc.outcome in _DICOM_OUTCOMES
