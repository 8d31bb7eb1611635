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
