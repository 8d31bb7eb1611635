"""``--format ocsf``: findings and devices as OCSF 1.8.0 events, one JSON object per line
(or one JSON array with ``--ocsf-array``), for Amazon Security Lake, Sentinel and other
OCSF consumers.

- A hardening finding is a Compliance Finding (2003): the rule is the control, the
  compliance frameworks that map the rule are its ``standards``/``requirements``.
- A known-vulnerable version (``software-vulnerable-version`` that failed or was waived)
  is a Vulnerability Finding (2002) with one ``vulnerability`` per CVE. When the version
  matched no advisory (pass) there is no CVE to name, so that check stays a 2003.
- Each device is a Device Inventory Info event (5001, activity Collect).

Status, mapped honestly (``compliance.status_id``, finding ``status_id``):
fail -> Fail (3) / New (1); pass -> Pass (1) / New (1); waived -> Fail (3) / Suppressed
(3), the waiver in ``status_detail``; not-checked -> Unknown (0) / New (1), never Pass.
``severity_id`` is the rule's severity (info 1 ... critical 5) where the check failed,
was waived or could not be made; a check that passed is Informational (1).
``time`` is the scan's end in milliseconds since the epoch (OCSF ``timestamp_t``).
First and last seen (``finding_info.*_seen_time``, ``device.*_seen_time``) come from the
scan history when the scan was stored; without one a finding's are this scan's time and a
device has none.

Built as plain dicts by typed functions rather than with py-ocsf-models: its latest
release models OCSF 1.5.0 and has no Vulnerability Finding (2002) or Device Inventory
Info (5001) class, and requires fields the specification does not. Every event is checked
against the official 1.8.0 JSON Schema in the tests (tests/test_ocsf.py).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any

from scanner.model import Finding, FindingStatus, Host, ScanResult, Severity
from scanner.model.observations import Confidence
from scanner.rules.port_audit import load_framework

OCSF_VERSION = "1.8.0"
VULNERABLE_RULE = "software-vulnerable-version"
FRAMEWORKS = ("acr-siim-2025", "hipaa-164-312", "nist-1800-24", "nist-800-53")

_SEVERITY_ID = {Severity.INFO: 1, Severity.LOW: 2, Severity.MEDIUM: 3, Severity.HIGH: 4,
                Severity.CRITICAL: 5}
_SEVERITY_NAME = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High",
                  5: "Critical"}
# status -> (compliance.status_id, its name, finding status_id, its name)
_STATUS: dict[FindingStatus, tuple[int, str, int, str]] = {
    FindingStatus.FAIL: (3, "Fail", 1, "New"),
    FindingStatus.PASS: (1, "Pass", 1, "New"),
    FindingStatus.WAIVED: (3, "Fail", 3, "Suppressed"),
    FindingStatus.NOT_CHECKED: (0, "Unknown", 1, "New"),
}
_SERVER_ROLES = {"pacs", "worklist"}  # OCSF device type Server (1); others Unknown (0)


def _ms_of(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _ms(result: ScanResult) -> int:
    return _ms_of(result.scan.finished_at)


def _metadata(result: ScanResult, uid: str, log_name: str) -> dict[str, Any]:
    return {
        "version": OCSF_VERSION,
        "uid": uid,
        "log_name": log_name,
        "product": {"name": "dicomscan", "uid": "dicomscan", "vendor_name": "dicomscan",
                    "version": result.scan.tool_version},
        "correlation_uid": result.scan.id,
    }


def _header(result: ScanResult, class_uid: int, activity_id: int, severity_id: int,
            uid: str, log_name: str) -> dict[str, Any]:
    return {
        "class_uid": class_uid,
        "category_uid": class_uid // 1000,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": severity_id,
        "severity": _SEVERITY_NAME[severity_id],
        "time": _ms(result),
        "metadata": _metadata(result, uid, log_name),
    }


def _device(host: Host | None, address: str, device_uid: str) -> dict[str, Any]:
    role = host.role if host else None
    device: dict[str, Any] = {"type_id": 1 if role in _SERVER_ROLES else 0,
                              "uid": device_uid, "ip": address}
    if host is not None:
        device["type"] = "Server" if role in _SERVER_ROLES else "Unknown"
        optional = {"hostname": host.hostname, "mac": host.mac, "mac_vendor": host.mac_vendor,
                    "vendor_name": host.mac_vendor}
        device.update({k: v for k, v in optional.items() if v})
        if host.first_seen and host.last_seen:  # only from a history: no guess otherwise
            device["first_seen_time"] = _ms_of(host.first_seen)
            device["last_seen_time"] = _ms_of(host.last_seen)
    return device


@cache
def rule_standards(rule_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The frameworks that map a rule, and their requirements (``framework:requirement``)."""
    standards: list[str] = []
    requirements: list[str] = []
    for name in FRAMEWORKS:
        framework = load_framework(name)
        hits = [r["id"] for r in framework["requirements"] if rule_id in r["rules"]]
        if hits:
            standards.append(str(framework["title"]))
            requirements.extend(f"{name}:{h}" for h in hits)
    return tuple(standards), tuple(requirements)


