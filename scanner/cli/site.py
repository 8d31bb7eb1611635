"""Site configuration on the command line: ``dicomscan config check``, ``dicomscan
schedule``, and ``scan --config FILE [--job NAME]``."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scanner.cli.common import EXIT_OUTPUT, EXIT_USAGE

if TYPE_CHECKING:
    from scanner.engine.site_config import JobSpec, RetentionSpec, SiteConfig

F = TypeVar("F", bound=Callable[..., Any])

STATE_DIR = "/var/lib/dicomscan"  # systemd's StateDirectory=dicomscan


def visible(text: str) -> str:
    """A message quoting the file (paths, keys, values) with its control characters shown
    as \\xNN: a BEL or an escape sequence in a site file must not drive the terminal.
    Imported here, not at the top: rich loads with it, and --help should not wait."""
    from scanner.outputs.escape import visible as shown

    return shown(text)


def _check_job_name(ctx: click.Context, param: click.Parameter,
                    value: str | None) -> str | None:
    """A job name given without --config is filed in the history as it is: a newline,
    a terminal sequence or 100,000 characters went into every table that shows it."""
    if value is not None:
        from scanner.engine.site_config import job_name_problem

        if problem := job_name_problem(value):
            raise click.BadParameter(problem, ctx=ctx, param=param)
    return value


def site_options(func: F) -> F:
    func = click.option("--job", metavar="NAME", callback=_check_job_name,
                        help="Job name: picks the job in --config, and files the scan under "
                             "this name in the history.")(func)
    return click.option("--config", "config", type=click.Path(dir_okay=False),
                        metavar="FILE",
                        help="Site configuration (YAML): the job's targets, ports, policy "
                             "... Options given on the command line win.")(func)


def load(path: str, job: str | None, pick: bool = True) -> tuple[SiteConfig, str, JobSpec]:
    """The file and one job; every problem is printed with its line, then exit 2."""
    from scanner.engine.site_config import SiteConfigError, load_site_config

    try:
        config = load_site_config(path)
        name, spec = config.job(job) if pick else next(iter(config.jobs.items()))
    except SiteConfigError as exc:
        for problem in exc.problems:
            click.echo(visible(f"dicomscan: {problem}" if problem.startswith(path) else
                               f"dicomscan: {path}: {problem}"), err=True)
        sys.exit(EXIT_USAGE)
    return config, name, spec


def apply_site_config(opts: dict[str, Any]) -> dict[str, Any]:
    """The scan's options with the job's filled in where the user gave none."""
    if not opts.get("config"):
        return opts
    from click.core import ParameterSource

    from scanner.engine.site_config import job_options

    config, name, spec = load(opts["config"], opts.get("job"))
    ctx = click.get_current_context()
    explicit = {k for k in opts if ctx.get_parameter_source(k) in
                (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    merged = job_options(spec, opts, explicit)
    merged["job"] = name
    merged["history"] = opts.get("history") or config.history
    return merged


@click.group("config")
def config_group() -> None:
    """Site configuration files."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Check FILE: every problem with its line and key; exit 2 if there is one."""
    config, _, _ = load(file, None, pick=False)
    problems = [f"{file}: job {name}: {why}" for name, job in config.jobs.items()
                for why in _settings_problems(job)]
    if problems:
        click.echo("\n".join(visible(f"dicomscan: {p}") for p in problems), err=True)
        sys.exit(EXIT_USAGE)
    for name, job in config.jobs.items():
        for why in _output_warnings(job):  # warnings: the folder may exist only where it runs
            click.echo(visible(f"dicomscan: warning: {file}: job {name}: {why}"), err=True)
        click.echo(visible(f"{file}: job {name}: {len(job.targets)} target spec(s), profile "
                           f"{job.profile.value}, discovery {job.discovery.value}, "
                           f"{len(job.outputs)} output(s)"))
    click.echo(visible(f"{file}: ok"))


def _output_warnings(job: JobSpec) -> list[str]:
    """Output files this host could not write: a folder missing or not writable, or the
    path a folder. Warnings, not errors: the file is checked where it is written, and
    the scanning host may be another machine (or a systemd unit with its own folder)."""
    import os

    from scanner.outputs.registry import drift_file

    paths = [(f"output {o.format}", o.path) for o in job.outputs]
    if job.drift_output:
        paths.append(("drift_output", drift_file(job.drift_output)[1]))
    warnings = []
    for what, path in paths:
        target = Path(path)
        folder = target.parent
        if target.is_dir():
            why = "is a folder"
        elif not folder.is_dir():
            why = f"folder {folder} does not exist on this host"
        elif not os.access(folder, os.W_OK | os.X_OK):
            why = f"folder {folder} is not writable here"
        else:
            continue
        warnings.append(f"{what} {target}: {why}")
    return warnings


