"""Target expansion, exclusion, scope and the public-address guard."""

from __future__ import annotations

import pytest

from scanner.engine.targets import (
    TargetError,
    build_targets,
    expand_spec,
    guard_addresses,
    read_targets_file,
)


def no_dns(name: str) -> list[str]:
    raise AssertionError(f"unexpected lookup of {name}")


def fake_dns(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(name: str) -> list[str]:
        if name not in table:
            raise TargetError(f"cannot resolve host name {name!r}")
        return table[name]

    return resolve


def addrs(*specs: str, **kw: object) -> list[str]:
    return build_targets(specs, resolver=kw.pop("resolver", no_dns), **kw).addresses  # type: ignore[arg-type]


def test_single_addresses_v4_and_v6() -> None:
    assert addrs("127.0.0.1", "::1") == ["127.0.0.1", "::1"]


def test_cidr_excludes_network_and_broadcast() -> None:
    got = addrs("198.18.0.0/29")
    assert got == [f"198.18.0.{i}" for i in range(1, 7)]


def test_slash_32_and_31_keep_every_address() -> None:
    assert addrs("127.0.0.9/32") == ["127.0.0.9"]
    assert addrs("198.18.0.0/31") == ["198.18.0.0", "198.18.0.1"]


def test_last_octet_range_and_full_range() -> None:
    assert addrs("10.0.0.5-7") == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert addrs("10.0.0.254-10.0.1.1") == ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]


def test_duplicates_collapse_in_order() -> None:
    assert addrs("127.0.0.2", "127.0.0.1-2") == ["127.0.0.2", "127.0.0.1"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("10.0.0.300", "not an address"),
        ("10.0.0.9-3", "end comes before"),
        ("10.0.0.1-999", "bad end"),
        ("10.0.0.0/33", "invalid network"),
        ("10.0.0.0/8", "more than 65536"),
        ("not a host!", "not an address, network, range or host name"),
        ("", "empty target"),
    ],
)
def test_invalid_specs_give_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        addrs(spec)


def test_public_addresses_refused_unless_allowed() -> None:
    with pytest.raises(TargetError, match="--allow-public"):
        addrs("8.8.8.8")
    assert addrs("8.8.8.8", allow_public=True) == ["8.8.8.8"]


def test_public_guard_sees_through_names_and_mapped_v6() -> None:
    with pytest.raises(TargetError, match="public"):
        addrs("pacs.example", resolver=fake_dns({"pacs.example": ["9.9.9.9"]}))
    with pytest.raises(TargetError, match="public"):
        addrs("::ffff:8.8.8.8")


def test_private_lab_and_loopback_ranges_are_not_public() -> None:
    assert addrs("198.18.5.5", "10.1.1.1", "192.168.0.1", "172.16.0.1", "fe80::1")


def test_hostname_resolved_forward_and_name_kept() -> None:
    ts = build_targets(["pacs.lab"], resolver=fake_dns({"pacs.lab": ["127.0.0.5"]}))
    assert ts.addresses == ["127.0.0.5"]
    assert ts.hostnames == {"127.0.0.5": "pacs.lab"}


def test_unresolvable_name_is_an_error() -> None:
    with pytest.raises(TargetError, match="cannot resolve"):
        addrs("nowhere.invalid", resolver=fake_dns({}))


def test_exclude_addresses_networks_and_ranges() -> None:
    got = addrs("127.0.0.1-10", exclude=["127.0.0.2", "127.0.0.4/31", "127.0.0.8-10"])
    assert got == ["127.0.0.1", "127.0.0.3", "127.0.0.6", "127.0.0.7"]


def test_everything_excluded_is_an_error() -> None:
    with pytest.raises(TargetError, match="no targets left"):
        addrs("127.0.0.1", exclude=["127.0.0.0/8"])


def test_scope_refuses_targets_outside_it() -> None:
    assert addrs("127.0.0.1", scope=["127.0.0.0/8"]) == ["127.0.0.1"]
    with pytest.raises(TargetError, match="outside --scope"):
        addrs("127.0.0.1", "198.18.0.1", scope=["127.0.0.0/8"])


def test_targets_file_comments_and_separators() -> None:
    text = "# imaging VLAN\n127.0.0.1, 127.0.0.2\n\n127.0.0.3 # pacs\n"
    assert read_targets_file(text) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def test_job_guard_refuses_public_and_non_addresses() -> None:
    guard_addresses(["127.0.0.1", "::1"], allow_public=False)
    with pytest.raises(TargetError):
        guard_addresses(["1.1.1.1"], allow_public=False)
    with pytest.raises(TargetError):
        guard_addresses(["pacs"], allow_public=False)


