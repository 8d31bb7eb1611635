"""OCSF 1.8.0 events: every event validates offline against the official schema."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from scanner.model import FindingStatus, ScanResult
from scanner.outputs.ocsf import ocsf_events, to_ocsf

SCANS = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "scans").glob("*.json"))


def load(path: Path) -> ScanResult:
    return ScanResult.model_validate_json(path.read_text(encoding="utf-8"))


@cache
def validator(class_uid: int) -> jsonschema.Draft202012Validator:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.8.0"))
    name = schema.lookup_class_name_from_uid(class_uid)
    return jsonschema.Draft202012Validator(schema.get_class_schema(name, []))


def assert_valid(event: dict[str, Any]) -> None:
    errors = sorted(validator(event["class_uid"]).iter_errors(event), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


@pytest.mark.parametrize("path", SCANS, ids=lambda p: p.stem)
def test_every_event_of_a_real_scan_validates_against_ocsf_1_8_0(path: Path) -> None:
    result = load(path)
    events = [json.loads(line) for line in to_ocsf(result).splitlines()]
    assert len(events) == len(result.hosts) + len(result.findings)
    for event in events:
        assert event["metadata"]["version"] == "1.8.0"
        assert_valid(event)
    assert events == json.loads(to_ocsf(result, array=True))
    # Written an event at a time, the array is still the same text as one json.dumps.
    assert to_ocsf(result, array=True) == json.dumps(events, indent=2) + "\n"


def test_classes_severity_status_and_time_are_mapped_as_ocsf_defines() -> None:
    result = load(next(p for p in SCANS if p.stem == "orthanc-find-open"))
    events = list(ocsf_events(result))
    by_uid = {e["finding_info"]["uid"]: e for e in events if "finding_info" in e}
    vuln = next(f for f in result.findings if f.rule_id == "software-vulnerable-version")
    event = by_uid[vuln.finding_id]
    assert (event["class_uid"], event["type_uid"]) == (2002, 200201)
    assert [v["cve"]["uid"] for v in event["vulnerabilities"]] == vuln.evidence["cves"]
    assert event["severity_id"] == 4  # high
    assert event["time"] == int(result.scan.finished_at.timestamp() * 1000)
    assert event["time"] > 10**12  # milliseconds, not seconds
    inventory = [e for e in events if e["class_uid"] == 5001]
    assert [e["device"]["uid"] for e in inventory] == [h.device_id for h in result.hosts]
    for f in result.findings:
        e = by_uid[f.finding_id]
        if e["class_uid"] != 2003:
            continue
        expected = {FindingStatus.FAIL: 3, FindingStatus.PASS: 1, FindingStatus.WAIVED: 3,
                    FindingStatus.NOT_CHECKED: 0}[f.status]
        assert e["compliance"]["status_id"] == expected
        assert e["status_code"] == f.status.value
        if f.status is FindingStatus.PASS:
            assert e["severity_id"] == 1


def test_waived_is_suppressed_and_not_checked_is_never_a_pass() -> None:
    result = load(SCANS[0])
    fail = next(f for f in result.findings if f.status is FindingStatus.FAIL)
    waived = fail.model_copy(update={"status": FindingStatus.WAIVED, "evidence": {
        **fail.evidence, "waiver": {"reason": "vendor contract", "approved_by": "CISO",
                                    "expires": "2027-01-01"}}})
    unchecked = next(f for f in result.findings if f.status is FindingStatus.NOT_CHECKED)
    events = list(ocsf_events(result.model_copy(update={"findings": [waived, unchecked]})))
    w, n = events[len(result.hosts):]
    assert (w["status_id"], w["compliance"]["status_id"]) == (3, 3)
    assert "vendor contract" in w["status_detail"]
    assert n["compliance"]["status_id"] == 0 and n["status_id"] == 1
    for event in events:
        assert_valid(event)
