"""The TLS follow-up probe: is TLS spoken, which versions and suites, which certificate,
is a client certificate demanded, and does DICOM run inside.

A port that answered DICOM in the clear is never sent a ClientHello: legacy DICOM
stacks die from one. For every other open port (16 connections in all for DCMTK
``storescp +tls --profile-bcp195 -ic``):
1. one TLS 1.2 ClientHello offering every suite, whole first flight read [1]: TLS or not,
   the certificate and any CertificateRequest (a hang-up earns one TLS 1.3-only retry);
2. in parallel: each version on its own, with suite enumeration by elimination
   (``versions.py``) [N accepted suites + 1 per version], and one full handshake with
   Python ``ssl`` carrying the DICOM detection association [1];
3. with ``TlsOptions.client_cert``, and only when step 2 was refused for want of one,
   a second full handshake presenting it [1].
Every connection goes through the host's gate, so the per-host cap and spacing hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from probes.tls import certificate, handshake
from probes.tls.clienthello import SSL3, TLS10, TLS11, TLS12, TLS13, ServerAnswer
from probes.tls.profiles import assess
from probes.tls.versions import Counter, VersionScan, detect, scan_version
from probes.tls_client import client_context
from scanner.model.observations import ProbeError
from scanner.model.tls_observations import (
    HandshakeOutcome,
    TlsCertificate,
    TlsHandshake,
    TlsSummary,
    TlsVersion,
    VersionOutcome,
)

if TYPE_CHECKING:
    from cryptography import x509

    from probes.context import ProbeContext, ServiceState

TlsProbe = Callable[["ProbeContext", "ServiceState"], Awaitable[None]]


@dataclass(frozen=True)
class TlsOptions:
    """Client certificate and key for mutual TLS, and a CA bundle the server certificate
    is checked against. File names only: the key is handed to OpenSSL, never read here."""

    client_cert: str | None = None
    client_key: str | None = None
    ca: str | None = None


DEFAULT_OPTIONS = TlsOptions()
_VERSIONS = (SSL3, TLS10, TLS11, TLS12, TLS13)


def _not_tls(ans: ServerAnswer, counter: Counter, started: float) -> TlsSummary:
    outcome = {"closed": "closed", "timeout": "no-answer", "error": "error"}.get(
        ans.kind, "not-tls"
    )
    return TlsSummary(
        speaks_tls=False,
        outcome=outcome,
        detail=ans.detail,
        first_bytes_hex=ans.first_bytes.hex() or None,
        connections=counter.connections,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def _certificates(
    scans: list[VersionScan],
    leaf13: bytes | None,
    bundle: list[x509.Certificate] | None,
    refused: list[ProbeError],
) -> list[TlsCertificate]:
    """Leaf certificates seen, once each: the clear TLS <= 1.2 one, and the TLS 1.3 one
    when it differs or is the only one. One that does not parse goes to ``refused``."""
    out: list[TlsCertificate] = []
    seen: set[str] = set()
    newest_first = sorted(scans, key=lambda s: s.observation.version, reverse=True)
    chains = [(s.certificates, f"{s.observation.version} handshake (clear)") for s in newest_first]
    if leaf13:
        chains.append(([leaf13], "full handshake"))
    for chain, source in chains:
        if not chain:
            continue
        try:
            cert = certificate.describe(chain, source, bundle)
        except ValueError as exc:
            error = ProbeError(
                probe="tls-certificate", exception=type(exc).__name__, message=str(exc)[:200]
            )
            if error not in refused:
                refused.append(error)
            continue
        if cert.sha256_fingerprint not in seen:
            seen.add(cert.sha256_fingerprint)
            out.append(cert)
    return out


def _unanswered(scan: VersionScan) -> bool:
    obs = scan.observation
    return obs.outcome is VersionOutcome.NO_ANSWER or obs.detail.startswith(
        "enumeration stopped: timeout"
    )


async def _ask_again(
    ctx: ProbeContext, port: int, scans: list[VersionScan], counter: Counter
) -> list[VersionScan]:
    """A server that serves one connection at a time leaves the hellos queued behind
    another connection unanswered. Once everything else is done, each version left
    unanswered (or whose enumeration went silent) is asked again, one at a time; the new
    answer is kept when it is one."""
    out: list[VersionScan] = []
    for version, scan in zip(_VERSIONS, scans, strict=True):
        if _unanswered(scan):
            again = await scan_version(ctx, port, version, counter)
            if not _unanswered(again):
                scan = again
        out.append(scan)
    return out


async def _handshakes(
    ctx: ProbeContext,
    svc: ServiceState,
    options: TlsOptions,
    requested: bool | None,
    counter: Counter,
) -> list[handshake.HandshakeResult]:
    counter.connections += 1
    results = [
        await handshake.handshake_and_dicom(
            ctx, svc.port, client_context(), False, requested, "detect-tls"
        )
    ]
    first = results[0].observation
    if options.client_cert and first.outcome is HandshakeOutcome.CLIENT_CERT_REQUIRED:
        try:
            sslctx = client_context(options.client_cert, options.client_key)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; no key text in it
            bad = TlsHandshake(
                with_client_cert=True,
                outcome=HandshakeOutcome.ERROR,
                detail=f"client certificate could not be loaded: {type(exc).__name__}",
                elapsed_ms=0.0,
            )
            results.append(handshake.HandshakeResult(bad))
        else:
            counter.connections += 1
            results.append(
                await handshake.handshake_and_dicom(
                    ctx, svc.port, sslctx, True, requested, "detect-tls-client-cert"
                )
            )
    return results


async def run_tls_probe(ctx: ProbeContext, svc: ServiceState, options: TlsOptions) -> None:
    if svc.name == "dicom":  # DICOM in the clear: a ClientHello can kill a legacy stack
        return
    started = time.perf_counter()
    counter = Counter()
    first = {TLS12: await detect(ctx, svc.port, TLS12, counter)}
    if first[TLS12].kind == "closed":  # some TLS 1.3-only stacks hang up on a 1.2 hello
        first[TLS13] = await detect(ctx, svc.port, TLS13, counter)
    if not any(a.kind in ("server-hello", "alert") for a in first.values()):
        svc.observations.append(_not_tls(first[TLS12], counter, started))
        return
    svc.tls = True
    requested = first[TLS12].certificate_request
    bundle, detail = None, ""
    if options.ca:
        try:
            bundle = certificate.load_bundle(options.ca)
        except (OSError, ValueError) as exc:
            detail = f"CA bundle not usable ({type(exc).__name__}); certificates not checked"

    async def all_versions() -> list[VersionScan]:
        return await asyncio.gather(
            *(scan_version(ctx, svc.port, v, counter, first.get(v)) for v in _VERSIONS)
        )

    scans, hs = await asyncio.gather(
        all_versions(), _handshakes(ctx, svc, options, requested, counter)
    )
    scans = await _ask_again(ctx, svc.port, scans, counter)
    versions = [s.observation for s in scans]
    refused: list[ProbeError] = []
    certs = _certificates(scans, hs[0].leaf_der, bundle, refused)
    summary = _summary(versions, certs, hs, counter, started, detail)
    svc.observations.append(summary)
    svc.observations.extend(versions)
    svc.observations.extend(certs)
    svc.observations.extend(refused)
    for result in hs:
        svc.observations.append(result.observation)
        if result.association is not None:
            svc.observations.append(result.association)
    if summary.dicom_inside:
        svc.name = "dicom-tls"
    elif svc.name == "unknown":
        svc.name = "tls"


def _summary(
    versions: list[TlsVersion],
    certs: list[TlsCertificate],
    hs: list[handshake.HandshakeResult],
    counter: Counter,
    started: float,
    detail: str,
) -> TlsSummary:
    anonymous = hs[0].observation
    requested = [v.certificate_requested for v in versions if v.certificate_requested is not None]
    required: bool | None = None
    if anonymous.outcome is HandshakeOutcome.CLIENT_CERT_REQUIRED:
        required = True
    elif anonymous.outcome is HandshakeOutcome.COMPLETED:
        required = False
    checks, best, meets_b12 = assess(versions, certs[0] if certs else None, anonymous.version)
    return TlsSummary(
        speaks_tls=True,
        outcome="tls",
        detail=detail,
        versions_accepted=[v.version for v in versions if v.outcome is VersionOutcome.ACCEPTED],
        versions_tested=[v.version for v in versions],
        client_cert_requested=any(requested) if requested else None,
        client_cert_required=required,
        dicom_inside=any(handshake.dicom_answered(h.association) for h in hs)
        if any(h.association for h in hs)
        else None,
        profiles=checks,
        best_profile=best,
        meets_b12=meets_b12,
        connections=counter.connections,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def make_tls_probe(options: TlsOptions = DEFAULT_OPTIONS) -> TlsProbe:
    """The follow-up probe with client credentials bound in (for the registry)."""

    async def tls_probe(ctx: ProbeContext, svc: ServiceState) -> None:
        await run_tls_probe(ctx, svc, options)

    return tls_probe


tls_probe: TlsProbe = make_tls_probe(DEFAULT_OPTIONS)
