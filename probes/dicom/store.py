"""The one intrusive check: C-STORE of a synthetic Secondary Capture test object.

Only run with ``--intrusive``. Everything that identifies the object says it is a
scanner test object, and the observation's ``sent`` names its UIDs and Patient ID so
the site can find and delete it. The UIDs are derived from the scan's random
zero-match UID, the host and the port: fresh for each scan and each target, yet
reproducible from the report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as _msgs
from pynetdicom import dimse_primitives as _dimse
from pynetdicom.dsutils import encode as _encode_ds

from probes.dicom import codes
from probes.dicom.client import Session
from probes.dicom.operations import Request, run_operation
from scanner import __version__
from scanner.model.observations import (
    UNMEASURED_OPERATIONS,
    Confidence,
    Operation,
    OperationOutcome,
)

PATIENT_ID = "DICOMSCAN-TEST"
PATIENT_NAME = "DICOMSCAN^TEST^OBJECT"
DESCRIPTION = "dicomscan scanner test object - safe to delete"
SIDE = 8  # an 8x8 8-bit image: as small as a valid image gets
STORE_MESSAGE_ID = 4


@dataclass(frozen=True)
class ObjectUids:
    study: str
    series: str
    instance: str


def object_uids(scan_uid: str, host: str, port: int) -> ObjectUids:
    """2.25 UIDs (PS3.5 B.2) from name-based UUIDs: unique per scan, host and port."""

    def uid(level: str) -> str:
        return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{scan_uid}/{host}/{port}/{level}').int}"

    return ObjectUids(uid("study"), uid("series"), uid("instance"))


def synthetic_object(uids: ObjectUids, now: datetime | None = None) -> Dataset:
    """A minimal valid Secondary Capture image whose every identifier names the scanner."""
    now = now or datetime.now(UTC)
    ds = Dataset()
    ds.SOPClassUID = codes.SC_STORAGE
    ds.SOPInstanceUID = uids.instance
    # Dated today, so the object sorts beside the scan in a worklist or archive browser.
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""  # never a number that might collide with a real order
    ds.Modality = "OT"
    ds.ConversionType = "WSD"  # workstation: no modality produced this
    ds.Manufacturer = "dicomscan"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = ds.SeriesDescription = ds.ImageComments = DESCRIPTION
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.SoftwareVersions = f"dicomscan {__version__}"
    ds.StudyInstanceUID = uids.study
    ds.SeriesInstanceUID = uids.series
    ds.StudyID = "DICOMSCAN"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = SIDE
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    # A checkerboard: visibly synthetic to anyone who opens it. OB, stated outright,
    # rather than left to pydicom's "OB or OW" resolution.
    pixels = bytes(255 * ((r + c) % 2) for r in range(SIDE) for c in range(SIDE))
    ds.add_new(0x7FE00010, "OB", pixels)
    return ds


def describe(uids: ObjectUids) -> str:
    """What was sent, for the report: enough for the site to find and delete it."""
    return (
        f"C-STORE-RQ of one synthetic test object, safe to delete: SOP Class "
        f"{codes.sop_name(codes.SC_STORAGE)} ({codes.SC_STORAGE}), "
        f"StudyInstanceUID={uids.study}, SeriesInstanceUID={uids.series}, "
        f"SOPInstanceUID={uids.instance}, PatientID={PATIENT_ID}, PatientName={PATIENT_NAME}"
    )


def store_message(session: Session, ds: Dataset) -> Request:
    """A C-STORE-RQ carrying ``ds`` in the transfer syntax the peer accepted (encoded for
    this device alone: the test object's UIDs are the target's)."""
    ts = session.transfer[session.accepted[codes.SC_STORAGE]]
    encoded = _encode_ds(ds, ts == codes.IMPLICIT_LE, True)
    if encoded is None:  # pynetdicom logs and returns None instead of raising
        raise ValueError("the synthetic test object could not be encoded")

    def build() -> Any:
        primitive = _dimse.C_STORE()
        primitive.MessageID = STORE_MESSAGE_ID
        primitive.AffectedSOPClassUID = codes.SC_STORAGE
        primitive.AffectedSOPInstanceUID = ds.SOPInstanceUID
        primitive.Priority = 2  # low: a test object must never delay real traffic
        primitive.DataSet = BytesIO(encoded)
        msg = _msgs.C_STORE_RQ()
        msg.primitive_to_message(primitive)
        return msg

    return Request(None, build)


def not_tested(sop_class: str, detail: str) -> Operation:
    """The non-intrusive verdict: an accepted storage context, not proven by a C-STORE."""
    return Operation(
        operation="C-STORE",
        sop_class=sop_class,
        sop_class_name=codes.sop_name(sop_class),
        outcome=OperationOutcome.NOT_TESTED,
        confidence=Confidence.INFERRED,
        detail=detail,
    )


async def store_test_object(session: Session, uids: ObjectUids) -> Operation:
    """Send the test object on an accepted Secondary Capture context and classify the answer."""
    if codes.SC_STORAGE not in session.accepted:
        return not_tested(
            codes.SC_STORAGE,
            "Secondary Capture context not accepted in the storage association: nothing sent",
        )
    sent = describe(uids)
    op = await run_operation(
        session, "C-STORE", codes.SC_STORAGE, store_message(session, synthetic_object(uids)), sent
    )
    if op.outcome in UNMEASURED_OPERATIONS:
        # No status came back, so nothing is proven either way: the verdict stays the one
        # inferred from the accepted context, and the object may or may not be stored.
        return op.model_copy(
            update={
                "confidence": Confidence.INFERRED,
                "detail": f"{op.detail}; the test object may have been stored",
            }
        )
    return op
