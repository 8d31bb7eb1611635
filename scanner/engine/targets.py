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
    if all(label.isdigit() for label in labels):
        return False  # a mistyped IPv4 address, not a name
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
    return all(0 < len(lab) <= 63 and set(lab.lower()) <= allowed for lab in labels)


def _too_many(what: str, count: int, limit: int) -> TargetError:
    return TargetError(
        f"{what} has {count} addresses, more than {limit} (the size limit); split it or "
        "raise the limit explicitly with --max-addresses N"
    )


def range_ends(spec: str) -> tuple[IPAddress, IPAddress]:
    """First and last address of ``10.0.0.5-40`` or ``10.0.0.5-10.0.0.40``."""
    start_text, _, end_text = spec.partition("-")
    try:
        start = ipaddress.ip_address(start_text.strip())
    except ValueError:
        raise TargetError(f"invalid range {spec!r}: {start_text!r} is not an address") from None
    end_text = end_text.strip()
    try:
        if end_text.isdigit() and isinstance(start, ipaddress.IPv4Address):
            last = int(end_text)
            if last > 255:
                raise ValueError
            end: IPAddress = ipaddress.IPv4Address((int(start) & ~0xFF) | last)
        else:
            end = ipaddress.ip_address(end_text)
    except ValueError:
        raise TargetError(f"invalid range {spec!r}: bad end {end_text!r}") from None
    if end.version != start.version or int(end) < int(start):
        raise TargetError(f"invalid range {spec!r}: the end comes before the start")
    return start, end


def _range(spec: str, limit: int = MAX_ADDRESSES) -> list[IPAddress]:
    start, end = range_ends(spec)
    if int(end) - int(start) + 1 > limit:
        raise _too_many(f"range {spec!r}", int(end) - int(start) + 1, limit)
    cls = type(start)
    return [cls(n) for n in range(int(start), int(end) + 1)]


