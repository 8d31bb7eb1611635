"""Product fingerprints, device-role guesses and honeypot tells from what a DICOM peer discloses.

The product table is data (``scanner/data/fingerprints.yaml``), each entry with its source.
Matching follows the order the sources support: the implementation version name first
(it is the most specific and rarely changed by integrators), then the exact implementation
class UID or a UID that encodes a toolkit version, and only then an organisation root,
which gives no more than a low-confidence vendor hint.

``Fingerprint`` has no free-text notes field, so caveats the reader must see (for example
that a DCMTK identity may be Orthanc) go into ``matched_by`` as items starting ``note: ``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scanner.observations import (
    Association,
    AssociationOutcome,
    Banner,
    Fingerprint,
    PeerIdentity,
)

if TYPE_CHECKING:
    from scanner.engine import HostState, ServiceState

Certainty = Literal["src", "obs", "tbl", "unconfirmed"]
Role = Literal["pacs", "modality", "workstation", "worklist", "print"]
Level = Literal["high", "medium", "low"]

TABLE_FILE = "fingerprints.yaml"
NOTE_PREFIX = "note: "

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_LEVEL_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}


class FingerprintTableError(ValueError):
    """The fingerprint table is malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _check_uid(value: str) -> str:
    if not _UID_RE.match(value) or len(value) > 64:
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
    uid: list[str] = Field(default_factory=list)
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
        return _check_regex(value)

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
    def _consistent(self) -> ProductEntry:
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
    forbid: list[str] = Field(default_factory=list)
    role_hint: Role | None = None

    @field_validator("require", "forbid")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for v in value:
            _check_regex(v)
        return value


class FingerprintTable(_Strict):
    products: list[ProductEntry]
    http_signals: list[HttpSignal] = Field(default_factory=list)


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
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FingerprintTableError(f"{TABLE_FILE}: not valid YAML: {exc}") from None
    return parse_table(raw)


@cache
def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# --- identify -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    entry: ProductEntry
    version: str | None


@dataclass(frozen=True)
class RoleHint:
    role: Role
    why: str
    weak: bool = False  # org-root hints count only next to storage-only evidence


def _clean(value: str | None) -> str:
    # Some stacks pad with spaces or NULs; they carry no meaning.
    return (value or "").strip(" \x00")


def _name_hit(name: str, table: FingerprintTable) -> _Hit | None:
    for entry in table.products:
        if entry.version_name_prefix is not None and name.startswith(entry.version_name_prefix):
            return _Hit(entry, name[len(entry.version_name_prefix) :].strip() or None)
        if entry.version_name_regex is not None:
            m = _rx(entry.version_name_regex).search(name)
            if m:
                if "version" in m.re.groupindex:
                    return _Hit(entry, m.group("version") or None)
                return _Hit(entry, ".".join(g for g in m.groups() if g) or None)
    return None


def _uid_hit(uid: str, table: FingerprintTable) -> _Hit | None:
    # Exact UIDs first: a version prefix is a pattern, an exact UID is a statement.
    for entry in table.products:
        if uid in entry.uid:
            return _Hit(entry, None)
    for entry in table.products:
        prefix = entry.uid_version_prefix
        if prefix is not None and uid.startswith(prefix) and _UID_RE.match(uid[len(prefix) :]):
            return _Hit(entry, uid[len(prefix) :])
    return None


def _root_hit(uid: str, table: FingerprintTable) -> ProductEntry | None:
    best: ProductEntry | None = None
    for entry in table.products:
        root = entry.uid_prefix
        under = root is not None and (uid == root or uid.startswith(root + "."))
        if under and (best is None or len(root or "") > len(best.uid_prefix or "")):
            best = entry
    return best


def _shape_hit(peer: PeerIdentity, table: FingerprintTable) -> ProductEntry | None:
    for entry in table.products:
        if (
            entry.no_identity_max_pdu is not None
            and peer.max_pdu_length == entry.no_identity_max_pdu
        ):
            return entry
    return None


def _weakest(*levels: str) -> Level:
    lowest = min(levels, key=lambda lv: _LEVEL_RANK[lv])
    return "high" if lowest == "high" else "medium" if lowest == "medium" else "low"


def dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _identify(peer: PeerIdentity) -> tuple[Fingerprint, list[RoleHint]]:
    table = load_table()
    name = _clean(peer.implementation_version_name)
    uid = _clean(peer.implementation_class_uid)
    by_name = _name_hit(name, table) if name else None
    by_uid = _uid_hit(uid, table) if uid else None
    root = _root_hit(uid, table) if uid else None
    matched_by: list[str] = []
    reasons: list[str] = []
    notes: list[str] = []

    primary = by_name or by_uid
    if primary is None and not name and not uid:
        # No identity at all is itself non-conformant (PS3.7 requires the UID in the AC).
        shape = _shape_hit(peer, table)
        if shape is not None:
            primary = _Hit(shape, None)
            matched_by.append(
                f"max_pdu_length={peer.max_pdu_length} with no implementation class UID "
                "or version name"
            )
    if primary is None:
        if root is not None:
            root_hints = []
            if root.role_hint is not None:
                root_hints.append(
                    RoleHint(root.role_hint, f"UID under {root.vendor}'s root", weak=True)
                )
            fp = Fingerprint(
                product=None,
                version=None,
                vendor=root.vendor,
                confidence="low",
                matched_by=[f"implementation_class_uid={uid} (org root {root.uid_prefix})"],
                source=root.source.strip(),
            )
            return fp, root_hints
        return Fingerprint(product=None, version=None, confidence="low"), []

    entry = primary.entry
    hits = [h.entry for h in (by_name, by_uid) if h is not None] or [entry]
    if by_name is not None:
        matched_by.append(f"implementation_version_name={name}")
    if by_uid is not None:
        matched_by.append(f"implementation_class_uid={uid}")

    contradiction = False
    if by_name is not None and by_uid is not None:
        if by_name.entry.id != by_uid.entry.id:
            contradiction = True
            reasons.append(
                f"implementation version name {name!r} says "
                f"{by_name.entry.claims or by_name.entry.product} but "
                f"implementation class UID {uid} is {by_uid.entry.product}'s"
            )
        elif by_name.version and by_uid.version and by_name.version != by_uid.version:
            contradiction = True
            reasons.append(
                f"implementation version name {name!r} says {entry.product} {by_name.version} "
                f"but implementation class UID {uid} encodes {by_uid.version}"
            )
    elif by_name is not None and uid:
        if root is not None and root.vendor:
            matched_by.append(f"implementation_class_uid={uid} (org root {root.uid_prefix})")
        elif (entry.uid or entry.uid_version_prefix) and not entry.accepts_foreign_uid:
            notes.append(f"implementation class UID {uid} is not one {entry.product} sends")

    known: list[str] = []
    shape_matched = by_name is None and by_uid is None  # max PDU already listed then
    for hit in _dedup_entries(hits):
        if hit.honeypot is not None:
            known.append(f"identity matches the {hit.honeypot} honeypot: {hit.honeypot_reason}")
        pdu = hit.max_pdu_length
        if pdu is not None and pdu == peer.max_pdu_length and not shape_matched:
            matched_by.append(f"max_pdu_length={pdu}")
    reasons = [*known, *reasons]

    version = primary.version
    if version is None and by_uid is not None and by_uid.entry.id == entry.id:
        version = by_uid.version  # the name may not encode it unambiguously
    if not entry.report_version:
        version = None
    if contradiction:
        confidence: Level = "low"
    elif by_name is not None and by_uid is not None:
        confidence = "high"
    else:
        confidence = "medium"
    if any(h.certainty in ("tbl", "unconfirmed") for h in hits):
        confidence = "low"

    vendor = entry.vendor
    if root is not None and (vendor is None or entry.accepts_foreign_uid):
        vendor = root.vendor  # an OEM's root says more about the device than the toolkit
    if entry.result_note and not reasons:  # a caveat about the genuine product only
        notes.append(entry.result_note)

    hints: list[RoleHint] = []
    if entry.role_hint is not None:
        hints.append(RoleHint(entry.role_hint, f"runs {entry.product}"))
    if root is not None and root.role_hint is not None:
        hints.append(RoleHint(root.role_hint, f"UID under {root.vendor}'s root", weak=True))

    result = Fingerprint(
        product=entry.product,
        version=version,
        vendor=vendor,
        confidence=confidence,
        matched_by=dedup([*matched_by, *(NOTE_PREFIX + n for n in notes)]),
        source="; ".join(dedup(h.source.strip() for h in hits)),
        honeypot_suspected=bool(reasons),
        honeypot_reasons=dedup(reasons),
    )
    return result, hints


