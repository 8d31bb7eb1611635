"""``dicomscan schema`` and ``dicomscan profiles``: what the scanner produces and allows."""

from __future__ import annotations

import click


@click.command()
def schema() -> None:
    """Print the JSON Schema of the --format json document."""
    import json

    from scanner.model import ScanResult

    click.echo(json.dumps(ScanResult.model_json_schema(), indent=2))


@click.command()
def profiles() -> None:
    """List scan profiles and what each allows."""
    from scanner.engine.profiles import PROFILES

    for p in PROFILES.values():
        t = p.timeouts
        click.echo(
            f"{p.name.value:7} {p.summary}\n        max {p.max_concurrency} connections, "
            f"{p.per_host_connections} per host, {p.probe_spacing:g}s spacing, "
            f"max rate {p.max_rate:g} new connections/s,\n        "
            f"timeouts connect {t.connect:g}s dicom {t.dicom:g}s dimse {t.dimse:g}s "
            f"host {t.host:g}s"
        )
