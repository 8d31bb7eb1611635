"""Do-not-probe lists: devices the site says must never receive a packet from the scanner.

Entries come from ``--exclude-file`` and the site policy's ``do_not_probe`` list; each is
an address, a CIDR network, a host name or a MAC address, with a reason. A name covers
every address it resolves to (forwards, when the job's fence is built; a name that does
not resolve refuses the job) and a target given by that name. Address, network and name
entries remove targets before discovery, so no ARP, ping or SYN reaches them, however
the target reached the address (a network, a range, another name); a MAC entry applies
as soon as the MAC is known (the kernel's neighbour table before discovery, the
discovery answer after), before any port probe. The job applies them itself, so a job
built elsewhere cannot skip them.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from scanner.engine.spans import Covered, Span
from scanner.model import DoNotProbe, DoNotProbeKind, ScanSettings, SkippedTarget
from scanner.model.shorthand import shorthand_problem

K = DoNotProbeKind
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")


class DoNotProbeError(ValueError):
    """An entry that is not an address, network, name or MAC."""


def normal_mac(text: str) -> str:
    return text.strip().lower().replace("-", ":")


def make_entry(entry: str, reason: str, source: str) -> DoNotProbe:
    """Classify one entry; raises DoNotProbeError naming ``source``."""
    text = entry.strip()
    if _MAC.match(text.lower()):
        return DoNotProbe(entry=normal_mac(text), kind=K.MAC, reason=reason, source=source)
    try:
        ipaddress.ip_address(text)
        return DoNotProbe(entry=text, kind=K.ADDRESS, reason=reason, source=source)
    except ValueError:
        pass
    # A shorthand would resolve and fence some address: which one the site meant is unsure.
    if problem := shorthand_problem(text.partition("/")[0]):
        raise DoNotProbeError(f"{source}: {problem}")
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise DoNotProbeError(f"{source}: invalid network {text!r}: {exc}") from None
        return DoNotProbe(entry=str(net), kind=K.NETWORK, reason=reason, source=source)
    from scanner.engine.targets import _looks_like_hostname

    if _looks_like_hostname(text):
        return DoNotProbe(entry=text.lower().rstrip("."), kind=K.NAME, reason=reason,
                          source=source)
    raise DoNotProbeError(
        f"{source}: {text!r} is not an address, network, host name or MAC address"
    )


def make_entries(entry: str, reason: str, source: str) -> list[DoNotProbe]:
    """Like ``make_entry``, and a range (``10.0.0.5-9``, ``10.0.0.5-10.0.0.40``, as targets
    and --exclude take them) becomes the networks that cover exactly it. A range was read
    as a host name made of digits that no target is called, so it protected nothing."""
    text = entry.strip()
    ranged = "-" in text and (text[:1].isdigit() or ":" in text) and "/" not in text
    if ranged and not _MAC.match(text.lower()):  # 00-11-22-aa-bb-cc is a MAC
        from scanner.engine.targets import TargetError, range_ends

        try:
            first, last = range_ends(text)
        except TargetError as exc:
            raise DoNotProbeError(f"{source}: {exc}") from None
        return [DoNotProbe(entry=str(net), kind=K.NETWORK, reason=reason, source=source)
                for net in ipaddress.summarize_address_range(first, last)]
    return [make_entry(entry, reason, source)]


def read_exclude_file(text: str, path: str) -> list[DoNotProbe]:
    """One entry a line: ``ENTRY [reason...]``; ``#`` starts a comment."""
    out: list[DoNotProbe] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # Any whitespace separates entry and reason: a tab was read as part of the entry.
        entry, *rest = line.split(None, 1)
        where = f"{path}:{number}"
        out += make_entries(entry, (rest[0].strip() if rest else "") or f"listed in {path}",
                            where)
    return out


def resolve_names(entries: Iterable[DoNotProbe],
                  resolver: Callable[[str], list[str]] | None = None) -> dict[str, list[str]]:
    """Each name entry's addresses, forwards only (never reverse DNS). A name that does not
    resolve means the fence cannot be honoured: DoNotProbeError naming entry and source."""
    from scanner.engine.targets import TargetError, resolve_forward

    resolve = resolver or resolve_forward
    out: dict[str, list[str]] = {}
    for e in entries:
        if e.kind is K.NAME and e.entry not in out:
            try:
                out[e.entry] = resolve(e.entry)
            except TargetError as exc:
                raise DoNotProbeError(
                    f"{e.source}: do-not-probe name {e.entry!r} does not resolve ({exc}), so "
                    "the device cannot be kept out; refusing to scan") from None
    return out


