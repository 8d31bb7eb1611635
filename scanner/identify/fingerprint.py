"""Product fingerprints, device-role guesses and honeypot tells from what a DICOM peer discloses.

The product table is data (``scanner/data/fingerprints.yaml``, loaded by ``product_table``).
Matching follows the order the sources support: the implementation version name first
(it is the most specific and rarely changed by integrators), then the exact implementation
class UID or a UID that encodes a toolkit version, and only then an organisation root,
which gives no more than a low-confidence vendor hint.

``Fingerprint`` has no free-text notes field, so caveats the reader must see (for example
that a DCMTK identity may be Orthanc) go into ``matched_by`` as items starting ``note: ``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from scanner.identify.product_table import (
    LEVEL_RANK,
    NOTE_PREFIX,
    UID_RE,
    FingerprintTable,
    HttpSignal,
    Level,
    ProductEntry,
    Role,
    compiled,
    load_table,
)
from scanner.model.observations import (
    Association,
    AssociationOutcome,
    Banner,
    Fingerprint,
    PeerIdentity,
)

if TYPE_CHECKING:
    from probes.context import HostState, ServiceState

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
            m = compiled(entry.version_name_regex).search(name)
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
        if prefix is not None and uid.startswith(prefix) and UID_RE.match(uid[len(prefix) :]):
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


def _shape_hit(max_pdu_length: int | None, table: FingerprintTable) -> ProductEntry | None:
    for entry in table.products:
        if (
            entry.no_identity_max_pdu is not None
            and max_pdu_length == entry.no_identity_max_pdu
        ):
            return entry
    return None


def _weakest(*levels: str) -> Level:
    lowest = min(levels, key=lambda lv: LEVEL_RANK[lv])
    return "high" if lowest == "high" else "medium" if lowest == "medium" else "low"


def dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _identify(peer: PeerIdentity) -> tuple[Fingerprint, list[RoleHint]]:
    name, uid = peer.implementation_version_name, peer.implementation_class_uid
    # A conformant identity (UID 64 characters, name 16) is kept; a hostile peer's long
    # texts are searched each time rather than held.
    search = _cached if len(name or "") + len(uid or "") <= _CACHED_CHARS else _identified
    fp, hints = search(name, uid, peer.max_pdu_length)
    return fp, list(hints)


_CACHED_CHARS = 256


def _identified(
    version_name: str | None, class_uid: str | None, max_pdu_length: int | None
) -> tuple[Fingerprint, tuple[RoleHint, ...]]:
    table = load_table()
    name = _clean(version_name)
    uid = _clean(class_uid)
    by_name = _name_hit(name, table) if name else None
    by_uid = _uid_hit(uid, table) if uid else None
    root = _root_hit(uid, table) if uid else None
    matched_by: list[str] = []
    reasons: list[str] = []
    notes: list[str] = []

    primary = by_name or by_uid
    if primary is None and not name and not uid:
        # No identity at all is itself non-conformant (PS3.7 requires the UID in the AC).
        shape = _shape_hit(max_pdu_length, table)
        if shape is not None:
            primary = _Hit(shape, None)
            matched_by.append(
                f"max_pdu_length={max_pdu_length} with no implementation class UID "
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
            return fp, tuple(root_hints)
        return Fingerprint(product=None, version=None, confidence="low"), ()

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
        if pdu is not None and pdu == max_pdu_length and not shape_matched:
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
    return result, tuple(hints)


# What identification reads of a peer: devices of one kind answer alike, and every DICOM
# service is identified twice (its fingerprint, then the host's role), so the table is
# searched once per distinct identity.
_cached = lru_cache(maxsize=1024)(_identified)


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
    return all(compiled(p).search(text) for p in signal.require) and not any(
        compiled(p).search(text) for p in signal.forbid
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
    best = max(hits, key=lambda h: LEVEL_RANK[h.signal.confidence])
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
        best = max(hits, key=lambda h: LEVEL_RANK[h.signal.confidence])
        if best.signal.role_hint is not None:
            hints = [*hints, RoleHint(best.signal.role_hint, f"runs {combined.product}")]
    return combined, hints