def _settings_problems(job: JobSpec) -> list[str]:
    """What 'dicomscan scan --config' would refuse in this job: ports, AE titles, target and
    exclusion syntax, the syslog URL. The file's own checks pass these through, and a job
    that 'config check' called ok then failed at its scheduled hour."""
    from scanner.engine.settings import SettingsError, build_job
    from scanner.engine.site_config import job_options
    from scanner.outputs.syslog import SyslogError, parse_url

    # The scan command's own defaults for what a job does not set (its module imports
    # this one, so they are not read from its parameters).
    defaults: dict[str, Any] = {
        "targets_file": None, "exclude_file": (), "ae_wordlist": None, "ae_guess": None,
        "intrusive": False, "timeout": None, "connect_timeout": None, "max_rate": None,
        "max_addresses": None, "baseline": None, "service_version": False,
    }
    opts = job_options(job, defaults, set())
    problems = []
    try:
        build_job(opts, expand=False)  # checked as the scan checks, targets counted not listed
    except SettingsError as exc:
        problems.append(str(exc))
    if job.syslog:
        try:
            parse_url(job.syslog)
        except SyslogError as exc:
            problems.append(f"syslog: {exc}")
    return problems


def _command(exec_: str | None) -> list[str]:
    if exec_:
        try:
            words = shlex.split(exec_)
        except ValueError as exc:  # an unclosed quote
            raise click.BadParameter(f"{exec_!r}: {exc}", param_hint="'--exec'") from None
        if not words:
            raise click.BadParameter("empty command", param_hint="'--exec'")
        return words
    found = shutil.which("dicomscan")
    return [found] if found else [sys.executable, "-m", "scanner"]


def _one_line(values: list[str], where: str) -> None:
    """A newline (or any control character) in a path, store URL or schedule would end the
    crontab line or unit directive early and start another: refuse it."""
    for value in values:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise click.UsageError(f"{value!r} holds a control character, which the {where} "
                                   "cannot carry")


def _unit_escape(value: str) -> str:
    return value.replace("%", "%%")  # systemd expands %-specifiers in these settings


def _under_state(path: str, what: str) -> None:
    if not Path(path).is_relative_to(STATE_DIR):
        raise click.UsageError(visible(f"{what} {path} is outside {STATE_DIR}: the systemd "
                                       "unit can write only its state directory "
                                       "(ProtectSystem=strict)"))


def _prune_args(command: list[str], name: str, store: str | None,
                retention: RetentionSpec) -> list[str]:
    """``history prune`` of the job's stored scans by its retention rules."""
    return [*command, "history", "prune", *(["--history", store] if store else []),
            "--job", name, *retention.prune_args(), "--quiet"]


