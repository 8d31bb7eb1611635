"""MAC address to vendor, offline, from the Wireshark ``manuf`` data that scapy ships.

The data merges the IEEE MA-L, MA-M and MA-S registries, so a lookup tries the 36-bit
and 28-bit blocks before the 24-bit OUI. Only scapy's data module is loaded (about
0.2 s), not the packet machinery. The medical families below group registrant names
(``Siemens AG, Healthcare Sector``, ``Siemens Healthcare Diagnostics``...) for the
fingerprint; which OUI belongs to whom always comes from the registry.
"""

from __future__ import annotations

import re
from functools import cache

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


@cache
def _manuf() -> dict[str, tuple[str, str]]:
    from scapy.config import conf

    return dict(conf.manufdb.d)


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
    for key in _keys(norm):
        if key in db:
            return db[key][1].strip() or db[key][0]
    return None


def medical_family(vendor: str | None) -> str | None:
    """The imaging vendor family a registrant name belongs to, if any."""
    if vendor:
        for pattern, family in MEDICAL_FAMILIES:
            if re.search(pattern, vendor, re.IGNORECASE):
                return family
    return None
