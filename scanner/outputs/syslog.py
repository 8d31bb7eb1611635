"""``--syslog URL``: send each finding (MSGID ``finding``) and, for a job's scan or ``diff``,
each drift change (MSGID ``drift``) as CEF inside an RFC 5424 syslog message.

- ``udp://HOST:PORT``: one message per datagram (RFC 5426);
- ``tcp://HOST:PORT``: octet-counting framing, ``LEN SP MSG`` (RFC 6587 §3.4.1), so a
  message may hold any byte;
- ``tls://HOST:PORT``: the same framing over TLS (RFC 5425), the server's certificate
  checked against ``--syslog-ca`` (else the system's CAs) and its name.

Message: ``<PRI>1 TIMESTAMP HOSTNAME dicomscan PROCID finding - CEF:...``, facility
local4 (20); no UTF-8 BOM before the message, which some receivers choke on
(../shared/STANDARDS.md §6.2). Connecting is retried a bounded number of times with a
growing pause; a receiver that stays unreachable is a ``SyslogError`` with the reason,
never a hang. A retry resends every message: a receiver may see one twice, and the CEF
``externalId`` (finding_id) lets it drop the copy. Over UDP an absent receiver is only
noticed where the network reports it (ICMP port unreachable, as on loopback).
Written on the standard library's socket and ssl: no syslog sender on PyPI is maintained.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from scanner import __version__
from scanner.model import Finding, FindingStatus, ScanResult, Severity
from scanner.model.drift import Drift
from scanner.model.shorthand import shorthand_problem
from scanner.outputs.cef import to_cef
from scanner.outputs.drift_siem import drift_to_cef_line, rule_severity

FACILITY = 20  # local4
ATTEMPTS = 3
TIMEOUT = 5.0
_SEVERITY = {Severity.CRITICAL: 2, Severity.HIGH: 3, Severity.MEDIUM: 4, Severity.LOW: 5,
             Severity.INFO: 6}


class SyslogError(Exception):
    """The receiver could not be reached or refused the messages."""


def parse_url(url: str) -> tuple[str, str, int]:
    """(transport, host, port) of ``udp|tcp|tls://HOST:PORT``."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket: tls://[::1
        raise SyslogError(f"{url!r}: not a URL ({exc})") from None
    if parts.scheme not in ("udp", "tcp", "tls"):
        raise SyslogError(f"{url!r}: use udp://, tcp:// or tls://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:  # port 0 is no receiver's
        raise SyslogError(f"{url!r}: give a host and a port, e.g. {parts.scheme or 'udp'}"
                          "://127.0.0.1:514")
    # The resolver reads 0x7f000001 or 127.1 as an address; which receiver was meant is
    # a guess, so the dotted form is asked for, as for every other host dicomscan takes.
    if problem := shorthand_problem(parts.hostname):
        raise SyslogError(f"{url!r}: host {problem}")
    return parts.scheme, parts.hostname, port


def frame(severity: int, msgid: str, cef: str, hostname: str) -> bytes:
    """One RFC 5424 message (without framing) carrying one CEF record."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = "".join(c for c in hostname if 33 <= ord(c) <= 126)[:255] or "-"
    header = f"<{FACILITY * 8 + severity}>1 {stamp} {host} dicomscan {os.getpid()} {msgid} -"
    return f"{header} {cef}".encode()


def message(result: ScanResult, f: Finding, hostname: str) -> bytes:
    severity = _SEVERITY[f.severity] if f.status is FindingStatus.FAIL else 6
    return frame(severity, "finding", to_cef(result, f), hostname)


def drift_messages(drift: Drift, hostname: str) -> list[bytes]:
    """One message per change, MSGID ``drift``; a finding failing (again) at its rule's
    syslog severity, any other change informational (6)."""
    out = []
    for change in drift.changes:
        severity = rule_severity(change)
        out.append(frame(_SEVERITY[severity] if severity else 6, "drift",
                         drift_to_cef_line(drift, change, __version__), hostname))
    return out


def _connect(transport: str, host: str, port: int, ca_file: str | None) -> socket.socket:
    if transport == "udp":
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(info[0], socket.SOCK_DGRAM)
        sock.connect(info[4])
        return sock
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    if transport == "tls":
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            return context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    return sock


def _send_all(sock: socket.socket, transport: str, messages: list[bytes]) -> None:
    if transport == "udp":
        for msg in messages:
            sock.send(msg)
        return
    sock.sendall(b"".join(str(len(m)).encode() + b" " + m for m in messages))


def send_findings(result: ScanResult, url: str, ca_file: str | None = None,
                  attempts: int = ATTEMPTS) -> int:
    """Send every finding; the number sent. ``SyslogError`` after ``attempts`` failures."""
    hostname = socket.gethostname()
    return send(url, [message(result, f, hostname) for f in result.findings], ca_file,
                attempts)


def send_drift(drift: Drift, url: str, ca_file: str | None = None,
               attempts: int = ATTEMPTS) -> int:
    """Send every drift change; the number sent (the CEF externalId is the event_id)."""
    return send(url, drift_messages(drift, socket.gethostname()), ca_file, attempts)


def send(url: str, messages: list[bytes], ca_file: str | None = None,
         attempts: int = ATTEMPTS) -> int:
    """Send framed messages; their number. ``SyslogError`` after ``attempts`` failures."""
    transport, host, port = parse_url(url)
    last: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5 * attempt)
        try:
            with _connect(transport, host, port, ca_file) as sock:
                _send_all(sock, transport, messages)
                if transport == "tcp":
                    sock.shutdown(socket.SHUT_WR)
            return len(messages)
        except ssl.SSLCertVerificationError as exc:  # retrying will not change a certificate
            raise SyslogError(f"{url}: certificate not trusted: {exc.verify_message}") from exc
        except OSError as exc:
            last = exc
    raise SyslogError(f"{url}: unreachable after {attempts} attempts: {last}")
