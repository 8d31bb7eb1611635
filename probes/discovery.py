"""Host discovery: the TCP "ping", which needs no privileges, and what the methods share
(ARP: probes/arp.py, ICMP echo: probes/icmp.py).

Each method returns one ``HostDiscovery`` per address that answered; silence means
nothing. ARP only reaches a directly attached link and answers with the MAC; ICMP
echo crosses routers but is often filtered; the TCP ping connects to imaging ports and
counts a refusal as alive (a host that says "no" is there). A TCP ping connection that
opens is never closed empty (a legacy DICOM stack such as MIR CTN exits on that): it is
handed to ``take_over``, which runs service identification on it. ARP and ICMP need raw
sockets (root or CAP_NET_RAW); the caller checks ``raw_sockets_allowed`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from probes.ports import OpenConnection, open_stream
from scanner.model import HostDiscovery, utcnow

# Imaging ports first: a device on an imaging VLAN most likely answers on one of these.
TCP_PING_PORTS = (104, 11112, 4242, 2762, 80, 443, 22, 3389)
# Our own kernel gave up resolving or routing: nobody is at that address.
_NOBODY = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}


def raw_sockets_allowed() -> bool:
    """True when this process may open packet sockets (root or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except (PermissionError, OSError, AttributeError):
        return False
    return True


def _proc_rows(path: str) -> list[list[str]]:
    """The rows of a kernel table under /proc/net (this namespace's), header skipped."""
    try:
        with open(path) as table:
            return [line.split() for line in table.read().splitlines()[1:]]
    except OSError:
        return []


Route = tuple[int, int, str, bool]  # destination, mask, interface, directly attached


def routes() -> list[Route]:
    """The kernel's IPv4 routing table (this network namespace's), longest prefix first."""
    table = []
    for f in _proc_rows("/proc/net/route"):
        # Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask; little-endian hex.
        dest, gateway, mask = (int.from_bytes(bytes.fromhex(f[i]), "little") for i in (1, 2, 7))
        table.append((dest, mask, f[0], gateway == 0 and mask != 0))
    # Longest prefix first; among equal masks the table's order (the first one wins).
    return sorted(table, key=lambda r: -r[1])


def onlink_interface(address: str, table: list[Route] | None = None) -> str | None:
    """The interface through which ``address`` is directly attached, or None if routed.

    Reads the kernel's IPv4 routing table (or ``table``, read once by ``routes`` for many
    addresses: a /16 read it 65,534 times), so no packet is needed to decide.
    """
    addr = ipv4_int(address)
    for dest, mask, iface, onlink in routes() if table is None else table:
        if addr & mask == dest:
            return iface if onlink else None
    return None


def ipv4_int(address: str) -> int:
    """A dotted-quad IPv4 address as an integer: ``inet_aton`` is about ten times faster
    than ``ipaddress`` (a /16's discovery plan parsed 262,000 of them)."""
    return int.from_bytes(socket.inet_aton(address), "big")


def local_ipv4_spans(path: str = "/proc/net/fib_trie") -> list[tuple[int, int]] | None:
    """This host's own IPv4 addresses (this network namespace's) as integer spans: the
    ``host LOCAL`` entries of the kernel's routing tables, each address and whole local
    prefixes such as 127.0.0.0/8. One read instead of a bind per target (a /16 took
    1-2 s). None when the table cannot be read."""
    try:
        with open(path) as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    spans: set[tuple[int, int]] = set()
    key: int | None = None
    for line in lines:
        text = line.strip()
        if text.startswith("|-- "):
            try:
                key = int(ipaddress.IPv4Address(text[4:]))
            except ValueError:
                key = None
        elif text.startswith("/") and key is not None:
            fields = text.split()
            if len(fields) >= 3 and fields[2] == "LOCAL" and fields[0][1:].isdigit():
                size = 1 << (32 - min(32, int(fields[0][1:])))
                first = key & ~(size - 1) & 0xFFFFFFFF
                spans.add((first, first + size - 1))
    return sorted(spans)


def is_local_address(address: str, spans: list[tuple[int, int]] | None = None) -> bool:
    """True for an address of this host (in this network namespace). An IPv4 address is
    looked up in ``spans`` (``local_ipv4_spans``) when given; otherwise: it can be bound."""
    if spans is not None and ":" not in address:
        value = ipv4_int(address)
        return any(first <= value <= last for first, last in spans)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def neighbour_mac(address: str, table: str = "/proc/net/arp") -> str | None:
    """The MAC the kernel resolved for an IPv4 neighbour (any earlier packet, any method).

    Asked once per finished device, so it finds the device's rows with a text search
    instead of splitting every row: the table can hold thousands of neighbours.
    """
    if ":" in address or address.startswith("127."):
        return None  # IPv6 and loopback have no rows here
    try:
        with open(table) as f:
            text = f.read()
    except OSError:
        return None
    needle = f"\n{address} "  # a row starts with the address; the header is skipped
    at = text.find(needle)
    while at >= 0:
        end = text.find("\n", at + 1)
        row = text[at + 1:end if end >= 0 else len(text)].split()
        # Flag 0x2 is ATF_COM: the entry is complete, the MAC really answered.
        if len(row) >= 4 and int(row[2], 16) & 0x2:
            return row[3].lower()
        at = text.find(needle, at + 1)  # the same address on another interface
    return None


def neighbour_macs() -> dict[str, str]:
    """Every complete IPv4 neighbour of the kernel's table and its MAC, read once."""
    return {f[0]: f[3].lower() for f in _proc_rows("/proc/net/arp")
            if len(f) >= 4 and int(f[2], 16) & 0x2}


OnReply = Callable[[str, HostDiscovery], None]
Slot = Callable[[], contextlib.AbstractAsyncContextManager[None]]
# Takes over an open connection (and closes it) with the connect time in ms.
TakeOver = Callable[[OpenConnection, float], Awaitable[None]]


async def _tcp_ping_host(
    address: str, ports: Sequence[int], timeout: float, slot: Slot, take_over: TakeOver
) -> HostDiscovery | None:
    """Connect to the ports within the slots; the first connect or refusal wins."""
    async def one(port: int) -> HostDiscovery | None:
        async with slot():
            started = time.perf_counter()
            try:
                conn = await open_stream(address, port, timeout)
            except ConnectionRefusedError:
                reason = f"{port} refused"
            except TimeoutError:
                return None
            except OSError as exc:
                if exc.errno in _NOBODY:
                    raise  # the kernel found nobody: no other port will answer either
                if exc.errno != errno.ECONNREFUSED:
                    return None
                reason = f"{port} refused"
            else:
                rtt = round((time.perf_counter() - started) * 1000, 3)
                handed = asyncio.ensure_future(take_over(conn, rtt))
                try:
                    await asyncio.shield(handed)
                except asyncio.CancelledError:
                    # Another port answered first: finish this association properly
                    # (identification releases it) rather than cut it off.
                    await handed
                    raise
                finally:
                    await conn.close()
                return HostDiscovery(method="tcp", reason=f"{port} connected", rtt_ms=rtt,
                                     observed_at=utcnow())
            rtt = round((time.perf_counter() - started) * 1000, 3)
            return HostDiscovery(method="tcp", reason=reason, rtt_ms=rtt, observed_at=utcnow())

    tasks = [asyncio.ensure_future(one(p)) for p in ports]
    try:
        for next_done in asyncio.as_completed(tasks):
            try:
                hit = await next_done
            except OSError:
                return None
            if hit is not None:
                return hit
        return None
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)


async def tcp_ping(
    addresses: Sequence[str],
    timeout: float,
    per_host: int,
    max_concurrency: int,
    take_over: TakeOver,
    ports: Sequence[int] = TCP_PING_PORTS,
    on_alive: OnReply | None = None,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, HostDiscovery]:
    """TCP "ping" every address on ``ports``, within the profile's connection limits and
    the scan's rate cap (``pace``); every connection that opens goes to ``take_over``
    before it is closed."""
    everyone = asyncio.Semaphore(max_concurrency)

    async def host(address: str) -> tuple[str, HostDiscovery | None]:
        mine = asyncio.Semaphore(per_host)

        @contextlib.asynccontextmanager
        async def slot() -> AsyncIterator[None]:
            # Host first, then global, as the engine's HostGate does.
            async with mine, everyone:
                if pace is not None:
                    await pace()
                yield

        hit = await _tcp_ping_host(address, ports, timeout, slot, take_over)
        if hit is not None and on_alive is not None:
            on_alive(address, hit)
        return address, hit

    results = await asyncio.gather(*(host(a) for a in addresses))
    return {a: hit for a, hit in results if hit is not None}
