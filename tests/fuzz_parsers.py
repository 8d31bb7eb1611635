"""Coverage-guided fuzz target (atheris) for the DICOM PDU and TLS parsers.

Run: ``PYTHONPATH=. python tests/fuzz_parsers.py [CORPUS_DIR] -max_total_time=60``.
The first input byte picks the parser; the rest is what a peer sent. Only the parsers'
documented refusals may be raised; anything else is a crash libFuzzer reports.
"""

from __future__ import annotations

import asyncio
import sys
import warnings

import atheris

# Only our parsers are instrumented: instrumenting pydicom and pynetdicom takes minutes.
with atheris.instrument_imports(include=["probes"]):
    from probes.dicom.command import CommandBuffer, response_status
    from probes.dicom.pdu import PeerProtocolError, RawPDU, decode_pdata
    from probes.tls.clienthello import read_answer
    from tests.test_pdu_parser import answer


def _tls(data: bytes) -> None:
    async def go() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        await read_answer(reader, 0.2, whole_flight=True)

    asyncio.run(go())


def _pdata(data: bytes) -> None:
    try:
        buf = CommandBuffer()
        for _cid, value in decode_pdata(RawPDU(0x04, data)):
            buf.add(value[1:])
        response_status(buf.decode())
    except PeerProtocolError:
        pass  # the documented refusal


def test_one_input(data: bytes) -> None:
    if not data:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would reach a user's stderr
        if data[0] % 3 == 0:
            answer(data[1:])
        elif data[0] % 3 == 1:
            _pdata(data[1:])
        else:
            _tls(data[1:])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
