"""Default DICOM rules: observations of the DICOM probe in, pass/fail/not-checked findings out.

Each rule is a small pure function of one service's observations. Titles, severities
and remediation come from the catalogue (``scanner/data/rules/dicom.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from probes.dicom import codes
from scanner.model import Finding, FindingStatus, Host, Service
from scanner.model.observations import (
    UNMEASURED_OPERATIONS,
    AeTitleGuess,
    Association,
    AssociationOutcome,
    Confidence,
    Operation,
    OperationOutcome,
)
from scanner.rules.baselines import Resolved
from scanner.rules.catalogue import make_finding
from scanner.rules.judge import judge_verdict

F, P, N = FindingStatus.FAIL, FindingStatus.PASS, FindingStatus.NOT_CHECKED
Verdict = tuple[FindingStatus, dict[str, Any], Confidence]


def _assocs(svc: Service, purpose: str) -> list[Association]:
    return [
        o
        for o in svc.observations
        if isinstance(o, Association) and purpose in o.purpose.split(",")
    ]


def _detections(svc: Service) -> list[Association]:
    """Detection associations, in the clear or inside TLS (purposes starting "detect")."""
    return [
        o
        for o in svc.observations
        # Some comma-separated purpose starts with "detect" (without splitting: hot path).
        if isinstance(o, Association)
        and (o.purpose.startswith("detect") or ",detect" in o.purpose)
    ]


def _unknown_calling(svc: Service) -> list[Association]:
    """Associations that tested an unregistered calling AE title.

    The calling-AE check itself, and a detection rejected with "calling AE title not
    recognised" (the scanner's own title is unregistered unless the site added it).
    """
    found = _assocs(svc, "calling-ae")
    for a in _detections(svc):
        if a.reject and (a.reject.source, a.reject.reason) == (1, 3):
            found.append(a)
    return found


def _ops(svc: Service, *operations: str) -> list[Operation]:
    return [o for o in svc.observations if isinstance(o, Operation) and o.operation in operations]


# The abstract syntaxes each operation is sent on (probes/dicom/checks.py picks from these).
_CONTEXTS: dict[str, tuple[str, ...]] = {
    "C-ECHO": (codes.VERIFICATION,),
    "C-FIND": (codes.PATIENT_FIND, codes.STUDY_FIND, codes.WORKLIST_FIND),
    "C-GET": (codes.PATIENT_GET, codes.STUDY_GET),
    "C-MOVE": (codes.PATIENT_MOVE, codes.STUDY_MOVE),
}


def _accepted_contexts(svc: Service, operations: tuple[str, ...]) -> list[str]:
    """Names of contexts for ``operations`` that any association of ours had accepted."""
    wanted = {uid for op in operations for uid in _CONTEXTS.get(op, ())}
    return sorted({
        c.name for o in svc.observations if isinstance(o, Association)
        for c in o.contexts if c.accepted and c.abstract_syntax in wanted
    })  # fmt: skip


def _assoc_evidence(a: Association) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "sent": f"A-ASSOCIATE-RQ calling={a.calling_ae} called={a.called_ae}",
        "answer": a.outcome.value,
    }
    if a.reject:
        ev["reject"] = (
            f"{a.reject.result_text}, source {a.reject.source_text}, "
            f"reason {a.reject.reason}: {a.reject.reason_text}"
        )
    if a.detail and not a.reject:
        ev["detail"] = a.detail
    return ev


def _op_evidence(ops: Iterable[Operation]) -> dict[str, Any]:
    return {
        "operations": [
            {
                "operation": o.operation,
                "sop_class": o.sop_class_name,
                "outcome": o.outcome.value,
                "status": o.status_text,
                "detail": o.detail or None,
                "sent": o.sent or None,
            }
            for o in ops
        ]
    }


def called_ae(svc: Service) -> Verdict | None:
    known_refused = any(
        a.reject and (a.reject.source, a.reject.reason) == (1, 7) and "called-ae" not in a.purpose
        for a in _detections(svc)
    )
    for a in _assocs(svc, "called-ae"):
        ev = _assoc_evidence(a)
        if a.outcome is AssociationOutcome.ACCEPTED:
            return F, ev, Confidence.CONFIRMED
        if a.reject and (a.reject.source, a.reject.reason) == (1, 7):
            if known_refused:
                ev["reason"] = "the known AE title was refused the same way, so enforcement "
                ev["reason"] += "cannot be told apart from calling AE filtering"
                return N, ev, Confidence.CONFIRMED
            return P, ev, Confidence.CONFIRMED
        return N, ev, Confidence.CONFIRMED
    return None


def calling_ae(svc: Service) -> Verdict:
    for a in _unknown_calling(svc):
        ev = _assoc_evidence(a)
        if a.outcome is AssociationOutcome.ACCEPTED:
            return F, ev, Confidence.CONFIRMED
        if _refused_the_caller(a):
            return P, ev, Confidence.CONFIRMED
        if a.reject is not None:
            ev["reason"] = ("rejected for a reason that is not about the caller (busy, or "
                            "the upper layer), so the check could not run")
        return N, ev, Confidence.CONFIRMED
    return (
        N,
        {"reason": "no called AE title was accepted, so calling AE checks could not run"},
        (Confidence.CONFIRMED),
    )


def _unknown_peer_refused(svc: Service) -> bool:
    return _all_refused(_unknown_calling(svc))


def _refused_the_caller(a: Association) -> bool:
    """The device itself turned this association away: an A-ABORT, or an A-ASSOCIATE-RJ
    from its service user that is permanent (or too short to say). A transient rejection
    (temporary congestion, its association limit) or one from the upper layer says
    nothing about who asked: read as a refusal, a busy device passed the access checks."""
    if a.outcome is AssociationOutcome.ABORTED:
        return True
    if a.outcome is not AssociationOutcome.REJECTED:
        return False
    return a.reject is None or a.reject.by_the_device


def _all_refused(tried: list[Association]) -> bool:
    return bool(tried) and all(_refused_the_caller(a) for a in tried)


def _operation_rule(*operations: str) -> Callable[[Service], Verdict]:
    def rule(svc: Service) -> Verdict:
        ops = _ops(svc, *operations)
        ops = [o for o in ops if o.outcome is not OperationOutcome.NOT_TESTED]
        if any(o.outcome is OperationOutcome.AUTHORISED for o in ops):
            return F, _op_evidence(ops), Confidence.CONFIRMED
        if ops and all(o.outcome not in UNMEASURED_OPERATIONS for o in ops):
            return P, _op_evidence(ops), Confidence.CONFIRMED
        tried = _unknown_calling(svc)
        if _all_refused(tried):
            return (
                P,
                {"reason": "unknown calling AE titles cannot associate",
                 **_assoc_evidence(tried[0])},
                Confidence.CONFIRMED,
            )
        if not tried:
            return N, {"reason": "calling AE checks could not run"}, Confidence.CONFIRMED
        if not ops:
            if accepted := _accepted_contexts(svc, operations):
                # The peer took the context but the request never went (it stopped taking
                # connections, or the scan ran out of time): unknown, never a pass.
                return N, {
                    "reason": f"{' or '.join(operations)} was never sent, though an "
                    f"association accepted {', '.join(accepted)}",
                }, Confidence.CONFIRMED
            return (
                P,
                {"reason": "no presentation context for this operation was accepted"},
                (Confidence.CONFIRMED),
            )
        return N, _op_evidence(ops), Confidence.CONFIRMED

    return rule


def store(svc: Service) -> Verdict:
    ops = _ops(svc, "C-STORE")
    confirmed = [o for o in ops if o.confidence is Confidence.CONFIRMED]
    if any(o.outcome is OperationOutcome.AUTHORISED for o in confirmed):
        return F, _op_evidence(confirmed), Confidence.CONFIRMED
    refused = (OperationOutcome.REFUSED, OperationOutcome.ABORTED)
    if confirmed and all(o.outcome in refused for o in confirmed):
        return P, _op_evidence(confirmed), Confidence.CONFIRMED
    if ops:
        return F, _op_evidence(ops), Confidence.INFERRED
    if _unknown_peer_refused(svc):
        return P, {"reason": "unknown calling AE titles cannot associate"}, Confidence.CONFIRMED
    if any(a.outcome is AssociationOutcome.ACCEPTED for a in _assocs(svc, "calling-ae")):
        return (
            P,
            {"reason": "no storage context accepted from an unknown peer"},
            (Confidence.INFERRED),
        )
    return N, {"reason": "calling AE checks could not run"}, Confidence.CONFIRMED


def ae_guessable(svc: Service) -> Verdict | None:
    for o in svc.observations:
        if isinstance(o, AeTitleGuess):
            ev = {"tried": o.tried, "accepted": o.accepted_titles, "source": o.source}
            if o.accepted_titles:
                return F, ev, Confidence.CONFIRMED
            if o.stopped:  # a few titles refused is no proof that the rest would be
                return N, {**ev, "reason": o.stopped}, Confidence.CONFIRMED
            return P, ev, Confidence.CONFIRMED
    return None


def version_disclosed(svc: Service) -> Verdict | None:
    for a in _detections(svc):
        if a.peer is None:
            continue
        ev = {
            "implementation_class_uid": a.peer.implementation_class_uid,
            "implementation_version_name": a.peer.implementation_version_name,
        }
        if svc.product:
            ev["product"] = f"{svc.product} {svc.version or ''}".strip()
        return (F if a.peer.implementation_version_name else P), ev, Confidence.CONFIRMED
    return None


def cleartext(svc: Service) -> Verdict:
    detect = _assocs(svc, "detect")
    ev = _assoc_evidence(detect[0]) if detect else {}
    ev["transport"] = "DICOM upper layer over plain TCP"
    return F, ev, Confidence.CONFIRMED


RULES: tuple[tuple[str, Callable[[Service], Verdict | None]], ...] = (
    ("dicom-cleartext", cleartext),
    ("dicom-called-ae-not-enforced", called_ae),
    ("dicom-calling-ae-not-validated", calling_ae),
    ("dicom-echo-open", _operation_rule("C-ECHO")),
    ("dicom-query-open", _operation_rule("C-FIND")),
    ("dicom-retrieve-open", _operation_rule("C-GET", "C-MOVE")),
    ("dicom-store-open", store),
    ("dicom-ae-title-guessable", ae_guessable),
    ("dicom-version-disclosed", version_disclosed),
)


def dicom_findings(host: Host, resolved: Resolved | None = None) -> list[Finding]:
    """The host's DICOM findings; with ``resolved``, judged against that baseline's DICOM
    expectations as each is made (``scanner.rules.judge``)."""
    out: list[Finding] = []
    tls_ports = [s.port for s in host.services if s.name == "dicom-tls"]
    for svc in host.services:
        if svc.name not in ("dicom", "dicom-tls"):
            continue
        for rule_id, rule in RULES:
            if rule_id == "dicom-cleartext" and svc.name == "dicom-tls":
                continue
            verdict = rule(svc)
            if verdict is None:
                continue
            status, evidence, confidence = verdict
            if rule_id == "dicom-cleartext" and tls_ports:
                # TLS exists beside it: a peer (or an attacker) can simply use the cleartext port.
                evidence = {
                    **evidence,
                    "also_offered_over_tls": tls_ports,
                    "downgrade": "the same host offers DICOM without TLS",
                }
            if resolved is not None:
                status, evidence = judge_verdict(rule_id, status, evidence, resolved)
            out.append(make_finding(rule_id, status, host.address, svc.port, evidence, confidence))
    return out
