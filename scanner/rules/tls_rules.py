"""TLS rules: turn the TLS probe's observations into pass/fail findings.

One set of findings per service that speaks TLS. Pass findings are emitted too, so an
auditor sees what held; a rule that could not be judged (no certificate seen, no
handshake finished) is reported as not-checked with the reason.
"""

from __future__ import annotations

from typing import Any

from scanner.model import Finding, FindingStatus, Host, Service, Severity
from scanner.model.observations import Confidence
from scanner.model.tls_observations import (
    TlsCertificate,
    TlsHandshake,
    TlsSummary,
    TlsVersion,
    VersionOutcome,
)
from scanner.rules.catalogue import make_finding
from scanner.rules.default_certs import match as default_certificate

LEGACY_VERSIONS = ("SSLv3", "TLSv1.0", "TLSv1.1")
_GRADE_SEVERITY = {"insecure": Severity.HIGH, "weak": Severity.MEDIUM, "discouraged": Severity.LOW}
_WEAK_HASHES = {"md5", "sha1", "md2"}
_CERT_RULES = (
    "tls-cert-self-signed",
    "tls-cert-expired",
    "tls-cert-expiring",
    "tls-cert-weak-key",
    "tls-cert-weak-signature",
    "tls-cert-default",
)


class _Service:
    """One service's TLS observations, sorted by kind."""

    def __init__(self, host: Host, svc: Service, summary: TlsSummary) -> None:
        self.host = host.address
        self.port = svc.port
        self.name = svc.name
        self.summary = summary
        self.versions = [o for o in svc.observations if isinstance(o, TlsVersion)]
        self.certs = [o for o in svc.observations if isinstance(o, TlsCertificate)]
        self.handshakes = [o for o in svc.observations if isinstance(o, TlsHandshake)]

    def finding(
        self,
        rule: str,
        status: FindingStatus,
        evidence: dict[str, Any],
        severity: Severity | None = None,
        confidence: Confidence = Confidence.CONFIRMED,
    ) -> Finding:
        evidence = {"service": self.name, **evidence}
        return make_finding(rule, status, self.host, self.port, evidence, confidence, severity)


def _legacy(s: _Service) -> Finding:
    accepted = [v for v in s.versions if v.outcome is VersionOutcome.ACCEPTED]
    legacy = [v for v in accepted if v.version in LEGACY_VERSIONS]
    evidence: dict[str, Any] = {
        "versions_accepted": [v.version for v in accepted],
        "legacy_accepted": {v.version: [c.name for c in v.suites] for v in legacy},
    }
    if legacy and s.summary.client_cert_required:
        evidence["note"] = (
            "the ServerHello selects these versions before the client certificate is "
            "checked: mutual TLS does not hide them"
        )
    untested = [
        v.version for v in s.versions if v.version in LEGACY_VERSIONS and v.outcome in _UNSURE
    ]
    if not legacy and untested:  # unknown is never a pass
        evidence["not_answered"] = untested
        evidence["reason"] = f"{', '.join(untested)} not answered: legacy support unknown"
        return s.finding("tls-legacy-protocol", FindingStatus.NOT_CHECKED, evidence)
    status = FindingStatus.FAIL if legacy else FindingStatus.PASS
    severity = Severity.CRITICAL if any(v.version == "SSLv3" for v in legacy) else None
    return s.finding("tls-legacy-protocol", status, evidence, severity=severity)


_UNSURE = {VersionOutcome.NO_ANSWER, VersionOutcome.ERROR}


def _weak_cipher(s: _Service) -> Finding:
    bad: list[dict[str, Any]] = []
    worst: Severity | None = None
    for v in s.versions:
        for suite in v.suites:
            severity = _GRADE_SEVERITY.get(suite.grade)
            if severity is None:
                continue
            bad.append(
                {
                    "version": v.version,
                    "suite": suite.name,
                    "grade": suite.grade,
                    "weaknesses": suite.weaknesses,
                }
            )
            if worst is None or severity.rank > worst.rank:
                worst = severity
    incomplete = [
        v.version
        for v in s.versions
        if v.outcome is VersionOutcome.ACCEPTED and not v.enumeration_complete
    ]
    evidence: dict[str, Any] = {
        "accepted": {v.version: [c.name for c in v.suites] for v in s.versions if v.suites},
        "weak": bad,
    }
    if incomplete:
        evidence["enumeration_incomplete"] = incomplete
    # Here, not at import: probes.tls's package pulls in cryptography (start-up time).
    from probes.tls.profiles import unmeasured

    gaps = unmeasured(s.versions)
    if not bad and gaps:  # a suite not enumerated may be a weak one: unknown is never a pass
        evidence["reason"] = "; ".join(gaps)
        return s.finding("tls-weak-cipher", FindingStatus.NOT_CHECKED, evidence)
    status = FindingStatus.FAIL if bad else FindingStatus.PASS
    return s.finding("tls-weak-cipher", status, evidence, severity=worst)


