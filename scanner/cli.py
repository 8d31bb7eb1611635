"""The ``dicomscan`` command line.

Only click is imported at module level: the scan machinery (pydantic, pynetdicom,
rich) loads inside the commands that use it, so ``dicomscan --help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scanner import __version__

if TYPE_CHECKING:
    from scanner.model import ScanResult, ScanSettings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SEVERITIES = ("info", "low", "medium", "high", "critical")

EXIT_CODES_HELP = """\b
Exit codes:
  0    no failed finding at or above --fail-on
  1    failed findings at or above --fail-on
  2    usage or input error (bad target, port list, file)
  3    the scan itself failed
  130  interrupted (Ctrl-C); what was found so far is still written
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="dicomscan")
def main() -> None:
    """DICOM network and device hardening scanner.

    Finds DICOM services on any port, checks TLS and AE title exposure and what an
    unknown peer may do, and reports findings with evidence. Safe by default: at
    most 2 connections at a time per host, nothing that writes or retrieves patient
    data, and public (internet) addresses are refused.

    \b
    First run:   dicomscan demo
    Typical:     dicomscan scan 10.20.0.0/24 --format table
    For a SIEM:  dicomscan scan -T targets.txt --format jsonl -o findings.jsonl
    """


def _read_lines(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {what} {path!r}: {exc}") from None


def _check_ae(title: str, option: str) -> str:
    if not title or len(title) > 16 or not all(32 <= ord(c) < 127 for c in title) or "\\" in title:
        raise click.BadParameter(
            f"{title!r} is not a valid AE title (1-16 printable ASCII characters, no backslash)",
            param_hint=option,
        )
    return title


def build_settings(opts: dict[str, Any]) -> ScanSettings:
    """Turn command-line options into a checked, serialisable scan job."""
    from scanner.model import ProfileName, ScanSettings
    from scanner.portspec import PortSpecError, parse_ports
    from scanner.profiles import PROFILES
    from scanner.targets import TargetError, build_targets, read_targets_file

    specs = list(opts["targets"])
    if opts["targets_file"]:
        specs += read_targets_file(_read_lines(opts["targets_file"], "targets file"))
    if not specs:
        raise click.UsageError("no targets: give TARGET arguments or --targets-file")
    try:
        targets = build_targets(specs, opts["exclude"], opts["scope"], opts["allow_public"])
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from None
    try:
        ports = parse_ports(opts["ports"])
    except PortSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="-p/--ports") from None
    profile = PROFILES[ProfileName(opts["profile"])]
    calling = _check_ae(opts["calling_ae"], "--calling-ae")
    if bool(opts.get("client_cert")) != bool(opts.get("client_key")):
        raise click.UsageError("--client-cert and --client-key go together")
    titles = [_check_ae(t, "--ae-title") for t in opts["ae_title"]]
    if opts["ae_wordlist"]:
        wordlist_text = _read_lines(opts["ae_wordlist"], "AE title wordlist")
    else:
        from importlib import resources

        wordlist_text = (resources.files("scanner") / "data" / "ae_titles.txt").read_text()
    wordlist = [
        _check_ae(line.strip(), "--ae-wordlist")
        for line in wordlist_text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    ae_guess = profile.ae_guess if opts["ae_guess"] is None else opts["ae_guess"]
    timeouts = profile.timeouts
    if opts.get("timeout"):
        timeouts = timeouts.model_copy(update={"dicom": opts["timeout"], "dimse": opts["timeout"]})
    if opts.get("baseline"):
        from scanner.baselines import BaselineError, resolve

        try:
            resolve(opts["baseline"])
        except BaselineError as exc:
            raise click.BadParameter(str(exc), param_hint="--baseline") from None
    policy = None
    if opts.get("policy"):
        from scanner.policy import PolicyError, read_policy

        try:
            policy = read_policy(opts["policy"]).model_dump(mode="json")
        except PolicyError as exc:
            raise click.BadParameter(str(exc), param_hint="--policy") from None
    if opts.get("connect_timeout"):
        timeouts = timeouts.model_copy(update={"connect": opts["connect_timeout"]})
    from scanner.model import DiscoveryMethod, EngineName

    engine = EngineName(opts.get("engine") or "embedded")
    if engine is EngineName.NMAP:
        import shutil

        from scanner.nmap_engine import INSTALL_HINT

        if shutil.which("nmap") is None:
            raise click.UsageError(f"--engine nmap: {INSTALL_HINT}")
    elif opts.get("service_version"):
        raise click.UsageError("--service-version needs --engine nmap")
    return ScanSettings(
        discovery=DiscoveryMethod(opts.get("discovery") or "auto"),
        engine=engine,
        service_version=bool(opts.get("service_version")),
        targets=targets.addresses,
        target_specs=specs,
        hostnames=targets.hostnames,
        ports=ports,
        profile=profile.name,
        max_concurrency=profile.max_concurrency,
        per_host_connections=profile.per_host_connections,
        probe_spacing=profile.probe_spacing,
        timeouts=timeouts,
        calling_ae=calling,
        ae_titles=titles,
        ae_guess=ae_guess,
        ae_wordlist=wordlist,
        intrusive=opts["intrusive"],
        allow_public=opts["allow_public"],
        client_cert=opts.get("client_cert"),
        client_key=opts.get("client_key"),
        ca=opts.get("ca"),
        baseline=opts.get("baseline"),
        policy=policy,
    )


def run_scan(settings: ScanSettings, show_progress: bool) -> tuple[ScanResult, bool]:
    """Run the job; on Ctrl-C return what was found so far. Second value: interrupted."""
    import asyncio

    from scanner.engine import ScanJob
    from scanner.progress import progress_reporter

    with progress_reporter(show_progress) as report:
        job = ScanJob(settings, progress=report)
        try:
            result = asyncio.run(job.run())  # cheap to repr (see ScanResult.__repr__)
        except KeyboardInterrupt:
            return job.result(interrupted=True), True
        return result, result.scan.interrupted


def emit(result: ScanResult, fmt: str, output: str | None) -> None:
    from scanner.writers import WRITERS, to_table

    if fmt == "table" and output is None:
        text = to_table(result, color=sys.stdout.isatty())
    else:
        text = WRITERS[fmt](result)
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(output, str(exc)) from None


def say_discovery(result: ScanResult, quiet: bool) -> None:
    """Which discovery method ran and why, and any method skipped, on stderr."""
    info = result.scan.discovery
    if info is None:
        return
    for note in info.notes:
        click.echo(f"dicomscan: discovery: {note}", err=True)
    if not quiet and info.used.value != "none":
        click.echo(f"dicomscan: discovery {info.used.value} ({info.why}): {info.alive} of "
                   f"{info.probed} addresses alive in {info.elapsed_ms / 1000:.2f} s", err=True)


def exit_code(result: ScanResult, fail_on: str) -> int:
    from scanner.model import Severity

    worst = result.worst_failure()
    if fail_on == "never" or worst is None:
        return EXIT_OK
    return EXIT_FINDINGS if worst.rank >= Severity(fail_on).rank else EXIT_OK


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("targets", nargs=-1)
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
    "--profile",
    type=click.Choice(["safe", "normal", "fast"]),
    default="safe",
    show_default=True,
    help="safe: 2 connections per host, spaced probes, no AE guessing. normal: 4 per "
    "host. fast: labs only.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl"]),
    default="table",
    show_default=True,
    help="Output format; jsonl is one finding per line for a SIEM.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
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
@click.option("--timeout", type=click.FloatRange(0.1, 600), metavar="SECONDS",
              help="Wait this long for each DICOM answer (A-ASSOCIATE, DIMSE). Default: the "
                   "profile's (safe 10, normal 5, fast 3).")
