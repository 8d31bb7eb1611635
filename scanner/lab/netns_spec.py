"""The declarative description of a namespace lab: devices, addresses, MACs, services.

A lab is one YAML file (see ``fixtures/labs/``) or the same structure built in Python.
Every address must lie in 198.18.0.0/15, the benchmarking range that is never routed,
and inside the lab's own subnet, so a description cannot point the lab at a real network.
"""

import ipaddress
import re
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scanner.model.base import empty_list

BENCH_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
_NAME = r"^[a-z][a-z0-9]{0,9}$"  # short: it ends up in interface and namespace names
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class LabSpecError(ValueError):
    """The lab description is invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceSpec(_Strict):
    """One process in a device: a real DICOM peer or a plain TCP listener. ``ctn`` is MIR
    CTN's simple_storage, the fragile legacy stack: it exits on a connection closed empty."""

    kind: Literal["storescp", "orthanc", "ctn", "listener"]
    port: int = Field(ge=1, le=65535)
    aet: str = "LAB"
    args: list[str] = Field(default_factory=empty_list, description="extra storescp arguments")
    http_port: int | None = Field(default=None, ge=1, le=65535, description="Orthanc REST")
    banner: str = Field(default="", description="listener: bytes sent on accept")


class DeviceSpec(_Strict):
    name: str = Field(pattern=_NAME)
    address: str
    mac: str | None = Field(default=None, description="unicast MAC, e.g. a vendor's OUI")
    services: list[ServiceSpec] = Field(default_factory=empty_list)
    drop: list[int] = Field(default_factory=empty_list, description="TCP ports a firewall drops")

    @model_validator(mode="after")
    def _mac(self) -> Self:
        if self.mac is not None:
            mac = self.mac.lower()
            if not _MAC.match(mac) or int(mac[:2], 16) & 1:
                raise ValueError(f"{self.mac!r} is not a unicast MAC address")
        return self


class LabSpec(_Strict):
    name: str = Field(pattern=_NAME)
    subnet: str = "198.18.0.0/24"
    scanner: DeviceSpec
    devices: list[DeviceSpec]

    @model_validator(mode="after")
    def _addresses(self) -> Self:
        net = ipaddress.ip_network(self.subnet)
        if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(BENCH_RANGE):
            raise ValueError(f"subnet {self.subnet} is not inside {BENCH_RANGE}")
        seen: set[str] = set()
        for dev in [self.scanner, *self.devices]:
            addr = ipaddress.ip_address(dev.address)
            if addr not in net or addr in (net.network_address, net.broadcast_address):
                raise ValueError(f"{dev.name}: {dev.address} is not a host of {self.subnet}")
            if dev.address in seen or dev.name in {d.name for d in self.devices if d is not dev}:
                raise ValueError(f"{dev.name}: duplicate name or address {dev.address}")
            seen.add(dev.address)
        return self

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen


def load_lab_spec(path: str | Path) -> LabSpec:
    """Read and validate a YAML lab description; ``{here}`` in storescp args is its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8").replace("{here}", str(path.parent.resolve()))
        return LabSpec.model_validate(yaml.safe_load(text))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise LabSpecError(f"{path}: {exc}") from None