def _dedup_entries(entries: list[ProductEntry]) -> list[ProductEntry]:
    seen: dict[str, ProductEntry] = {}
    for e in entries:
        seen.setdefault(e.id, e)
    return list(seen.values())


def identify(peer: PeerIdentity) -> Fingerprint:
    """Map the user-information items of an A-ASSOCIATE-AC to a product and version."""
    return _identify(peer)[0]


# --- HTTP signals on the same host ----------------------------------------------------------


@dataclass(frozen=True)
class HttpHit:
    port: int
    signal: HttpSignal


def _banner_texts(banner: Banner) -> list[str]:
    texts = [banner.text]
    with contextlib.suppress(ValueError):  # a malformed hex dump still leaves the text
        texts.insert(0, bytes.fromhex(banner.first_bytes_hex).decode("latin-1"))
    return texts


def _signal_matches(signal: HttpSignal, text: str) -> bool:
    return all(_rx(p).search(text) for p in signal.require) and not any(
        _rx(p).search(text) for p in signal.forbid
    )


def http_signals(state: HostState) -> list[HttpHit]:
    """Banners on this host that identify a product (e.g. Orthanc's HTTP port), by port."""
    table = load_table()
    hits: list[HttpHit] = []
    for port in sorted(state.services):
        for obs in state.services[port].observations:
            if not isinstance(obs, Banner):
                continue
            texts = _banner_texts(obs)
            for signal in table.http_signals:
                if any(_signal_matches(signal, t) for t in texts):
                    hits.append(HttpHit(port, signal))
                    break
    return hits


def apply_http_signals(fp: Fingerprint, hits: list[HttpHit]) -> Fingerprint:
    """Name the server behind a DCMTK identity when the host's HTTP answer identifies it.

    Orthanc has no implementation UID of its own and answers as the DCMTK it links, so
    only a second signal from the same host can tell it apart.
    """
    if fp.product != "DCMTK" or fp.honeypot_suspected or not hits:
        return fp
    best = max(hits, key=lambda h: _LEVEL_RANK[h.signal.confidence])
    built_on = f"DCMTK {fp.version}" if fp.version else "DCMTK"
    matched_by = [m for m in fp.matched_by if not m.startswith(NOTE_PREFIX)]
    matched_by.append(f"http_banner port {best.port}: {best.signal.description.strip()}")
    if fp.version:
        matched_by.append(f"dcmtk_version={fp.version}")
    if best.signal.note:
        matched_by.append(NOTE_PREFIX + best.signal.note.strip())
    return Fingerprint(
        product=f"{best.signal.product} (built on {built_on})",
        # The release of the server is not disclosed; a DCMTK version here would be misread.
        version=None,
        vendor=None,
        confidence=_weakest(fp.confidence, best.signal.confidence),
        matched_by=matched_by,
        source="; ".join(dedup(s for s in (fp.source, best.signal.source.strip()) if s)),
    )


# --- per-service view -----------------------------------------------------------------------


def associations(svc: ServiceState) -> Iterator[Association]:
    return (o for o in svc.observations if isinstance(o, Association))


def _peer_of(svc: ServiceState) -> PeerIdentity | None:
    # An A-ASSOCIATE-AC is the only answer that carries identity; RJ and ABORT do not.
    usable = [
        a
        for a in associations(svc)
        if a.peer is not None
        and a.outcome in (AssociationOutcome.ACCEPTED, AssociationOutcome.REJECTED)
    ]
    usable.sort(key=lambda a: a.outcome is not AssociationOutcome.ACCEPTED)
    return usable[0].peer if usable else None


def dicom_services(state: HostState) -> list[ServiceState]:
    return [state.services[p] for p in sorted(state.services) if state.services[p].name == "dicom"]


def service_fingerprint(
    svc: ServiceState, hits: list[HttpHit]
) -> tuple[Fingerprint, list[RoleHint]] | None:
    peer = _peer_of(svc)
    if peer is None:
        return None
    fp, hints = _identify(peer)
    combined = apply_http_signals(fp, hits)
    if combined is not fp:
        best = max(hits, key=lambda h: _LEVEL_RANK[h.signal.confidence])
        if best.signal.role_hint is not None:
            hints = [*hints, RoleHint(best.signal.role_hint, f"runs {combined.product}")]
    return combined, hints
