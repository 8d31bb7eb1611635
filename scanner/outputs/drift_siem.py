"""Drift as SIEM events: OCSF 1.8.0 (``diff --format ocsf``, ``--drift-output ocsf:FILE``)
and CEF (``diff --format cef``, ``--drift-output cef:FILE``, and over ``--syslog``).

OCSF classes, chosen for what a change between two scans is:

- A device that appeared or vanished, a port opened or closed, a service, TLS, AE title
  policy or operations change is a Device Inventory Info event (5001, activity Collect 2):
  the scanner collected the device's inventory again and reports what differs. OCSF 1.8.0
  has no "inventory changed" activity, and Device Config State Change (5019) describes a
  device reporting its own security state (security levels, states), which a network
  scan does not see; so the change itself is in ``message`` and ``unmapped.drift``.
- A finding new, reopened or resolved is the finding's own lifecycle, so it is a
  Compliance Finding (2003) for the rule (the control), with the OCSF finding
  activities: new -> Create (1) / status New (1) / compliance Fail (3); reopened ->
  Update (2) / New (1) / Fail (3), since the same ``finding_info.uid`` was closed
  before; resolved -> Close (3) / Resolved (4) / compliance Pass (1) when the check now
  passes, Unknown (0) when it no longer applies. A change names the rule, not its CVEs,
  so a vulnerable version's drift stays a 2003 (a 2002 needs its vulnerabilities).

Every event's ``metadata.uid`` is the drift ``event_id`` of the JSON Lines events (stable
for the same change between the same two scans); ``time`` is the new scan's end.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from scanner import __version__
from scanner.model import FindingStatus, Severity
from scanner.model.drift import Drift, DriftChange, DriftKind
from scanner.outputs.cef import escape_extension, escape_header, seen_fields
from scanner.outputs.drift_events import event_id
from scanner.outputs.ocsf import OCSF_VERSION, rule_standards
from scanner.rules.catalogue import load_catalogue

FINDING_KINDS = (DriftKind.FINDING_NEW, DriftKind.FINDING_REOPENED, DriftKind.FINDING_RESOLVED)
# kind -> (activity_id, activity name, status_id, status name)
_FINDING_ACTIVITY = {
    DriftKind.FINDING_NEW: (1, "Create", 1, "New"),
    DriftKind.FINDING_REOPENED: (2, "Update", 1, "New"),
    DriftKind.FINDING_RESOLVED: (3, "Close", 4, "Resolved"),
}
_OCSF_SEVERITY = {Severity.INFO: 1, Severity.LOW: 2, Severity.MEDIUM: 3, Severity.HIGH: 4,
                  Severity.CRITICAL: 5}
_SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
_CEF_SEVERITY = {Severity.INFO: 1, Severity.LOW: 3, Severity.MEDIUM: 5, Severity.HIGH: 8,
                 Severity.CRITICAL: 10}


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _end(drift: Drift) -> datetime:
    return drift.new.finished_at or drift.new.started_at


def rule_severity(change: DriftChange) -> Severity | None:
    """The rule's catalogued severity where a finding fails (again) now; else None."""
    if change.kind not in (DriftKind.FINDING_NEW, DriftKind.FINDING_REOPENED):
        return None
    rule = load_catalogue().get(change.rule_id or "")
    return rule.severity if rule else None


def _device(change: DriftChange) -> dict[str, Any]:
    device: dict[str, Any] = {"type_id": 0, "type": "Unknown", "uid": change.device_id,
                              "ip": change.address}
    if change.first_seen and change.last_seen and change.kind not in FINDING_KINDS:
        device["first_seen_time"] = _ms(change.first_seen)
        device["last_seen_time"] = _ms(change.last_seen)
    return device


