"""The shape of a hardening baseline file, validated on load: what it matches, what it
expects, and the sources it cites. ``baselines`` loads, resolves and selects them."""

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from scanner.model.base import checked_regex, empty_list

PACKAGE = "dicomscan_baselines"
Role = Literal["pacs", "modality", "workstation", "worklist", "print"]
# Remote-access services hardening guides ask to disable when unused (README's port table).
REMOTE_ACCESS_PORTS = (21, 22, 23, 135, 139, 445, 3389, 5800, 5900)
# The generic baseline for each guessed role; "unknown" or no role falls back to DEFAULT.
ROLE_DEFAULTS: dict[str, str] = {
    "pacs": "generic-pacs",
    "worklist": "generic-pacs",
    "modality": "generic-modality",
    "print": "generic-modality",
    "workstation": "generic-workstation",
}
# Unknown-role DICOM hosts are judged as servers: the PACS baseline allows the most
# DICOM and web ports, so it flags only ports no imaging server needs.
DEFAULT_BASELINE = "generic-pacs"


class BaselineError(ValueError):
    """One or more baseline files are invalid; ``problems`` holds one line per error."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _port_range(value: Any) -> tuple[int, int]:
    """A port (23) or an inclusive range ("5900-5910"), as (low, high)."""
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, tuple) and len(value) == 2:  # already parsed (merged by extends)
        low, high = value
    elif isinstance(value, str) and re.fullmatch(r"\d+-\d+", value.strip()):
        low, high = (int(p) for p in value.split("-"))
    else:
        raise ValueError(f"{value!r} is not a port or a 'low-high' range")
    if not (1 <= low <= high <= 65535):
        raise ValueError(f"{value!r} is not a TCP port (1-65535, low <= high)")
    return low, high


PortRange = Annotated[tuple[int, int], BeforeValidator(_port_range)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Strict):
    id: str | None = Field(default=None, description="what expectations cite it by")
    title: str = Field(min_length=1)
    url: str | None = None
    reference: str | None = None
    date: str = Field(pattern=r"^\d{4}(-\d{2}){0,2}$", description="YYYY, YYYY-MM or YYYY-MM-DD")

    @model_validator(mode="after")
    def _locatable(self) -> Self:
        if not (self.url or self.reference):
            raise ValueError("a source needs a url or a reference")
        return self


class Citation(_Strict):
    """An expectation's ground: a source of the baseline, and how sure that source is
    (../shared/VENDORS.md's tags: C confirmed, S secondary, U unconfirmed)."""

    source: str = Field(min_length=1, description="the id of one of the baseline's sources")
    confidence: Literal["confirmed", "secondary", "unconfirmed"]
    says: str = Field(min_length=1, description="what the source says that this rests on")


class AdvisoryRef(_Strict):
    """A published advisory that applies to the vendor's devices."""

    id: str = Field(min_length=1)
    applies_to: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    cite: list[Citation] = Field(min_length=1)


class _Expectation(_Strict):
    cite: list[Citation] = Field(default_factory=empty_list)


class Match(_Strict):
    """One way to recognise the device; every field given must hold (AND)."""

    implementation_class_uid: str | None = None
    uid_prefix: str | None = None
    version_name: str | None = Field(default=None, description="regex, implementation version")
    product: str | None = Field(default=None, description="regex, the fingerprint's product")
    http_server: str | None = Field(default=None, description="regex, a non-DICOM banner")
    open_ports: list[PortRange] | None = Field(default=None, description="all must be open")
    role: Role | None = None
    mac_vendor: str | None = Field(
        default=None, description="regex, the MAC's OUI registrant or its vendor family"
    )
    vendor: str | None = Field(
        default=None, description="regex, a vendor scanner/identify/vendor.py identified"
    )

    _re_fields = field_validator(
        "version_name", "product", "http_server", "mac_vendor", "vendor"
    )(checked_regex)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("a match block needs at least one criterion")
        return self

    @property
    def tier(self) -> int:
        """How specific the block is: product identity 3, port signature or MAC vendor 2
        (a vendor makes many products), role 1."""
        ident = ("implementation_class_uid", "uid_prefix", "version_name", "product")
        if any(getattr(self, f) is not None for f in (*ident, "http_server")):
            return 3
        vendorish = self.mac_vendor is not None or self.vendor is not None
        return 2 if self.open_ports is not None or vendorish else 1


class Ports(_Expectation):
    rule: str
    allowed: list[PortRange] = Field(default_factory=empty_list)
    must_be_closed: list[PortRange] = Field(default_factory=empty_list)


class RemoteAccess(_Expectation):
    rule: str
    ports: list[PortRange] = Field(default_factory=lambda: [(p, p) for p in REMOTE_ACCESS_PORTS])
    allowed: list[PortRange] = Field(default_factory=empty_list)


class Required(_Expectation):
    rule: str
    required: StrictBool  # strict: 0, 1 or "yes" in a hand-edited file is a typo


class FromUnknown(_Expectation):
    rule: str
    allowed: StrictBool


class Expectations(_Strict):
    ports: Ports | None = None
    remote_access: RemoteAccess | None = None
    dicom_tls_required: Required | None = None
    called_ae_enforced: Required | None = None
    unknown_calling_ae_rejected: Required | None = None
    echo_from_unknown: FromUnknown | None = None
    find_from_unknown: FromUnknown | None = None
    move_from_unknown: FromUnknown | None = None
    get_from_unknown: FromUnknown | None = None
    store_from_unknown: FromUnknown | None = None
    rdp_nla_required: Required | None = None


# The rule each expectation checks: a baseline must name it, so a reader of the file sees
# which finding an expectation drives, and a typo cannot silently check nothing.
EXPECTED_RULE: dict[str, str] = {
    "ports": "port-not-allowed",
    "remote_access": "remote-access-exposed",
    "dicom_tls_required": "dicom-cleartext",
    "called_ae_enforced": "dicom-called-ae-not-enforced",
    "unknown_calling_ae_rejected": "dicom-calling-ae-not-validated",
    "echo_from_unknown": "dicom-echo-open",
    "find_from_unknown": "dicom-query-open",
    "move_from_unknown": "dicom-retrieve-open",
    "get_from_unknown": "dicom-retrieve-open",
    "store_from_unknown": "dicom-store-open",
    "rdp_nla_required": "rdp-nla-not-required",
}


class Baseline(_Strict):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sources: list[Source] = Field(min_length=1)
    match: list[Match] = Field(default_factory=empty_list)
    extends: str | None = None
    vendor: str | None = Field(
        default=None, description="set on vendor baselines: each expectation must cite a source"
    )
    advisories: list[AdvisoryRef] = Field(default_factory=empty_list)
    expectations: Expectations = Field(default_factory=Expectations)

    @model_validator(mode="after")
    def _cited(self) -> Self:
        ids = {s.id for s in self.sources if s.id}
        problems: list[str] = []
        cited = [(k, getattr(self.expectations, k)) for k in EXPECTED_RULE]
        for key, exp in cited:
            if exp is None:
                continue
            if self.vendor is not None and not exp.cite:
                problems.append(f"expectations.{key}: a vendor baseline's expectation needs "
                                "a cite (a source says it, or the baseline says nothing)")
            problems += [f"expectations.{key}: cites unknown source {c.source!r}"
                         for c in exp.cite if c.source not in ids]
        for adv in self.advisories:
            problems += [f"advisories.{adv.id}: cites unknown source {c.source!r}"
                         for c in adv.cite if c.source not in ids]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def port_in(port: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(low <= port <= high for low, high in ranges)


def show_ports(ranges: Iterable[tuple[int, int]]) -> list[int | str]:
    return [low if low == high else f"{low}-{high}" for low, high in ranges]
