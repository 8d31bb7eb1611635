"""The newcomer's first run: a small imaging lab on 127.0.0.1, scanned end to end.

Real Orthanc and DCMTK peers when installed (plus MIR CTN, a fragile legacy stack),
a pynetdicom SCP otherwise. Everything listens on loopback only and is stopped at the
end, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import click

from scanner.lab.peers import (
    PeerStartError,
    RunningPeer,
    lab,
    start_ctn_simple_storage,
    start_orthanc,
    start_pynetdicom_scp,
    start_storescp,
    which_available,
)

# The demo's Orthanc shows a common misconfiguration: queries open to anyone.
_DEMO_ORTHANC = {"DicomAlwaysAllowFind": True}


# Each device gets its own loopback address, as each would have its own IP on a VLAN.
PACS, MODALITY, LEGACY = "127.0.0.10", "127.0.0.11", "127.0.0.12"


def demo_starters() -> list[Callable[[], RunningPeer]]:
    have = which_available()
    starters: list[Callable[[], RunningPeer]] = []
    if have["orthanc"]:
        starters.append(lambda: start_orthanc(_DEMO_ORTHANC, host=PACS))
    if have["dcmtk"]:
        starters.append(lambda: start_storescp(host=MODALITY))
    if have["ctn"]:
        starters.append(lambda: start_ctn_simple_storage(host=LEGACY))
    if not starters:
        starters.append(lambda: start_pynetdicom_scp(host=PACS))
    return starters


def run_demo(fmt: str, profile: str) -> int:
    from scanner.engine.run import run_scan
    from scanner.engine.settings import SettingsError, build_settings
    from scanner.outputs.progress import progress_reporter
    from scanner.outputs.registry import render

    click.echo("dicomscan demo: starting a lab on loopback addresses ...", err=True)
    try:
        with lab(demo_starters()) as peers:
            ports: set[int] = set()
            hosts: list[str] = []
            for peer in peers:
                info = peer.info
                extra = ", ".join(f"{k} {v}" for k, v in info.extra_ports.items())
                click.echo(
                    f"  {info.host}  {info.product}: DICOM port {info.port}, AE {info.ae_title}"
                    + (f" ({extra})" if extra else ""),
                    err=True,
                )
                ports.update([info.port, *info.extra_ports.values()])
                hosts.append(info.host)
            settings = build_settings(
                {
                    "targets": hosts,
                    "targets_file": None,
                    "exclude": (),
                    "scope": ("127.0.0.0/8",),
                    "allow_public": False,
                    "ports": ",".join(str(p) for p in sorted(ports)),
                    "timeout": None,
                    "connect_timeout": None,
                    "profile": profile,
                    "calling_ae": "DICOMSCAN",
                    "ae_title": (),
                    "ae_guess": None,
                    "ae_wordlist": None,
                    "intrusive": False,
                }
            )
            click.echo(
                f"scanning {len(hosts)} devices, {len(ports)} ports each, {profile} profile ...",
                err=True,
            )
            with progress_reporter(sys.stderr.isatty()) as report:
                result, interrupted = run_scan(settings, progress=report)
    except SettingsError as exc:  # the lab's own options: a bug here, not the user's
        click.echo(f"dicomscan demo: {exc}", err=True)
        return 3
    except PeerStartError as exc:
        click.echo(f"dicomscan demo: a lab peer did not start: {exc}", err=True)
        return 3
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("dicomscan demo: interrupted; lab stopped", err=True)
        return 130
    click.echo(render(result, fmt, color=fmt == "table" and sys.stdout.isatty()), nl=False)
    click.echo("lab stopped. Next: 'dicomscan scan --help'.", err=True)
    return 130 if interrupted else 0
