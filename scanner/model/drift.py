"""What changed between two scans of the same network: the drift model.

Computed by ``scanner.history.drift`` (a pure function of two scans) and rendered by
the outputs, so it lives at the bottom with the other models. Keys are the stable
``device_id`` and ``finding_id``, so a device that changed its address is the same
device and a finding that comes back is the same finding.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from scanner.model.base import Frozen, empty_list


class DriftKind(StrEnum):
    """The documented kinds of change (``--fail-on-drift`` takes these names)."""

    DEVICE_APPEARED = "device-appeared"
    DEVICE_VANISHED = "device-vanished"
    PORT_OPENED = "port-opened"
    PORT_CLOSED = "port-closed"
    SERVICE_CHANGED = "service-changed"
    TLS_CHANGED = "tls-changed"
    AE_POLICY_CHANGED = "ae-policy-changed"
    OPERATIONS_CHANGED = "operations-changed"
    FINDING_NEW = "finding-new"
    FINDING_RESOLVED = "finding-resolved"
    FINDING_REOPENED = "finding-reopened"


DRIFT_KIND_HELP: dict[DriftKind, str] = {
    DriftKind.DEVICE_APPEARED: "a device answers that did not in the old scan",
    DriftKind.DEVICE_VANISHED: "a device that answered no longer does",
    DriftKind.PORT_OPENED: "a port is open that was not (on a device in both scans)",
    DriftKind.PORT_CLOSED: "an open port is no longer open (and was scanned again)",
    DriftKind.SERVICE_CHANGED: "a service's name, product or version changed",
    DriftKind.TLS_CHANGED: "TLS switched on or off, accepted versions or best profile changed",
    DriftKind.AE_POLICY_CHANGED: "called or calling AE title enforcement changed",
    DriftKind.OPERATIONS_CHANGED: "what an unknown peer may do (C-ECHO, C-FIND, ...) changed",
    DriftKind.FINDING_NEW: "a finding fails that never failed before",
    DriftKind.FINDING_RESOLVED: "a finding that failed now passes or is gone from a device "
    "still present",
    DriftKind.FINDING_REOPENED: "a finding fails again after it had stopped failing",
}


class ScanRef(Frozen):
    scan_id: str
    job: str | None = None
    started_at: datetime
    finished_at: datetime | None = None


class DriftChange(Frozen):
    kind: DriftKind
    device_id: str
    address: str
    port: int | None = None
    finding_id: str | None = None
    rule_id: str | None = None
    field: str | None = Field(default=None, description="what changed, e.g. tls.versions")
    before: Any = None
    after: Any = None
    summary: str
    first_seen: datetime | None = Field(
        default=None, description="first scan in the history that saw the device or finding"
    )
    last_seen: datetime | None = Field(
        default=None, description="last scan in the history that saw it"
    )


class Drift(Frozen):
    old: ScanRef
    new: ScanRef
    changes: list[DriftChange] = Field(default_factory=empty_list)

    def kinds(self) -> set[DriftKind]:
        return {c.kind for c in self.changes}

    def of_kind(self, kind: DriftKind) -> list[DriftChange]:
        return [c for c in self.changes if c.kind is kind]
