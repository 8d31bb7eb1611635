"""Meanings of DICOM upper-layer codes (PS3.8 §9.3) and the SOP classes the probe proposes."""

from __future__ import annotations

REJECT_RESULT = {1: "rejected-permanent", 2: "rejected-transient"}
REJECT_SOURCE = {
    1: "service-user",
    2: "service-provider (ACSE)",
    3: "service-provider (presentation)",
}
REJECT_REASON: dict[tuple[int, int], str] = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
ABORT_SOURCE = {0: "service-user", 1: "reserved", 2: "service-provider"}
ABORT_REASON = {
    0: "reason not specified",
    1: "unrecognised PDU",
    2: "unexpected PDU",
    4: "unrecognised PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}
CONTEXT_RESULT = {
    0: "acceptance",
    1: "user-rejection",
    2: "no-reason (provider rejection)",
    3: "abstract-syntax-not-supported",
    4: "transfer-syntaxes-not-supported",
}

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
PRINT_GRAYSCALE = "1.2.840.10008.5.1.1.9"

SOP_NAMES: dict[str, str] = {
    VERIFICATION: "Verification",
    PATIENT_FIND: "Patient Root Q/R FIND",
    PATIENT_MOVE: "Patient Root Q/R MOVE",
    PATIENT_GET: "Patient Root Q/R GET",
    STUDY_FIND: "Study Root Q/R FIND",
    STUDY_MOVE: "Study Root Q/R MOVE",
    STUDY_GET: "Study Root Q/R GET",
    WORKLIST_FIND: "Modality Worklist FIND",
    STORAGE_COMMITMENT: "Storage Commitment Push",
    CT_STORAGE: "CT Image Storage",
    MR_STORAGE: "MR Image Storage",
    SC_STORAGE: "Secondary Capture Image Storage",
    PRINT_GRAYSCALE: "Basic Grayscale Print Management",
}

# Proposed in the first association: enough to tell what the peer offers, in one round trip.
SERVICE_CONTEXTS: tuple[str, ...] = (
    VERIFICATION,
    PATIENT_FIND,
    PATIENT_MOVE,
    PATIENT_GET,
    STUDY_FIND,
    STUDY_MOVE,
    STUDY_GET,
    WORKLIST_FIND,
    STORAGE_COMMITMENT,
    CT_STORAGE,
    MR_STORAGE,
    SC_STORAGE,
    PRINT_GRAYSCALE,
)

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"


def sop_name(uid: str) -> str:
    return SOP_NAMES.get(uid, uid)


def reject_reason(source: int, reason: int) -> str:
    return REJECT_REASON.get((source, reason), f"reason {reason} (not defined for this source)")
