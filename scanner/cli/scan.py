"""``dicomscan scan``: scan targets and report findings."""

from __future__ import annotations

import sys
from typing import Any

import click

from scanner.cli.collector import loading
from scanner.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT,
    SEVERITIES,
    build_job,
    check_syslog,
    emit,
    exit_code,
    output_options,
    plan_outputs,
    run_scan,
    say,
    say_discovery,
    writer_options,
)
from scanner.cli.numbers import FiniteRange
from scanner.cli.recording import begin_recording, finish_recording, scan_history_options
from scanner.cli.site import apply_site_config, site_options


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("targets", nargs=-1)
@output_options
@click.option(
    "-T",
    "--targets-file",
    type=click.Path(dir_okay=False),
    help="File of targets, one per line ('#' comments).",
)
@click.option(
    "-p",
    "--ports",
    default="default",
    show_default=True,
    help="Ports like nmap's: 104,11112,2000-3000, '-' for all, 'default' for the "
    "imaging set (see README).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="SPEC",
    help="Address, network or range never to touch (repeatable).",
)
@click.option(
    "--exclude-file",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Do-not-probe list: one address, network, host name or MAC a line, then its "
    "reason. Never sent a packet in any phase (repeatable).",
)
@click.option(
    "--scope",
    multiple=True,
    metavar="CIDR",
    help="Refuse any target outside these networks (repeatable).",
)
@click.option(
    "--allow-public",
    is_flag=True,
    help="Allow globally routable addresses. Off: public targets are refused.",
)
@click.option(
    "--max-addresses",
    type=click.IntRange(1, 16_777_216),
    default=None,
    metavar="N",
    help="Refuse a scan of more than N addresses. Default 65536.",
)
@click.option(
    "--max-rate",
    type=FiniteRange(0.1, 100_000),
    default=None,
    metavar="N",
    help="At most N new connections per second across the scan; each ARP or ICMP "
    "discovery packet counts as one. Default: the profile's (see 'dicomscan profiles').",
)
@click.option(
    "--plan",
    is_flag=True,
    help="Print what the scan would do (hosts, ports, probes, limits, skipped devices) "
    "and send nothing.",
)
@click.option(
    "--profile",
    type=click.Choice(["safe", "normal", "fast"]),
    default="safe",
    show_default=True,
    help="safe: 2 connections per host, spaced probes, no AE guessing. normal: 4 per "
    "host. fast: labs only.",
)
@click.option(
    "--fail-on",
    type=click.Choice([*SEVERITIES, "never"]),
    default="high",
    show_default=True,
    help="Exit 1 when a failed finding is at least this severe.",
)
@click.option(
    "--calling-ae",
    default="DICOMSCAN",
    show_default=True,
    help="Calling AE title the scanner presents (sites register scanners by title).",
)
@click.option(
    "--ae-title",
    multiple=True,
    help="Known called AE title of the targets (repeatable); tried first.",
)
@click.option(
    "--ae-guess/--no-ae-guess",
    default=None,
    help="Try a wordlist of common AE titles where the called AE is enforced. "
    "Default: off in safe, on in normal and fast.",
)
@click.option(
    "--ae-wordlist",
    type=click.Path(dir_okay=False),
    help="Replace the built-in AE title wordlist (one title per line).",
)
@click.option(
    "--intrusive",
    is_flag=True,
    help="Allow checks that change the device or log in to it: one C-STORE of a "
    "synthetic test object where storage was offered, and a product's documented default "
    "web credentials (Orthanc) where its web side asks for a login. Off by default.",
)
@click.option("--timeout", type=FiniteRange(0.1, 600), metavar="SECONDS",
              help="Wait this long for each DICOM answer (A-ASSOCIATE, DIMSE). Default: the "
                   "profile's (safe 10, normal 5, fast 3).")
@click.option("--connect-timeout", type=FiniteRange(0.1, 60), metavar="SECONDS",
              help="Wait this long for a TCP connection before calling the port filtered.")
@click.option("--client-cert", type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate to present where a TLS service asks for one (mutual TLS).")
@click.option("--client-key", type=click.Path(exists=True, dir_okay=False),
              help="Key of --client-cert (unencrypted PEM; never logged).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False),
              help="CA bundle to check server certificates against.")
@click.option("--baseline", metavar="NAME",
              help="Judge every host against this baseline instead of selecting one "
                   "(see 'dicomscan baselines list').")
@click.option("--policy", type=click.Path(dir_okay=False), metavar="FILE",
              help="Site policy (YAML): baselines pinned to hosts or networks, and waivers.")
@click.option("--discovery", type=click.Choice(["auto", "arp", "icmp", "tcp", "none"]),
              default="auto", show_default=True,
              help="Find live hosts first; only they are port-scanned. auto: ARP on a local "
                   "link, ICMP when routed (both need root), else a TCP ping on imaging "
                   "ports; none for loopback.")
@click.option("--engine", type=click.Choice(["embedded", "nmap"]), default="embedded",
              show_default=True,
              help="Port scan engine. embedded is the gentle one: every open port first "
                   "gets an A-ASSOCIATE-RQ. nmap (-sS as root, else -sT) closes its probe "
                   "connections empty, which legacy DICOM stacks may not survive.")
@click.option("--service-version", is_flag=True,
              help="With --engine nmap: nmap -sV service detection, folded into the "
                   "observations (sends non-DICOM probes to open ports).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", is_flag=True,
              help="Log what the scan does on stderr (secrets such as the client key's path "
                   "are redacted).")
@site_options
@scan_history_options
def scan(**opts: Any) -> None:
    """Scan TARGETS for DICOM services and hardening problems.

    TARGETS are addresses (10.0.0.5, ::1), networks (10.0.0.0/24), ranges
    (10.0.0.5-40 or 10.0.0.5-10.0.0.40) or host names. Names are resolved forwards
    only; the scanner never does reverse DNS.

    \b
    Examples:
      dicomscan scan 127.0.0.1 -p 4242,8042
      dicomscan scan 10.20.0.0/24 --exclude 10.20.0.1 --format json -o scan.json
      dicomscan scan 10.20.0.5 -o report.html -o findings.jsonl -o scan.json
      dicomscan scan -T modalities.txt --ae-title PACS1 --fail-on medium
    """
    with loading():  # the model, the writers and the job: kept to the end
        opts = apply_site_config(opts)
        plan = plan_outputs(opts)
        writer_options(opts)
        check_syslog(opts)
        # A plan counts and describes the targets as spans: --plan of a /8 lists nothing.
        settings, targets = build_job(opts, expand=not opts["plan"])
    if opts["plan"]:
        from scanner.cli.plan import print_plan
        from scanner.cli.recording import planned_store

        print_plan(settings, opts["fmt"], targets, planned_store(opts))
        sys.exit(0)
    if opts["verbose"]:
        from scanner.cli.verbose import enable

        enable(settings)
    store = begin_recording(opts, settings)
    show = not opts["quiet"] and sys.stderr.isatty()
    try:
        result, interrupted = run_scan(settings, show)
    except Exception as exc:  # the scan failed as a whole: say so plainly, exit 3
        say(f"dicomscan: scan failed: {type(exc).__name__}: {exc}")
        sys.exit(EXIT_FAILED)
    result, drift_code = finish_recording(store, result, interrupted, opts)
    written = emit(result, plan, opts)
    say_discovery(result, opts["quiet"])
    if interrupted:
        click.echo("dicomscan: interrupted; partial results written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if not written:
        sys.exit(EXIT_OUTPUT)
    sys.exit(exit_code(result, opts["fail_on"]) or drift_code)
