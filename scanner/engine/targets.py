"""Target expansion and the scope guard.

Accepted forms: single IPv4/IPv6 addresses, CIDR blocks, last-octet ranges
(``10.0.0.5-40``), full ranges (``10.0.0.5-10.0.0.40``) and host names. Names
are resolved forwards only because the user typed them; nothing is ever
reverse-resolved. Globally routable addresses are refused unless the caller
allows them, so a typo can never send the scanner onto the internet.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from scanner.engine.spans import (
    Covered,
    Interval,
    Refused,
    Span,
    TargetSpans,
    intersect,
    is_public,
    net_interval,
    not_host_parts,
    public_parts,
    subtract,
)
from scanner.model.shorthand import is_decimal, shorthand_problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv4 blocks that are not globally routable under every reading (IANA's special-purpose
# registry, and Python's ipaddress in every version): an address inside one needs no
# per-address is_global (about 10 µs each: a /16 would spend most of a second on it).
# Anything outside them still goes through ipaddress.
_NON_GLOBAL_V4 = tuple(
    (int(n.network_address), int(n.broadcast_address))
    for n in map(ipaddress.IPv4Network, ("10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
                                         "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
                                         "198.18.0.0/15"))
)

# A scan may not cover more addresses than this unless the user raises it explicitly
# (--max-addresses); a /16 is the largest sane imaging VLAN sweep.
MAX_ADDRESSES = 65536


class TargetError(ValueError):
    """A target, exclusion or scope the user gave cannot be used."""


@dataclass(frozen=True)
class TargetSet:
    addresses: list[str]
    hostnames: dict[str, str] = field(default_factory=dict)


Resolver = Callable[[str], list[str]]


def resolve_forward(name: str) -> list[str]:
    """Forward lookup of a name the user asked for (never a reverse lookup)."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetError(f"cannot resolve host name {name!r}: {exc}") from None
    seen: dict[str, None] = {}
    for info in infos:
        seen[str(info[4][0]).split("%")[0]] = None
    return list(seen)


def _looks_like_hostname(spec: str) -> bool:
    if not spec or len(spec) > 253 or spec.startswith(("-", ".")):
        return False
    labels = spec.rstrip(".").split(".")
    if all(is_decimal(label) for label in labels):
        return False  # a mistyped IPv4 address, not a name
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
    return all(0 < len(lab) <= 63 and set(lab.lower()) <= allowed for lab in labels)


def refuse_shorthand(text: str) -> None:
    """TargetError for ``0x7f000001``, ``127.1`` and the like: the resolver would read them
    as an address that other tools read otherwise, so none is guessed."""
    if problem := shorthand_problem(text):
        raise TargetError(problem)


def _too_many(what: str, count: int, limit: int) -> TargetError:
    return TargetError(
        f"{what} has {count} addresses, more than {limit} (the size limit); split it or "
        "raise the limit explicitly with --max-addresses N"
    )


def check_zone(addr: IPAddress, spec: str) -> None:
    """An IPv6 zone must name an interface of this machine (or be its index): a packet to
    ``fe80::1%badzone`` could never leave, and a typo should say so before the scan."""
    zone = getattr(addr, "scope_id", None)
    if not zone:
        return
    known = socket.if_nameindex()
    if zone in {name for _, name in known} or (
            zone.isascii() and zone.isdigit() and int(zone) in {i for i, _ in known}):
        return
    names = ", ".join(name for _, name in known) or "none"
    raise TargetError(f"{spec!r}: zone {zone!r} names no network interface of this machine "
                      f"(interfaces: {names})")


def parse_address(text: str, spec: str) -> IPAddress | None:
    """One address, its zone (if any) checked (TargetError); None for anything else."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    check_zone(addr, spec)
    return addr


def range_ends(spec: str) -> tuple[IPAddress, IPAddress]:
    """First and last address of ``10.0.0.5-40`` or ``10.0.0.5-10.0.0.40``."""
    start_text, _, end_text = spec.partition("-")
    start = parse_address(start_text.strip(), spec)
    if start is None:
        refuse_shorthand(start_text)
        raise TargetError(f"invalid range {spec!r}: {start_text!r} is not an address")
    end_text = end_text.strip()
    end: IPAddress | None = None
    # ASCII digits only: int() would read Arabic-Indic or full-width digits as well; no
    # leading zero, which some tools read as octal (ipaddress refuses it in an address)
    if end_text.isascii() and end_text.isdigit() and isinstance(start, ipaddress.IPv4Address):
        if int(end_text) <= 255 and (end_text == "0" or not end_text.startswith("0")):
            end = ipaddress.IPv4Address((int(start) & ~0xFF) | int(end_text))
    else:
        end = parse_address(end_text, spec)
    if end is None:
        if "." in end_text:  # a whole address; a last octet keeps the message below
            refuse_shorthand(end_text)
        raise TargetError(f"invalid range {spec!r}: bad end {end_text!r}")
    if end.version != start.version:
        raise TargetError(f"invalid range {spec!r}: the start is IPv{start.version} and "
                          f"the end IPv{end.version}")
    if _zone(end) and _zone(end) != _zone(start):
        raise TargetError(f"invalid range {spec!r}: the two ends have different zones")
    if int(end) < int(start):
        raise TargetError(f"invalid range {spec!r}: the end comes before the start")
    return start, end


def _address_or_range(spec: str) -> IPAddress | None:
    """The address, or None; ipaddress reads ``fe80::1%lo-fe80::3`` as one address whose
    zone is ``lo-fe80::3``: when that zone is no interface the spec may be a range."""
    try:
        return parse_address(spec, spec)
    except TargetError as zone_error:
        if "-" in spec:
            try:
                range_ends(spec)
                return None  # a range, its first end zoned: the caller reads it so
            except TargetError:
                pass
        raise zone_error from None


def _zone(addr: IPAddress) -> str:
    return getattr(addr, "scope_id", None) or ""


def network(spec: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(spec.strip(), strict=False)
    except ValueError as exc:
        refuse_shorthand(spec.strip().partition("/")[0])
        raise TargetError(f"invalid network {spec!r}: {exc}") from None


def _host_span(net: IPNetwork) -> tuple[int, int]:
    """The hosts ``net.hosts()`` lists (all of a /31, /32, /127, /128): IPv4 drops the
    network and broadcast addresses, IPv6 only the subnet-router anycast (the first)."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.num_addresses <= 2:
        return first, last
    return first + 1, last - (1 if net.version == 4 else 0)


