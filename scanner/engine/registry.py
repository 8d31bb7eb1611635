"""The explicit, typed registry of probes and host analyses, in pipeline order.

A new check is one entry here plus its module; nothing is discovered by import
side effects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from probes.banners import banner_probe
from probes.dicom.checks import dicom_checks, dicom_tls_checks
from probes.http import http_probe
from probes.identify import identify_service
from probes.rdp import rdp_probe
from probes.smb import smb_probe
from probes.tls import TlsOptions, make_tls_probe
from scanner.identify.host_analysis import analyse_host
from scanner.identify.vendor import identify_vendor_state

if TYPE_CHECKING:
    from probes.context import HostState, ProbeContext, ServiceState
    from scanner.model import ScanSettings

FollowUpProbe = Callable[["ProbeContext", "ServiceState"], Awaitable[None]]
HostAnalysis = Callable[["HostState"], None]


def follow_up_probes(settings: ScanSettings) -> tuple[FollowUpProbe, ...]:
    """Probes run on each identified service, in order. Cleartext DICOM checks come first;
    the TLS probe skips ports that answered DICOM in the clear; DICOM found inside TLS
    then gets the same AE title and unknown-peer checks. The HTTP probe comes after the
    TLS probe (it needs ``svc.tls``) and skips every port that answered DICOM; the banner
    parser sends nothing.
    SMB and RDP negotiate only on ports whose answer (or, when the A-ASSOCIATE-RQ was
    closed unanswered, whose number) names them; a port that spoke DICOM gets DICOM only."""
    tls = TlsOptions(settings.client_cert, settings.client_key, settings.ca)
    return (dicom_checks, make_tls_probe(tls), dicom_tls_checks, http_probe, smb_probe,
            rdp_probe, banner_probe)


# Vendor after the fingerprint and role: it reads the finished host.
HOST_ANALYSES: tuple[HostAnalysis, ...] = (analyse_host, identify_vendor_state)

__all__ = ["HOST_ANALYSES", "follow_up_probes", "identify_service"]
