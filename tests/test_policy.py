"""Baseline DICOM expectations change verdicts (scanner.rules.judge), and the site policy pins
baselines and waives findings (scanner.rules.policy), offline from the saved scans and through
the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from scanner.model import FindingStatus, Host, ScanResult, ScanSettings, Timeouts
from scanner.rules.baselines import load_files, resolve, shipped
from scanner.rules.dicom_rules import dicom_findings
from scanner.rules.evaluate import POLICY_RULES, evaluate
from scanner.rules.judge import apply_baseline_expectations
from scanner.rules.policy import PolicyError, SitePolicy, apply_policy, parse_policy

ROOT = Path(__file__).resolve().parent.parent
SCANS = ROOT / "fixtures" / "scans"
ORTHANC = "orthanc-find-open.json"
TODAY = date(2026, 6, 1)


def saved(name: str) -> ScanResult:
    return ScanResult.model_validate(json.loads((SCANS / name).read_text(encoding="utf-8")))


def saved_host(name: str) -> Host:
    [h] = saved(name).hosts
    return h


def open_dicom_port(h: Host) -> int:
    return next(s.port for s in h.services if s.name == "dicom")


def statuses(findings: list[Any], rule: str) -> dict[int | None, str]:
    return {f.port: f.status.value for f in findings if f.rule_id == rule}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )


# --- baseline expectations judge the DICOM findings ----------------------------------------

LENIENT = """\
id: lenient-orthanc
title: Test baseline, echo, query and GET allowed from unknown peers
extends: orthanc
version: "1"
sources:
  - {title: test fixture, reference: tests/test_policy.py, date: "2026-01"}
expectations:
  echo_from_unknown: {rule: dicom-echo-open, allowed: true}
  find_from_unknown: {rule: dicom-query-open, allowed: true}
  get_from_unknown: {rule: dicom-retrieve-open, allowed: true}
  dicom_tls_required: {rule: dicom-cleartext, required: false}
