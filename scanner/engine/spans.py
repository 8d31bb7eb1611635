"""Targets as intervals of integers, so a /8 is counted, excluded, scoped, checked for
public addresses and fenced as a handful of intervals instead of 16 million strings
(expanding first took 12 minutes and 2.4 GB for ``--plan 10.0.0.0/8``).

An address is its integer within its IP version; an IPv6 address with a zone
(``fe80::1%eth0``) lives in its own family per zone, since it names a different host on
each interface. Everything here is exact: no sampling, no approximation.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Interval = tuple[int, int]  # first and last, inclusive
Family = tuple[int, str]  # IP version and zone ("" for none)


@dataclass(frozen=True)
class Span:
    """Consecutive target addresses that came from one spec (and one name, if any)."""

    version: int
    first: int
    last: int
    spec: str
    name: str | None = None
    zone: str = ""

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    @property
    def family(self) -> Family:
        return self.version, self.zone

    def text(self, number: int) -> str:
        return address_text(self.version, number, self.zone)

    def texts(self) -> Iterator[str]:
        for number in range(self.first, self.last + 1):
            yield self.text(number)

    def part(self, first: int, last: int) -> Span:
        return Span(self.version, first, last, self.spec, self.name, self.zone)


def address_text(version: int, number: int, zone: str = "") -> str:
    """The address as ``str(ipaddress.ip_address(...))`` writes it."""
    if version == 4:  # inet_ntoa is str(IPv4Address) without one object per address
        return socket.inet_ntoa(number.to_bytes(4, "big"))
    return str(ipaddress.IPv6Address(number)) + (f"%{zone}" if zone else "")


def range_text(version: int, first: int, last: int, zone: str = "") -> str:
    if first == last:
        return address_text(version, first, zone)
    return f"{address_text(version, first, zone)}-{address_text(version, last, zone)}"


def subtract(first: int, last: int, holes: Sequence[Interval]) -> list[Interval]:
    """Parts of [first, last] outside every hole (holes in any order, may overlap)."""
    if not holes:
        return [(first, last)]
    parts: list[Interval] = []
    at = first
    for lo, hi in sorted(h for h in holes if h[1] >= first and h[0] <= last):
        if lo > at:
            parts.append((at, lo - 1))
        at = max(at, hi + 1)
        if at > last:
            return parts
    if at <= last:
        parts.append((at, last))
    return parts


def intersect(first: int, last: int, blocks: Sequence[Interval]) -> list[Interval]:
    """Parts of [first, last] inside some block, in order, without overlaps."""
    inside = subtract(first, last, blocks)
    return subtract(first, last, inside)


class Covered:
    """Disjoint intervals already taken, per family: ``take`` returns the parts of a new
    interval not taken before (and takes them), so duplicates collapse in order."""

    def __init__(self) -> None:
        self._families: dict[Family, _Blocks] = {}

    def take(self, family: Family, first: int, last: int) -> list[Interval]:
        blocks = self._families.get(family)
        if blocks is None:
            blocks = self._families[family] = _Blocks()
        return blocks.take(first, last)


# Intervals per block of ``_Blocks``: a block is split in two beyond twice this.
_LOAD = 512


class _Blocks:
    """Disjoint, non-touching intervals in order, kept as short sorted blocks (the layout
    of a B-tree's leaves): a take moves at most a block's worth of list items, where
    one flat list moved half of everything taken (262,144 random single addresses took
    9.5 s that way). The block index is moved only when a block is split or emptied."""

    def __init__(self) -> None:
        self.starts: list[list[int]] = []
        self.ends: list[list[int]] = []
        self.last_ends: list[int] = []  # each block's last end, to find a block by bisect

    def take(self, first: int, last: int) -> list[Interval]:
        # The intervals that overlap or touch [first, last] are merged into one.
        b = bisect.bisect_left(self.last_ends, first - 1)
        if b == len(self.last_ends):  # beyond everything taken: append
            if not self.starts:
                self.starts.append([])
                self.ends.append([])
                self.last_ends.append(last)
            b = len(self.starts) - 1
            self._insert(b, len(self.starts[b]), first, last)
            return [(first, last)]
        k = bisect.bisect_left(self.ends[b], first - 1)
        new: list[Interval] = []
        at, lo, hi = first, first, last
        # Walk the merged intervals from (b, k) on, block by block.
        cb, ck = b, k
        while cb < len(self.starts):
            starts, ends = self.starts[cb], self.ends[cb]
            while ck < len(starts) and starts[ck] <= last + 1:
                if starts[ck] > at:
                    new.append((at, min(starts[ck] - 1, last)))
                at = max(at, ends[ck] + 1)
                lo, hi = min(lo, starts[ck]), max(hi, ends[ck])
                ck += 1
            if ck < len(starts):
                break
            cb, ck = cb + 1, 0
        if at <= last:
            new.append((at, last))
        self._replace(b, k, cb, ck, lo, hi)
        return new

    def _replace(self, b: int, k: int, cb: int, ck: int, lo: int, hi: int) -> None:
        """Put [lo, hi] in place of the intervals from (b, k) up to (cb, ck), excluded."""
        if cb == b:
            del self.starts[b][k:ck]
            del self.ends[b][k:ck]
            self._insert(b, k, lo, hi)
            return
        del self.starts[b][k:]
        del self.ends[b][k:]
        if cb < len(self.starts):  # the rest of the last block walked into stays
            del self.starts[cb][:ck]
            del self.ends[cb][:ck]
        # Blocks walked through whole are dropped (the one walked into keeps a part).
        del self.starts[b + 1:cb]
        del self.ends[b + 1:cb]
        del self.last_ends[b + 1:cb]
        self._insert(b, k, lo, hi)

    def _insert(self, b: int, k: int, lo: int, hi: int) -> None:
        starts, ends = self.starts[b], self.ends[b]
        starts.insert(k, lo)
        ends.insert(k, hi)
        self.last_ends[b] = ends[-1]
        if len(starts) > 2 * _LOAD:
            self.starts[b + 1:b + 1] = [starts[_LOAD:]]
            self.ends[b + 1:b + 1] = [ends[_LOAD:]]
            del starts[_LOAD:]
            del ends[_LOAD:]
            self.last_ends[b:b + 1] = [ends[-1], self.ends[b + 1][-1]]


# Blocks of the IANA special-purpose registries (and multicast), a superset of the edges
# Python's ipaddress uses for is_global: between two consecutive edges the answer is the
# same for every address, so one ipaddress call per piece decides a whole /8.
# tests/test_targets.py checks the superset against this Python's own tables.
_EDGES_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
             "172.16.0.0/12", "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.9/32",
             "192.0.0.10/32", "192.0.0.170/31", "192.0.2.0/24", "192.31.196.0/24",
             "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24",
             "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
             "240.0.0.0/4", "255.255.255.255/32")
_EDGES_V6 = ("::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
             "100::/64", "2001::/23", "2001::/32", "2001:1::1/128", "2001:1::2/128",
             "2001:2::/48", "2001:3::/32", "2001:4:112::/48", "2001:10::/28", "2001:20::/28",
             "2001:30::/28", "2001:db8::/32", "2002::/16", "2620:4f:8000::/48", "fc00::/7",
             "fe80::/10", "fec0::/10", "ff00::/8")
_MAPPED = 0xFFFF_0000_0000  # ::ffff:0.0.0.0


def _edges(version: int) -> list[int]:
    """Where a piece starts: each block's first address and the one after its last."""
    blocks = [net_interval(ipaddress.ip_network(n))
              for n in (_EDGES_V4 if version == 4 else _EDGES_V6)]
    if version == 6:  # an IPv4-mapped address is judged by its IPv4 address
        blocks += [(_MAPPED + lo, _MAPPED + hi) for lo, hi in
                   (net_interval(ipaddress.ip_network(n)) for n in _EDGES_V4)]
    top = 2 ** (32 if version == 4 else 128)
    cuts = {0}
    for lo, hi in blocks:
        cuts.add(lo)
        if hi + 1 < top:
            cuts.add(hi + 1)
    return sorted(cuts)


@functools.cache
def _public_pieces(version: int) -> tuple[tuple[Interval, ...], list[int]]:
    """The globally routable pieces in order, and their first addresses (for bisect)."""
    cuts = _edges(version)
    top = 2 ** (32 if version == 4 else 128) - 1
    ends = [*(c - 1 for c in cuts[1:]), top]
    pieces = tuple((lo, hi) for lo, hi in zip(cuts, ends, strict=True)
                   if is_public(ipaddress.ip_address(lo) if version == 4
                                else ipaddress.IPv6Address(lo)))
    return pieces, [lo for lo, _ in pieces]


def is_public(addr: IPAddress) -> bool:
    """Globally routable: anything but loopback, private, link-local and reserved ranges."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_global
    return addr.is_global


def public_parts(version: int, first: int, last: int) -> list[Interval]:
    """The globally routable parts of [first, last], as ``is_public`` judges, in order."""
    pieces, starts = _public_pieces(version)
    out = []
    for lo, hi in pieces[max(0, bisect.bisect_right(starts, first) - 1):]:
        if lo > last:
            break
        if hi >= first:
            out.append((max(lo, first), min(hi, last)))
    return out


# Addresses that name no single host: a connect to 0.0.0.0 reaches this machine, the rest
# are group or broadcast destinations or invalid ones. Never a target, allowed or not.
_NOT_HOSTS = (("0.0.0.0/8", "'this network' (0.0.0.0/8)"), ("224.0.0.0/4", "multicast"),
              ("255.255.255.255/32", "broadcast"), ("::/128", "unspecified (::)"),
              ("ff00::/8", "multicast"))


@functools.cache
def _not_host_blocks(version: int) -> tuple[tuple[int, int, str], ...]:
    out = []
    for text, what in _NOT_HOSTS:
        lo, hi = net_interval(ipaddress.ip_network(text))
        if (text.count(":") and version == 6) or (not text.count(":") and version == 4):
            out.append((lo, hi, what))
        elif version == 6:  # the IPv4-mapped form
            out.append((_MAPPED + lo, _MAPPED + hi, what))
    return tuple(out)


def not_host_parts(version: int, first: int, last: int) -> list[tuple[int, int, str]]:
    """The parts of [first, last] that are no host's address, each with what it is
    (IPv4-mapped IPv6 forms included)."""
    return [(max(lo, first), min(hi, last), what) for lo, hi, what in _not_host_blocks(version)
            if lo <= last and first <= hi]


def net_interval(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Interval:
    return int(net.network_address), int(net.broadcast_address)


def count(spans: Iterable[Span]) -> int:
    return sum(s.size for s in spans)


def texts(spans: Iterable[Span]) -> Iterator[str]:
    for span in spans:
        yield from span.texts()


@dataclass(frozen=True)
class TargetSpans:
    """The checked targets, not expanded: spans in the order the user gave them, without
    duplicates, exclusions, out-of-scope or (unless allowed) public addresses."""

    spans: list[Span]
    hostnames: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return count(self.spans)

    def addresses(self) -> list[str]:
        return list(texts(self.spans))


class Refused:
    """Addresses refused for one reason: counted, the first few named."""

    def __init__(self) -> None:
        self.total = 0
        self.shown: list[str] = []

    def add(self, span: Span, first: int, last: int, why: str = "") -> None:
        self.total += last - first + 1
        for number in range(first, min(last, first + 5 - len(self.shown) - 1) + 1):
            what = span.text(number)
            self.shown.append((f"{span.spec} resolves to {what}" if span.name
                               else f"{what} ({span.spec})") + (f" {why}" if why else ""))

    def listed(self) -> str:
        more = self.total - len(self.shown)
        return ", ".join(self.shown) + (f" and {more} more" if more > 0 else "")
