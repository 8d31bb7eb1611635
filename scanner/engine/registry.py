"""The explicit, typed registry of probes and host analyses, in pipeline order.

A new check is one entry here plus its module; nothing is discovered by import
side effects. Modules are imported when first needed, not when the engine is: a sweep
that finds nothing open never loads pynetdicom, pydicom, cryptography or the
fingerprint tables (start-up time, bench/README.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probes.context import HostState, ProbeContext, ServiceState
    from probes.ports import OpenConnection
    from scanner.model import ScanSettings

FollowUpProbe = Callable[["ProbeContext", "ServiceState"], Awaitable[None]]
HostAnalysis = Callable[["HostState"], None]


async def identify_service(
    conn: OpenConnection, settings: ScanSettings, kept: bool = True
) -> ServiceState:
    """The first probe on every open port (the A-ASSOCIATE-RQ first): probes/identify.py.
    A service that is ``kept`` for the follow-up probes gets its health check before in
    the detection association where it can (scanner/engine/health.py)."""
    from probes.identify import identify_service as identify

    return await identify(conn, settings, health=kept and health_checked(settings))


def health_checked(settings: ScanSettings) -> bool:
    """DICOM services are health-checked when follow-up probes run: the checks bracket
    them, and a scan without any has nothing for a device to fall over from."""
    return bool(follow_up_probes(settings))


def follow_up_probes(settings: ScanSettings) -> tuple[FollowUpProbe, ...]:
    """Probes run on each identified service, in order. Cleartext DICOM checks come first;
    the TLS probe skips ports that answered DICOM in the clear; DICOM found inside TLS
    then gets the same AE title and unknown-peer checks. The HTTP probe comes after the
    TLS probe (it needs ``svc.tls``) and skips every port that answered DICOM; the banner
    parser sends nothing.
    SMB and RDP negotiate only on ports whose answer (or, when the A-ASSOCIATE-RQ was
    closed unanswered, whose number) names them; a port that spoke DICOM gets DICOM only."""
    from probes.banners import banner_probe
    from probes.dicom.checks import dicom_checks, dicom_tls_checks
    from probes.http import http_probe
    from probes.rdp import rdp_probe
    from probes.smb import smb_probe
    from probes.tls import TlsOptions, make_tls_probe

    tls = TlsOptions(settings.client_cert, settings.client_key, settings.ca)
    return (dicom_checks, make_tls_probe(tls), dicom_tls_checks, http_probe, smb_probe,
            rdp_probe, banner_probe)


def analyse_host(state: HostState) -> None:
    """Products and role from what the host disclosed: scanner/identify/host_analysis.py."""
    from scanner.identify.host_analysis import analyse_host as analyse

    analyse(state)


def identify_vendor_state(state: HostState) -> None:
    """The vendor from the finished host: scanner/identify/vendor.py."""
    from scanner.identify.vendor import identify_vendor_state as identify

    identify(state)


# Vendor after the fingerprint and role: it reads the finished host.
HOST_ANALYSES: tuple[HostAnalysis, ...] = (analyse_host, identify_vendor_state)

__all__ = ["HOST_ANALYSES", "follow_up_probes", "health_checked", "identify_service"]