def _client_cert(s: _Service) -> Finding:
    anonymous = next((h for h in s.handshakes if not h.with_client_cert), None)
    evidence: dict[str, Any] = {
        "certificate_requested": s.summary.client_cert_requested,
        "handshake_without_certificate": anonymous.outcome.value if anonymous else None,
    }
    if anonymous and anonymous.alert is not None:
        evidence["alert"] = f"{anonymous.alert} {anonymous.alert_text}"
    with_cert = next((h for h in s.handshakes if h.with_client_cert), None)
    if with_cert is not None:
        evidence["handshake_with_certificate"] = with_cert.outcome.value
    required = s.summary.client_cert_required
    if required is None:
        evidence["reason"] = anonymous.detail if anonymous else "no full handshake was tried"
        return s.finding("tls-client-cert-not-required", FindingStatus.NOT_CHECKED, evidence)
    if not required and s.summary.client_cert_requested:
        evidence["note"] = "a certificate is asked for but a handshake without one succeeds"
    status = FindingStatus.PASS if required else FindingStatus.FAIL
    return s.finding("tls-client-cert-not-required", status, evidence)


def _cert_evidence(c: TlsCertificate) -> dict[str, Any]:
    return {
        "subject": c.subject,
        "issuer": c.issuer,
        "sha256_fingerprint": c.sha256_fingerprint,
        "source": c.source,
    }


def _weak_key(c: TlsCertificate) -> Severity | None:
    """Severity when the key is too short, else None."""
    if c.key_type in ("RSA", "DSA") and c.key_bits < 2048:
        return Severity.HIGH if c.key_bits <= 1024 else Severity.MEDIUM
    if c.key_type == "EC" and c.key_bits < 256:
        return Severity.HIGH if c.key_bits < 224 else Severity.MEDIUM
    return None


def _certificate(s: _Service, c: TlsCertificate) -> list[Finding]:
    base = _cert_evidence(c)
    out = [
        s.finding(
            "tls-cert-self-signed",
            FindingStatus.FAIL if c.self_signed else FindingStatus.PASS,
            {**base, "ca_verified": c.ca_verified},
        )
    ]
    validity = {
        **base,
        "not_before": c.not_before.isoformat(),
        "not_after": c.not_after.isoformat(),
        "days_left": c.days_left,
    }
    bad_dates = c.expired or c.not_yet_valid
    if c.not_yet_valid:
        validity["note"] = "not yet valid"
    out.append(
        s.finding(
            "tls-cert-expired", FindingStatus.FAIL if bad_dates else FindingStatus.PASS, validity
        )
    )
    if bad_dates:
        expiring = FindingStatus.NOT_CHECKED
        validity = {**validity, "reason": "outside its validity period: see tls-cert-expired"}
    else:
        expiring = FindingStatus.FAIL if c.expiring_soon else FindingStatus.PASS
    out.append(s.finding("tls-cert-expiring", expiring, validity))
    key_severity = _weak_key(c)
    key = {**base, "key_type": c.key_type, "key_bits": c.key_bits, "key_curve": c.key_curve}
    out.append(
        s.finding(
            "tls-cert-weak-key",
            FindingStatus.FAIL if key_severity else FindingStatus.PASS,
            key,
            severity=key_severity,
        )
    )
    weak_sig = (c.signature_hash or "").lower() in _WEAK_HASHES
    sig = {**base, "signature_algorithm": c.signature_algorithm, "signature_hash": c.signature_hash}
    if weak_sig and c.self_signed:
        sig["note"] = "self-signed: the weak hash matters once a peer pins or trusts it"
    out.append(
        s.finding(
            "tls-cert-weak-signature",
            FindingStatus.FAIL if weak_sig else FindingStatus.PASS,
            sig,
        )
    )
    out.append(_default(s, c, base))
    return out


def _default(s: _Service, c: TlsCertificate, base: dict[str, Any]) -> Finding:
    known = default_certificate(c)
    if known is None:
        return s.finding("tls-cert-default", FindingStatus.PASS, base)
    ev = {
        **base,
        "sha1_fingerprint": c.sha1_fingerprint,
        "default_certificate": known.entry.id,
        "product": known.entry.product,
        "matched_by": known.by,
        "default_source": known.entry.source,
        "default_source_tag": known.entry.tag,
    }
    return s.finding("tls-cert-default", FindingStatus.FAIL, ev, confidence=known.confidence)


def _no_certificate(s: _Service) -> list[Finding]:
    evidence = {"reason": "no server certificate was seen in any handshake"}
    return [s.finding(rule, FindingStatus.NOT_CHECKED, evidence) for rule in _CERT_RULES]


def tls_findings(host: Host) -> list[Finding]:
    """Every TLS finding for one host, pass and fail, in a stable order."""
    out: list[Finding] = []
    for svc in host.services:
        summary = next((o for o in svc.observations if isinstance(o, TlsSummary)), None)
        if summary is None or not summary.speaks_tls:
            continue
        s = _Service(host, svc, summary)
        out.append(_legacy(s))
        out.append(_weak_cipher(s))
        out.append(_client_cert(s))
        if s.certs:
            for cert in s.certs:
                out.extend(_certificate(s, cert))
        else:
            out.extend(_no_certificate(s))
    return out
