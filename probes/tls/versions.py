"""Protocol versions and cipher suites, one raw ClientHello per connection.

Why raw ClientHellos and not a full-handshake library (sslyze, or Python's ``ssl``):
each question here ("is version V accepted?", "which suite do you pick from this
list?") is answered by the ServerHello alone, so the connection is dropped right
after it and the server never verifies, signs or derives anything for us beyond its
first flight. Suites are enumerated by offering every suite known for the version,
removing the one the server picked and asking again until it answers "no shared
suite": N accepted suites cost N + 1 connections, against one per candidate suite
for a probe that tries suites one by one. Measured on one DCMTK ``storescp +tls
--profile-bcp195 -ic`` service on loopback (``tests/test_tls_bench.py``): the whole TLS
grading (versions, suites, certificate, mutual TLS, DICOM inside) took 16 connections
and 0.07 s (0.24 s on a first run that imports pynetdicom), against 56 connections and
0.53 s for nmap's ssl-enum-ciphers + ssl-cert.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from probes.tls.ciphers import info, suites_for
from probes.tls.clienthello import (
    TLS13,
    VERSION_NAMES,
    ServerAnswer,
    alert_text,
    client_hello,
    read_answer,
)
from scanner.model.tls_observations import CipherSuite, TlsVersion, VersionOutcome

if TYPE_CHECKING:
    from probes.context import ProbeContext


@dataclass
class Counter:
    """Connections opened for one service, for the summary and the benchmark."""

    connections: int = 0


@dataclass
class VersionScan:
    observation: TlsVersion
    certificates: list[bytes] = field(default_factory=list)


def suite_model(code: int) -> CipherSuite:
    s = info(code)
    return CipherSuite(
        code=f"0x{code:04X}",
        name=s.name,
        kex=s.kex,
        auth=s.auth,
        cipher=s.cipher,
        bits=s.bits,
        mode=s.mode,
        weaknesses=list(s.weaknesses),
        grade=s.grade.value,
    )


async def ask(
    ctx: ProbeContext,
    port: int,
    hello: bytes,
    counter: Counter,
    whole_flight: bool = False,
) -> ServerAnswer:
    """Send one ClientHello on a fresh gated connection and read the answer."""
    counter.connections += 1
    timeout = ctx.settings.timeouts.dicom
    try:
        async with ctx.connect(port) as conn:
            conn.writer.write(hello)
            await conn.writer.drain()
            return await read_answer(conn.reader, timeout, whole_flight)
    except TimeoutError:
        return ServerAnswer(kind="error", detail="connection timed out")
    except OSError as exc:
        return ServerAnswer(kind="error", detail=f"connection failed: {exc.strerror or exc}")


_FIRST_OUTCOME = {
    "alert": VersionOutcome.REFUSED,
    "closed": VersionOutcome.CLOSED,
    "timeout": VersionOutcome.NO_ANSWER,
    "not-tls": VersionOutcome.NOT_TLS,
    "error": VersionOutcome.ERROR,
}


def _first_outcome(version: int, ans: ServerAnswer) -> tuple[VersionOutcome, str | None]:
    if ans.kind == "server-hello":
        if ans.version == version:
            return VersionOutcome.ACCEPTED, None
        chosen = VERSION_NAMES.get(ans.version or 0, f"0x{ans.version or 0:04x}")
        return VersionOutcome.REFUSED, chosen
    return _FIRST_OUTCOME.get(ans.kind, VersionOutcome.ERROR), None


async def scan_version(
    ctx: ProbeContext,
    port: int,
    version: int,
    counter: Counter,
    first: ServerAnswer | None = None,
) -> VersionScan:
    """Offer ``version`` alone; when accepted, enumerate its suites by elimination.

    ``first`` is an answer already read for this version's full offer (the detection
    hello), so it is not asked twice.
    """
    started = time.perf_counter()
    sni = ctx.state.hostname
    remaining = suites_for(version)
    used = 1  # the detection hello, when given, was this version's first question
    if first is None:
        first = await ask(ctx, port, client_hello(version, remaining, sni), counter, True)
    outcome, selected = _first_outcome(version, first)
    accepted: list[int] = []
    complete = False
    detail = first.detail
    ans = first
    while outcome is VersionOutcome.ACCEPTED:
        if ans.kind != "server-hello" or ans.version != version:
            # "no shared suite" ends the list; anything else leaves it possibly short.
            complete = ans.kind == "alert"
            if not complete:
                detail = f"enumeration stopped: {ans.kind} {ans.detail}".strip()
            break
        suite = ans.suite if ans.suite is not None else -1
        if suite not in remaining:
            if suite not in accepted:
                accepted.append(suite)
            detail = f"server selected a suite it was not offered (0x{suite:04X})"
            break
        accepted.append(suite)
        remaining.remove(suite)
        if not remaining:
            complete = True
            break
        ans = await ask(ctx, port, client_hello(version, remaining, sni), counter)
        used += 1
    obs = TlsVersion(
        version=VERSION_NAMES[version],
        outcome=outcome,
        selected_version=selected,
        alert=first.alert if outcome is not VersionOutcome.ACCEPTED else None,
        alert_text=alert_text(first.alert) if outcome is not VersionOutcome.ACCEPTED else None,
        detail=detail,
        suites=[suite_model(s) for s in accepted],
        enumeration_complete=complete,
        certificate_requested=first.certificate_request if version < TLS13 else None,
        connections=used,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    certs = first.certificates if outcome is VersionOutcome.ACCEPTED else []
    return VersionScan(obs, certs)


async def detect(ctx: ProbeContext, port: int, version: int, counter: Counter) -> ServerAnswer:
    """The first question to a port: the full offer for ``version``, whole flight read."""
    hello = client_hello(version, suites_for(version), ctx.state.hostname)
    return await ask(ctx, port, hello, counter, whole_flight=True)
