"""``dicomscan sensor BUNDLE``: run jobs from central inside an imaging VLAN."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scanner.cli.common import EXIT_USAGE, say


@click.command("sensor")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path),
              help="Where finished results wait for central's acknowledgement. "
                   "Default: BUNDLE/spool.")
@click.option("-v", "--verbose", is_flag=True, help="Log each job on stderr.")
def sensor(bundle: Path, spool: Path | None, verbose: bool) -> None:
    """Dial central with BUNDLE's certificate (mutual TLS, no listening port), then run the
    jobs queued for this sensor, one at a time, until stopped."""
    import asyncio
    import logging
    import signal

    from scanner.fleet.layout import FleetError
    from scanner.fleet.sensor import Sensor

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        worker = Sensor(bundle, spool)
    except FleetError as exc:
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.run(stop)

    try:
        asyncio.run(main())
    except FleetError as exc:  # e.g. central's certificate is not the bundle CA's
        say(f"dicomscan: {exc}")
        sys.exit(EXIT_USAGE)
