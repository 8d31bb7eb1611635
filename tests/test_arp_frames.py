"""The ARP sweep's frames (probes/arp.py) checked against scapy's dissector and builder:
the request is the who-has scapy would send, and a reply scapy builds reads back the
same (the sweep itself runs against real namespaces in tests/test_netns_lab.py)."""

from __future__ import annotations

from scapy.layers.l2 import ARP, Ether

from probes.arp import parse_reply, request

MAC = bytes.fromhex("02005e0000fa")


def test_request_is_a_broadcast_who_has() -> None:
    frame = request(MAC, bytes([198, 18, 0, 250]), "198.18.0.17")
    assert len(frame) == 42
    pkt = Ether(frame)
    assert (pkt.dst, pkt.src, pkt.type) == ("ff:ff:ff:ff:ff:ff", "02:00:5e:00:00:fa", 0x0806)
    arp = pkt[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 1)
    assert (arp.hwsrc, arp.psrc, arp.pdst) == ("02:00:5e:00:00:fa", "198.18.0.250",
                                               "198.18.0.17")


def test_reply_read_back_and_others_ignored() -> None:
    reply = Ether(dst="02:00:5e:00:00:fa", src="44:4b:5d:00:00:11") / ARP(
        op=2, hwsrc="44:4b:5d:00:00:11", psrc="198.18.0.17",
        hwdst="02:00:5e:00:00:fa", pdst="198.18.0.250")
    raw = bytes(reply) + b"\x00" * 18  # Ethernet pads to 60 bytes
    assert parse_reply(raw) == ("198.18.0.17", "44:4b:5d:00:00:11")
    who_has = bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc="198.18.0.17",
                                                         pdst="198.18.0.250"))
    assert parse_reply(who_has) is None  # a request, not an answer
    assert parse_reply(raw[:30]) is None  # cut short
    ipv4 = bytes(Ether(type=0x0800) / (b"\x00" * 46))
    assert parse_reply(ipv4) is None
