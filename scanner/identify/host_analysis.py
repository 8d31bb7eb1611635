"""Host analysis after all probes: fingerprint each DICOM service, then guess the role.

The role (PACS, modality, workstation, worklist, print) comes from what the DICOM
services accepted, the products identified and the open ports, with a confidence and
human-readable reasons; the baselines use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner.identify.fingerprint import (
    RoleHint,
    associations,
    dedup,
    dicom_services,
    http_signals,
    service_fingerprint,
)
from scanner.identify.oui import medical_family
from scanner.model.observations import AssociationOutcome, ContextResult

if TYPE_CHECKING:
    from probes.context import HostState, ServiceState


# --- role -----------------------------------------------------------------------------------

_QR_PREFIX = "1.2.840.10008.5.1.4.1.2."
_STORAGE_PREFIX = "1.2.840.10008.5.1.4.1.1."
_MWL_FIND = "1.2.840.10008.5.1.4.31"
_STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
# Basic Grayscale and Basic Color Print Management Meta SOP Classes.
_PRINT = frozenset({"1.2.840.10008.5.1.1.9", "1.2.840.10008.5.1.1.18"})
# Default web/REST ports of Orthanc (8042) and dcm4chee-arc (8080, 8443).
_PACS_WEB_PORTS = (8042, 8080, 8443)
_REMOTE_DESKTOP = {3389: "RDP", 5800: "VNC", 5900: "VNC"}

_THRESHOLD = 0.4
_CAP = 0.95
_W_QR = 0.45
_W_QR_STORAGE = 0.2
_W_COMMIT = 0.1
_W_PRODUCT = 0.4
_W_WEB = 0.15
_W_MWL = 0.6
_W_PRINT = 0.6
_W_ONLY = 0.2
_W_STORAGE_ONLY = 0.3
_W_REMOTE = 0.35
_W_VENDOR_ROOT = 0.35
# Imaging vendors also make workstations and PACS: the MAC only tips a storage-only tie.
_W_MAC_VENDOR = 0.2

_ROLE_WORDS: dict[str, str] = {
    "pacs": "a PACS/archive",
    "modality": "a modality",
    "workstation": "a workstation",
    "worklist": "a worklist provider",
    "print": "a print server",
}


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _accepted_contexts(svc: ServiceState) -> list[ContextResult]:
    # Any accepted association counts, not only purpose "services": the checks also propose
    # the service contexts under other purposes (e.g. "calling-ae"), and an accepted context
    # says what the peer supports whatever the association was for.
    out: list[ContextResult] = []
    for a in associations(svc):
        if a.outcome is AssociationOutcome.ACCEPTED:
            out.extend(c for c in a.contexts if c.accepted)
    return out


class _Scores:
    def __init__(self) -> None:
        self.score: dict[str, float] = {}
        self.reasons: dict[str, list[str]] = {}

    def add(self, role: str, weight: float, reason: str) -> None:
        self.score[role] = self.score.get(role, 0.0) + weight
        self.reasons.setdefault(role, []).append(reason)


def guess_role(state: HostState) -> tuple[str | None, float, list[str]]:
    """Guess what the host is from its accepted services, product and open ports.

    Returns (role, confidence 0..1, reasons). The role is None when the host has no
    DICOM service, and "unknown" when the evidence does not single one role out.
    """
    services = dicom_services(state)
    if not services:
        return None, 0.0, []
    hits = http_signals(state)
    open_ports = set(state.open_ports()) | set(state.services)
    scores = _Scores()
    seen_any = False

    any_qr = any_mwl = any_print = False
    storage_only_ports: list[int] = []
    weak_hints: list[tuple[int, RoleHint]] = []
    for svc in services:
        ctx = _accepted_contexts(svc)
        uids = {c.abstract_syntax for c in ctx}
        qr = sorted(u for u in uids if u.startswith(_QR_PREFIX))
        storage = sorted(u for u in uids if u.startswith(_STORAGE_PREFIX))
        mwl = _MWL_FIND in uids
        printing = bool(uids & _PRINT)
        seen_any = seen_any or bool(uids)
        p = svc.port
        if qr:
            scores.add(
                "pacs", _W_QR, f"port {p} accepts Query/Retrieve ({_plural(len(qr), 'context')})"
            )
            if storage:
                classes = _plural(len(storage), "SOP class", "SOP classes")
                scores.add("pacs", _W_QR_STORAGE, f"port {p} also accepts Storage ({classes})")
        if _STORAGE_COMMITMENT in uids:
            scores.add("pacs", _W_COMMIT, f"port {p} accepts Storage Commitment")
        if mwl:
            scores.add("worklist", _W_MWL, f"port {p} accepts Modality Worklist FIND")
            if not storage and not qr:
                scores.add("worklist", _W_ONLY, f"port {p} offers no Storage or Query/Retrieve")
        if printing:
            scores.add("print", _W_PRINT, f"port {p} accepts Basic Print Management")
            if not storage and not qr:
                scores.add("print", _W_ONLY, f"port {p} offers no Storage or Query/Retrieve")
        if storage and not (qr or mwl or printing):
            storage_only_ports.append(p)
        any_qr, any_mwl, any_print = any_qr or bool(qr), any_mwl or mwl, any_print or printing

        identified = service_fingerprint(svc, hits)
        if identified is not None:
            for hint in identified[1]:
                if hint.weak:
                    weak_hints.append((p, hint))
                else:
                    scores.add(
                        hint.role, _W_PRODUCT, f"port {p} {hint.why}, {_ROLE_WORDS[hint.role]}"
                    )
                    seen_any = True

    web = [p for p in _PACS_WEB_PORTS if p in open_ports]
    if web:
        ports = ", ".join(str(p) for p in web)
        scores.add("pacs", _W_WEB, f"HTTP port {ports} open next to DICOM (PACS web/REST defaults)")
        seen_any = True

    storage_only = bool(storage_only_ports) and not (any_qr or any_mwl or any_print)
    if storage_only:
        ports = ", ".join(str(p) for p in storage_only_ports)
        why = f"port {ports} accepts Storage only (no Query/Retrieve, Worklist or Print)"
        scores.add("workstation", _W_STORAGE_ONLY, why)
        scores.add("modality", _W_STORAGE_ONLY, why)
        remote = [f"{_REMOTE_DESKTOP[p]} {p}" for p in sorted(_REMOTE_DESKTOP) if p in open_ports]
        remote += [
            f"{s.name.upper()} {s.port}"
            for s in state.services.values()
            if s.name in ("rdp", "vnc") and s.port not in _REMOTE_DESKTOP
        ]
        if remote:
            scores.add("workstation", _W_REMOTE, f"remote desktop open ({', '.join(remote)})")
        for p, hint in weak_hints:
            if hint.role == "modality":
                scores.add("modality", _W_VENDOR_ROOT, f"port {p}: {hint.why}, a modality vendor")
        family = medical_family(state.mac_vendor)
        if family:
            why = f"MAC address {state.mac} is registered to {state.mac_vendor} ({family})"
            scores.add("modality", _W_MAC_VENDOR, f"{why}, a modality vendor")

    if not seen_any:
        return "unknown", 0.0, ["no accepted presentation contexts or product to judge the role by"]
    ranked = sorted(scores.score.items(), key=lambda kv: kv[1], reverse=True)
    if not ranked:  # e.g. only Verification accepted: DICOM, but nothing points to a role
        return "unknown", 0.0, ["the accepted contexts point to no role"]
    best_role, best = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == best
    if best < _THRESHOLD or tied:
        reasons = dedup(r for role, _ in ranked for r in scores.reasons[role])
        return "unknown", 0.0, [*reasons, "not enough evidence to single out one role"]
    reasons = list(scores.reasons[best_role])
    for role, score in ranked[1:]:
        if score >= _THRESHOLD:
            reasons.append(f"also consistent with {role}: {scores.reasons[role][0]}")
    return best_role, round(min(best, _CAP), 2), reasons


# --- host analysis --------------------------------------------------------------------------


def analyse_host(state: HostState) -> None:
    """Fingerprint every DICOM service of the host, then guess the host's role.

    Runs after all probes, so HTTP answers from other ports of the host are available.
    """
    hits = http_signals(state)
    for svc in dicom_services(state):
        identified = service_fingerprint(svc, hits)
        if identified is None:
            continue  # rejected or aborted before any A-ASSOCIATE-AC: no identity to read
        fp = identified[0]
        if fp not in svc.observations:  # running twice must not duplicate evidence
            svc.observations.append(fp)
        svc.product = fp.product
        svc.version = fp.version
    role, confidence, reasons = guess_role(state)
    state.role = role
    state.role_confidence = confidence if role is not None else None
    state.role_reasons = reasons
