"""Stable identities: the same device and the same finding keep their IDs across scans."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from scanner.model import Finding, FindingStatus, Host, PortObservation, PortState, Severity
from scanner.model.identity import device_id, finding_id
from scanner.rules.evaluate import evaluate

T = datetime(2026, 12, 1, tzinfo=UTC)


def host(address: str, mac: str | None) -> Host:
    port = PortObservation(port=23, state=PortState.OPEN, method="tcp-connect",
                           reason="connected", observed_at=T)
    return Host(address=address, mac=mac, ports=[port])


def test_device_id_follows_the_mac_where_known() -> None:
    assert host("198.18.0.5", "AA:BB:CC:00:11:22").device_id == \
        host("198.18.0.9", "aa:bb:cc:00:11:22").device_id
    assert host("198.18.0.5", None).device_id != host("198.18.0.9", None).device_id
    # documented recipe: anyone can recompute it
    assert device_id("198.18.0.5") == hashlib.sha256(b"ip:198.18.0.5").hexdigest()[:32]


def test_finding_id_ignores_status_and_keeps_across_scans() -> None:
    a = evaluate([host("198.18.0.5", "aa:bb:cc:00:11:22")])
    b = evaluate([host("198.18.0.7", "aa:bb:cc:00:11:22")])  # same device, new address
    assert a and {f.finding_id for f in a} == {f.finding_id for f in b}
    assert all(f.device_id == a[0].device_id for f in a)
    fail = Finding(rule_id="x-rule", severity=Severity.HIGH, status=FindingStatus.FAIL,
                   host="198.18.0.5", port=104, title="t")
    assert fail.model_copy(update={"status": FindingStatus.PASS}).finding_id == fail.finding_id
    assert fail.finding_id == finding_id("x-rule", device_id("198.18.0.5"), 104, None)


def test_baseline_is_part_of_a_findings_identity() -> None:
    one = finding_id("port-not-allowed", "d", 23, "generic-modality")
    assert one != finding_id("port-not-allowed", "d", 23, "orthanc")
    assert one != finding_id("port-not-allowed", "d", 24, "generic-modality")


def test_other_rules_keep_their_id_when_judged_against_another_baseline() -> None:
    # A device identified differently next time must not see all its findings "resolved"
    # and "new" again: only the port verdicts are relative to a baseline.
    assert finding_id("dicom-echo-open", "d", 104, "dcmtk") == \
        finding_id("dicom-echo-open", "d", 104, "generic-pacs")


def test_judging_a_device_hashes_each_identity_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every finding hashed its device's ID, and every finding ID was hashed twice (once
    made, once the judge was done): three hashes a finding, a fifth of the rules' time."""
    import scanner.model.identity as identity

    hashed: list[bytes] = []
    real = hashlib.sha256

    def counting(data: bytes) -> Any:
        hashed.append(data)
        return real(data)

    identity._digest.cache_clear()
    monkeypatch.setattr(identity.hashlib, "sha256", counting)
    findings = evaluate([host("198.18.0.5", None)])
    assert len(findings) >= 2
    assert len(hashed) == len(set(hashed)) == len(findings) + 1  # the device, each finding
