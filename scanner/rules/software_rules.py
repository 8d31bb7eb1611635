"""Software rules: the product and version a service disclosed, against published advisories.

One ``software-vulnerable-version`` finding per service whose product and version are
known: fail when an advisory's range contains the version, pass when none does. A
service with no product or no version gets no finding: there is nothing to compare.

Why Orthanc behind DICOM gets no finding: over DICOM, Orthanc answers with the identity
of the DCMTK it links, so its fingerprint is "Orthanc (built on DCMTK 3.6.7)" with no
version. That DCMTK number is not Orthanc's release, so it is never compared with
Orthanc's advisories. It is not compared with DCMTK's either: most DCMTK advisories
concern DCMTK's own tools (storescp, dcmqrscp, dcmqrdb) that Orthanc does not run, and
Orthanc's packages often carry a patched or bundled DCMTK whose announced version says
nothing about the fixes in it. Flagging it would be a guess stated as a finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scanner.model import Finding, FindingStatus, Host, Service
from scanner.model.http_observations import HttpSummary
from scanner.model.observations import Confidence, Fingerprint
from scanner.rules.advisories import Advisory, load_advisories, matching, parse_version
from scanner.rules.catalogue import make_finding

RULE_ID = "software-vulnerable-version"
_NAME_KEY = "implementation_version_name="
_BACKPORT_CAVEAT = (
    "matched on the announced version only: a distribution or vendor may have back-ported "
    "the fix without changing it; check the installed package or the vendor's patch level"
)


def _fingerprint(svc: Service) -> Fingerprint | None:
    found = [o for o in svc.observations if isinstance(o, Fingerprint)]
    return found[-1] if found else None


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _version_source(svc: Service, fp: Fingerprint | None, version: str) -> tuple[str, Confidence]:
    """How sure the version is: read from the peer, or inferred."""
    if fp is None:
        web = next((o for o in svc.observations if isinstance(o, HttpSummary)), None)
        if web is not None and web.version == version and web.identified_by:
            # The product stated its own release (e.g. Orthanc's GET /system).
            return f"read from the peer ({web.identified_by})", Confidence.CONFIRMED
        return "inferred: set by a probe without a fingerprint", Confidence.INFERRED
    names = [m[len(_NAME_KEY) :] for m in fp.matched_by if m.startswith(_NAME_KEY)]
    # The version counts as read only when the peer's own version name spells it out and
    # the fingerprint is trusted; a UID-only or low-confidence match is an inference.
    from_name = next(
        (n for n in names if _digits(version) and _digits(version) in _digits(n)), None
    )
    if from_name and fp.confidence in ("high", "medium") and not fp.honeypot_suspected:
        return f"read from the peer (implementation version name {from_name})", Confidence.CONFIRMED
    why = (
        "honeypot suspected" if fp.honeypot_suspected else f"fingerprint confidence {fp.confidence}"
    )
    if not from_name:
        why += ", version not spelled out by the implementation version name"
    return f"inferred ({why})", Confidence.INFERRED


def _describe(adv: Advisory, affected: str) -> dict[str, Any]:
    # Fresh containers each time: a finding's evidence shares nothing with another's.
    out: dict[str, Any] = {
        "id": adv.id,
        "cves": list(adv.cves),
        "certainty": adv.certainty,
        "affected": affected,
        "summary": adv.summary.strip(),
        "sources": list(adv.sources),
    }
    if adv.note:
        out["note"] = adv.note.strip()
    return out


# An advisory as the evidence shows it, with its affected ranges in words.
Described = tuple[Advisory, str]


@dataclass(frozen=True)
class _Matched:
    """What the advisories say of one product and version."""

    known: int  # advisories that name the product
    comparable: bool  # the version is a release number
    firm: tuple[Described, ...] = ()
    doubtful: tuple[Described, ...] = ()


def _match(
    product: str, version: str, advisories: tuple[Advisory, ...] | list[Advisory]
) -> _Matched:
    known = sum(1 for a in advisories if a.product == product)
    parsed = parse_version(version)
    if parsed is None:
        return _Matched(known, comparable=False)
    hits = [(a, "; ".join(r.describe() for r in a.affected))
            for a in matching(product, parsed, advisories)]
    return _Matched(
        known, comparable=True,
        firm=tuple(h for h in hits if h[0].certainty != "unconfirmed"),
        doubtful=tuple(h for h in hits if h[0].certainty == "unconfirmed"),
    )


# Devices of one kind report the same product and version: the shipped advisories are
# matched once per distinct pair (about 4% of a detection-only scan). Bounded, and peer
# text beyond a size is matched afresh rather than kept.
@lru_cache(maxsize=1024)
def _shipped_match(product: str, version: str) -> _Matched:
    return _match(product, version, load_advisories())


_CACHED_CHARS = 256


def _by_certainty(advisories: list[Advisory]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for level in ("confirmed", "secondary", "unconfirmed"):
        cves = sorted({c for a in advisories if a.certainty == level for c in a.cves})
        if cves:
            out[level] = cves
    return out


def service_finding(
    host: Host, svc: Service, advisories: tuple[Advisory, ...] | list[Advisory]
) -> Finding | None:
    """The verdict for one service, or None when its product or version is unknown."""
    fp = _fingerprint(svc)
    product = fp.product if fp is not None else svc.product
    version = fp.version if fp is not None else svc.version
    if not product or not version:
        return None
    source, confidence = _version_source(svc, fp, version)
    evidence: dict[str, Any] = {
        "product": product,
        "version": version,
        "version_source": source,
    }
    if fp is not None:
        evidence["fingerprint_confidence"] = fp.confidence
    matched = (
        _shipped_match(product, version)
        if advisories is load_advisories() and len(product) + len(version) <= _CACHED_CHARS
        else _match(product, version, advisories)
    )
    if not matched.comparable:
        if not matched.known:
            evidence["reason"] = f"no advisory in the data names {product}"
            return make_finding(RULE_ID, FindingStatus.PASS, host.address, svc.port, evidence)
        evidence["reason"] = f"version {version!r} is not a release number that can be compared"
        return make_finding(RULE_ID, FindingStatus.NOT_CHECKED, host.address, svc.port, evidence)

    # Unconfirmed advisories are shown but never fail a device on their own.
    firm, doubtful = matched.firm, matched.doubtful
    if doubtful:
        evidence["unconfirmed_advisories"] = [_describe(a, t) for a, t in doubtful]
    if not firm:
        evidence["checked_advisories"] = matched.known
        if not matched.known:
            evidence["reason"] = f"no advisory in the data names {product}"
        return make_finding(
            RULE_ID, FindingStatus.PASS, host.address, svc.port, evidence, confidence
        )
    evidence["cves"] = sorted({c for a, _ in firm for c in a.cves})
    evidence["advisory_certainty"] = _by_certainty([a for a, _ in firm])
    evidence["advisories"] = [_describe(a, t) for a, t in firm]
    evidence["caveat"] = _BACKPORT_CAVEAT
    return make_finding(RULE_ID, FindingStatus.FAIL, host.address, svc.port, evidence, confidence)


def software_findings(host: Host) -> list[Finding]:
    advisories = load_advisories()
    out: list[Finding] = []
    for svc in host.services:
        finding = service_finding(host, svc, advisories)
        if finding is not None:
            out.append(finding)
    return out