@pytest.mark.parametrize(("addresses", "scope"), [
    (["10.0.0.1", "11.0.0.1", "192.168.0.1"], []),  # public, between two private blocks
    (["8.8.8.8", "10.0.0.1"], []),  # public, the lowest
    (["127.0.0.1", "127.0.1.5", "127.0.0.9"], ["127.0.0.0/24"]),  # one outside the scope
    (["127.0.0.1", "127.0.0.09"], []),  # not a strict dotted quad
])
def test_job_guard_checks_every_address_of_a_mixed_list(addresses: list[str],
                                                        scope: list[str]) -> None:
    with pytest.raises(TargetError):
        guard_addresses(addresses, allow_public=False, scope=scope)


def test_job_guard_passes_a_block_inside_its_scope() -> None:
    block = [f"127.0.{n // 256}.{n % 256}" for n in range(1, 4096)]
    guard_addresses(block, allow_public=False, scope=["127.0.0.0/20"])
    guard_addresses(["8.8.8.8", "1.1.1.1"], allow_public=True)


def test_expand_spec_returns_name_only_for_names() -> None:
    assert expand_spec("127.0.0.1", no_dns)[1] is None


@pytest.mark.parametrize(("spec", "kw"), [
    ("127.0.0.0/22", {}),
    ("10.20.0.0/23", {"scope": ["10.0.0.0/8"]}),
    ("10.20.0.0/23", {"exclude": ["10.20.1.0/25"]}),
    ("198.18.0.0/31", {}),
    ("172.16.5.7/32", {}),
    ("100.64.0.0/30", {}),
])
def test_a_block_inside_a_private_range_expands_as_address_by_address(
        spec: str, kw: dict[str, list[str]]) -> None:
    """The block fast path (no per-address is_global) gives what the general path gives:
    same addresses, same order, exclusions honoured."""
    import ipaddress

    net = ipaddress.ip_network(spec)
    hosts = list(net) if net.num_addresses <= 2 else list(net.hosts())
    excluded = [ipaddress.ip_network(e) for e in kw.get("exclude", [])]
    expected = [str(a) for a in hosts if not any(a in e for e in excluded)]
    assert addrs(spec, **kw) == expected


def test_a_block_reaching_outside_private_ranges_is_still_checked() -> None:
    with pytest.raises(TargetError, match="public"):
        addrs("11.0.0.0/30")
    with pytest.raises(TargetError, match="public"):
        addrs("192.168.0.0/15", max_addresses=140_000)  # 192.169.0.0/16 is public
    with pytest.raises(TargetError, match="outside --scope"):
        addrs("10.0.0.0/24", scope=["10.0.0.0/25"])
    assert addrs("11.0.0.0/31", allow_public=True) == ["11.0.0.0", "11.0.0.1"]


# --- IPv6 zones: a zone names an interface of this machine -------------------------------


def _lo_index() -> str:
    import socket

    return str(socket.if_nametoindex("lo"))


def test_a_zone_must_name_an_interface_of_this_machine() -> None:
    for spec in ("fe80::1%badzone", "fe80::1%999999", "fe80::1-fe80::5%nope"):
        with pytest.raises(TargetError, match=r"names no network interface|different zones"):
            addrs(spec)
    with pytest.raises(TargetError, match="zone 'badzone' names no network interface"):
        addrs("127.0.0.1", exclude=["fe80::1%badzone"])
    with pytest.raises(TargetError, match="zone 'badzone'"):
        guard_addresses(["fe80::1%badzone"], allow_public=False)
    assert addrs("fe80::1%lo") == ["fe80::1%lo"]
    assert addrs(f"fe80::1%{_lo_index()}") == [f"fe80::1%{_lo_index()}"]
    guard_addresses(["fe80::1%lo"], allow_public=False)


def test_a_zoned_range_and_a_zoned_exclusion() -> None:
    # ipaddress reads the whole range as one address with the zone 'lo-fe80::3'
    assert addrs("fe80::1%lo-fe80::3") == ["fe80::1%lo", "fe80::2%lo", "fe80::3%lo"]
    assert addrs("fe80::1%lo-fe80::3", exclude=["fe80::2%lo"]) == ["fe80::1%lo", "fe80::3%lo"]
    with pytest.raises(TargetError, match="zone 'nope-fe80::3' names no network interface"):
        addrs("fe80::1%nope-fe80::3")


