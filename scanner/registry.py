"""The explicit, typed registry of probes and host analyses, in pipeline order.

A new check is one entry here plus its module; nothing is discovered by import
side effects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from probes.dicom.checks import dicom_checks
from probes.identify import identify_service

if TYPE_CHECKING:
    from scanner.engine import HostState, ProbeContext, ServiceState

FollowUpProbe = Callable[["ProbeContext", "ServiceState"], Awaitable[None]]
HostAnalysis = Callable[["HostState"], None]

FOLLOW_UP_PROBES: tuple[FollowUpProbe, ...] = (dicom_checks,)
HOST_ANALYSES: tuple[HostAnalysis, ...] = ()

__all__ = ["FOLLOW_UP_PROBES", "HOST_ANALYSES", "identify_service"]
