"""The ICMP echo encoding and the pacing of the ARP and ICMP sweeps, without a network.
(On the wire, under the rate cap: tests/test_netns_lab.py.)"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time

import pytest

from probes.icmp import checksum, echo_request, icmp_sweep, parse_reply
from probes.raw_sweep import ThreadPace


def test_checksum_is_rfc_1071() -> None:
    # RFC 1071 section 3's example: the words sum to 0x2ddf0, folded 0xddf2.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == ~0xDDF2 & 0xFFFF
    request = echo_request(0x1234, 7)
    assert checksum(request) == 0  # a packet with its checksum in sums to zero
    kind, code, _, ident, sequence = struct.unpack("!BBHHH", request[:8])
    assert (kind, code, ident, sequence) == (8, 0, 0x1234, 7)


def _reply(source: str, ident: int, kind: int = 0) -> bytes:
    ip = bytes([0x45]) + bytes(11) + socket.inet_aton(source) + socket.inet_aton("198.18.0.1")
    return ip + struct.pack("!BBHHH", kind, 0, 0, ident, 1) + b"x" * 8


def test_only_echo_replies_with_our_identifier_are_answers() -> None:
    assert parse_reply(_reply("198.18.0.9", 42), 42) == ("198.18.0.9", None)
    assert parse_reply(_reply("198.18.0.9", 43), 42) is None  # another process's ping
    assert parse_reply(_reply("198.18.0.9", 42, kind=3), 42) is None  # unreachable
    assert parse_reply(_reply("198.18.0.9", 42, kind=8), 42) is None  # a request
    assert parse_reply(b"\x45" + bytes(10), 42) is None  # cut short


def test_a_stopped_scan_frees_a_thread_waiting_for_a_slot() -> None:
    """The rate cap never grants the slot (a scan at a crawl); stop() must still free the
    sweep thread at once, or Ctrl-C would wait for it."""
    async def never() -> None:
        await asyncio.Event().wait()

    async def main() -> tuple[bool, float]:
        pace = ThreadPace(asyncio.get_running_loop(), never)
        waiting = asyncio.ensure_future(asyncio.to_thread(pace))
        await asyncio.sleep(0.3)
        stopped = time.monotonic()
        pace.stop()
        allowed = await waiting
        return allowed, time.monotonic() - stopped

    allowed, took = asyncio.run(main())
    assert allowed is False and took < 1.0


def test_each_packet_waits_for_its_slot_on_the_loop() -> None:
    granted: list[float] = []

    async def slot() -> None:
        await asyncio.sleep(0.02)
        granted.append(time.monotonic())

    async def main() -> list[bool]:
        pace = ThreadPace(asyncio.get_running_loop(), slot)
        return await asyncio.gather(*(asyncio.to_thread(pace) for _ in range(3)))

    assert asyncio.run(main()) == [True, True, True] and len(granted) == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need root")
def test_icmp_sweep_on_loopback_sends_each_request_when_paced() -> None:
    calls = threading.Semaphore(0)

    def pace() -> bool:
        calls.release()
        return True

    found = icmp_sweep(["127.0.0.1", "127.0.0.2"], 0.3, pace=pace)
    assert sorted(found) == ["127.0.0.1", "127.0.0.2"]
    assert {d.method for d in found.values()} == {"icmp"}
    assert calls.acquire(timeout=0) and calls.acquire(timeout=0)
    assert not calls.acquire(timeout=0)  # one slot per request, no more
    stopped = icmp_sweep(["127.0.0.1"], 0.3, pace=lambda: False)
    assert stopped == {}  # a stopping scan sends nothing


def test_echo_request_is_the_one_scapy_builds() -> None:
    from scapy.layers.inet import ICMP
    from scapy.packet import Raw

    ours = echo_request(0x1234, 7)
    assert bytes(ICMP(type=8, id=0x1234, seq=7) / Raw(ours[8:])) == ours
