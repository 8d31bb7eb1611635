"""Device health rules: did a device still answer after it was scanned?

The engine checks each DICOM service (in the clear or inside TLS) before its probes and
after them (``HealthCheck`` observations); a device that answered before and not after
may have been knocked over by the scan, which a site must hear about at once.
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
        # Only the failure is a finding: a device that kept answering is the normal case,
        # and its checks stay in the observations for whoever wants the proof.
        if before[-1].answered and after and not after[-1].answered:
            out.append(make_finding(RULE_ID, FindingStatus.FAIL, host.address, svc.port,
                                    evidence))
    return out
