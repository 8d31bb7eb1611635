"""Port specifications."""

from __future__ import annotations

import pytest

from scanner.engine.portspec import (
    DEFAULT_PORT_NUMBERS,
    PortSpecError,
    parse_port_spec,
    parse_ports,
)


def test_lists_and_ranges_sorted_unique() -> None:
    assert parse_ports("11112,104,2000-2003,104") == [104, 2000, 2001, 2002, 2003, 11112]


def test_all_ports_and_open_ended_ranges() -> None:
    assert len(parse_ports("-")) == 65535
    assert parse_ports("65530-") == list(range(65530, 65536))
    assert parse_ports("-3") == [1, 2, 3]


def test_default_keyword_and_tcp_prefix() -> None:
    assert parse_ports("default") == list(DEFAULT_PORT_NUMBERS)
    assert parse_ports("T:104,9999") == [104, 9999]


def test_default_set_covers_imaging_and_remote_access() -> None:
    for port in (104, 11112, 2761, 2762, 4242, 80, 443, 8042, 8080, 8443, 2575,
                 21, 22, 23, 135, 139, 445, 3389, 5800, 5900):
        assert port in DEFAULT_PORT_NUMBERS


@pytest.mark.parametrize(
    "spec, message",
    [
        ("0", "outside 1-65535"),
        ("70000", "outside 1-65535"),
        ("abc", "not a port number"),
        ("10-5", "ends before it starts"),
        ("104,,11112", "empty entry"),
        ("U:161", "no TCP port"),
        ("U:default", "TCP port set"),
        ("", "empty port list"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(PortSpecError, match=message):
        parse_ports(spec)


@pytest.mark.parametrize(
    "spec, tcp, udp",
    [
        ("U:161", [], [161]),
        ("104,U:161", [104], [161]),
        ("T:104,U:161,162,T:445", [104, 445], [161, 162]),
        ("u: 161-162,104", [], [104, 161, 162]),  # nmap: the prefix holds until the next one
    ],
)
def test_udp_ports(spec: str, tcp: list[int], udp: list[int]) -> None:
    parsed = parse_port_spec(spec)
    assert (parsed.tcp, parsed.udp) == (tcp, udp)