def _number(address: str) -> tuple[int, int] | None:
    """IP version and integer of a target address (any zone ignored: the fence holds on
    every interface), or None when it is not an address."""
    try:  # the common case, a dotted quad, without an ipaddress object
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except OSError:
        pass
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return None
    return addr.version, int(addr)


class _Segments:
    """The address, network and resolved-name entries as disjoint intervals, each labelled
    with the first entry that covers it (as a search of the list in order would find)."""

    def __init__(self, rules: Sequence[DoNotProbe], resolved: dict[str, list[str]]) -> None:
        taken = Covered()
        parts: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        for index, e in enumerate(rules):
            spans: list[tuple[int, int, int]]
            if e.kind is K.NETWORK:
                net = ipaddress.ip_network(e.entry)
                spans = [(net.version, int(net.network_address), int(net.broadcast_address))]
            else:
                texts = resolved.get(e.entry, []) if e.kind is K.NAME else [e.entry]
                spans = [(v, n, n) for v, n in filter(None, map(_number, texts))]
            for version, lo, hi in spans:
                parts[version] += [(a, b, index) for a, b in taken.take((version, ""), lo, hi)]
        self._parts = {v: sorted(p) for v, p in parts.items()}
        self._starts = {v: [p[0] for p in ps] for v, ps in self._parts.items()}

    def at(self, version: int, number: int) -> int | None:
        """Index of the first entry covering the address, or None."""
        k = bisect.bisect_right(self._starts[version], number) - 1
        if k >= 0 and number <= self._parts[version][k][1]:
            return self._parts[version][k][2]
        return None

    def within(self, version: int, first: int, last: int) -> list[tuple[int, int, int]]:
        """The labelled parts of [first, last] that some entry covers, in order."""
        k = max(0, bisect.bisect_right(self._starts[version], first) - 1)
        out = []
        for lo, hi, index in self._parts[version][k:]:
            if lo > last:
                break
            if hi >= first:
                out.append((max(lo, first), min(hi, last), index))
        return out


def split_targets(
    addresses: Sequence[str], names: dict[str, str], entries: Iterable[DoNotProbe],
    resolved: dict[str, list[str]] | None = None,
) -> tuple[list[str], list[SkippedTarget]]:
    """Targets no address, network or name entry covers, and the ones skipped (why). A name
    entry covers the addresses it resolves to (``resolved``) and a target given by it."""
    rules = [e for e in entries if e.kind is not K.MAC]
    if not rules:  # the usual case: a /16 costs a copy, not 65,536 searches
        return list(addresses), []
    segments = _Segments(rules, resolved or {})
    by_name = {e.entry: i for i, e in reversed(list(enumerate(rules))) if e.kind is K.NAME}
    kept: list[str] = []
    skipped: list[SkippedTarget] = []
    for address in addresses:
        number = _number(address)
        hits = [segments.at(*number)] if number is not None else []
        name = names.get(address)
        if name is not None:
            hits.append(by_name.get(name.lower().rstrip(".")))
        hit = min((h for h in hits if h is not None), default=None)
        if hit is None:
            kept.append(address)
        else:
            skipped.append(skip(address, rules[hit], "before discovery"))
    return kept, skipped


def mac_entry(mac: str | None, entries: Iterable[DoNotProbe]) -> DoNotProbe | None:
    if mac is None:
        return None
    mac = normal_mac(mac)
    return next((e for e in entries if e.kind is K.MAC and e.entry == mac), None)


def has_mac_entries(entries: Iterable[DoNotProbe]) -> bool:
    return any(e.kind is K.MAC for e in entries)


def skip(address: str, entry: DoNotProbe, when: str) -> SkippedTarget:
    return SkippedTarget(address=address, entry=entry.entry, reason=entry.reason,
                         source=entry.source, when=when)


def nmap_excludes(entries: Iterable[DoNotProbe],
                  resolved: dict[str, list[str]] | None = None) -> list[str]:
    """Address and network entries, and the addresses name entries resolved to, as nmap
    ``--exclude`` values (a second fence)."""
    out: list[str] = []
    for e in entries:
        if e.kind in (K.ADDRESS, K.NETWORK):
            out.append(e.entry)
        elif e.kind is K.NAME:
            out += (resolved or {}).get(e.entry, [])
    return list(dict.fromkeys(out))


