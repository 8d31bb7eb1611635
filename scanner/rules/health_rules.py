"""Device health rules: did a device still answer after it was scanned?

The engine checks each cleartext DICOM service before its probes and after them
(``HealthCheck`` observations); a device that answered before and not after may have
been knocked over by the scan, which a site must hear about at once.
"""

from __future__ import annotations

from scanner.model import Finding, FindingStatus, Host
from scanner.model.observations import ConnectionBackoff, HealthCheck, HealthPhase
from scanner.rules.catalogue import make_finding

RULE_ID = "device-unresponsive-after-scan"


def health_findings(host: Host) -> list[Finding]:
    out: list[Finding] = []
    for svc in host.services:
        checks = [o for o in svc.observations if isinstance(o, HealthCheck)]
        before = [c for c in checks if c.phase is HealthPhase.BEFORE]
        after = [c for c in checks if c.phase is HealthPhase.AFTER]
        if not before:
            continue
        timeline = [f"{c.at} {c.phase.value}: {c.method} "
                    f"{'answered' if c.answered else 'no answer'} ({c.detail})" for c in checks]
        timeline += [e for o in svc.observations if isinstance(o, ConnectionBackoff)
                     for e in o.events]
        evidence = {"timeline": sorted(timeline)}
        if not before[-1].answered or not after:
            why = "did not answer before the probes" if not before[-1].answered else \
                "no check after the probes (scan interrupted or host time limit)"
            out.append(make_finding(RULE_ID, FindingStatus.NOT_CHECKED, host.address, svc.port,
                                    {**evidence, "reason": why}))
            continue
        status = FindingStatus.PASS if after[-1].answered else FindingStatus.FAIL
        out.append(make_finding(RULE_ID, status, host.address, svc.port, evidence))
    return out
