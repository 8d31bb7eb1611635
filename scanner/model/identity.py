"""Stable identities that survive between scans, so a SIEM can deduplicate and the
history can follow one device or one finding over time.

- ``device_id``: from the MAC address where it is known (a device keeps it when its
  address changes), else from the IP address.
- ``finding_id``: from what makes a finding the same finding in the next scan: the rule,
  the device, the port, and, for the port verdicts only, the baseline whose port list
  they apply. Not the status: a finding that passes today and fails tomorrow keeps its
  ID; nor the baseline of other rules, so a device identified differently next time (and
  judged against another baseline) keeps its findings' IDs.

Both are the first 32 hex digits of a SHA-256 over a fixed, documented text, so anyone
can recompute them.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache


# A scan asks for the same IDs again and again: each of a device's findings hashes the
# device's ID, and the rules' evaluation hashes every finding ID a second time once the
# judge and the policy are done. Bounded: one device's IDs fit many times over.
@lru_cache(maxsize=4096)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def device_basis(address: str, mac: str | None) -> str:
    """The text a device ID is the hash of: ``mac:<lower-case MAC>`` or ``ip:<address>``."""
    return f"mac:{mac.lower()}" if mac else f"ip:{address}"


def device_id(address: str, mac: str | None = None) -> str:
    return _digest(device_basis(address, mac))


# Rules whose verdict is relative to a baseline's port list: there the baseline matters.
BASELINE_RELATIVE_RULES = frozenset({"port-not-allowed", "remote-access-exposed"})


def finding_id(rule_id: str, device: str, port: int | None, baseline: str | None) -> str:
    """Hash of ``rule_id|device_id|port|baseline`` (empty where there is none; the
    baseline only for ``BASELINE_RELATIVE_RULES``)."""
    if rule_id not in BASELINE_RELATIVE_RULES:
        baseline = None
    return _digest(f"{rule_id}|{device}|{port if port is not None else ''}|{baseline or ''}")
