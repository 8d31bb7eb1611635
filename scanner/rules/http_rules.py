"""HTTP rules: turn the HTTP probe's observations into pass/fail findings.

Only services with an ``http-summary`` (an HTTP answer to GET /) are judged, and only
once they show themselves to be a PACS web side: a product was identified, or a
DICOMweb or REST endpoint answered 2xx, 401 or 403. A plain web page gets no finding.
"""

from __future__ import annotations

from typing import Any

from scanner.model import Finding, FindingStatus, Host
from scanner.model.http_observations import HttpCheck, HttpSummary
from scanner.model.observations import Confidence
from scanner.rules.catalogue import make_finding

API_PURPOSES = ("dicomweb", "rest-api")


def _brief(c: HttpCheck) -> dict[str, Any]:
    out: dict[str, Any] = {"path": c.path, "status": c.status}
    if c.items is not None:
        out["items"] = c.items
    return out


def service_findings(
    host: Host, port: int, summary: HttpSummary, checks: list[HttpCheck]
) -> list[Finding]:
    anonymous = [c for c in checks if c.purpose in API_PURPOSES and not c.with_credentials]
    # A 2xx whose body never ended proves nothing: a catch-all server answers that way.
    exposed = [c for c in anonymous if c.answered_2xx and c.body_complete is not False]
    stalled = [c for c in anonymous if c.answered_2xx and c.body_complete is False]
    guarded = [c for c in anonymous if c.refused_auth]
    if summary.product is None and not exposed and not guarded:
        if stalled:
            paths = ", ".join(c.path for c in stalled)
            ev: dict[str, Any] = {
                "scheme": summary.scheme,
                "reason": f"API endpoints answered 2xx but no body ended: {paths}",
            }
            return [
                make_finding(
                    "http-unauthenticated", FindingStatus.NOT_CHECKED, host.address, port, ev
                )
            ]
        return []
    base: dict[str, Any] = {"scheme": summary.scheme, "product": summary.product}
    if summary.version:
        base["version"] = summary.version
    out: list[Finding] = []
    if exposed or guarded:
        ev = {**base, "answered_without_credentials": [_brief(c) for c in exposed]}
        ev["refused_without_credentials"] = [_brief(c) for c in guarded]
        status = FindingStatus.FAIL if exposed else FindingStatus.PASS
        out.append(make_finding("http-unauthenticated", status, host.address, port, ev))
    ev = {**base, "tls": summary.tls, "identified_by": summary.identified_by}
    ev["api_endpoints_answering"] = [c.path for c in exposed + guarded]
    status = FindingStatus.PASS if summary.tls else FindingStatus.FAIL
    out.append(make_finding("http-cleartext", status, host.address, port, ev))
    tried = [c for c in checks if c.with_credentials]
    if tried and summary.default_credentials_accepted is not None:
        ev = {**base, "tried": [{"path": c.path, "status": c.status} for c in tried]}
        ev["user"] = "the product's documented default user"
        status = FindingStatus.FAIL if summary.default_credentials_accepted else FindingStatus.PASS
        out.append(
            make_finding(
                "http-default-credentials", status, host.address, port, ev, Confidence.CONFIRMED
            )
        )
    return out


def http_findings(host: Host) -> list[Finding]:
    """Every HTTP finding for one host, pass and fail, in port order."""
    out: list[Finding] = []
    for svc in host.services:
        summary = next((o for o in svc.observations if isinstance(o, HttpSummary)), None)
        if summary is None:
            continue
        checks = [o for o in svc.observations if isinstance(o, HttpCheck)]
        out.extend(service_findings(host, svc.port, summary, checks))
    return out
