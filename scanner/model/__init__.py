"""The data model at the bottom of every layer: settings in, results out.

``settings`` is a scan job's input, ``results`` its output, ``observations`` (with the
TLS and HTTP parts) what probes measured. Everything is a frozen pydantic model, so a
whole scan round-trips through JSON. The names most code needs are re-exported here.
"""

from scanner.model.base import Frozen, utcnow
from scanner.model.results import (
    SCHEMA_VERSION,
    DiscoveryInfo,
    Finding,
    FindingStatus,
    Host,
    HostDiscovery,
    JsonValue,
    PortObservation,
    PortState,
    Protocol,
    QuietHosts,
    ScanError,
    ScanMeta,
    ScanResult,
    Service,
    Severity,
    SkippedTarget,
)
from scanner.model.settings import (
    DiscoveryMethod,
    DoNotProbe,
    DoNotProbeKind,
    EngineName,
    ProfileName,
    ScanSettings,
    Timeouts,
)

__all__ = [
    "SCHEMA_VERSION",
    "DiscoveryInfo",
    "DiscoveryMethod",
    "DoNotProbe",
    "DoNotProbeKind",
    "EngineName",
    "Finding",
    "FindingStatus",
    "Frozen",
    "Host",
    "HostDiscovery",
    "JsonValue",
    "PortObservation",
    "PortState",
    "ProfileName",
    "Protocol",
    "QuietHosts",
    "ScanError",
    "ScanMeta",
    "ScanResult",
    "ScanSettings",
    "Service",
    "Severity",
    "SkippedTarget",
    "Timeouts",
    "utcnow",
]
