"""Known-vulnerable software versions: the advisory data and version comparison.

The data is ``scanner/data/advisories.yaml``; each entry carries the certainty its
sources give (confirmed, secondary, unconfirmed) so that findings never claim more.
Versions are compared as numeric tuples: fingerprints only ever yield dotted release
numbers (``OFFIS_DCMTK_367`` -> ``3.6.7``), and a version that is not one is reported
as not comparable rather than guessed at.
"""

import re
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scanner.model.data_cache import DataError, shipped_yaml

ADVISORIES_FILE = "advisories.yaml"

Certainty = Literal["confirmed", "secondary", "unconfirmed"]
CERTAINTY_RANK: dict[str, int] = {"unconfirmed": 0, "secondary": 1, "confirmed": 2}

# ASCII digits only: a peer's Arabic-Indic "3.6.7" is no release of anything (\d takes any script's
# digits, and int() reads them).
_VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+)*\Z")
_CVE_RE = r"^CVE-\d{4}-\d{4,}$"
_ID_RE = r"^[a-z0-9]+([.-][a-z0-9]+)*$"

Version = tuple[int, ...]


class AdvisoryError(ValueError):
    """The advisory data is malformed."""


# Every advisory range is compared on every service (its bounds parsed each time); the
# texts are few (the data's bounds and the versions devices report), so bounded caching.
@lru_cache(maxsize=1024)
def parse_version(text: str | None) -> Version | None:
    """``"3.6.7"`` -> ``(3, 6, 7)``; None for anything that is not a dotted number."""
    if text is None or not _VERSION_RE.match(text.strip()):
        return None
    parts = [int(p) for p in text.strip().split(".")]
    # Trailing zeros carry no meaning: 3.6 and 3.6.0 are the same release.
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _check_version(value: str | None) -> str | None:
    if value is not None and parse_version(value) is None:
        raise ValueError(f"{value!r} is not a dotted release number such as 3.6.7")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AffectedRange(_Strict):
    """introduced <= version, and version < fixed or version <= last_affected."""

    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None

    @field_validator("introduced", "fixed", "last_affected")
    @classmethod
    def _versions(cls, value: str | None) -> str | None:
        return _check_version(value)

    @model_validator(mode="after")
    def _one_upper_bound(self) -> Self:
        # An open-ended range would flag every future release; the sources always
        # state either a fix or a last affected release.
        if (self.fixed is None) == (self.last_affected is None):
            raise ValueError("a range needs exactly one of 'fixed' or 'last_affected'")
        low = parse_version(self.introduced)
        high = parse_version(self.fixed or self.last_affected)
        if low is not None and high is not None:
            empty = low >= high if self.fixed is not None else low > high
            if empty:
                raise ValueError("the range is empty: 'introduced' is above its upper bound")
        return self

    def contains(self, version: Version) -> bool:
        low = parse_version(self.introduced)
        if low is not None and version < low:
            return False
        if self.fixed is not None:
            return version < (parse_version(self.fixed) or ())
        return version <= (parse_version(self.last_affected) or ())

    def describe(self) -> str:
        parts = [f">= {self.introduced}"] if self.introduced else []
        if self.fixed is not None:
            parts.append(f"< {self.fixed} (fixed in {self.fixed})")
        else:
            parts.append(f"<= {self.last_affected} (no fixed release stated)")
        return ", ".join(parts)


class Advisory(_Strict):
    id: str = Field(pattern=_ID_RE)
    product: str = Field(min_length=1, description="as the fingerprint names it")
    cves: list[str] = Field(min_length=1)
    affected: list[AffectedRange] = Field(min_length=1)
    summary: str = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    certainty: Certainty
    note: str = ""

    @field_validator("cves")
    @classmethod
    def _cve_ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(_CVE_RE, v)]
        if bad:
            raise ValueError(f"not CVE IDs: {', '.join(bad)}")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        if any(not s.strip() for s in value):
            raise ValueError("a source is empty")
        return value

    def affects(self, product: str, version: Version) -> bool:
        return product == self.product and any(r.contains(version) for r in self.affected)


def parse_advisories(raw: Any, origin: str = ADVISORIES_FILE) -> list[Advisory]:
    """Validate a loaded YAML document; errors name the file, index and id of the entry."""
    if not isinstance(raw, dict) or not isinstance(raw.get("advisories"), list):
        raise AdvisoryError(f"{origin}: expected a mapping with a top-level 'advisories:' list")
    unknown = sorted(set(raw) - {"advisories"})
    if unknown:
        raise AdvisoryError(f"{origin}: unknown top-level key(s): {', '.join(unknown)}")
    out: list[Advisory] = []
    seen: set[str] = set()
    for i, item in enumerate(raw["advisories"]):
        entry_id = item.get("id") if isinstance(item, dict) else None
        try:
            adv = Advisory.model_validate(item)
        except ValidationError as exc:
            raise AdvisoryError(f"{origin}: advisories[{i}] (id {entry_id!r}): {exc}") from None
        if adv.id in seen:
            raise AdvisoryError(f"{origin}: advisories[{i}]: id {adv.id!r} is defined twice")
        seen.add(adv.id)
        out.append(adv)
    return out


def load_advisories_file(path: Path) -> list[Advisory]:
    """Read and validate an advisory file (used for the packaged data and in tests)."""
    import yaml

    try:
        raw: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except OSError as exc:
        raise AdvisoryError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise AdvisoryError(f"{path.name}: not valid YAML: {exc}") from None
    return parse_advisories(raw, path.name)


@cache
def load_advisories() -> tuple[Advisory, ...]:
    """The packaged advisories, parsed once per process."""
    path = resources.files("scanner") / "data" / ADVISORIES_FILE
    try:
        raw: Any = shipped_yaml(path.read_text(encoding="utf-8"))
    except DataError as exc:
        raise AdvisoryError(f"{ADVISORIES_FILE}: not valid YAML: {exc}") from None
    return tuple(parse_advisories(raw))


def matching(
    product: str, version: Version, advisories: tuple[Advisory, ...] | list[Advisory]
) -> list[Advisory]:
    return [a for a in advisories if a.affects(product, version)]