# --- odd input to the target, exclusion and scope parsers ---------------------------------


def test_range_end_in_non_ascii_digits_is_refused() -> None:
    # int() reads Arabic-Indic and full-width digits: '10.0.0.5-٤٠' was 10.0.0.5-40; a
    # leading zero (octal to some tools, refused by ipaddress in an address) was decimal.
    for spec in ("10.0.0.5-\u0664\u0660", "10.0.0.5-\uff14\uff10", "10.0.0.5-010"):
        with pytest.raises(TargetError, match="bad end"):
            addrs(spec)


def test_a_range_across_families_says_so() -> None:
    with pytest.raises(TargetError, match="the start is IPv4 and the end IPv6"):
        addrs("127.0.0.1-::1")
    with pytest.raises(TargetError, match="the start is IPv6 and the end IPv4"):
        addrs("::1-127.0.0.1")


def test_whole_address_spaces_are_refused_by_size_not_listed() -> None:
    for spec in ("0.0.0.0/0", "::/0", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                 "0.0.0.0-255.255.255.255"):
        with pytest.raises(TargetError, match="more than 16777216"):
            addrs(spec, max_addresses=16_777_216)


@pytest.mark.parametrize(("spec", "what"), [
    ("0.0.0.0/30", "'this network'"),   # a connect to 0.0.0.0 reaches this machine
    ("224.0.0.1", "multicast"),
    ("255.255.255.254-255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("ff02::1", "multicast"),
    ("::ffff:0.0.0.1", "'this network'"),
])
def test_addresses_that_name_no_host_are_refused(spec: str, what: str) -> None:
    with pytest.raises(TargetError, match=f"name no host: .*{what}"):
        addrs(spec, allow_public=True)
    with pytest.raises(TargetError, match="not a host"):
        guard_addresses([spec.split("/")[0].split("-")[-1]], allow_public=True)


def test_ipv6_networks_and_ranges_list_what_hosts_lists() -> None:
    import ipaddress

    assert addrs("fd00::/126") == [str(a) for a in ipaddress.ip_network("fd00::/126").hosts()]
    assert addrs("fd00::fe-fd00::101") == ["fd00::fe", "fd00::ff", "fd00::100", "fd00::101"]
    assert addrs("fd00::/127") == ["fd00::", "fd00::1"]


def test_public_count_is_exact_across_a_block_edge() -> None:
    """192.168.255.250-192.169.0.9 has ten public addresses, named and counted."""
    with pytest.raises(TargetError) as err:
        addrs("192.168.255.250-192.169.0.9")
    assert "192.169.0.0 (192.168.255.250-192.169.0.9)" in str(err.value)
    assert "and 5 more" in str(err.value)


def test_the_public_edges_cover_this_pythons_tables() -> None:
    """Between two edges every address is judged alike: each of ipaddress's own special
    networks must start on an edge and end before one."""
    import ipaddress

    from scanner.engine.spans import _MAPPED, _edges

    for version, cls in ((4, ipaddress.IPv4Address), (6, ipaddress.IPv6Address)):
        cuts = set(_edges(version))
        consts = cls._constants  # type: ignore[attr-defined]
        nets = [*consts._private_networks, consts._public_network] if version == 4 else list(
            consts._private_networks)
        for net in [*nets, *getattr(consts, "_private_networks_exceptions", [])]:
            assert int(net.network_address) in cuts, net
            assert int(net.broadcast_address) + 1 in cuts or int(
                net.broadcast_address) == 2 ** (32 if version == 4 else 128) - 1, net
    v6 = set(_edges(6))
    for net in ipaddress.IPv4Address._constants._private_networks:  # type: ignore[attr-defined]
        assert _MAPPED + int(net.network_address) in v6


@pytest.mark.parametrize("seed", range(8))
def test_public_parts_agree_with_is_public_address_by_address(seed: int) -> None:
    import ipaddress
    import random

    from scanner.engine.spans import _edges, public_parts
    from scanner.engine.targets import is_public

    rnd = random.Random(seed)
    for version in (4, 6):
        for cut in rnd.sample(_edges(version), 10):
            lo = max(0, cut - rnd.randrange(1, 40))
            hi = min(cut + rnd.randrange(1, 40), 2 ** (32 if version == 4 else 128) - 1)
            parts = public_parts(version, lo, hi)
            got = {n for a, b in parts for n in range(a, b + 1)}
            cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            assert got == {n for n in range(lo, hi + 1) if is_public(cls(n))}