class Fence:
    """A job's do-not-probe decisions, each skip recorded once with its reason. Name entries
    are resolved forwards here, when the job's fence is built, so the addresses a name
    stands for stay out however the target reached them (a network, a range, another
    name); a name that does not resolve raises DoNotProbeError and nothing is sent."""

    def __init__(self, settings: ScanSettings,
                 resolver: Callable[[str], list[str]] | None = None) -> None:
        self._entries = list(settings.do_not_probe)
        self._names = dict(settings.hostnames)
        self._macs = has_mac_entries(self._entries)
        self.resolved = resolve_names(self._entries, resolver)
        self._skipped: dict[str, SkippedTarget] = {}

    def before_discovery(self, addresses: Sequence[str]) -> list[str]:
        """Targets that may be sent discovery packets. A MAC entry already applies here when
        the kernel's neighbour table knows the address (read from /proc, no packet)."""
        kept, skipped = split_targets(addresses, self._names, self._entries, self.resolved)
        for s in skipped:
            self._skipped.setdefault(s.address, s)
        if not self._macs:
            return kept  # allows() would say yes to each
        from probes.discovery import neighbour_macs

        table = neighbour_macs()  # read once, not once per address
        out: list[str] = []
        for a in kept:
            hit = mac_entry(table.get(a), self._entries)
            if hit is None:
                out.append(a)
            else:
                self._skipped.setdefault(a, skip(a, hit, f"before discovery (MAC {table[a]})"))
        return out

    def split_spans(self, spans: Sequence[Span]) -> tuple[list[Span], list[SkippedSpan]]:
        """``before_discovery`` for spans, none expanded (``--plan`` of a /8): the parts
        that stay, and the parts skipped with the entry that matched, in target order."""
        rules = [e for e in self._entries if e.kind is not K.MAC]
        segments = _Segments(rules, self.resolved)
        by_name = {e.entry: i for i, e in reversed(list(enumerate(rules))) if e.kind is K.NAME}
        macs = self._neighbour_hits() if self._macs else {}
        kept: list[Span] = []
        skipped: list[SkippedSpan] = []
        for span in spans:
            hits = segments.within(span.version, span.first, span.last)
            named = by_name.get((span.name or "").lower().rstrip("."))
            if named is not None:  # a name's span is one address: the first entry wins
                hits = [(span.first, span.last, min([named, *(h[2] for h in hits)]))]
            at = span.first
            for lo, hi, index in hits:
                if lo > at:
                    kept.append(span.part(at, lo - 1))
                skipped.append(SkippedSpan(span.part(lo, hi), rules[index], "before discovery"))
                at = hi + 1
            if at <= span.last:
                kept.append(span.part(at, span.last))
        if not macs:
            return kept, skipped
        out: list[Span] = []
        for span in kept:  # a MAC entry whose address the neighbour table knows
            at = span.first
            for number in sorted(n for n in macs.get(span.version, {})
                                 if span.first <= n <= span.last):
                entry, mac = macs[span.version][number]
                if number > at:
                    out.append(span.part(at, number - 1))
                skipped.append(SkippedSpan(span.part(number, number), entry,
                                           f"before discovery (MAC {mac})"))
                at = number + 1
            if at <= span.last:
                out.append(span.part(at, span.last))
        return out, skipped

    def _neighbour_hits(self) -> dict[int, dict[int, tuple[DoNotProbe, str]]]:
        from probes.discovery import neighbour_macs

        hits: dict[int, dict[int, tuple[DoNotProbe, str]]] = {4: {}}
        for address, mac in neighbour_macs().items():
            entry = mac_entry(mac, self._entries)
            number = _number(address)
            if entry is not None and number is not None and number[0] == 4:
                hits[4][number[1]] = (entry, normal_mac(mac))
        return hits

    def allows(self, address: str, mac: str | None, when: str) -> bool:
        """False (and recorded) when the address was skipped or its MAC is listed."""
        if address in self._skipped:
            return False
        if not self._macs:
            return True
        if mac is None and ":" not in address:
            from probes.discovery import neighbour_mac

            mac = neighbour_mac(address)
        hit = mac_entry(mac, self._entries)
        if hit is None:
            return True
        self._skipped[address] = skip(address, hit, f"{when} (MAC {normal_mac(mac or '')})")
        return False

    @property
    def skipped(self) -> list[SkippedTarget]:
        return list(self._skipped.values())


@dataclass(frozen=True)
class SkippedSpan:
    """Consecutive targets one entry keeps out (a plan's skipped devices, not expanded)."""

    span: Span
    entry: DoNotProbe
    when: str

    def records(self) -> Iterator[SkippedTarget]:
        for address in self.span.texts():
            yield skip(address, self.entry, self.when)