def parse_spec(spec: str, resolver: Resolver = resolve_forward,
               limit: int = MAX_ADDRESSES) -> list[Span]:
    """One target spec as spans, never expanded; names are resolved forwards."""
    spec = spec.strip()
    if not spec:
        raise TargetError("empty target")
    if "/" in spec:
        net = network(spec)
        if net.num_addresses > limit:
            raise _too_many(f"network {spec!r}", net.num_addresses, limit)
        return [Span(net.version, *_host_span(net), spec=spec)]
    addr = _address_or_range(spec)
    if addr is not None:
        return [Span(addr.version, int(addr), int(addr), spec=spec, zone=_zone(addr))]
    if "-" in spec and (spec[0].isdigit() or ":" in spec):
        start, end = range_ends(spec)
        if int(end) - int(start) + 1 > limit:
            raise _too_many(f"range {spec!r}", int(end) - int(start) + 1, limit)
        return [Span(start.version, int(start), int(end), spec=spec, zone=_zone(start))]
    refuse_shorthand(spec)  # the resolver would read it as an address: none is guessed
    if _looks_like_hostname(spec):
        out = []
        for text in resolver(spec):
            addr = ipaddress.ip_address(text)
            out.append(Span(addr.version, int(addr), int(addr), spec=spec, name=spec))
        return out
    raise TargetError(f"not an address, network, range or host name: {spec!r}")


def expand_spec(
    spec: str, resolver: Resolver = resolve_forward, limit: int = MAX_ADDRESSES
) -> tuple[list[IPAddress], str | None]:
    """Expand one target spec into addresses; the second value is the host name, if any."""
    found = parse_spec(spec, resolver, limit)
    addrs = [ipaddress.ip_address(t) for s in found for t in s.texts()]
    return addrs, (found[0].name if found else None)


def exclusion_intervals(spec: str) -> list[tuple[int, Interval]]:
    """An --exclude spec as (IP version, interval); a zone is checked, then any zone of the
    address is excluded. A range of any size is fine: it only removes."""
    spec = spec.strip()
    if "/" in spec:
        net = network(spec)
        return [(net.version, net_interval(net))]
    addr = _address_or_range(spec)
    if addr is not None:
        return [(addr.version, (int(addr), int(addr)))]
    if "-" in spec:
        start, end = range_ends(spec)
        return [(start.version, (int(start), int(end)))]
    refuse_shorthand(spec)
    raise TargetError(f"invalid exclusion {spec!r}: give an address, network or range")


def read_targets_file(text: str) -> list[str]:
    """One spec per line or separated by whitespace or commas; ``#`` starts a comment."""
    specs: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        specs.extend(part for part in line.replace(",", " ").split() if part)
    return specs