def _finding_common(result: ScanResult, f: Finding, host: Host | None,
                    class_uid: int) -> dict[str, Any]:
    _, _, status_id, status_name = _STATUS[f.status]
    severity_id = 1 if f.status is FindingStatus.PASS else _SEVERITY_ID[f.severity]
    event = _header(result, class_uid, 1, severity_id, f"{f.finding_id}:{result.scan.id}",
                    "findings")
    where = f"{f.host}:{f.port}" if f.port is not None else f.host
    event.update({
        "status_id": status_id,
        "status": status_name,
        "status_code": f.status.value,
        "confidence_id": 3 if f.confidence is Confidence.CONFIRMED else 2,
        "message": f"{f.title} ({where}, {f.status.value})",
        "finding_info": {
            "uid": f.finding_id,
            "title": f.title,
            "types": [f.rule_id],
            "analytic": {"uid": f.rule_id, "name": f.rule_id, "type_id": 1, "type": "Rule"},
            # From the history where the scan was stored, else this scan alone.
            "first_seen_time": _ms_of(f.first_seen) if f.first_seen else _ms(result),
            "last_seen_time": _ms_of(f.last_seen) if f.last_seen else _ms(result),
        },
        "device": _device(host, f.host, f.device_id),
        "resources": [{"uid": f.device_id, "ip": f.host, "type": "device",
                       "name": where}],
        # The measured evidence has no OCSF home: kept verbatim, as the spec intends.
        "unmapped": {"rule_id": f.rule_id, "port": f.port, "evidence": f.evidence,
                     "dicomscan_status": f.status.value},
    })
    if f.status is FindingStatus.WAIVED:
        waiver = f.evidence.get("waiver")
        event["status_detail"] = f"waived: {json.dumps(waiver, sort_keys=True)}"
    elif f.status is FindingStatus.NOT_CHECKED:
        event["status_detail"] = "not checked: " + str(f.evidence.get("reason", "no evidence"))
    if f.remediation:
        event["remediation"] = {"desc": f.remediation, "references": list(f.references)} \
            if f.references else {"desc": f.remediation}
    return event


def compliance_finding(result: ScanResult, f: Finding, host: Host | None) -> dict[str, Any]:
    event = _finding_common(result, f, host, 2003)
    compliance_id, compliance_name, _, _ = _STATUS[f.status]
    standards, requirements = rule_standards(f.rule_id)
    compliance: dict[str, Any] = {"control": f.rule_id, "status_id": compliance_id,
                                  "status": compliance_name, "status_code": f.status.value}
    if standards:
        compliance["standards"] = list(standards)
        compliance["requirements"] = list(requirements)
    event["compliance"] = compliance
    return event


def _vulnerabilities(f: Finding) -> list[dict[str, Any]]:
    advisories = f.evidence.get("advisories") or []
    out = []
    for cve in f.evidence.get("cves") or []:
        advisory: dict[str, Any] = next(
            (a for a in advisories if cve in a.get("cves", [])), {})
        vuln: dict[str, Any] = {"cve": {"uid": cve}, "title": f"{cve} in "
                                f"{f.evidence.get('product')} {f.evidence.get('version')}"}
        if advisory.get("summary"):
            vuln["desc"] = advisory["summary"]
        if advisory.get("sources"):
            vuln["references"] = list(advisory["sources"])
        vuln["affected_packages"] = [{"name": str(f.evidence.get("product")),
                                      "version": str(f.evidence.get("version"))}]
        out.append(vuln)
    return out


def vulnerability_finding(result: ScanResult, f: Finding, host: Host | None) -> dict[str, Any]:
    event = _finding_common(result, f, host, 2002)
    remediation = event.pop("remediation", None)  # 2002 keeps it per vulnerability
    event["vulnerabilities"] = _vulnerabilities(f)
    if remediation:
        for vuln in event["vulnerabilities"]:
            vuln["remediation"] = remediation
    return event


def inventory_info(result: ScanResult, host: Host) -> dict[str, Any]:
    event = _header(result, 5001, 2, 1, f"{host.device_id}:{result.scan.id}", "inventory")
    event["device"] = _device(host, host.address, host.device_id)
    event["message"] = f"device {host.address}" + (f" ({host.role})" if host.role else "")
    event["unmapped"] = {
        "role": host.role,
        "open_ports": sorted(p.port for p in host.ports if p.state.value == "open"),
        "services": [{"port": s.port, "name": s.name, "tls": s.tls, "product": s.product,
                      "version": s.version} for s in host.services],
    }
    return event


def ocsf_events(result: ScanResult) -> Iterator[dict[str, Any]]:
    """The events one at a time: a scan of a thousand devices has tens of thousands, and
    only their text is kept."""
    hosts = {h.address: h for h in result.hosts}
    for h in result.hosts:
        yield inventory_info(result, h)
    for f in result.findings:
        host = hosts.get(f.host)
        vulnerable = (f.rule_id == VULNERABLE_RULE and f.evidence.get("cves")
                      and f.status in (FindingStatus.FAIL, FindingStatus.WAIVED))
        yield (vulnerability_finding(result, f, host) if vulnerable
               else compliance_finding(result, f, host))


def to_ocsf(result: ScanResult, array: bool = False) -> str:
    events = ocsf_events(result)
    if array:
        # json.dumps(list, indent=2), an event at a time: JSON text has no raw newlines,
        # so each event's lines are indented one level as the list would indent them.
        items = (textwrap.indent(json.dumps(e, indent=2), "  ") for e in events)
        body = ",\n".join(items)
        return f"[\n{body}\n]\n" if body else "[]\n"
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