"""


def test_baseline_allowing_echo_turns_fail_into_pass() -> None:
    h = saved_host(ORTHANC)
    port = open_dicom_port(h)
    default = dicom_findings(h)
    assert statuses(default, "dicom-echo-open")[port] == "fail"
    known = load_files([("lenient.yaml", LENIENT)], shipped())
    judged = apply_baseline_expectations(h, default, resolve("lenient-orthanc", known))
    for rule in ("dicom-echo-open", "dicom-query-open", "dicom-cleartext"):
        [f] = [f for f in judged if f.rule_id == rule]
        assert f.status is FindingStatus.PASS, rule
        assert f.evidence["verdict"] == "allowed by baseline lenient-orthanc"
        assert f.evidence["default_verdict"] == "fail"
        assert f.title != next(d.title for d in default if d.rule_id == rule)  # pass title
    # Store is still forbidden (inherited from orthanc): the fail stays, naming the baseline.
    [store] = [f for f in judged if f.rule_id == "dicom-store-open"]
    assert store.status is FindingStatus.FAIL
    assert store.evidence["verdict"] == "not allowed by baseline lenient-orthanc"
    assert store.evidence["baseline_expectations"]["store_from_unknown"].startswith("orthanc")


def test_shipped_baselines_only_confirm_the_defaults() -> None:
    # Every shipped baseline is as strict as the defaults: statuses never change.
    h = saved_host(ORTHANC)
    default = dicom_findings(h)
    for bid in shipped():
        judged = apply_baseline_expectations(h, default, resolve(bid))
        assert [f.status for f in judged] == [f.status for f in default], bid


def test_evaluate_applies_the_selected_baseline() -> None:
    h = saved_host(ORTHANC)
    [echo] = [f for f in evaluate([h]) if f.rule_id == "dicom-echo-open"]
    assert echo.status is FindingStatus.FAIL
    assert echo.evidence["baseline"] == "orthanc"


# --- policy files ---------------------------------------------------------------------------


def policy_text(port: int | None, expires: str, rule: str = "port-not-allowed") -> str:
    port_line = f"    port: {port}\n" if port is not None else ""
    return (
        "title: test site\n"
        "baselines:\n"
        "  - cidr: 127.0.0.0/8\n"
        "    baseline: generic-modality\n"
        "  - host: 127.0.0.20\n"
        "    baseline: orthanc\n"
        "waivers:\n"
        "  - host: 127.0.0.20\n"
        f"    rule: {rule}\n"
        f"{port_line}"
        "    reason: vendor service port, change CHG-42\n"
        "    approved_by: J. Smith (CISO)\n"
        f"    expires: {expires}\n"
    )


def test_parse_policy_and_pins() -> None:
    p = parse_policy(policy_text(4242, "2026-12-31"), "site.yaml")
    assert p.waivers[0].expires == date(2026, 12, 31)
    h = saved_host(ORTHANC)  # 127.0.0.20: the host pin beats the /8
    pin = p.pin_for(h)
    assert pin is not None and pin.baseline == "orthanc"
    other = h.model_copy(update={"address": "127.0.0.99"})
    pin = p.pin_for(other)
    assert pin is not None and pin.baseline == "generic-modality"
    assert p.pin_for(h.model_copy(update={"address": "10.0.0.1"})) is None


def test_waiver_applied() -> None:
    h = saved_host(ORTHANC)
    port = open_dicom_port(h)
    policy = parse_policy(policy_text(port, "2026-12-31"), "site.yaml")
    findings = evaluate([h], policy=policy.model_dump(mode="json"), today=TODAY)
    ports = statuses(findings, "port-not-allowed")
    assert ports[port] == "waived"
    assert [v for p, v in ports.items() if p not in (port, None)] == ["fail"]  # HTTP port
    [f] = [f for f in findings if f.rule_id == "port-not-allowed" and f.port == port]
    w = f.evidence["waiver"]
    assert w["reason"] == "vendor service port, change CHG-42"
    assert w["approved_by"] == "J. Smith (CISO)" and w["expires"] == "2026-12-31"
    assert w["policy"] == "site.yaml"
    [valid] = [f for f in findings if f.rule_id == "waiver-expired"]
    assert valid.status is FindingStatus.PASS and valid.port == port
    # A waived finding is no failure for the exit code.
    result = saved(ORTHANC).model_copy(update={"findings": [f]})
    assert result.worst_failure() is None


def test_waiver_expired_raises_waiver_expired_and_does_not_waive() -> None:
    h = saved_host(ORTHANC)
    port = open_dicom_port(h)
    policy = parse_policy(policy_text(port, "2026-05-31"), "site.yaml")
    findings = evaluate([h], policy=policy.model_dump(mode="json"), today=TODAY)
    assert statuses(findings, "port-not-allowed")[port] == "fail"
    [expired] = [f for f in findings if f.rule_id == "waiver-expired"]
    assert expired.status is FindingStatus.FAIL and expired.port == port
    assert expired.evidence["verdict"] == "expired on 2026-05-31; it waives nothing"
    assert expired.evidence["approved_by"] == "J. Smith (CISO)"
    # Valid through its expiry day.
    findings = evaluate([h], policy=policy.model_dump(mode="json"), today=date(2026, 5, 31))
    assert statuses(findings, "port-not-allowed")[port] == "waived"


def test_waiver_without_port_covers_every_port_of_the_rule() -> None:
    h = saved_host(ORTHANC)
    policy = parse_policy(policy_text(None, "2030-01-01"), "site.yaml")
    findings = apply_policy(h, evaluate([h]), policy, TODAY)
    ports = statuses(findings, "port-not-allowed")
    assert {v for p, v in ports.items() if p is not None} == {"waived"}
    assert statuses(findings, "dicom-echo-open") == {open_dicom_port(h): "fail"}


def test_policy_pin_selects_baseline_and_says_so() -> None:
    h = saved_host(ORTHANC).model_copy(update={"address": "127.0.0.99"})
    policy = parse_policy(policy_text(None, "2030-01-01"), "site.yaml")
    findings = evaluate([h], policy=policy.model_dump(mode="json"), today=TODAY)
    [sel] = [f for f in findings if f.rule_id == "baseline-unmatched"]
    assert sel.evidence["baseline"] == "generic-modality"
    assert sel.evidence["selected_by"] == "policy"
    assert "pinned to generic-modality by site policy site.yaml (cidr 127.0.0.0/8)" in (
        sel.evidence["why"][0]
    )
    # --baseline on the command line still wins over the policy.
    findings = evaluate([h], "dcmtk", policy.model_dump(mode="json"), today=TODAY)
    [sel] = [f for f in findings if f.rule_id == "baseline-unmatched"]
    assert (sel.evidence["baseline"], sel.evidence["selected_by"]) == ("dcmtk", "forced")


def test_policy_travels_in_scan_settings() -> None:
    policy = parse_policy(policy_text(4242, "2026-12-31"), "site.yaml").model_dump(mode="json")
    settings = ScanSettings(
        targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=[4242], max_concurrency=1,
        per_host_connections=1, probe_spacing=0,
        timeouts=Timeouts(connect=1, dicom=1, dimse=1, host=1), policy=policy,
    )
    again = ScanSettings.model_validate_json(settings.model_dump_json())
    assert again.policy == policy
    assert SitePolicy.model_validate(again.policy).waivers[0].port == 4242


def test_policy_rule_ids_agree() -> None:
    from scanner.rules.policy import WAIVER_RULE

    assert POLICY_RULES == (WAIVER_RULE,)


MALFORMED = [
    ("waivers:\n  - host: 127.0.0.1\n    rule: port-not-allowed\n    reason: r\n"
     "    approved_by: me\n    expires: 2026-13-45\n", "bad.yaml:6: waivers.0.expires"),
    ("waivers:\n  - host: 127.0.0.1\n    rule: port-not-allowed\n    reason: r\n"
     "    approved_by: me\n", "bad.yaml:2: waivers.0.expires: required key 'expires' is missing"),
    ("waivers:\n  - cidr: 10.0.0.0/33\n    rule: port-not-allowed\n    reason: r\n"
     "    approved_by: me\n    expires: 2026-01-01\n",
     "bad.yaml:2: waivers.0.cidr: '10.0.0.0/33' is not a network"),
    ("waivers:\n  - host: 127.0.0.1\n    rule: dicom-no-such-rule\n    reason: r\n"
     "    approved_by: me\n    expires: 2026-01-01\n",
     "bad.yaml:3: waivers.0.rule: unknown rule ID 'dicom-no-such-rule'"),
    ("baselines:\n  - host: 127.0.0.1\n    baseline: nope\n",
     "bad.yaml:3: baselines.0.baseline: unknown baseline 'nope'"),
    ("baselines:\n  - host: 127.0.0.1\n    cidr: 10.0.0.0/8\n    baseline: orthanc\n",
     "bad.yaml:2: baselines.0: give exactly one of 'host' and 'cidr'"),
    ("waiver: []\n", "bad.yaml:1: waiver: unknown key 'waiver'"),
    ("- just a list\n", "bad.yaml: expected a mapping"),
    ("waivers: [\n", "bad.yaml: not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_policy_names_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(text, "bad.yaml")
    assert any(message in p for p in exc.value.problems), exc.value.problems


def test_malformed_policy_exits_2_with_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MALFORMED[3][0], encoding="utf-8")
    for args in (
        ("scan", "127.0.0.1", "-p", "9", "--policy", str(bad)),
        ("audit", "127.0.0.1", "-p", "9", "--policy", str(bad)),
        ("audit", "--from", str(SCANS / ORTHANC), "--policy", str(bad)),
    ):
        out = cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert f"{bad}:3: waivers.0.rule: unknown rule ID 'dicom-no-such-rule'" in out.stderr
        assert "--policy" in out.stderr and "Traceback" not in out.stderr
    out = cli("scan", "127.0.0.1", "-p", "9", "--policy", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2 and "cannot read" in out.stderr
