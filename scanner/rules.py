"""Rule evaluation: finished host results in, findings out.

A pure pass over results, so a saved scan can be judged again offline. Each rule
family is registered here explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from scanner.model import Finding, Host
from scanner.rules_baseline import baseline_findings
from scanner.rules_dicom import dicom_findings
from scanner.rules_http import http_findings
from scanner.rules_software import software_findings
from scanner.rules_tls import tls_findings

HostRules = Callable[[Host], list[Finding]]

RULE_FAMILIES: tuple[HostRules, ...] = (
    dicom_findings,
    tls_findings,
    http_findings,
    software_findings,
    baseline_findings,
)


def evaluate(hosts: Sequence[Host], baseline: str | None = None) -> list[Finding]:
    """All findings; ``baseline`` forces that baseline on every host (--baseline)."""
    families = [
        partial(baseline_findings, forced=baseline) if f is baseline_findings else f
        for f in RULE_FAMILIES
    ]
    findings: list[Finding] = []
    for host in hosts:
        for family in families:
            findings.extend(family(host))
    return findings