def plan_targets(
    specs: Iterable[str],
    exclude: Iterable[str] = (),
    scope: Iterable[str] = (),
    allow_public: bool = False,
    resolver: Resolver = resolve_forward,
    max_addresses: int = MAX_ADDRESSES,
) -> TargetSpans:
    """Parse, deduplicate, exclude, scope and check every target without expanding any
    (names after resolution). Raises TargetError, also when more than ``max_addresses``
    remain: counting first is what keeps an oversized list from costing gigabytes."""
    excluded: dict[int, list[Interval]] = {4: [], 6: []}
    for spec in exclude:
        for version, interval in exclusion_intervals(spec):
            excluded[version].append(interval)
    scopes = [network(s) for s in scope]
    in_scope = {v: [net_interval(n) for n in scopes if n.version == v] for v in (4, 6)}
    taken = Covered()
    kept: list[Span] = []
    names: dict[str, str] = {}
    public, out_of_scope, not_hosts = Refused(), Refused(), Refused()
    total = 0
    for spec in specs:
        for span in parse_spec(spec, resolver, max_addresses):
            for lo, hi in subtract(span.first, span.last, excluded[span.version]):
                odd = not_host_parts(span.version, lo, hi)
                for a, b, what in odd:
                    not_hosts.add(span, a, b, f"is {what}")
                parts = subtract(lo, hi, [(a, b) for a, b, _ in odd])
                if not parts:
                    continue
                if scopes:
                    for a, b in parts:
                        for c, d in subtract(a, b, in_scope[span.version]):
                            out_of_scope.add(span, c, d)
                    parts = [p for a, b in parts for p in intersect(a, b, in_scope[span.version])]
                for a, b in parts:
                    allowed = [(a, b)]
                    if not allow_public:
                        outside = public_parts(span.version, a, b)
                        for c, d in outside:
                            public.add(span, c, d)
                        allowed = subtract(a, b, outside)
                    for c, d in allowed:
                        if span.name:  # a single address: the name is kept even if listed
                            names[span.text(c)] = span.name
                        for e, f in taken.take(span.family, c, d):
                            kept.append(span.part(e, f))
                            total += f - e + 1
        if total > max_addresses:
            raise _too_many("the target list", total, max_addresses)
    if not_hosts.total:
        raise TargetError("refusing addresses that name no host: " + not_hosts.listed()
                          + " (exclude them, or give the hosts' own addresses)")
    if out_of_scope.total:
        raise TargetError(f"refusing targets outside --scope {', '.join(map(str, scopes))}: "
                          + out_of_scope.listed())
    if public.total:
        raise TargetError("refusing globally routable (public) addresses: " + public.listed()
                          + ". Scanning hosts on the internet needs --allow-public.")
    if not kept:
        raise TargetError("no targets left to scan (all excluded?)")
    return TargetSpans(kept, names)


def build_targets(
    specs: Iterable[str],
    exclude: Iterable[str] = (),
    scope: Iterable[str] = (),
    allow_public: bool = False,
    resolver: Resolver = resolve_forward,
    max_addresses: int = MAX_ADDRESSES,
) -> TargetSet:
    """``plan_targets``, then the addresses listed (only once their number is allowed)."""
    planned = plan_targets(specs, exclude, scope, allow_public, resolver, max_addresses)
    return TargetSet(addresses=planned.addresses(), hostnames=planned.hostnames)


def _within(first: int, last: int, blocks: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= first and last <= hi for lo, hi in blocks)


def _in_scope(addr: IPAddress, scopes: Sequence[IPNetwork]) -> bool:
    return any(addr.version == n.version and addr in n for n in scopes)


def _one_v4_block(addresses: Sequence[str], allow_public: bool, scopes: Sequence[IPNetwork],
                  v4_scopes: Sequence[tuple[int, int]]) -> bool:
    """All addresses dotted quads whose lowest and highest lie in one allowed block (the
    blocks are intervals, so everything between does too): no check address by address."""
    if not addresses:
        return False
    try:  # inet_pton: strict dotted quads only, as the checks below assume
        numbers = [int.from_bytes(socket.inet_pton(socket.AF_INET, t), "big")
                   for t in addresses]
    except OSError:
        return False
    lo, hi = min(numbers), max(numbers)
    return (not not_host_parts(4, lo, hi)
            and (allow_public or _within(lo, hi, _NON_GLOBAL_V4))
            and (not scopes or _within(lo, hi, v4_scopes)))


def guard_addresses(
    addresses: Sequence[str],
    allow_public: bool,
    scope: Sequence[str] = (),
    max_addresses: int = MAX_ADDRESSES,
) -> None:
    """Last check before any packet leaves: a job never scans a public address unless
    allowed, nor outside its scope, nor more addresses than its limit.

    Jobs may come from elsewhere (a file, a task queue), not only from ``build_targets``.
    """
    if len(addresses) > max_addresses:
        raise _too_many("the job", len(addresses), max_addresses)
    scopes = [network(s) for s in scope]
    v4_scopes = [(int(n.network_address), int(n.broadcast_address))
                 for n in scopes if n.version == 4]
    if _one_v4_block(addresses, allow_public, scopes, v4_scopes):
        return
    for text in addresses:
        try:  # the common case, a dotted quad in a non-global block, without ipaddress
            n = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        except OSError:
            pass
        else:
            allowed = _within(n, n, _NON_GLOBAL_V4) or (
                allow_public and not not_host_parts(4, n, n))
            if allowed and (not scopes or _within(n, n, v4_scopes)):
                continue
        addr = parse_address(text, text)
        if addr is None:
            raise TargetError(f"job target {text!r} is not an IP address")
        if odd := not_host_parts(addr.version, int(addr), int(addr)):
            raise TargetError(f"refusing job target {addr}: it is {odd[0][2]}, not a host")
        if is_public(addr) and not allow_public:
            raise TargetError(f"refusing public address {addr} (allow_public is off)")
        if scopes and not _in_scope(addr, scopes):
            raise TargetError(f"refusing {addr}: outside the job's scope {', '.join(scope)}")
