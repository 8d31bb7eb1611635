"""Service identification on the connection that found a port open.

The first thing an open port receives is a DICOM A-ASSOCIATE-RQ: a legacy DICOM
stack can die from anything else (an HTTP request, a TLS ClientHello, or a
connection closed with no data). Other protocols answer the RQ with something of
their own (an HTTP 400, an SSH banner, a TLS alert), which names them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from probes.dicom.client import detect_association
from probes.dicom.pdu import looks_like_pdu
from probes.ports import OpenConnection
from scanner.model import ScanSettings
from scanner.model.observations import AssociationOutcome, Banner

if TYPE_CHECKING:
    from probes.context import ServiceState

LOG = logging.getLogger(__name__)
DICOM_OUTCOMES = {
    AssociationOutcome.ACCEPTED,
    AssociationOutcome.REJECTED,
    AssociationOutcome.ABORTED,
}

# Leading bytes of common server answers; checked in order.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"HTTP/", "http"),
    (b"SSH-", "ssh"),
    (b"RFB ", "vnc"),
    (b"\x15\x03", "tls"),  # TLS alert record: a TLS server reading our RQ as a bad ClientHello
    (b"\x16\x03", "tls"),
    (b"\x03\x00", "rdp"),  # TPKT header
    (b"220", "ftp-or-smtp"),
    (b"\xff\xfb", "telnet"),
    (b"\xff\xfd", "telnet"),
    (b"\x0b", "hl7-mllp"),
)


def printable(data: bytes, limit: int = 64) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data[:limit])


def name_from_bytes(data: bytes) -> str:
    for prefix, name in _SIGNATURES:
        if data.startswith(prefix):
            return name
    return "unknown"


async def identify_service(
    conn: OpenConnection, settings: ScanSettings, health: bool = False
) -> ServiceState:
    """Run the DICOM detection on ``conn`` and name the service from the answer.

    With ``health`` (the caller health-checks DICOM services) the detection association
    also gives the check before, where it can (``probes.dicom.health``): one association
    less for the device than a check of its own."""
    from probes.context import ServiceState

    # Without a known title the detection uses a random one, so it is the called-AE test too.
    purpose = "detect" if settings.ae_titles else "detect,called-ae"
    check = None
    if health:
        from probes.dicom.health import detect_and_check

        obs, check = await detect_and_check(conn.reader, conn.writer, settings, purpose)
    else:
        obs = await detect_association(conn.reader, conn.writer, settings, purpose=purpose)
    service = ServiceState(port=conn.port, name="unknown")
    service.observations.append(obs)
    if check is not None:
        service.observations.append(check)
        LOG.info("health %s:%d before (in the detection): %s", conn.host, conn.port,
                 check.detail)
    first = bytes.fromhex(obs.first_bytes_hex or "")
    if obs.outcome in DICOM_OUTCOMES or looks_like_pdu(first):
        service.name = "dicom"
    elif first:
        service.name = name_from_bytes(first)
        service.observations.append(Banner(first_bytes_hex=first.hex(), text=printable(first)))
    elif obs.outcome is AssociationOutcome.CLOSED:
        service.observations.append(Banner(first_bytes_hex="", text="", closed_without_data=True))
    return service