@click.option("--connect-timeout", type=click.FloatRange(0.1, 60), metavar="SECONDS",
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
def scan(**opts: Any) -> None:
    """Scan TARGETS for DICOM services and hardening problems.

    TARGETS are addresses (10.0.0.5, ::1), networks (10.0.0.0/24), ranges
    (10.0.0.5-40 or 10.0.0.5-10.0.0.40) or host names. Names are resolved forwards
    only; the scanner never does reverse DNS.

    \b
    Examples:
      dicomscan scan 127.0.0.1 -p 4242,8042
      dicomscan scan 10.20.0.0/24 --exclude 10.20.0.1 --format json -o scan.json
      dicomscan scan -T modalities.txt --ae-title PACS1 --fail-on medium
    """
    settings = build_settings(opts)
    show = not opts["quiet"] and sys.stderr.isatty()
    try:
        result, interrupted = run_scan(settings, show)
    except Exception as exc:  # the scan failed as a whole: say so plainly, exit 3
        click.echo(f"dicomscan: scan failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    emit(result, opts["fmt"], opts["output"])
    say_discovery(result, opts["quiet"])
    if interrupted:
        click.echo("dicomscan: interrupted; partial results written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(exit_code(result, opts["fail_on"]))


@main.command()
def schema() -> None:
    """Print the JSON Schema of the --format json document."""
    import json

    from scanner.model import ScanResult

    click.echo(json.dumps(ScanResult.model_json_schema(), indent=2))


@main.command()
def profiles() -> None:
    """List scan profiles and what each allows."""
    from scanner.profiles import PROFILES

    for p in PROFILES.values():
        t = p.timeouts
        click.echo(
            f"{p.name.value:7} {p.summary}\n        max {p.max_concurrency} connections, "
            f"timeouts connect {t.connect:g}s dicom {t.dicom:g}s dimse {t.dimse:g}s "
            f"host {t.host:g}s"
        )


def _register_optional() -> None:
    from scanner.cli_audit import audit
    from scanner.cli_baselines import baselines
    from scanner.cli_rules import rules
    from scanner.demo import demo

    main.add_command(demo)
    main.add_command(rules)
    main.add_command(baselines)
    main.add_command(audit)


_register_optional()
