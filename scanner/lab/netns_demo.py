"""``dicomscan demo --netns``: the demo on a namespace imaging VLAN instead of loopback.

It shows what loopback cannot: discovery on a real link, MAC vendors and filtered ports.
Needs root; the lab (``scanner/data/labs/demo.yaml``) is torn down at the end.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import click

from scanner.lab.errors import PeerStartError
from scanner.lab.netns import LabError, running_lab
from scanner.lab.netns_spec import load_lab_spec


def run_netns_demo(fmt: str, profile: str) -> int:
    spec = load_lab_spec(str(resources.files("scanner") / "data" / "labs" / "demo.yaml"))
    click.echo(f"dicomscan demo: building the namespace lab {spec.subnet} ...", err=True)
    try:
        with running_lab(spec) as lab:
            for dev in spec.devices:
                kinds = ", ".join(f"{s.kind} {s.port}" for s in dev.services)
                click.echo(f"  {dev.address}  MAC {dev.mac}: {kinds}", err=True)
            argv = [sys.executable, "-m", "scanner", "scan", spec.subnet, "--profile", profile,
                    "--format", fmt, "--fail-on", "never", "-q"]
            code = subprocess.call(lab.in_scanner(argv))
    except (LabError, PeerStartError) as exc:
        click.echo(f"dicomscan demo: the namespace lab did not start: {exc}", err=True)
        return 3
    except KeyboardInterrupt:
        click.echo("dicomscan demo: interrupted; lab stopped", err=True)
        return 130
    click.echo("lab stopped. Next: 'dicomscan scan --help'.", err=True)
    return code