def systemd_units(name: str, spec: JobSpec, config_path: str, history: str | None,
                  command: list[str]) -> dict[str, str]:
    """A oneshot service and its timer, hardened: nothing writable but the state
    directory, and CAP_NET_RAW only where discovery sends ARP or ICMP."""
    store = history or f"{STATE_DIR}/history.sqlite"
    if "://" not in store:
        _under_state(store, "the history")
    for out in spec.outputs:
        _under_state(out.path, "output")
    if spec.drift_output:
        _under_state(spec.drift_output, "drift_output")
    args = [_unit_escape(a) for a in (*command, "scan", "--config", config_path, "--job", name,
                                      "--history", store, "--quiet")]
    creds = []
    for key, option in (("client_cert", "--client-cert"), ("client_key", "--client-key"),
                        ("ca", "--ca")):
        path = getattr(spec, key)
        if path:  # handed over by systemd, so the key need not be readable by the unit's user
            _one_line([path], "systemd unit")
            creds.append(f"LoadCredential={key}:{_unit_escape(path)}")
            args += [option, f"%d/{key}"]  # %d: the unit's credentials folder
    _one_line([*args, spec.schedule.on_calendar], "systemd unit")
    keep = spec.schedule.retention
    prune = [] if keep is None else [
        "ExecStartPost=" + shlex.join(_unit_escape(a) for a in _prune_args(command, name, store,
                                                                            keep))]
    caps = "CAP_NET_RAW" if spec.needs_raw_sockets else ""
    families = "AF_INET AF_INET6 AF_UNIX AF_NETLINK" + (" AF_PACKET" if caps else "")
    service = "\n".join([
        "[Unit]",
        f"Description=dicomscan scheduled scan, job {name}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={shlex.join(args)}",
        *prune,  # after a scan that worked (0 or 1), never instead of it
        # Exit 1 means failed findings: the scan worked, so not a unit failure.
        "SuccessExitStatus=1",
        "DynamicUser=yes",
        "StateDirectory=dicomscan",
        "StateDirectoryMode=0700",
        "UMask=0077",
        *creds,
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        f"RestrictAddressFamilies={families}",
        f"CapabilityBoundingSet={caps}",
        f"AmbientCapabilities={caps}",
        "",
    ])
    timer = "\n".join([
        "[Unit]",
        f"Description=dicomscan scheduled scan, job {name}",
        "",
        "[Timer]",
        f"OnCalendar={spec.schedule.on_calendar}",
        f"RandomizedDelaySec={spec.schedule.randomized_delay}",
        "Persistent=true",
        f"Unit=dicomscan-{name}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return {f"dicomscan-{name}.service": service, f"dicomscan-{name}.timer": timer}


def _password_in(store: str, kind: str) -> str | None:
    """A database password in the history URL would be written into the crontab line or
    the unit's ExecStart=, and shown to every local user in the process list each night."""
    from urllib.parse import urlsplit

    try:
        password = urlsplit(store).password if "://" in store else None
    except ValueError:
        password = None
    if not password:
        return None
    from scanner.history.store import _shown

    where = "crontab line" if kind == "cron" else "systemd unit's ExecStart="
    return (f"the history URL {_shown(store)} holds a password, which the {where} would "
            "keep and every local user would see in the process list; leave it out of the "
            "URL and give it in the scanning user's ~/.pgpass (or PGPASSFILE)")


@click.command()
@click.option("--print", "kind", type=click.Choice(["cron", "systemd"]), required=True,
              help="cron: one crontab line. systemd: a service and timer pair.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              metavar="FILE")
@click.option("--job", metavar="NAME", help="The job (needed when the file has several).")
@click.option("--history", metavar="PATH|URL", help="History store (default: the file's "
              "history, else the default location; systemd: /var/lib/dicomscan).")
@click.option("--write", "write_dir", type=click.Path(file_okay=False),
              help="systemd: write the two unit files into this folder instead of printing.")
@click.option("--exec", "exec_", metavar="COMMAND",
              help="How to run dicomscan (default: the installed 'dicomscan', else this "
                   "Python with -m scanner).")
def schedule(kind: str, config_path: str, job: str | None, history: str | None,
             write_dir: str | None, exec_: str | None) -> None:
    """Print a crontab line or systemd units that run a configured job on its schedule."""
    config, name, spec = load(config_path, job)
    problems = _settings_problems(spec)
    if problems:  # refused now, not at the scheduled hour with nobody watching
        for why in problems:
            click.echo(visible(f"dicomscan: {config_path}: job {name}: {why}"), err=True)
        sys.exit(EXIT_USAGE)
    path = str(Path(config_path).absolute())
    command = _command(exec_)
    store = history or config.history
    if store and (exposed := _password_in(store, kind)):
        click.echo(f"dicomscan: {exposed}", err=True)
        sys.exit(EXIT_USAGE)
    if kind == "cron":
        args = [*command, "scan", "--config", path, "--job", name, "--quiet"]
        if store:
            args += ["--history", store]
        _one_line([*args, spec.schedule.cron], "crontab line")
        line = shlex.join(args)
        if (keep := spec.schedule.retention) is not None:  # ';': after any scan's end
            line += " ; " + shlex.join(_prune_args(command, name, store, keep))
        # cron runs the line through sh: '%' would be a newline there, so escape it.
        line = line.replace("%", "\\%")
        click.echo(f"{spec.schedule.cron} {line}")
        return
    units = systemd_units(name, spec, path, store, command)
    if write_dir is None:
        for unit, text in units.items():
            click.echo(f"# --- {unit}\n{text}")
        return
    from scanner.cli.recording import write_text

    # A folder that cannot be made is said by write_text, with where the units were kept.
    with contextlib.suppress(OSError):
        Path(write_dir).mkdir(parents=True, exist_ok=True)
    for unit, text in units.items():
        if not write_text(text, str(Path(write_dir) / unit)):
            sys.exit(EXIT_OUTPUT)
        click.echo(str(Path(write_dir) / unit))
