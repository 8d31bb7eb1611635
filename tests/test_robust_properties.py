"""Property tests for every parser of peer bytes: whatever a peer sends becomes an
observation (or the parser's own documented refusal), never another exception, and never
a Python warning on stderr."""

from __future__ import annotations

import asyncio
import struct
import warnings
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes import banners, http
from probes.dicom import codes
from probes.dicom.client import Session
from probes.dicom.command import CommandBuffer, response_status
from probes.dicom.operations import echo_message, run_operation
from probes.dicom.pdu import PeerProtocolError, RawPDU, associate_rq, decode_pdata
from probes.tls import certificate
from probes.tls.clienthello import ServerAnswer, read_answer
from scanner.model.observations import Association, AssociationOutcome, Operation
from tests import hostile_pdus as pdus
from tests.bad_certs import good_der, server_flight
from tests.test_pdu_parser import SinkWriter, answer

RQ = associate_rq("DICOMSCAN", "ANY", codes.SERVICE_CONTEXTS)
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def _quiet(fn: Any, *args: Any) -> Any:
    """Run ``fn``; any warning that would reach stderr fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


@FAST
@given(
    max_pdu=st.integers(0, 2**32 - 1),
    name=st.binary(max_size=24),
    uid=st.binary(max_size=70),
)
def test_any_associate_ac_becomes_an_observation(max_pdu: int, name: bytes, uid: bytes) -> None:
    ac = pdus.associate_ac(RQ, max_pdu=max_pdu, version_name=name, uid=uid)
    obs, _ = _quiet(answer, ac)
    assert isinstance(obs, Association)


@FAST
@given(st.binary(max_size=8))
def test_any_associate_rj_body(body: bytes) -> None:
    obs, _ = _quiet(answer, struct.pack(">BBL", 0x03, 0, len(body)) + body)
    assert isinstance(obs, Association)
    # Rejected, or its bytes kept as evidence: either way the port stays DICOM.
    assert obs.outcome is AssociationOutcome.REJECTED or obs.first_bytes_hex


@FAST
@given(st.binary(max_size=300))
def test_any_pdata_body_is_values_or_a_refusal(body: bytes) -> None:
    try:
        values = decode_pdata(RawPDU(0x04, body))
    except PeerProtocolError:
        return
    assert sum(len(v) + 5 for _, v in values) == len(body)


def _mutated_echo_rsp(data: st.DataObject) -> bytes:
    raw = bytearray(pdus.echo_rsp(b"\x00\x00"))
    for _ in range(data.draw(st.integers(0, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    return bytes(raw[:cut]) + data.draw(st.binary(max_size=16))


@FAST
@given(st.data())
def test_any_command_set_is_a_status_or_a_refusal(data: st.DataObject) -> None:
    buf = CommandBuffer()
    buf.add(data.draw(st.one_of(st.binary(max_size=200), st.builds(lambda: b"")))
            or _mutated_echo_rsp(data))  # fmt: skip
    try:
        status, data_set_type = _quiet(lambda: response_status(buf.decode()))
    except PeerProtocolError:
        return
    assert 0 <= status <= 0xFFFF and 0 <= data_set_type <= 0xFFFF


@FAST
@given(st.data(), st.integers(1, 1 << 20))
def test_any_dimse_response_becomes_an_operation(data: st.DataObject, max_pdu: int) -> None:
    fragment = _mutated_echo_rsp(data)
    control = data.draw(st.sampled_from([0x00, 0x01, 0x02, 0x03]))
    wire = pdus.pdata(1, control, fragment)
    if data.draw(st.booleans()):
        wire = data.draw(st.binary(max_size=64)) + wire

    async def go() -> Operation:
        reader = asyncio.StreamReader()
        reader.feed_data(wire)
        reader.feed_eof()
        session = Session(reader, SinkWriter(), 0.5, max_pdu,  # type: ignore[arg-type]
                          {codes.VERIFICATION: 1}, {1: codes.IMPLICIT_LE})  # fmt: skip
        return await run_operation(session, "C-ECHO", codes.VERIFICATION, echo_message(), "")

    assert isinstance(_quiet(asyncio.run, go()), Operation)


def _tls_answer(wire: bytes, whole_flight: bool) -> ServerAnswer:
    async def go() -> ServerAnswer:
        reader = asyncio.StreamReader()
        reader.feed_data(wire)
        reader.feed_eof()
        return await read_answer(reader, 0.5, whole_flight)

    result: ServerAnswer = asyncio.run(go())
    return result


HELLO = bytes.fromhex("16030100") + bytes(60)
FLIGHT = server_flight(b"\x16\x03\x01\x00\x00\x01\x00\x00\x00\x03\x03" + bytes(33)
                       + b"\x00\x02\x00\x2f", good_der())  # fmt: skip


@FAST
@given(st.data(), st.booleans())
def test_any_tls_answer_is_classified(data: st.DataObject, whole_flight: bool) -> None:
    raw = bytearray(data.draw(st.sampled_from([FLIGHT, HELLO, b""])))
    for _ in range(data.draw(st.integers(0, 8))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw += data.draw(st.binary(max_size=64))
    ans = _tls_answer(bytes(raw), whole_flight)
    assert ans.kind in ("server-hello", "alert", "closed", "not-tls", "timeout")


@FAST
@given(st.data())
def test_any_certificate_is_described_or_refused(data: st.DataObject) -> None:
    der = bytearray(good_der() if data.draw(st.booleans()) else data.draw(st.binary(max_size=64)))
    for _ in range(data.draw(st.integers(0, 4))):
        if der:
            der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    try:
        cert = _quiet(certificate.describe, [bytes(der)], "test")
    except ValueError:  # CertificateRefused, with the reason
        return
    assert cert.sha256_fingerprint


@FAST
@given(st.binary(max_size=400))
def test_any_http_and_banner_text(data: bytes) -> None:
    status, headers = http.parse_head(data)
    assert status is None or 100 <= status <= 999
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    body, _ = http.dechunk(data)
    assert len(body) <= len(data)
    http.page_title(data)
    for protocol in ("ssh", "ftp", "telnet", "vnc", "smtp", "hl7-mllp"):
        info = banners.parse(protocol, data)
        assert info.banner is None or all(32 <= ord(c) < 127 for c in info.banner)