def ocsf_drift_event(drift: Drift, change: DriftChange, version: str) -> dict[str, Any]:
    finding = change.kind in FINDING_KINDS
    class_uid = 2003 if finding else 5001
    if finding:
        activity_id, activity, status_id, status = _FINDING_ACTIVITY[change.kind]
    else:
        activity_id, activity, status_id, status = 2, "Collect", 0, ""
    severity = rule_severity(change)
    severity_id = _OCSF_SEVERITY[severity] if severity else 1
    event: dict[str, Any] = {
        "class_uid": class_uid, "category_uid": class_uid // 1000,
        "activity_id": activity_id, "activity_name": activity,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": severity_id, "severity": _SEVERITY_NAME[severity_id],
        "time": _ms(_end(drift)),
        "message": change.summary,
        "metadata": {
            "version": OCSF_VERSION, "uid": event_id(drift, change), "log_name": "drift",
            "product": {"name": "dicomscan", "uid": "dicomscan", "vendor_name": "dicomscan",
                        "version": version},
            "correlation_uid": drift.new.scan_id,
        },
        "device": _device(change),
        "unmapped": {"drift": {"kind": change.kind.value, "job": drift.new.job,
                               "scan_id": drift.new.scan_id,
                               "previous_scan_id": drift.old.scan_id, "port": change.port,
                               "field": change.field, "before": change.before,
                               "after": change.after}},
    }
    if not finding:
        return event
    rule_id = change.rule_id or ""
    rule = load_catalogue().get(rule_id)
    info: dict[str, Any] = {"uid": change.finding_id, "title": rule.title if rule else rule_id,
                            "types": [rule_id],
                            "analytic": {"uid": rule_id, "name": rule_id, "type_id": 1,
                                         "type": "Rule"}}
    if change.first_seen and change.last_seen:
        info["first_seen_time"] = _ms(change.first_seen)
        info["last_seen_time"] = _ms(change.last_seen)
    passes = change.kind is not DriftKind.FINDING_RESOLVED
    compliance: dict[str, Any] = (
        {"status_id": 3, "status": "Fail"} if passes
        else {"status_id": 1, "status": "Pass"} if change.after == FindingStatus.PASS.value
        else {"status_id": 0, "status": "Unknown"})
    compliance["control"] = rule_id
    standards, requirements = rule_standards(rule_id)
    if standards:
        compliance.update(standards=list(standards), requirements=list(requirements))
    event.update(status_id=status_id, status=status, finding_info=info, compliance=compliance,
                 resources=[{"uid": change.device_id, "ip": change.address, "type": "device",
                             "name": change.address if change.port is None
                             else f"{change.address}:{change.port}"}])
    if change.kind is DriftKind.FINDING_RESOLVED and change.after != FindingStatus.PASS.value:
        event["status_detail"] = "no longer applies on a device or port still answering"
    return event


def drift_to_ocsf(drift: Drift, version: str = __version__) -> str:
    events = [ocsf_drift_event(drift, c, version) for c in drift.changes]
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)


def cef_severity(change: DriftChange) -> int:
    """A finding failing (again): its rule's severity; resolved 0; a change of the
    inventory 1 (informational), so a SIEM alerting on severity alerts on failures."""
    if change.kind is DriftKind.FINDING_RESOLVED:
        return 0
    severity = rule_severity(change)
    return _CEF_SEVERITY[severity] if severity else 1


def drift_to_cef_line(drift: Drift, change: DriftChange, version: str) -> str:
    """``CEF:0|dicomscan|dicomscan|VERSION|drift:KIND|SUMMARY|SEVERITY|EXTENSION``."""
    detail = json.dumps({"field": change.field, "before": change.before,
                         "after": change.after}, separators=(",", ":"), sort_keys=True,
                        ensure_ascii=False, default=str)
    fields: list[tuple[str, str]] = [
        ("rt", str(_ms(_end(drift)))),
        ("dst", change.address),
        *([("dpt", str(change.port))] if change.port is not None else []),
        ("externalId", event_id(drift, change)),
        ("act", change.kind.value),
        ("cat", "drift"),
        ("msg", change.summary),
        ("cs1Label", "deviceId"), ("cs1", change.device_id),
        ("cs2Label", "scanId"), ("cs2", drift.new.scan_id),
        ("cs3Label", "previousScanId"), ("cs3", drift.old.scan_id),
        ("cs4Label", "change"), ("cs4", detail),
        *([("cs5Label", "findingId"), ("cs5", change.finding_id),
           ("cs6Label", "ruleId"), ("cs6", change.rule_id or "")]
          if change.finding_id else []),
        *seen_fields(change.first_seen, change.last_seen),
    ]
    header = "|".join(escape_header(v) for v in (
        "dicomscan", "dicomscan", version, f"drift:{change.kind.value}", change.summary))
    extension = " ".join(f"{k}={escape_extension(v)}" for k, v in fields)
    return f"CEF:0|{header}|{cef_severity(change)}|{extension}"


def drift_to_cef(drift: Drift, version: str = __version__) -> str:
    return "".join(drift_to_cef_line(drift, c, version) + "\n"
                   for c in drift.changes)
