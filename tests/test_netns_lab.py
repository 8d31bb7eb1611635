"""The namespace imaging lab, and discovery and scanning on it (real peers, real packets).

One lab per module (built once from fixtures/labs/imaging.yaml): a bridge in a switch
namespace, one namespace per device, the scanner in its own namespace, all on
198.18.0.0/24 with no route out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.lab.netns import NetnsLab, lab_namespaces, running_lab
from scanner.lab.netns_spec import LabSpec, LabSpecError, load_lab_spec
from tests.conftest import IN_CI

pytestmark = [
    pytest.mark.root,
    pytest.mark.peers,
    pytest.mark.skipif(
        (os.geteuid() != 0 or not shutil.which("nft")) and not IN_CI,
        reason="needs root, iproute2 and nftables (network namespaces)",
    ),
]

SPEC_FILE = Path(__file__).parent.parent / "fixtures" / "labs" / "imaging.yaml"


def _root_view() -> tuple[str, str, str]:
    """What the root namespace looks like: links, routes, firewall."""
    def sh(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout

    return sh("ip", "-o", "link"), sh("ip", "route", "show", "table", "all"), sh(
        "nft", "list", "ruleset")


@pytest.fixture(scope="module")
def root_before() -> tuple[str, str, str]:
    return _root_view()


@pytest.fixture(scope="module")
def lab(root_before: tuple[str, str, str]) -> Iterator[NetnsLab]:
    with running_lab(load_lab_spec(SPEC_FILE)) as running:
        yield running
    assert lab_namespaces("imaging") == []


def test_lab_is_isolated(lab: NetnsLab, root_before: tuple[str, str, str]) -> None:
    assert len(lab.namespaces()) == 2 + len(lab.spec.devices)
    for ns in lab.namespaces():
        assert lab.exec(ns, ["ip", "route", "show", "default"]).strip() == ""
        routes = lab.exec(ns, ["ip", "-4", "route"]).split()
        assert not [r for r in routes if "/" in r and not r.startswith("198.18.0.")]
    # Nothing of the lab exists in the root namespace.
    assert _root_view() == root_before


def test_device_macs_and_listeners(lab: NetnsLab) -> None:
    dev = lab.spec.devices[1]
    assert dev.mac is not None
    assert dev.mac in lab.exec(lab.ns_of(dev.name), ["ip", "-br", "link", "show", "eth0"])
    assert ":104 " in lab.exec(lab.ns_of(dev.name), ["ss", "-ltnH"])


def test_spec_refuses_addresses_outside_the_benchmark_range() -> None:
    scanner = {"name": "scanner", "address": "10.0.0.250"}
    with pytest.raises(ValueError, match="not inside"):
        LabSpec.model_validate({"name": "bad", "subnet": "10.0.0.0/24", "scanner": scanner,
                                "devices": []})
    with pytest.raises(LabSpecError):
        load_lab_spec(SPEC_FILE.with_name("missing.yaml"))
