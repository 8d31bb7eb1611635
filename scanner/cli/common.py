"""What the commands share: exit codes, options turned into settings, running a scan
with a progress bar, writing its output, and the exit code it earns.

Only click is imported at module level: the scan machinery (pydantic, pynetdicom,
rich) loads inside the commands that use it, so ``dicomscan --help`` answers at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scanner.cli.collector import loading

if TYPE_CHECKING:
    from scanner.engine.spans import TargetSpans
    from scanner.model import ScanResult, ScanSettings
    from scanner.outputs.pieces import Text
    from scanner.outputs.registry import WriterOptions

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_OUTPUT = 4
FORMATS = ("table", "json", "jsonl", "ocsf", "csv", "html")
EVENT_NAMES = ("findings", "inventory", "scan")
F = TypeVar("F", bound=Callable[..., Any])
SEVERITIES = ("info", "low", "medium", "high", "critical")

EXIT_CODES_HELP = """\b
Exit codes:
  0    no failed finding at or above --fail-on
  1    failed findings at or above --fail-on
  2    usage or input error (bad target, port list, file)
  3    the scan itself failed, or a host could not be judged (a rules error:
       its findings are missing) and no finding gives 1
  4    an output could not be written or sent (-o, --syslog); every other output
       was still written, and a file's results were kept in a temporary file
       whose path is printed
  130  interrupted (Ctrl-C or SIGTERM); what was found so far is still written
"""


def build_settings(opts: dict[str, Any]) -> ScanSettings:
    """The engine's settings from command-line options; a bad option is a usage error."""
    return build_job(opts, expand=True)[0]


def build_job(opts: dict[str, Any], expand: bool) -> tuple[ScanSettings, TargetSpans]:
    """Settings and the targets as spans; ``expand=False`` for ``--plan`` (see the
    engine's ``build_job``)."""
    from scanner.engine.settings import SettingsError
    from scanner.engine.settings import build_job as from_options

    try:
        return from_options(opts, expand)
    except SettingsError as exc:
        if exc.usage:
            raise click.UsageError(str(exc)) from None
        raise click.BadParameter(str(exc), param_hint=exc.param) from None


def run_scan(settings: ScanSettings, show_progress: bool) -> tuple[ScanResult, bool]:
    """Run the job with a progress bar on request; on Ctrl-C return what was found so far.
    Second value: interrupted."""
    with loading():
        from scanner.engine.run import run_scan as run
        from scanner.outputs.progress import progress_reporter

    with progress_reporter(show_progress) as report:
        return run(settings, progress=report)


