"""The device's vendor (and product family where the evidence allows), from the
implementation class UID root, the implementation version name, the MAC's registrant and
product names in banners; every conclusion lists its evidence and each row's source.

The table is data (``scanner/data/vendors.yaml``), one sourced fact per row. A pure
function of a finished ``Host``, so a saved scan is identified again offline.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from scanner.identify.oui import medical_family
from scanner.model import Host, Service
from scanner.model.data_cache import shipped_yaml
from scanner.model.http_observations import HttpSummary, ServiceBannerInfo
from scanner.model.legacy_observations import SnmpObservation
from scanner.model.observations import Association, Banner
from scanner.model.vendor import VendorEvidence, VendorEvidenceKind, VendorIdentity

if TYPE_CHECKING:
    from probes.context import HostState, ServiceState

_RANK = {"low": 1, "medium": 2, "high": 3}


class VendorRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: VendorEvidenceKind
    value: str = Field(min_length=1)
    vendor: str = Field(min_length=1)
    family: str | None = None
    confidence: str = Field(pattern="^(high|medium|low)$")
    source: str = Field(min_length=10)

    def matches(self, disclosed: str) -> bool:
        if self.kind is VendorEvidenceKind.UID_ROOT:
            return disclosed == self.value or disclosed.startswith(self.value + ".")
        return re.search(self.value, disclosed, re.IGNORECASE) is not None


@cache
def vendor_table() -> tuple[VendorRow, ...]:
    text = (resources.files("scanner") / "data" / "vendors.yaml").read_text(encoding="utf-8")
    raw: Any = shipped_yaml(text)
    return tuple(VendorRow.model_validate(r) for r in raw["rows"])


@dataclass(frozen=True)
class Disclosed:
    kind: VendorEvidenceKind
    value: str


def disclosures(host: Host) -> list[Disclosed]:
    """Everything the host disclosed that the table can be matched against."""
    return list(_disclosed(host.services, host.mac_vendor))


def _disclosed(
    services: "Iterable[Service | ServiceState]", mac_vendor: str | None
) -> tuple[Disclosed, ...]:
    # Services in the frozen host's order (a HostState's TCP then UDP services by port).
    out: list[Disclosed] = []
    k = VendorEvidenceKind
    for svc in services:
        for o in svc.observations:
            texts: list[str | None] = []
            if isinstance(o, Association) and o.peer is not None:
                if o.peer.implementation_class_uid:
                    out.append(Disclosed(k.UID_ROOT, o.peer.implementation_class_uid))
                if o.peer.implementation_version_name:
                    out.append(Disclosed(k.VERSION_NAME, o.peer.implementation_version_name))
            elif isinstance(o, Banner):
                texts = [o.text]
            elif isinstance(o, HttpSummary):
                texts = [o.server, o.title, o.product]
            elif isinstance(o, ServiceBannerInfo):
                texts = [o.banner, o.software]
            elif isinstance(o, SnmpObservation):
                texts = [o.sys_descr]
            out.extend(Disclosed(k.BANNER, t) for t in texts if t)
    for name in (mac_vendor, medical_family(mac_vendor)):
        if name:
            out.append(Disclosed(k.MAC_VENDOR, name))
    return tuple(dict.fromkeys(out))


def identify_vendors(host: Host) -> list[VendorIdentity]:
    """Every vendor the evidence points to, best first."""
    return _vendors(_disclosed(host.services, host.mac_vendor))


def _vendors(disclosed: tuple[Disclosed, ...]) -> list[VendorIdentity]:
    # Devices of one kind disclose the same things, and each device is identified twice
    # (the host analysis, then the rules' baseline selection): the table is matched once
    # per distinct disclosure. Peer text is kept only up to a size; more is matched afresh.
    if sum(len(d.value) for d in disclosed) <= _CACHED_CHARS:
        return list(_cached(disclosed))
    return list(_identified(disclosed))


_CACHED_CHARS = 4096


def _identified(disclosed: tuple[Disclosed, ...]) -> tuple[VendorIdentity, ...]:
    hits: dict[str, list[tuple[VendorRow, Disclosed]]] = {}
    for d in disclosed:
        for row in vendor_table():
            if row.kind is d.kind and row.matches(d.value):
                hits.setdefault(row.vendor, []).append((row, d))
    found: list[VendorIdentity] = []
    for vendor, pairs in hits.items():
        evidence = list(dict.fromkeys(
            VendorEvidence(kind=d.kind, value=d.value, matched=r.value,
                           confidence=r.confidence, source=r.source)
            for r, d in pairs
        ))
        best = max(_RANK[r.confidence] for r, _ in pairs)
        if len({d.kind for _, d in pairs}) > 1:  # independent kinds of evidence agree
            best = _RANK["high"]
        # The family from the most specific row that names one (longest UID root first).
        named = sorted((r for r, _ in pairs if r.family),
                       key=lambda r: (-_RANK[r.confidence], -len(r.value)))
        confidence = next(name for name, rank in _RANK.items() if rank == best)
        found.append(VendorIdentity(vendor=vendor, family=named[0].family if named else None,
                                    confidence=confidence, evidence=evidence))
    found.sort(key=lambda v: (-_RANK[v.confidence], -len(v.evidence), v.vendor))
    return tuple(found)


def identify_vendor_state(state: "HostState") -> None:
    """Host analysis: record the vendors on the host being built. Read from the state as
    ``identify_vendors`` reads its frozen host, without freezing it a second time."""
    services = [*(state.services[p] for p in sorted(state.services)),
                *(state.udp_services[p] for p in sorted(state.udp_services))]
    state.vendors = _vendors(_disclosed(services, state.mac_vendor))


_cached = lru_cache(maxsize=1024)(_identified)
