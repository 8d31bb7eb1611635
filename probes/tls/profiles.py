"""Which DICOM PS3.15 Annex B secure transport profile the observations conform to.

Judged from the versions and suites the server accepted and its certificate key,
never from what it claims. Where the standard's own tables could not be read
(B.13's permitted list), DCMTK's implementation of the profile stands in for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from probes.tls.ciphers import (
    AES_PROFILE_SUITE,
    B13_PERMITTED,
    BASIC_PROFILE_SUITE,
    BCP195_EX_OPTIONAL,
    BCP195_ND_MANDATORY,
    TLS13_SUITES,
    info,
)
from scanner.model.tls_observations import ProfileCheck, TlsCertificate, TlsVersion, VersionOutcome

_MUST_NOT = {"null-cipher", "export", "rc4", "des", "anonymous", "below-112-bit"}
_LEGACY = ("SSLv3", "TLSv1.0", "TLSv1.1")


class _Facts:
    def __init__(
        self,
        versions: list[TlsVersion],
        cert: TlsCertificate | None,
        negotiated: str | None,
    ) -> None:
        self.accepted = {v.version for v in versions if v.outcome is VersionOutcome.ACCEPTED}
        self.suites: dict[str, set[int]] = {
            v.version: {int(s.code, 16) for s in v.suites} for v in versions
        }
        self.legacy_suites = set().union(*(self.suites.get(v, set()) for v in _LEGACY))
        self.all_suites = set().union(*self.suites.values()) if self.suites else set()
        self.tls12 = self.suites.get("TLSv1.2", set())
        self.tls13 = self.suites.get("TLSv1.3", set())
        self.cert = cert
        self.negotiated = negotiated

    def must_not_suites(self) -> list[str]:
        return sorted(info(c).name for c in self.all_suites if set(info(c).weaknesses) & _MUST_NOT)

    def legacy_versions(self) -> list[str]:
        return [v for v in _LEGACY if v in self.accepted]


def _names(codes: Iterable[int]) -> str:
    return ", ".join(sorted(info(c).name for c in codes))


def _common(f: _Facts, reasons: list[str], allow_legacy: bool = False) -> None:
    """Rules every BCP 195 profile shares: TLS 1.2 present, no MUST-NOT suite."""
    if "TLSv1.2" not in f.accepted:
        reasons.append("TLS 1.2 not accepted")
    if "SSLv3" in f.accepted:
        reasons.append("SSL 3.0 accepted")
    legacy = [v for v in f.legacy_versions() if v != "SSLv3"]
    if legacy and not allow_legacy:
        reasons.append(f"{' and '.join(legacy)} accepted")
    if bad := f.must_not_suites():
        reasons.append(f"MUST-NOT suites accepted: {', '.join(bad)}")


def _b12(f: _Facts) -> ProfileCheck:
    reasons: list[str] = []
    notes: list[str] = []
    _common(f, reasons)
    if f.cert and f.cert.key_type == "RSA" and f.cert.key_bits < 2048:
        reasons.append(f"RSA certificate key of {f.cert.key_bits} bits (RFC 9325 §4.5: >= 2048)")
    if "TLSv1.3" in f.accepted and f.negotiated and f.negotiated != "TLSv1.3":
        reasons.append(f"TLS 1.3 supported but {f.negotiated} negotiated (servers must prefer 1.3)")
    discouraged = {
        "3des": "3DES", "no-forward-secrecy": "static key exchange", "cbc": "CBC",
        "dhe": "DHE in TLS 1.2",
    }  # fmt: skip
    for weakness, label in discouraged.items():
        hit = {c for c in f.all_suites if weakness in info(c).weaknesses}
        if hit:
            notes.append(f"SHOULD NOT ({label}): {_names(hit)}")
    if f.cert and f.cert.signature_hash in ("sha1", "md5"):
        notes.append(f"certificate signed with {f.cert.signature_hash}")
    return ProfileCheck(profile="B.12", name="BCP 195 RFC 8996, 9325 TLS", current=True,
                        conforms=not reasons, reasons=reasons, notes=notes)  # fmt: skip


def _b13(f: _Facts) -> ProfileCheck:
    reasons: list[str] = []
    _common(f, reasons)
    if extra := f.tls12 - B13_PERMITTED:
        reasons.append(f"TLS 1.2 suites outside the permitted list: {_names(extra)}")
    if extra := f.legacy_suites:
        reasons.append(f"suites below TLS 1.2: {_names(extra)}")
    if "TLSv1.3" in f.accepted and (missing := set(TLS13_SUITES) - f.tls13):
        reasons.append(f"TLS 1.3 suites not all supported, missing: {_names(missing)}")
    if f.cert and f.cert.key_type == "RSA" and f.cert.key_bits < 2048:
        reasons.append(f"RSA certificate key of {f.cert.key_bits} bits")
    if f.cert and f.cert.key_type == "EC" and f.cert.key_bits < 256:
        reasons.append(f"EC certificate key of {f.cert.key_bits} bits")
    return ProfileCheck(profile="B.13", name="Modified BCP 195 RFC 8996, 9325 TLS", current=True,
                        conforms=not reasons, reasons=reasons,
                        notes=["permitted suites as implemented by DCMTK 3.6.8+"])  # fmt: skip


def _b10(f: _Facts) -> ProfileCheck:
    reasons: list[str] = []
    _common(f, reasons)
    if missing := BCP195_ND_MANDATORY - f.tls12:
        reasons.append(f"mandatory suites not accepted: {_names(missing)}")
    return ProfileCheck(profile="B.10", name="Non-Downgrading BCP 195 TLS", current=False,
                        conforms=not reasons, reasons=reasons)  # fmt: skip


def _b11(f: _Facts) -> ProfileCheck:
    reasons = list(_b10(f).reasons)
    if extra := f.tls12 - BCP195_ND_MANDATORY - BCP195_EX_OPTIONAL:
        reasons.append(f"suites outside the profile's list: {_names(extra)}")
    if f.tls13:
        reasons.append(f"TLS 1.3 suites accepted, outside the profile's list: {_names(f.tls13)}")
    return ProfileCheck(profile="B.11", name="Extended BCP 195 TLS", current=False,
                        conforms=not reasons, reasons=reasons)  # fmt: skip


def _b9(f: _Facts) -> ProfileCheck:
    reasons: list[str] = []
    _common(f, reasons, allow_legacy=True)  # B.9 keeps fallback for AES/Basic-profile peers
    notes = [f"{v} accepted (fallback)" for v in f.legacy_versions() if v != "SSLv3"]
    return ProfileCheck(profile="B.9", name="BCP 195 TLS", current=False,
                        conforms=not reasons, reasons=reasons, notes=notes)  # fmt: skip


def _suite_profile(section: str, name: str, suite: int) -> Callable[[_Facts], ProfileCheck]:
    def check(f: _Facts) -> ProfileCheck:
        reasons = [] if suite in f.all_suites else [f"{info(suite).name} not accepted"]
        return ProfileCheck(profile=section, name=name, current=False,
                            conforms=not reasons, reasons=reasons)  # fmt: skip

    return check


# Most current first: the first that conforms is the service's best profile.
_CHECKS: tuple[Callable[[_Facts], ProfileCheck], ...] = (
    _b13, _b12, _b11, _b10, _b9,
    _suite_profile("B.3", "AES TLS", AES_PROFILE_SUITE),
    _suite_profile("B.1", "Basic TLS", BASIC_PROFILE_SUITE),
)  # fmt: skip


def assess(
    versions: list[TlsVersion], cert: TlsCertificate | None, negotiated: str | None
) -> tuple[list[ProfileCheck], str | None, bool | None]:
    """(every profile check, the best conforming profile, whether B.12 is met: None when
    it holds on what was measured but something it depends on was not)."""
    facts = _Facts(versions, cert, negotiated)
    gaps = unmeasured(versions)
    checks = [check(facts) for check in _CHECKS]
    if gaps:  # a profile is only claimed on a complete measurement
        checks = [c.model_copy(update={"conforms": False, "unmeasured": gaps}) for c in checks]
    best = next((c.profile for c in checks if c.conforms), None)
    b12 = next(c for c in checks if c.profile == "B.12")
    meets_b12 = None if gaps and not b12.reasons else b12.conforms
    return checks, best, meets_b12


_UNSURE = (VersionOutcome.NO_ANSWER, VersionOutcome.ERROR)


def unmeasured(versions: list[TlsVersion]) -> list[str]:
    """Versions or suite lists the observations leave open: a version that got no answer
    (or an error), an accepted version whose suite enumeration was cut short or found none."""
    gaps: list[str] = []
    for v in versions:
        if v.outcome in _UNSURE:
            gaps.append(f"{v.version} not answered ({v.outcome.value})")
        elif v.outcome is VersionOutcome.ACCEPTED and not v.suites:
            gaps.append(f"{v.version} accepted but no suite enumerated")
        elif v.outcome is VersionOutcome.ACCEPTED and not v.enumeration_complete:
            gaps.append(f"{v.version} suite enumeration cut short")
    return gaps