def output_options(command: F) -> F:
    """The options every command that writes a scan's results shares (scan, report)."""
    options = [
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                      show_default=True,
                      help="Format on stdout, and of an -o file whose name does not say "
                           "(.json, .jsonl, .ocsf.json, .csv, .html, .txt). jsonl: events "
                           "for a SIEM; ocsf: OCSF 1.8.0 events; csv: a spreadsheet; html: "
                           "the audit report."),
        click.option("-o", "--output", "outputs", multiple=True,
                     metavar="[FORMAT:]PATH",
                     help="Write here, not stdout (repeatable: one file per format). The "
                          "format comes from FORMAT:, else the name's ending, else --format."),
        click.option("--events", default="findings", show_default=True, metavar="LIST",
                     help="jsonl events, comma-separated: findings, inventory (one per "
                          "device), scan (start and end)."),
        click.option("--ocsf-array", is_flag=True,
                     help="ocsf as one JSON array, not one event per line."),
        click.option("--syslog", metavar="URL",
                     help="Also send each finding as CEF in an RFC 5424 syslog message: "
                          "udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT."),
        click.option("--syslog-ca", type=click.Path(exists=True, dir_okay=False),
                     help="CA bundle that signed the syslog receiver's certificate (tls://)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def shown(message: str) -> str:
    """``message`` with control characters as \\xNN, line by line: an error quotes what a
    file, a store or a peer held (a key, a path, a name), and an escape sequence or BEL in
    it must not reach the terminal. rich loads with the escaper, so only when needed."""
    from scanner.outputs.escape import visible

    return "\n".join(visible(line) for line in message.split("\n"))


def say(message: str) -> None:
    """One message on stderr, control characters shown."""
    click.echo(shown(message), err=True)


def plan_outputs(opts: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(format, path) per output, None for stdout; checked before any scanning so a typo
    costs nothing. A folder that does not exist is a usage error."""
    from scanner.outputs.registry import format_for

    fmt: str = opts["fmt"]
    outputs: tuple[str, ...] = tuple(opts.get("outputs") or ())
    explicit = click.get_current_context().get_parameter_source("fmt") not in (
        click.core.ParameterSource.DEFAULT, None)
    plan: list[tuple[str, str | None]] = []
    for out in outputs:
        prefix, sep, rest = out.partition(":")
        if not out or (sep and prefix in FORMATS and not rest):
            # Caught before the scan: an empty name failed only when the results were
            # written (exit 4), and 'json:' made a file of that name in the current folder.
            raise click.BadParameter(f"{out!r} names no file (- is standard output)",
                                     param_hint="'-o'")
        if sep and prefix in FORMATS and rest:
            chosen, path = prefix, rest
        elif len(outputs) == 1 and explicit:  # '--format json -o scan.out', as before
            chosen, path = fmt, out
        else:
            chosen, path = format_for(out, None) or fmt, out
        if path == "-":
            plan.append((chosen, None))
            continue
        check_output_path(path)
        plan.append((chosen, path))
    files = [("-o", p) for _, p in plan if p is not None]
    streams = [f"-o {out!r}" for out, (_, p) in zip(outputs, plan, strict=True)
               if p is None or _is_stdout(p)] or ([] if plan else ["the results (no -o)"])
    if opts.get("drift_output"):
        from scanner.outputs.registry import drift_file

        drift_path = drift_file(opts["drift_output"])[1]
        if drift_path == "-" or _is_stdout(drift_path):
            streams.append(f"--drift-output {opts['drift_output']!r}")
        else:
            files.append(("--drift-output", drift_path))
    refuse_shared_stdout(streams)
    refuse_clashes(files, opts)
    return plan or [(fmt, None)]


def _is_stdout(path: str) -> bool:
    """``path`` names the object standard output already is (/dev/stdout, /dev/fd/1, or
    the file stdout is redirected to); /dev/null is no reader, so it does not count."""
    import os

    try:
        out, named = os.fstat(1), os.stat(path)
        null = os.stat(os.devnull)
    except OSError:
        return False
    same = (out.st_dev, out.st_ino) == (named.st_dev, named.st_ino)
    return same and (out.st_dev, out.st_ino) != (null.st_dev, null.st_ino)


def refuse_shared_stdout(streams: list[str]) -> None:
    """Two outputs on standard output came out one after the other in one stream (a JSON
    document followed by a CSV table), which no reader can take apart: refused before
    any work, naming both."""
    if len(streams) > 1:  # shown only now: the escaper loads rich
        raise click.UsageError(f"{shown(streams[0])} and {shown(streams[1])} both write to "
                               "standard output, which can take one; send the others to files")


# Options whose files a command reads: an -o naming one of them would replace it (the
# targets list, a policy, the saved scan being rendered, the history) with a report.
_INPUT_OPTIONS = ("targets_file", "exclude_file", "ae_wordlist", "policy", "config", "ca",
                  "client_cert", "client_key", "syslog_ca", "scan_file", "from_file", "history")


def check_output_path(path: str) -> None:
    """The folder exists and the name is no folder; a name the system cannot take (too
    long, a folder in the way) is the same usage error, not an OSError traceback."""
    target = Path(path)
    try:
        if not target.parent.is_dir():
            raise click.BadParameter(f"folder {shown(repr(str(target.parent)))} does not "
                                     "exist", param_hint="'-o'")
        if target.is_dir():
            raise click.BadParameter(f"{shown(repr(path))} is a folder, not a file",
                                     param_hint="'-o'")
    except OSError as exc:
        raise click.BadParameter(f"cannot use {shown(repr(path))[:200]}: "
                                 f"{exc.strerror or exc}", param_hint="'-o'") from None


def _file_key(path: str) -> tuple[int, int] | str:
    """What makes two names one file: device and inode when it exists, else the absolute
    path with links resolved."""
    import os

    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return os.path.realpath(path)


def refuse_clashes(paths: list[tuple[str, str]], opts: dict[str, Any]) -> None:
    """Two outputs to one file kept only the last one written; an output that is one of
    the command's inputs replaced that input with a report. Both are refused before any
    work. Devices (/dev/null) may be named more than once."""
    import os
    import stat

    seen: dict[tuple[int, int] | str, tuple[str, str]] = {}
    for option, path in paths:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                continue
        except OSError:
            pass
        key = _file_key(path)
        if key in seen:
            raise click.BadParameter(f"{shown(repr(path))} is named twice (also as "
                                     f"{shown(repr(seen[key][1]))}): one file per output",
                                     param_hint=f"'{option}'")
        seen[key] = (option, path)
    for name in _INPUT_OPTIONS:
        value = opts.get(name)
        for given in value if isinstance(value, (tuple, list)) else (value,):
            if not isinstance(given, str) or not given or "://" in given:
                continue
            if _file_key(given) in seen:
                output, path = seen[_file_key(given)]
                source = {"scan_file": "SCAN.json", "from_file": "--from"}.get(
                    name, "--" + name.replace("_", "-"))
                raise click.BadParameter(f"{shown(repr(path))} is also the input {source}; "
                                         "writing there would replace it",
                                         param_hint=f"'{output}'")


def writer_options(opts: dict[str, Any], color: bool = False) -> WriterOptions:
    from scanner.outputs.jsonl import EventType
    from scanner.outputs.registry import WriterOptions

    names = [n.strip() for n in str(opts.get("events") or "findings").split(",") if n.strip()]
    unknown = sorted(set(names) - set(EVENT_NAMES))
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'} (choose from "
                                 f"{', '.join(EVENT_NAMES)})", param_hint="'--events'")
    events = frozenset(EventType(n.removesuffix("s")) for n in names)
    return WriterOptions(color=color, events=events, ocsf_array=bool(opts.get("ocsf_array")))


def emit(result: ScanResult, plan: list[tuple[str, str | None]], opts: dict[str, Any]) -> bool:
    """Write every planned output; False when one could not be written (each failure said
    on stderr, with where its results were kept). The others are written regardless."""
    from scanner.outputs.registry import render_pieces

    ok = True
    for fmt, path in plan:
        color = fmt == "table" and path is None and sys.stdout.isatty()
        text = render_pieces(result, fmt, writer_options(opts, color))
        if path is None:
            _echo(text)
        else:
            ok = write_output(path, text) and ok
    return send_syslog(result, opts) and ok


def _echo(text: Text, chunk: int = 1 << 20) -> None:
    """On stdout in writes of up to ``chunk`` characters: a small report in one write as
    ever (a reader that leaves early, ``| head -1``, then cost it nothing), a large one
    never whole in memory."""
    if isinstance(text, str):
        click.echo(text, nl=False)
        return
    held: list[str] = []
    size = 0
    for piece in text:
        held.append(piece)
        size += len(piece)
        if size >= chunk:
            click.echo("".join(held), nl=False)
            held, size = [], 0
    if held:
        click.echo("".join(held), nl=False)


def write_output(path: str, text: Text) -> bool:
    """Write one output atomically; False (said on stderr, with where the text was kept
    instead) when it could not be written."""
    from scanner.outputs.files import OutputError, write_or_keep

    try:
        write_or_keep(path, text)
    except OutputError as exc:
        kept = (f"results kept in {exc.kept_at}" if exc.kept_at
                else "results could not be kept anywhere")
        click.echo(f"dicomscan: cannot write {exc.path}: {exc.reason}; {kept}", err=True)
        return False
    return True


def send_syslog(result: ScanResult, opts: dict[str, Any]) -> bool:
    """Send the findings to --syslog, if given; False (said on stderr) when it failed."""
    if not opts.get("syslog"):
        return True
    from scanner.outputs.syslog import SyslogError, send_findings

    try:
        sent = send_findings(result, opts["syslog"], ca_file=opts.get("syslog_ca"))
    except SyslogError as exc:
        click.echo(f"dicomscan: syslog: {exc}; results were still written to the outputs",
                   err=True)
        return False
    click.echo(f"dicomscan: syslog: sent {sent} finding(s) to {opts['syslog']}", err=True)
    return True


def check_syslog(opts: dict[str, Any]) -> None:
    """A malformed --syslog URL, or a --syslog-ca that holds no certificate, is a usage
    error said before scanning (not exit 4 once the scan is done)."""
    if opts.get("syslog"):
        from scanner.outputs.syslog import SyslogError, parse_url

        try:
            parse_url(opts["syslog"])
        except SyslogError as exc:
            raise click.BadParameter(str(exc), param_hint="'--syslog'") from None
    if opts.get("syslog_ca"):
        from scanner.engine.settings import SettingsError, check_tls_files

        try:
            check_tls_files(opts["syslog_ca"], None, None)
        except SettingsError as exc:
            raise click.BadParameter(str(exc), param_hint="'--syslog-ca'") from None


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
    if fail_on == "never":
        return EXIT_OK
    if worst is not None and worst.rank >= Severity(fail_on).rank:
        return EXIT_FINDINGS
    # A host the rules could not judge may hide a failure: never report that as clean.
    return EXIT_FAILED if any(e.unjudged for e in result.scan.errors) else EXIT_OK


