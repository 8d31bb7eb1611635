"""The ICMP echo encoding and the pacing of the ARP and ICMP sweeps, without a network.
(On the wire, under the rate cap: tests/test_netns_lab.py.)"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

from probes.icmp import checksum, echo_request, icmp_sweep, parse_reply
from probes.raw_sweep import ThreadPace
from probes.sweep_core import RateSlots


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
    """The next slot is two seconds away (a scan at a crawl); stop() must still free the
    sweep thread at once, or Ctrl-C would wait for it."""
    rate = RateSlots(0.5, 0.002)
    rate.reserve(time.monotonic())  # the slot now is taken: the next is 2 s away
    pace = ThreadPace(rate)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(pace()))
    thread.start()
    time.sleep(0.3)
    stopped = time.monotonic()
    pace.stop()
    thread.join(2.0)
    assert result == [False] and time.monotonic() - stopped < 0.5


def test_each_packet_waits_for_its_slot_and_threads_share_the_cap() -> None:
    """Two sweep threads (ARP on two links) and the loop's own callers book from one cap,
    thread-safely: together never faster than it."""
    rate = RateSlots(100.0, 0.002)
    starts: list[float] = []

    def sweep_thread() -> None:
        pace = ThreadPace(rate)
        for _ in range(15):
            assert pace()
            starts.append(time.monotonic())

    threads = [threading.Thread(target=sweep_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert len(starts) == 30 and min(gaps) >= 0.5 / 100, min(gaps)
    assert max(starts) - min(starts) >= 29 * 0.9 / 100


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
