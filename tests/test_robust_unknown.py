"""Unknown is never a pass: TLS evidence with a gap (a version unanswered, an enumeration
cut short, no suite enumerated) is reported not-checked with the reason, and no TLS
profile is claimed on it."""

from __future__ import annotations

import pytest

from probes.tls.profiles import assess
from probes.tls.versions import suite_model
from scanner.model import Host, Service
from scanner.model.tls_observations import TlsSummary, TlsVersion, VersionOutcome
from scanner.rules.tls_rules import tls_findings

GOOD_13 = [0x1301, 0x1302, 0x1303, 0x1304, 0x1305]
GOOD_12 = [0xC02F, 0xCCA8]


def _v(name: str, outcome: VersionOutcome, codes: list[int] = (), complete: bool = True,
       ) -> TlsVersion:  # fmt: skip
    return TlsVersion(version=name, outcome=outcome, suites=[suite_model(c) for c in codes],
                      enumeration_complete=complete)  # fmt: skip


def _verdicts(versions: list[TlsVersion]) -> dict[str, tuple[str, str]]:
    summary = TlsSummary(speaks_tls=True, outcome="tls")
    svc = Service(port=2762, name="tls", tls=True, observations=[summary, *versions])
    found = tls_findings(Host(address="127.0.0.1", services=[svc]))
    return {f.rule_id: (f.status.value, str(f.evidence.get("reason", ""))) for f in found}


MEASURED = [
    _v("SSLv3", VersionOutcome.REFUSED), _v("TLSv1.0", VersionOutcome.REFUSED),
    _v("TLSv1.1", VersionOutcome.REFUSED), _v("TLSv1.2", VersionOutcome.ACCEPTED, GOOD_12),
    _v("TLSv1.3", VersionOutcome.ACCEPTED, GOOD_13),
]  # fmt: skip


def test_complete_measurement_passes_and_claims_b13() -> None:
    verdicts = _verdicts(MEASURED)
    assert verdicts["tls-legacy-protocol"][0] == "pass"
    assert verdicts["tls-weak-cipher"][0] == "pass"
    assert assess(MEASURED, None, "TLSv1.3")[1] == "B.13"


@pytest.mark.parametrize(
    "index, replacement, reason",
    [
        # The one-connection-at-a-time server: TLS 1.0 got no answer while a slot was held.
        (1, _v("TLSv1.0", VersionOutcome.NO_ANSWER), "TLSv1.0 not answered"),
        (4, _v("TLSv1.3", VersionOutcome.ACCEPTED, GOOD_13[:2], complete=False),
         "TLSv1.3 suite enumeration cut short"),
        (3, _v("TLSv1.2", VersionOutcome.ACCEPTED, []), "TLSv1.2 accepted but no suite"),
        (2, _v("TLSv1.1", VersionOutcome.ERROR), "TLSv1.1 not answered (error)"),
    ],
)
def test_gap_is_not_checked_and_claims_no_profile(
    index: int, replacement: TlsVersion, reason: str
) -> None:
    versions = list(MEASURED)
    versions[index] = replacement
    verdicts = _verdicts(versions)
    status, why = verdicts["tls-weak-cipher"]
    assert status == "not-checked" and reason in why, verdicts
    if replacement.outcome is not VersionOutcome.ACCEPTED:
        assert verdicts["tls-legacy-protocol"][0] == "not-checked"
    checks, best, meets_b12 = assess(versions, None, "TLSv1.3")
    assert best is None and meets_b12 is None
    assert all(reason in " ".join(c.unmeasured) for c in checks)


def test_a_measured_weakness_still_fails_despite_a_gap() -> None:
    versions = list(MEASURED)
    versions[1] = _v("TLSv1.0", VersionOutcome.ACCEPTED, [0x0001])  # TLS_RSA_WITH_NULL_MD5
    versions[0] = _v("SSLv3", VersionOutcome.NO_ANSWER)
    verdicts = _verdicts(versions)
    assert verdicts["tls-legacy-protocol"][0] == "fail"
    assert verdicts["tls-weak-cipher"][0] == "fail"
    assert assess(versions, None, "TLSv1.3")[2] is False
