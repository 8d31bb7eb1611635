"""Every drift kind as OCSF 1.8.0 (validated against the official schema) and as CEF, with
the class, activity and status each kind is documented to map to."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from scanner.model.drift import Drift, DriftChange, DriftKind, ScanRef
from scanner.outputs.drift_siem import drift_to_cef, drift_to_ocsf
from scanner.outputs.registry import drift_file
from scanner.rules.catalogue import load_catalogue
from tests.history.conftest import T0
from tests.test_ocsf import assert_valid
from tests.test_syslog import parse_cef

FINDINGS = {DriftKind.FINDING_NEW: (1, 1, 3), DriftKind.FINDING_REOPENED: (2, 1, 3),
            DriftKind.FINDING_RESOLVED: (3, 4, 1)}


def every_kind() -> Drift:
    changes = []
    for kind in DriftKind:
        finding = kind in FINDINGS
        changes.append(DriftChange(
            kind=kind, device_id="d" * 32, address="198.18.0.2", port=104,
            finding_id="f" * 32 if finding else None,
            rule_id="dicom-echo-open" if finding else None,
            field=None if finding else "tls.tls", before=True, after=(
                "pass" if kind is DriftKind.FINDING_RESOLVED else False),
            summary=f"{kind.value} | with = odd\ncharacters",
            first_seen=T0, last_seen=T0 + timedelta(hours=1)))
    return Drift(old=ScanRef(scan_id="old", job="lab", started_at=T0),
                 new=ScanRef(scan_id="new", job="lab", started_at=T0 + timedelta(hours=1),
                             finished_at=T0 + timedelta(hours=1, seconds=30)),
                 changes=changes)


def test_every_kind_is_a_valid_ocsf_event_of_its_class() -> None:
    drift = every_kind()
    events = [json.loads(x) for x in drift_to_ocsf(drift).splitlines()]
    assert len(events) == len(DriftKind)
    for change, event in zip(drift.changes, events, strict=True):
        assert_valid(event)
        if change.kind in FINDINGS:
            activity, status, compliance = FINDINGS[change.kind]
            assert (event["class_uid"], event["activity_id"], event["status_id"],
                    event["compliance"]["status_id"]) == (2003, activity, status, compliance)
            assert event["finding_info"]["uid"] == change.finding_id
        else:
            assert (event["class_uid"], event["type_uid"]) == (5001, 500102)
            assert event["device"]["first_seen_time"] == int(T0.timestamp() * 1000)
    assert len({e["metadata"]["uid"] for e in events}) == len(events)


def test_every_kind_is_one_cef_record_that_parses_back() -> None:
    drift = every_kind()
    lines = drift_to_cef(drift).splitlines()
    assert len(lines) == len(DriftKind)
    for change, line in zip(drift.changes, lines, strict=True):
        header, ext = parse_cef(line)
        assert header[4] == f"drift:{change.kind.value}" and header[5] == change.summary.replace(
            "\n", " ")
        assert ext["msg"] == change.summary and ext["act"] == change.kind.value
        assert ext["cs3"] == "old" and ext["deviceCustomDate1Label"] == "firstSeen"
        severity = int(header[6])
        rule = load_catalogue()["dicom-echo-open"].severity.value
        assert severity == ({"info": 1, "low": 3, "medium": 5, "high": 8,
                             "critical": 10}[rule] if change.kind in (DriftKind.FINDING_NEW,
                                                 DriftKind.FINDING_REOPENED)
                            else 0 if change.kind is DriftKind.FINDING_RESOLVED else 1)


@pytest.mark.parametrize(("spec", "expected"), [
    ("drift.jsonl", ("jsonl", "drift.jsonl")), ("d.ocsf.json", ("ocsf", "d.ocsf.json")),
    ("x.cef", ("cef", "x.cef")), ("ocsf:/tmp/d.out", ("ocsf", "/tmp/d.out")),
    ("cef:d.log", ("cef", "d.log")), ("c:/odd:name", ("jsonl", "c:/odd:name"))])
def test_drift_output_format_comes_from_the_prefix_or_the_ending(
        spec: str, expected: tuple[str, str]) -> None:
    assert drift_file(spec) == expected
