"""What detection reads once and reuses, and that reusing it changes no result: an
A-ASSOCIATE-AC read per distinct PDU, a baseline chosen per distinct set of facts, a
finding kept when its device ID is already right."""

from __future__ import annotations

import contextlib

from probes.dicom import client, codes
from probes.dicom.pdu import associate_rq
from scanner.model import FindingStatus
from scanner.rules.catalogue import make_finding
from tests.hostile_pdus import associate_ac

CONTEXTS = tuple(codes.SERVICE_CONTEXTS)
RQ = associate_rq("DICOMSCAN", "ANY-SCP", CONTEXTS)


def test_an_ac_is_read_once_and_its_notes_are_logged_each_time() -> None:
    # A UID with a control character makes pydicom warn; each association still logs it.
    odd = associate_ac(RQ, uid=b"1.2.3.\x07")
    client._read_ac_cached.cache_clear()
    first = client.read_ac(odd, CONTEXTS)
    second = client.read_ac(odd, CONTEXTS)
    assert second is first  # read once
    assert client._read_ac_cached.cache_info().hits == 1
    assert first.warnings, "pydicom's note on the odd UID was lost"
    assert first.identity.implementation_class_uid == "1.2.3.\x07"
    assert dict(first.accepted) and all(r.accepted for r in first.results)


def test_a_different_answer_is_read_as_itself() -> None:
    a = client.read_ac(associate_ac(RQ, version_name=b"FIRST_1"), CONTEXTS)
    b = client.read_ac(associate_ac(RQ, version_name=b"SECOND_2", max_pdu=4096), CONTEXTS)
    assert a.identity.implementation_version_name == "FIRST_1"
    assert (b.identity.implementation_version_name, b.identity.max_pdu_length) == (
        "SECOND_2", 4096)


def test_an_oversized_ac_is_never_kept() -> None:
    # A hostile peer's large answers must not fill memory through the cache: grow an AC
    # past the limit with repeats of its accepted-context items.
    normal = associate_ac(RQ)
    extra = b"".join(b"\x21\x00\x00\x08" + bytes([cid, 0, 0, 0]) + b"\x40\x00\x00\x00"
                     for cid in range(1, 255, 2)) * 20
    body = normal[6:] + extra
    huge = bytes([2, 0]) + len(body).to_bytes(4, "big") + body
    assert len(huge) > client._AC_CACHE_BYTES
    client._read_ac_cached.cache_clear()
    with contextlib.suppress(Exception):  # read or refused: either way, not kept
        client.read_ac(huge, CONTEXTS)
    assert client._read_ac_cached.cache_info().currsize == 0
    client.read_ac(normal, CONTEXTS)
    assert client._read_ac_cached.cache_info().currsize == 1


def test_a_finding_already_on_its_device_is_kept_and_one_moved_gets_a_new_id() -> None:
    finding = make_finding("dicom-echo-open", FindingStatus.FAIL, "198.18.0.7", 104, {})
    assert finding.on_device(finding.device_id) is finding
    moved = finding.on_device("f" * 32)
    assert moved.device_id == "f" * 32 and moved.finding_id != finding.finding_id
