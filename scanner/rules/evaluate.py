"""Rule evaluation: finished host results in, findings out.

A pure pass over results, so a saved scan can be judged again offline. Each rule
family is registered here explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from scanner.model import Finding, Host, utcnow
from scanner.rules.baseline_rules import baseline_findings, has_open_port, select
from scanner.rules.dicom_rules import dicom_findings
from scanner.rules.health_rules import health_findings
from scanner.rules.http_rules import http_findings
from scanner.rules.judge import apply_baseline_expectations
from scanner.rules.legacy_rules import legacy_findings
from scanner.rules.software_rules import software_findings
from scanner.rules.tls_rules import tls_findings

if TYPE_CHECKING:
    from scanner.rules.policy import SitePolicy

HostRules = Callable[[Host], list[Finding]]

RULE_FAMILIES: tuple[HostRules, ...] = (
    dicom_findings,
    tls_findings,
    http_findings,
    software_findings,
    baseline_findings,
    health_findings,
    legacy_findings,
)
# Emitted by scanner.rules.policy.apply_policy after the families run (listed for the
# catalogue test).
POLICY_RULES = ("waiver-expired",)


def evaluate(
    hosts: Sequence[Host],
    baseline: str | None = None,
    policy: dict[str, Any] | None = None,
    today: date | None = None,
) -> list[Finding]:
    """All findings; ``baseline`` forces that baseline on every host (--baseline).

    Each host's DICOM findings are then judged against its baseline's expectations, and
    ``policy`` (a SitePolicy as JSON) pins baselines and waives findings as of ``today``.
    """
    site: SitePolicy | None = None
    if policy is not None:
        # Loaded only with a policy: its models cost a scan without one ~10 ms to build.
        from scanner.rules.policy import SitePolicy

        site = SitePolicy.model_validate(policy)
    today = today or utcnow().date()
    findings: list[Finding] = []
    for host in hosts:
        pin = site.pin_for(host) if site is not None and baseline is None else None
        forced = baseline or (pin.baseline if pin is not None else None)
        # Once per device: the baseline rules and the judge both use it.
        sel = select(host, forced) if has_open_port(host) else None
        host_findings: list[Finding] = []
        for family in RULE_FAMILIES:
            if family is dicom_findings:  # judged as each finding is made: built once
                host_findings.extend(dicom_findings(host, sel.resolved if sel else None))
                continue
            if family is baseline_findings:
                found = baseline_findings(host, forced, sel)
            elif family is legacy_findings:  # RDP is judged with the host's baseline
                found = legacy_findings(host, sel)
            else:
                found = family(host)
            # The DICOM expectations judge DICOM rules only; any other family's are judged here.
            if found and sel is not None:
                found = apply_baseline_expectations(host, found, sel.resolved)
            host_findings.extend(found)
        if site is not None:
            from scanner.rules.policy import apply_policy

            host_findings = apply_policy(host, host_findings, site, today, pinned=pin is not None)
        # Identity last: the judge and the policy may still have named the baseline.
        findings.extend(f.on_device(host.device_id) for f in host_findings)
    return findings