def _network(spec: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(spec, strict=False)
    except ValueError as exc:
        raise TargetError(f"invalid network {spec!r}: {exc}") from None


def _hosts_of(net: IPNetwork, spec: str, limit: int = MAX_ADDRESSES) -> list[IPAddress]:
    if net.num_addresses > limit:
        raise _too_many(f"network {spec!r}", net.num_addresses, limit)
    if net.num_addresses <= 2:
        return list(net)
    return list(net.hosts())


def expand_spec(
    spec: str, resolver: Resolver = resolve_forward, limit: int = MAX_ADDRESSES
) -> tuple[list[IPAddress], str | None]:
    """Expand one target spec into addresses; the second value is the host name, if any."""
    spec = spec.strip()
    if not spec:
        raise TargetError("empty target")
    if "/" in spec:
        return _hosts_of(_network(spec), spec, limit), None
    try:
        return [ipaddress.ip_address(spec)], None
    except ValueError:
        pass
    if "-" in spec and (spec[0].isdigit() or ":" in spec):
        return _range(spec, limit), None
    if _looks_like_hostname(spec):
        return [ipaddress.ip_address(a) for a in resolver(spec)], spec
    raise TargetError(f"not an address, network, range or host name: {spec!r}")


def _exclusion(spec: str) -> list[IPNetwork]:
    spec = spec.strip()
    if "/" in spec:
        return [_network(spec)]
    try:
        return [ipaddress.ip_network(spec)]
    except ValueError:
        pass
    if "-" in spec:
        return [ipaddress.ip_network(a) for a in _range(spec)]
    raise TargetError(f"invalid exclusion {spec!r}: give an address, network or range")


def _within(first: int, last: int, blocks: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= first and last <= hi for lo, hi in blocks)


def _cidr_span_v4(spec: str, limit: int) -> tuple[int, int] | None:
    """An IPv4 CIDR spec's hosts (as ``expand_spec`` lists them) as first and last integer;
    None for any other spec, or one too big (``expand_spec`` then says so)."""
    if "/" not in spec or ":" in spec:
        return None
    try:
        net = ipaddress.IPv4Network(spec.strip(), strict=False)
    except ValueError:
        return None
    if net.num_addresses > limit:
        return None
    first, last = int(net.network_address), int(net.broadcast_address)
    return (first + 1, last - 1) if net.num_addresses > 2 else (first, last)


def _v4_texts(first: int, last: int) -> list[str]:
    # inet_ntoa is str(IPv4Address) without building one object per address
    return [socket.inet_ntoa(n.to_bytes(4, "big")) for n in range(first, last + 1)]


def is_public(addr: IPAddress) -> bool:
    """Globally routable: anything but loopback, private, link-local and reserved ranges."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_global
    return addr.is_global


def read_targets_file(text: str) -> list[str]:
    """One spec per line or separated by whitespace or commas; ``#`` starts a comment."""
    specs: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        specs.extend(part for part in line.replace(",", " ").split() if part)
    return specs


def build_targets(
    specs: Iterable[str],
    exclude: Iterable[str] = (),
    scope: Iterable[str] = (),
    allow_public: bool = False,
    resolver: Resolver = resolve_forward,
    max_addresses: int = MAX_ADDRESSES,
) -> TargetSet:
    """Expand, deduplicate, exclude and check every target, names after resolution.
    Raises TargetError."""
    excluded = [net for spec in exclude for net in _exclusion(spec)]
    scopes = [_network(s.strip()) for s in scope]
    ordered: dict[str, None] = {}
    names: dict[str, str] = {}
    public: list[str] = []
    out_of_scope: list[str] = []
    for spec in specs:
        span = _cidr_span_v4(spec, max_addresses)
        if span is not None and _plain_span(span, excluded, scopes, allow_public):
            # A block wholly inside a non-global range, scope and no exclusion: nothing to
            # check address by address (a /16 in milliseconds, not seconds).
            ordered.update(dict.fromkeys(_v4_texts(*span)))
            if len(ordered) > max_addresses:
                raise _too_many("the target list", len(ordered), max_addresses)
            continue
        addrs, name = expand_spec(spec, resolver, max_addresses)
        for addr in addrs:
            if any(addr.version == net.version and addr in net for net in excluded):
                continue
            if scopes and not _in_scope(addr, scopes):
                out_of_scope.append(f"{spec} resolves to {addr}" if name else f"{addr} ({spec})")
                continue
            if is_public(addr) and not allow_public:
                public.append(f"{addr} ({spec})")
                continue
            ordered[str(addr)] = None
            if name:
                names[str(addr)] = name
        if len(ordered) > max_addresses:
            raise _too_many("the target list", len(ordered), max_addresses)
    if out_of_scope:
        raise TargetError(
            f"refusing targets outside --scope {', '.join(map(str, scopes))}: "
            + ", ".join(out_of_scope[:5])
            + (f" and {len(out_of_scope) - 5} more" if len(out_of_scope) > 5 else "")
        )
    if public:
        raise TargetError(
            "refusing globally routable (public) addresses: "
            + ", ".join(public[:5])
            + (f" and {len(public) - 5} more" if len(public) > 5 else "")
            + ". Scanning hosts on the internet needs --allow-public."
        )
    if not ordered:
        raise TargetError("no targets left to scan (all excluded?)")
    return TargetSet(addresses=list(ordered), hostnames=names)


def _plain_span(span: tuple[int, int], excluded: Sequence[IPNetwork],
                scopes: Sequence[IPNetwork], allow_public: bool) -> bool:
    first, last = span
    if any(n.version == 4 and int(n.network_address) <= last
           and first <= int(n.broadcast_address) for n in excluded):
        return False
    v4_scopes = [(int(n.network_address), int(n.broadcast_address))
                 for n in scopes if n.version == 4]
    if scopes and not _within(first, last, v4_scopes):
        return False
    return allow_public or _within(first, last, _NON_GLOBAL_V4)


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
    return ((allow_public or _within(lo, hi, _NON_GLOBAL_V4))
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
    scopes = [_network(s) for s in scope]
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
            if ((allow_public or _within(n, n, _NON_GLOBAL_V4))
                    and (not scopes or _within(n, n, v4_scopes))):
                continue
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise TargetError(f"job target {text!r} is not an IP address") from None
        if is_public(addr) and not allow_public:
            raise TargetError(f"refusing public address {addr} (allow_public is off)")
        if scopes and not _in_scope(addr, scopes):
            raise TargetError(f"refusing {addr}: outside the job's scope {', '.join(scope)}")
