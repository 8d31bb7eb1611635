"""A service's observations go through a schema built on first use
(``scanner/model/lazy_observations.py``): validation, errors and every dump must be those
of the plain ``list[Observation]`` field it replaces. Checked against such a model, on
the observations of real saved scans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, ValidationError

from scanner.model import Protocol, Service
from scanner.model.base import Frozen, empty_list
from scanner.model.observations import Observation

SAVED = sorted((Path(__file__).parent.parent / "fixtures" / "scans").glob("*.json"))


class EagerService(Frozen):
    """Service as it was: the observation models built into its own schema."""

    port: int = Field(ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    name: str
    tls: bool = False
    product: str | None = None
    version: str | None = None
    observations: list[Observation] = Field(default_factory=empty_list)


def services() -> list[dict[str, Any]]:
    return [s for p in SAVED for h in json.loads(p.read_text())["hosts"] for s in h["services"]]


@pytest.mark.parametrize("flags", [
    {}, {"mode": "json"}, {"exclude_none": True}, {"mode": "json", "exclude_defaults": True},
    {"by_alias": True, "round_trip": True}, {"mode": "json", "exclude_unset": True},
])
def test_every_dump_is_the_plain_fields(flags: dict[str, Any]) -> None:
    found = services()
    assert sum(len(s["observations"]) for s in found) > 30
    for raw in found:
        lazy, eager = Service.model_validate(raw), EagerService.model_validate(raw)
        assert lazy.model_dump(**flags) == eager.model_dump(**flags)
        assert lazy.model_dump_json() == eager.model_dump_json()
        assert Service.model_validate_json(lazy.model_dump_json()) == lazy


@pytest.mark.parametrize("bad", [
    "not a list",
    [{"kind": "banner"}],
    [{"kind": "no-such-kind"}],
    [{"kind": "health-check", "phase": "during", "method": "c-echo", "answered": True,
      "detail": "", "at": "now"}],
])
def test_errors_name_the_same_place(bad: Any) -> None:
    def errors(model: type[Frozen]) -> list[tuple[Any, ...]]:
        with pytest.raises(ValidationError) as caught:
            model.model_validate({"port": 104, "name": "dicom", "observations": bad})
        return [(e["loc"], e["type"]) for e in caught.value.errors()]

    assert errors(Service) == errors(EagerService)


def test_a_scan_with_nothing_open_never_builds_them() -> None:
    code = ("import sys; from scanner.model import ScanResult, Host, Service; "
            "Host(address='127.0.0.1', services=[Service(port=104, name='dicom')])"
            ".model_dump_json(); print(sorted(m for m in sys.modules if 'observations' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["['scanner.model.lazy_observations']"]
