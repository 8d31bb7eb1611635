"""MAC address to vendor, offline, from the Wireshark ``manuf`` data that scapy ships.

The data merges the IEEE MA-L, MA-M and MA-S registries, so a lookup tries the 36-bit
and 28-bit blocks before the 24-bit OUI. scapy's data module loads it (with its other
tables: protocols, services, ether types) in about 90 ms, so the registry alone is kept
in the user's cache folder as a marshal file and rebuilt from scapy whenever scapy's data
file changes. The file groups the blocks by their first octet and a lookup reads only its
group: reading all 50,000 names took 20 ms, more than the rest of a small scan's analysis.

The medical families below group registrant names (``Siemens AG, Healthcare Sector``,
``Siemens Healthcare Diagnostics``...) for the fingerprint; which OUI belongs to whom
always comes from the registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
import re
from functools import cache
from pathlib import Path

from scanner.model.data_cache import cache_folder, read_marshal, write_marshal

# Registrant-name patterns of imaging and medical-device makers -> the family's name.
MEDICAL_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"Siemens (AG, )?Health|Siemens Healthineers|Siemens Medical", "Siemens Healthineers"),
    (r"\bGE (Medical|Health ?care)|General Electric Medical", "GE HealthCare"),
    (r"Philips (Medical|Health ?care)", "Philips"),
    (r"Canon Medical|Toshiba Medical", "Canon Medical"),
    (r"FUJIFILM (Health|Medical|Corporation)", "Fujifilm"),
    (r"\bAgfa\b", "Agfa"),
    (r"Carestream", "Carestream"),
    (r"Hologic", "Hologic"),
    (r"\bVarian\b", "Varian"),
    (r"Konica Minolta", "Konica Minolta"),
    (r"Sectra", "Sectra"),
)


def normalise_mac(mac: str) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from the usual spellings, or None when it is not a MAC."""
    digits = re.sub(r"[^0-9a-fA-F]", "", mac)
    if len(digits) != 12 or len(re.sub(r"[0-9a-fA-F:.\-]", "", mac)) != 0:
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).lower()


class Registry:
    """Registry key (``AA:BB:CC``, ``AA:BB:CC:D0/28``...) -> registrant, one group of keys
    (same first octet) unmarshalled on first use."""

    def __init__(self, groups: dict[str, bytes]) -> None:
        self._groups = groups
        self._open: dict[str, dict[str, str]] = {}

    def get(self, key: str) -> str | None:
        group = self._group(key[:2])
        name = group.get(key)
        return name if isinstance(name, str) else None

    def __len__(self) -> int:
        return sum(len(self._group(prefix)) for prefix in self._groups)

    def _group(self, prefix: str) -> dict[str, str]:
        if prefix not in self._open:
            table: object = {}
            with contextlib.suppress(ValueError, EOFError, TypeError):
                table = marshal.loads(self._groups.get(prefix, b"0"))
            self._open[prefix] = table if isinstance(table, dict) else {}
        return self._open[prefix]


def grouped(table: dict[str, str]) -> dict[str, bytes]:
    """The cache file's shape: first octet -> that group's keys and names, marshalled."""
    groups: dict[str, dict[str, str]] = {}
    for key, name in table.items():
        groups.setdefault(key[:2], {})[key] = name
    return {prefix: marshal.dumps(group) for prefix, group in groups.items()}


@cache
def _manuf() -> Registry:
    return registry(cache_folder())


def registry(cache_dir: Path) -> Registry:
    """The registry from the cache in ``cache_dir`` when it matches scapy's data, else from
    scapy (then cached)."""
    path = cache_dir / f"manuf-v2-{_source_stamp()}.marshal"
    found, groups = read_marshal(path)
    if found and isinstance(groups, dict) and groups and all(
            isinstance(k, str) and isinstance(v, bytes) for k, v in groups.items()):
        return Registry(groups)
    from scapy.config import conf

    groups = grouped({key: (long.strip() or short)
                      for key, (short, long) in conf.manufdb.d.items()})
    with contextlib.suppress(OSError):  # no cache folder: slower next time, still right
        write_marshal(path, groups)
    return Registry(groups)


def _source_stamp() -> str:
    """Which data scapy would load: Wireshark's own manuf file if installed, else the copy
    scapy ships; its path, size and modification time, hashed."""
    spec = importlib.util.find_spec("scapy")  # finds the package without importing it
    locations = (spec.submodule_search_locations if spec is not None else None) or []
    shipped = [str(Path(loc) / "libs" / "manuf.py") for loc in locations]
    candidates = [f"{root}/share/wireshark/manuf" for root in _WIRESHARK_ROOTS] + shipped
    facts = []
    for name in candidates:
        with contextlib.suppress(OSError):
            st = os.stat(name)
            facts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


# Where scapy looks for Wireshark's manuf file (scapy/data.py), in its order.
_WIRESHARK_ROOTS = ("/usr", "/usr/local", "/opt", "/opt/wireshark",
                    "/Applications/Wireshark.app/Contents/Resources")


def _keys(mac: str) -> list[str]:
    """The registry keys that could hold ``mac``: MA-S (/36), MA-M (/28), then MA-L."""
    octets = mac.upper().split(":")
    return [
        ":".join([*octets[:4], octets[4][0] + "0"]) + "/36",
        ":".join([*octets[:3], octets[3][0] + "0"]) + "/28",
        ":".join(octets[:3]),
    ]


def mac_vendor(mac: str) -> str | None:
    """The registrant of the MAC's block, or None (unknown, locally administered, bad MAC)."""
    norm = normalise_mac(mac)
    if norm is None or int(norm[:2], 16) & 0x02:
        return None  # locally administered addresses belong to no registrant
    db = _manuf()
    return next((name for key in _keys(norm) if (name := db.get(key))), None)


def medical_family(vendor: str | None) -> str | None:
    """The imaging vendor family a registrant name belongs to, if any."""
    if vendor:
        for pattern, family in MEDICAL_FAMILIES:
            if re.search(pattern, vendor, re.IGNORECASE):
                return family
    return None
