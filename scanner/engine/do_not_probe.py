"""Do-not-probe lists: devices the site says must never receive a packet from the scanner.

Entries come from ``--exclude-file`` and the site policy's ``do_not_probe`` list; each is
an address, a CIDR network, a host name (the name the user gave for a target) or a MAC
address, with a reason. Address, network and name entries remove targets before
discovery, so no ARP, ping or SYN reaches them; a MAC entry applies as soon as the MAC
is known (the kernel's neighbour table before discovery, the discovery answer after),
before any port probe. The job applies them itself, so a job built elsewhere cannot
skip them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from scanner.model import DoNotProbe, DoNotProbeKind, ScanSettings, SkippedTarget

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
        entry, _, reason = line.partition(" ")
        where = f"{path}:{number}"
        out += make_entries(entry, reason.strip() or f"listed in {path}", where)
    return out


def _covers(item: DoNotProbe, address: str, name: str | None) -> bool:
    if item.kind is K.ADDRESS:
        return ipaddress.ip_address(item.entry) == ipaddress.ip_address(address)
    if item.kind is K.NETWORK:
        net = ipaddress.ip_network(item.entry)
        addr = ipaddress.ip_address(address)
        return addr.version == net.version and addr in net
    if item.kind is K.NAME:
        return name is not None and name.lower().rstrip(".") == item.entry
    return False


def split_targets(
    addresses: Sequence[str], names: dict[str, str], entries: Iterable[DoNotProbe]
) -> tuple[list[str], list[SkippedTarget]]:
    """Targets no address, network or name entry covers, and the ones skipped (why)."""
    rules = [e for e in entries if e.kind is not K.MAC]
    if not rules:  # the usual case: a /16 costs a copy, not 65,536 searches
        return list(addresses), []
    kept: list[str] = []
    skipped: list[SkippedTarget] = []
    for address in addresses:
        hit = next((e for e in rules if _covers(e, address, names.get(address))), None)
        if hit is None:
            kept.append(address)
        else:
            skipped.append(skip(address, hit, "before discovery"))
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


def nmap_excludes(entries: Iterable[DoNotProbe]) -> list[str]:
    """Address and network entries as nmap ``--exclude`` values (a second fence)."""
    return [e.entry for e in entries if e.kind in (K.ADDRESS, K.NETWORK)]


class Fence:
    """A job's do-not-probe decisions, each skip recorded once with its reason."""

    def __init__(self, settings: ScanSettings) -> None:
        self._entries = list(settings.do_not_probe)
        self._names = dict(settings.hostnames)
        self._macs = has_mac_entries(self._entries)
        self._skipped: dict[str, SkippedTarget] = {}

    def before_discovery(self, addresses: Sequence[str]) -> list[str]:
        """Targets that may be sent discovery packets. A MAC entry already applies here when
        the kernel's neighbour table knows the address (read from /proc, no packet)."""
        kept, skipped = split_targets(addresses, self._names, self._entries)
        for s in skipped:
            self._skipped.setdefault(s.address, s)
        if not self._macs and not self._skipped:
            return kept  # allows() would say yes to each
        return [a for a in kept if self.allows(a, None, "before discovery")]

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
