"""The product table (``scanner/data/fingerprints.yaml``): parsed, validated, loaded once.

Every entry names its source and how sure it is; a malformed table is an error naming
the entry, never a silently weaker match.
"""

import re
from functools import cache
from importlib import resources
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scanner.model.base import checked_regex, empty_list
from scanner.model.data_cache import DataError, shipped_yaml

Certainty = Literal["src", "obs", "tbl", "unconfirmed"]
Role = Literal["pacs", "modality", "workstation", "worklist", "print"]
Level = Literal["high", "medium", "low"]

TABLE_FILE = "fingerprints.yaml"
NOTE_PREFIX = "note: "

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
LEVEL_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}


class FingerprintTableError(ValueError):
    """The fingerprint table is malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_uid(value: str) -> str:
    if not UID_RE.match(value) or len(value) > 64:
        raise ValueError(f"{value!r} is not a DICOM UID")
    return value


class ProductEntry(_Strict):
    """One product, toolkit, honeypot or organisation root, and how to recognise it."""

    id: str = Field(pattern=_ID_PATTERN)
    product: str | None = None
    vendor: str | None = None
    certainty: Certainty
    source: str = Field(min_length=1)
    note: str = ""
    result_note: str = Field(default="", description="shown in matched_by with every match")
    version_name_prefix: str | None = Field(default=None, min_length=1)
    version_name_regex: str | None = None
    uid: list[str] = Field(default_factory=empty_list)
    uid_version_prefix: str | None = None
    uid_prefix: str | None = None
    max_pdu_length: int | None = Field(default=None, gt=0)
    no_identity_max_pdu: int | None = Field(default=None, gt=0)
    report_version: bool = True
    accepts_foreign_uid: bool = False
    role_hint: Role | None = None
    claims: str | None = Field(default=None, description="what the name pretends to be")
    honeypot: str | None = None
    honeypot_reason: str = ""

    @field_validator("version_name_regex")
    @classmethod
    def _name_regex(cls, value: str | None) -> str | None:
        return checked_regex(value)

    @field_validator("uid")
    @classmethod
    def _uids(cls, value: list[str]) -> list[str]:
        return [_check_uid(v) for v in value]

    @field_validator("uid_prefix")
    @classmethod
    def _root(cls, value: str | None) -> str | None:
        return None if value is None else _check_uid(value)

    @field_validator("uid_version_prefix")
    @classmethod
    def _version_prefix(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.endswith("."):
                raise ValueError("a UID version prefix must end with '.'")
            _check_uid(value[:-1])
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.source.strip():
            raise ValueError("source is empty")
        strong = (
            self.version_name_prefix,
            self.version_name_regex,
            self.uid or None,
            self.uid_version_prefix,
            self.no_identity_max_pdu,
        )
        has_strong = any(m is not None for m in strong)
        if not has_strong and self.uid_prefix is None:
            raise ValueError("an entry needs at least one matcher")
        if self.uid_prefix is not None:
            # Org roots are hints only: mixing them with product matchers would hide that.
            if has_strong or self.product is not None:
                raise ValueError("a uid_prefix (org root) entry takes no product or other matcher")
            if not self.vendor:
                raise ValueError("a uid_prefix (org root) entry needs a vendor")
        elif self.product is None:
            raise ValueError("product is required unless the entry is an org root")
        if self.honeypot is not None and not self.honeypot_reason.strip():
            raise ValueError("a honeypot entry needs a honeypot_reason")
        return self


class HttpSignal(_Strict):
    """A non-DICOM answer on the same host that names the product behind a DCMTK identity."""

    id: str = Field(pattern=_ID_PATTERN)
    product: str = Field(min_length=1)
    certainty: Certainty
    source: str = Field(min_length=1)
    description: str = Field(min_length=1)
    note: str = ""
    confidence: Level
    require: list[str] = Field(min_length=1)
    forbid: list[str] = Field(default_factory=empty_list)
    role_hint: Role | None = None

    @field_validator("require", "forbid")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for v in value:
            checked_regex(v)
        return value


class FingerprintTable(_Strict):
    products: list[ProductEntry]
    http_signals: list[HttpSignal] = Field(default_factory=empty_list)


def parse_table(raw: Any, origin: str = TABLE_FILE) -> FingerprintTable:
    """Validate a loaded YAML document; errors name the section, index and id of the entry."""
    if not isinstance(raw, dict):
        raise FingerprintTableError(f"{origin}: expected a mapping with a 'products:' list")
    unknown = sorted(set(raw) - {"products", "http_signals"})
    if unknown:
        raise FingerprintTableError(f"{origin}: unknown top-level key(s): {', '.join(unknown)}")
    sections: dict[str, list[Any]] = {}
    for section, model in (("products", ProductEntry), ("http_signals", HttpSignal)):
        items = raw.get(section, [] if section == "http_signals" else None)
        if not isinstance(items, list):
            raise FingerprintTableError(f"{origin}: '{section}' must be a list")
        parsed: list[Any] = []
        for i, item in enumerate(items):
            entry_id = item.get("id") if isinstance(item, dict) else None
            try:
                parsed.append(model.model_validate(item))
            except ValidationError as exc:
                raise FingerprintTableError(
                    f"{origin}: {section}[{i}] (id {entry_id!r}): {exc}"
                ) from None
        sections[section] = parsed
    seen: set[str] = set()
    for entry in [*sections["products"], *sections["http_signals"]]:
        if entry.id in seen:
            raise FingerprintTableError(f"{origin}: id {entry.id!r} is defined twice")
        seen.add(entry.id)
    return FingerprintTable(products=sections["products"], http_signals=sections["http_signals"])


@cache
def load_table() -> FingerprintTable:
    """The packaged table, parsed once per process."""
    path = resources.files("scanner") / "data" / TABLE_FILE
    try:
        raw: Any = shipped_yaml(path.read_text(encoding="utf-8"))
    except DataError as exc:
        raise FingerprintTableError(f"{TABLE_FILE}: not valid YAML: {exc}") from None
    return parse_table(raw)


@cache
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
