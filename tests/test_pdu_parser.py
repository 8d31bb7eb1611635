"""Property tests: whatever bytes a peer answers with, the probe returns an observation."""

from __future__ import annotations

import asyncio
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from probes.dicom import codes
from probes.dicom.client import request_association
from probes.dicom.pdu import MAX_CONTROL_PDU, looks_like_pdu
from scanner.model.observations import Association, AssociationOutcome


class SinkWriter:
    """Collects what the probe writes; stands in for the socket side we do not test here."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default  # no socket behind this sink


def answer(data: bytes) -> tuple[Association, SinkWriter]:
    async def go() -> tuple[Association, SinkWriter]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        writer = SinkWriter()
        obs, session = await request_association(
            reader,
            writer,  # type: ignore[arg-type]
            purpose="detect",
            calling_ae="DICOMSCAN",
            called_ae="ANY",
            contexts=codes.SERVICE_CONTEXTS,
            timeout=1.0,
        )
        if session is not None:
            await session.release()
        return obs, writer

    return asyncio.run(go())


pdu_types = st.integers(min_value=0, max_value=255)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """A PDU header with a body of the declared length (or a lie about it)."""
    body = draw(st.binary(max_size=512))
    declared = draw(st.one_of(st.just(len(body)), st.integers(0, 2**32 - 1)))
    return struct.pack(">BBL", draw(pdu_types), draw(st.sampled_from([0, 0, 1])), declared) + body


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=256), framed()))
def test_any_answer_becomes_an_observation(data: bytes) -> None:
    obs, writer = answer(data)
    assert isinstance(obs, Association)
    assert writer.data[:1] == b"\x01"  # we always spoke first, with an A-ASSOCIATE-RQ
    if obs.outcome is AssociationOutcome.NOT_DICOM:
        assert obs.first_bytes_hex
        assert len(obs.first_bytes_hex) <= 128


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=MAX_CONTROL_PDU + 1, max_value=2**32 - 1))
def test_oversized_control_pdus_are_refused_without_reading_them(length: int) -> None:
    obs, writer = answer(struct.pack(">BBL", 0x02, 0, length) + b"\x00" * 16)
    assert obs.outcome is AssociationOutcome.ERROR
    assert f"declares {length} bytes" in obs.detail
    assert writer.data.endswith(bytes.fromhex("07000000000400000000"))  # A-ABORT sent


def test_reject_is_decoded_with_meanings() -> None:
    obs, _ = answer(bytes.fromhex("03000000000400020103"))
    assert obs.outcome is AssociationOutcome.REJECTED
    assert obs.reject is not None
    assert (obs.reject.result_text, obs.reject.source_text, obs.reject.reason_text) == (
        "rejected-transient",
        "service-user",
        "calling AE title not recognised",
    )


def test_rdp_tpkt_is_not_taken_for_a_reject() -> None:
    # An X.224 Connection Confirm in its TPKT: 03 00 like an A-ASSOCIATE-RJ.
    tpkt = bytes.fromhex("030000130ed000001234000200080001000000")
    assert not looks_like_pdu(tpkt)
    obs, _ = answer(tpkt)
    assert obs.outcome is AssociationOutcome.NOT_DICOM
    assert obs.first_bytes_hex == tpkt.hex()  # the whole answer kept as evidence
    assert looks_like_pdu(bytes.fromhex("03000000000400020103"))


def test_truncated_reject_is_an_error_not_a_crash() -> None:
    obs, _ = answer(bytes.fromhex("030000000002 0001".replace(" ", "")))
    assert obs.outcome is AssociationOutcome.ERROR


def test_accept_without_user_information_is_not_a_crash() -> None:
    # Found by hypothesis: an A-ASSOCIATE-AC whose body lacks the mandatory items.
    obs, _ = answer(b"\x02\x00\x00\x00\x00\x02\x00\x00")
    assert obs.outcome in (AssociationOutcome.ACCEPTED, AssociationOutcome.ERROR)


def test_a_banner_is_kept_whole_when_the_peer_resets_after_sending_it() -> None:
    """An SSH server sends its banner, reads our A-ASSOCIATE-RQ and resets the connection.
    asyncio's reader raises the reset before the bytes it already holds: the banner was
    cut to its first six bytes ("SSH-2.") whenever the reset came between two reads."""
    banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n"

    async def go() -> Association:
        reader = asyncio.StreamReader()
        reader.feed_data(banner)
        reader.set_exception(ConnectionResetError(104, "Connection reset by peer"))
        obs, _ = await request_association(
            reader, SinkWriter(),  # type: ignore[arg-type]
            purpose="detect", calling_ae="DICOMSCAN", called_ae="ANY",
            contexts=codes.SERVICE_CONTEXTS, timeout=1.0)
        return obs

    obs = asyncio.run(go())
    assert obs.outcome is AssociationOutcome.NOT_DICOM
    assert bytes.fromhex(obs.first_bytes_hex or "") == banner
