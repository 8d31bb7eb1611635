"""``dicomscan central init|add-sensor|run``: the central site of a fleet of sensors."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from scanner.cli.common import EXIT_FAILED, EXIT_USAGE, say
from scanner.cli.numbers import FiniteRange
from scanner.model.shorthand import is_decimal


def fail(exc: Exception, code: int = EXIT_USAGE) -> NoReturn:
    say(f"dicomscan: {exc}")
    sys.exit(code)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not is_decimal(port) or not 0 < int(port) < 65536 or not host:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", param_hint="'--listen'")
    return host.strip("[]"), int(port)


@click.group("central")
def central() -> None:
    """The central site: a nats-server with JetStream that sensors dial out to, and the
    process that stores their results in the history."""


@central.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--listen", default="0.0.0.0:4222", show_default=True, metavar="HOST:PORT",
              help="Where nats-server listens for sensors.")
@click.option("--address", "addresses", multiple=True, metavar="NAME|IP",
              help="Name or address sensors dial, put in the server certificate "
                   "(repeatable; the first goes into bundles). Default: the --listen host, "
                   "unless it is a wildcard.")
@click.option("--store", metavar="PATH|URL",
              help="History store for the results (postgresql://... at a real site). "
                   "Default: history.sqlite in DIRECTORY.")
@click.option("--ack-wait", type=FiniteRange(1, 3600), default=30, show_default=True,
              metavar="SECONDS", help="A job's lease: redelivered when its sensor goes "
                                      "this long without a sign of life.")
@click.option("--max-deliver", type=click.IntRange(1, 100), default=4, show_default=True,
              help="Deliveries before a job is marked failed.")
def init(directory: Path, listen: str, addresses: tuple[str, ...], store: str | None,
         ack_wait: float, max_deliver: int) -> None:
    """Write a central DIRECTORY: CA, server certificate, nats-server configuration."""
    from scanner.fleet.layout import FleetError, init_central
    from scanner.history.store import HistoryError, check_url

    host, port = _listen(listen)
    try:
        check_url(store or "")
    except HistoryError as exc:
        fail(exc)
    names = list(addresses) or ([] if host in ("0.0.0.0", "::") else [host])
    try:
        config = init_central(directory, host, port, names, store, ack_wait, max_deliver)
    except FleetError as exc:
        fail(exc)
    click.echo(f"central initialised in {directory}: sensors dial {config.url}")


@central.command("add-sensor")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name")
@click.option("--scope", multiple=True, required=True, metavar="CIDR",
              help="Network the sensor may scan (repeatable); jobs outside are refused. "
                   "Only private, loopback, link-local, shared (100.64/10) and benchmark "
                   "(198.18/15) networks unless --allow-public.")
@click.option("--allow-public", is_flag=True,
              help="Let --scope hold globally routable addresses (as scan --allow-public).")
def add_sensor(directory: Path, name: str, scope: tuple[str, ...], allow_public: bool) -> None:
    """Issue sensor NAME's certificate bundle and grant it its own subjects only."""
    import asyncio

    from scanner.fleet.central import prepare_sensor
    from scanner.fleet.layout import CentralDir, FleetError
    from scanner.fleet.layout import add_sensor as add
    from scanner.fleet.server import reload

    try:
        _config, bundle = add(directory, name, list(scope), allow_public)
        reloaded = reload(CentralDir(directory))
        if reloaded:
            time.sleep(0.5)  # the reload is a signal: give the server a moment to apply it
            asyncio.run(prepare_sensor(CentralDir(directory), name))
    except FleetError as exc:
        fail(exc)
    click.echo(f"sensor {name}: bundle in {bundle} (copy it to the sensor; it holds a "
               "private key)")
    click.echo("nats-server reloaded" if reloaded else
               "nats-server not running: the sensor is served from the next 'central run'")


@central.command("run")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--external-server", is_flag=True,
              help="Connect to an already running nats-server instead of starting one.")
@click.option("-v", "--verbose", is_flag=True, help="Log every job's result on stderr.")
def run(directory: Path, external_server: bool, verbose: bool) -> None:
    """Start nats-server and collect results into the history until stopped."""
    import asyncio
    import logging
    import signal

    from scanner.fleet.central import run_central
    from scanner.fleet.layout import CentralDir, FleetError
    from scanner.fleet.server import running_pid, start, stop
    from scanner.history.store import HistoryError

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    d = CentralDir(directory)
    proc = None
    try:
        config = d.load()
    except FleetError as exc:  # not a central directory, or a broken one: input, exit 2
        fail(exc, EXIT_USAGE)
    try:
        if not external_server:
            if running_pid(d) is not None:
                raise FleetError(f"a nats-server already runs for {directory} (pid "
                                 f"{running_pid(d)}); use --external-server")
            proc = start(d, config.listen_host, config.listen_port)

        async def main() -> None:
            stop_event = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop_event.set)
            await run_central(d, stop_event)

        asyncio.run(main())
    except (FleetError, HistoryError) as exc:
        fail(exc, EXIT_FAILED)
    finally:
        if proc is not None:
            stop(proc)
