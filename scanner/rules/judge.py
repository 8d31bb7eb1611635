"""Judge DICOM findings against the DICOM expectations of a host's baseline.

``scanner/rules_dicom.py`` judges with fixed defaults: TLS required, called AE enforced,
unknown calling AE rejected, and nothing allowed from an unknown peer. A baseline may
relax one of these (a modality worklist that must answer C-ECHO from anyone, a DICOM port
inside a TLS-terminating enclave): a failure the baseline allows becomes a pass whose
evidence says "allowed by baseline X". The defaults are already the strictest setting of
every expectation, so a baseline can never make a default pass fail: a baseline that
forbids something only confirms the default verdict, and its id is added to the evidence.

A pure pass over findings, so a saved scan can be judged again offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.model import Finding, FindingStatus, Host
from scanner.rules.baseline_model import EXPECTED_RULE
from scanner.rules.baselines import Resolved
from scanner.rules.catalogue import make_finding

# The expectation keys behind each DICOM rule; dicom-retrieve-open rests on two (GET, MOVE).
RULE_EXPECTATIONS: dict[str, tuple[str, ...]] = {}
for _key, _rule in EXPECTED_RULE.items():
    if _rule.startswith("dicom-"):
        RULE_EXPECTATIONS.setdefault(_rule, ())
        RULE_EXPECTATIONS[_rule] += (_key,)
_OPERATION_KEY = {"C-GET": "get_from_unknown", "C-MOVE": "move_from_unknown"}


def _permits(resolved: Resolved, key: str) -> bool | None:
    """True when the baseline allows what the default forbids, False when it forbids it,
    None when it says nothing."""
    exp = getattr(resolved.expectations, key)
    if exp is None:
        return None
    # A field test, not hasattr: a pydantic model's missing attribute goes through its
    # metaclass's __getattr__, about 30 us a call (3% of detection-only scans).
    if "allowed" in type(exp).model_fields:
        return bool(exp.allowed)
    return not exp.required


def _keys_for(rule_id: str, evidence: dict[str, Any]) -> tuple[str, ...]:
    keys = RULE_EXPECTATIONS.get(rule_id, ())
    if rule_id != "dicom-retrieve-open":
        return keys
    # Judge only the retrieve operations the peer actually authorised.
    ops = evidence.get("operations") or []
    seen = {
        _OPERATION_KEY[o["operation"]]
        for o in ops
        if isinstance(o, dict) and o.get("operation") in _OPERATION_KEY
        and o.get("outcome") == "authorised"
    }
    return tuple(k for k in keys if k in seen) or keys


def _judged(
    rule_id: str, status: FindingStatus, evidence: dict[str, Any], resolved: Resolved
) -> tuple[FindingStatus, dict[str, Any]] | None:
    """The status and evidence the baseline gives, or None when it says nothing."""
    keys = _keys_for(rule_id, evidence)
    said = resolved.judged.get(keys)
    if said is None:  # once per baseline and set of expectation keys, not per finding
        said = resolved.judged[keys] = _said(keys, resolved)
    if not said.expectations:
        return None
    rid = resolved.id
    ev: dict[str, Any] = {
        **evidence,
        "baseline": rid,
        "baseline_expectations": dict(said.expectations),
    }
    if status is FindingStatus.FAIL and said.all_allow:
        ev["verdict"] = f"allowed by baseline {rid}"
        ev["default_verdict"] = "fail"
        return FindingStatus.PASS, ev
    if status is FindingStatus.FAIL:
        ev["verdict"] = f"not allowed by baseline {rid}"
    return status, ev


@dataclass(frozen=True)
class _Said:
    """What a baseline says of a finding's expectation keys."""

    expectations: dict[str, str]  # each key it speaks of -> the baseline that set it
    all_allow: bool  # it allows, under every key, what the default forbids


def _said(keys: tuple[str, ...], resolved: Resolved) -> _Said:
    verdicts = [_permits(resolved, k) for k in keys]
    said = [k for k, v in zip(keys, verdicts, strict=True) if v is not None]
    return _Said(
        {k: resolved.origin.get(k, resolved.id) for k in said},
        bool(keys) and all(v is True for v in verdicts),
    )


def judge_verdict(
    rule_id: str, status: FindingStatus, evidence: dict[str, Any], resolved: Resolved
) -> tuple[FindingStatus, dict[str, Any]]:
    """A DICOM rule's verdict judged before its finding is made: the rules then build
    each finding once, not once and again with the baseline's evidence (a tenth of the
    rules' time). The same finding as ``apply_baseline_expectations`` gives."""
    if rule_id not in RULE_EXPECTATIONS:
        return status, evidence
    return _judged(rule_id, status, evidence, resolved) or (status, evidence)


def _judge(finding: Finding, resolved: Resolved) -> Finding:
    judged = _judged(finding.rule_id, finding.status, finding.evidence, resolved)
    if judged is None:
        return finding
    status, ev = judged
    if status is not finding.status:
        return make_finding(
            finding.rule_id, status, finding.host, finding.port, ev, finding.confidence
        )
    return finding.model_copy(update={"evidence": ev})


def apply_baseline_expectations(
    host: Host, findings: list[Finding], baseline: Resolved
) -> list[Finding]:
    """The host's findings with its baseline's DICOM expectations applied."""
    return [
        _judge(f, baseline) if f.host == host.address and f.rule_id in RULE_EXPECTATIONS else f
        for f in findings
    ]
