"""ARP sweep of a directly attached link on a packet socket: who-has for each address,
the replies are the live hosts (with their MACs).

Hand-written rather than scapy's ``srp``: an ARP request is 42 fixed bytes and a reply
is read at fixed offsets, while scapy costs about 0.2 s of imports and parses every
frame on the link (its own requests included) in Python, in a thread that holds the GIL
against the scan the replies start (the namespace lab's ARP sweep took about 1 s of the
scan's CPU). Each request waits for a slot of the scan's rate cap; replies are read
between requests and until ``timeout`` after the last (``probes.raw_sweep``); a reply
counts when it is an ARP reply from an address asked for. Needs raw sockets (root or
CAP_NET_RAW), which the caller checks first.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from probes.raw_sweep import Pace, sweep
from scanner.model import HostDiscovery

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
# Ethernet type ARP; hardware Ethernet (1), protocol IPv4, sizes 6 and 4, op request (1).
_ARP_HEADER = b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04"
_REQUEST, _REPLY = b"\x00\x01", b"\x00\x02"
_FRAME = 42  # Ethernet header (14) + ARP for IPv4 over Ethernet (28)

OnReply = Callable[[str, HostDiscovery], None]


def source_address(toward: str) -> bytes:
    """The IPv4 address this host sends from toward ``toward`` (on-link, so through the
    interface the sweep uses): the kernel's route lookup; connecting a UDP socket sends
    nothing. No SO_BINDTODEVICE: before Linux 5.7 it needs CAP_NET_ADMIN, not CAP_NET_RAW."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((toward, 9))
        return socket.inet_aton(sock.getsockname()[0])


def request(mac: bytes, source_ip: bytes, target: str) -> bytes:
    """A broadcast who-has ``target``, from ``mac``/``source_ip``."""
    return (BROADCAST + mac + _ARP_HEADER + _REQUEST + mac + source_ip + b"\x00" * 6
            + socket.inet_aton(target))


def parse_reply(frame: bytes) -> tuple[str, str | None] | None:
    """(sender IPv4, sender MAC) of an ARP reply for IPv4 over Ethernet, else None."""
    if len(frame) < _FRAME or frame[12:20] != _ARP_HEADER or frame[20:22] != _REPLY:
        return None
    mac = ":".join(f"{b:02x}" for b in frame[22:28])
    return str(ipaddress.IPv4Address(frame[28:32])), mac


def arp_sweep(addresses: Sequence[str], iface: str, timeout: float,
              on_reply: OnReply | None = None,
              pace: Pace | None = None) -> dict[str, HostDiscovery]:
    """Broadcast an ARP who-has for each address on ``iface``, each when ``pace`` allows;
    the replies are the live hosts. Blocking (run it in a thread); ``on_reply`` is called
    from that thread as each host first answers."""
    found: dict[str, HostDiscovery] = {}
    if not addresses:
        return found

    def answered(address: str, peer_mac: str | None, rtt_ms: float, at: float) -> None:
        seen = HostDiscovery(method="arp", reason="arp-reply", mac=peer_mac, rtt_ms=rtt_ms,
                             observed_at=datetime.fromtimestamp(at, UTC))
        found[address] = seen
        if on_reply is not None:
            on_reply(address, seen)

    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((iface, ETH_P_ARP))
        mac = sock.getsockname()[4][:6]  # the interface's own hardware address
        source_ip = source_address(addresses[0])
        packets = ((a, functools.partial(sock.send, request(mac, source_ip, a)))
                   for a in addresses)
        sweep(sock, packets, parse_reply, timeout, answered, pace)
    return found
