"""ICMP echo sweep of IPv4 addresses on a raw socket, through the kernel's own routing and
neighbour resolution (so a routed subnet is reached through its gateway).

Hand-written rather than scapy's ``sr`` (which this replaced): an echo request is eight
header bytes and a reply is read at fixed offsets, while scapy costs about 0.4 s of
imports and sends its whole list back to back, outside the scan's rate cap. Each
request here waits for a slot of that cap (``probes.raw_sweep``). A reply counts when it
is an echo reply carrying this process's identifier, from an address asked for. Needs
raw sockets (root or CAP_NET_RAW), which the caller checks first.
"""

from __future__ import annotations

import functools
import os
import socket
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from probes.raw_sweep import Pace, sweep
from scanner.model import HostDiscovery

_ECHO_REQUEST, _ECHO_REPLY = 8, 0
_PAYLOAD = b"dicomscan-ping\x00\x00"  # 16 bytes: nothing a device could mistake for data

OnReply = Callable[[str, HostDiscovery], None]


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the one's complement of the one's complement sum
    of the 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, sequence: int) -> bytes:
    header = struct.pack("!BBHHH", _ECHO_REQUEST, 0, 0, ident, sequence & 0xFFFF)
    return struct.pack("!BBHHH", _ECHO_REQUEST, 0, checksum(header + _PAYLOAD), ident,
                       sequence & 0xFFFF) + _PAYLOAD


def parse_reply(packet: bytes, ident: int) -> tuple[str, str | None] | None:
    """The source of an IPv4 echo reply carrying ``ident`` (a raw ICMP socket reads the IP
    header too), else None: other processes' pings and ICMP errors are not answers."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    start = (packet[0] & 0x0F) * 4
    icmp = packet[start:start + 8]
    if len(icmp) < 8 or icmp[0] != _ECHO_REPLY or icmp[1] != 0:
        return None
    if struct.unpack("!H", icmp[4:6])[0] != ident:
        return None
    return socket.inet_ntoa(packet[12:16]), None


def icmp_sweep(addresses: Sequence[str], timeout: float, on_reply: OnReply | None = None,
               pace: Pace | None = None) -> dict[str, HostDiscovery]:
    """ICMP echo to each address, each when ``pace`` allows. Blocking (run it in a
    thread); ``on_reply`` is called from that thread as each host first answers."""
    found: dict[str, HostDiscovery] = {}
    if not addresses:
        return found
    ident = os.getpid() & 0xFFFF

    def answered(address: str, mac: str | None, rtt_ms: float, at: float) -> None:
        seen = HostDiscovery(method="icmp", reason="echo-reply", rtt_ms=rtt_ms,
                             observed_at=datetime.fromtimestamp(at, UTC))
        found[address] = seen
        if on_reply is not None:
            on_reply(address, seen)

    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        packets = ((a, functools.partial(sock.sendto, echo_request(ident, n), (a, 0)))
                   for n, a in enumerate(addresses))
        sweep(sock, packets, functools.partial(parse_reply, ident=ident), timeout, answered,
              pace)
    return found
