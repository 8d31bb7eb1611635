"""``dicomscan audit``: the port audit an auditor signs.

The document and its verdicts are built by ``scanner.rules.port_audit``. The command
runs a scan exactly like ``dicomscan scan`` (same options), or reads a saved
``--format json`` scan with ``--from FILE``; with ``--policy`` or ``--baseline`` a saved
scan is judged again offline, with waivers checked as of the scan's date.

Only click is imported at module level, like the other commands.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from scanner.cli.common import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    build_settings,
    check_output_path,
    refuse_clashes,
    run_scan,
    say,
    write_output,
)
from scanner.cli.scan import scan

if TYPE_CHECKING:
    from scanner.model import ScanResult

# scan's options the audit does not take: it has its own --format and exit rule.
_NOT_SHARED = {"fmt", "fail_on", "outputs", "events", "ocsf_array", "syslog", "syslog_ca"}

EXIT_HELP = """\b
Exit codes:
  0    every device (and framework requirement) passes
  1    a device or a requirement fails
  2    usage or input error (bad target, saved scan, policy, framework)
  3    the scan itself failed
  4    -o could not be written (the report is kept in a temporary file, path printed)
  130  interrupted (Ctrl-C)
"""


def _fail(message: str) -> None:
    say(f"Error: {message}")
    raise SystemExit(EXIT_USAGE)


def _check_schema(raw: object, path: str) -> None:
    """A document of another major schema version is not read as this one's: its fields
    may mean other things (a minor version only adds fields)."""
    from scanner.model.results import SCHEMA_VERSION

    version = raw.get("schema_version") if isinstance(raw, dict) else None
    major = SCHEMA_VERSION.split(".")[0]
    if isinstance(version, str) and version.split(".")[0] != major:
        _fail(f"{path}: saved scan of schema version {version[:20]!r}; this dicomscan reads "
              f"schema {major}.x")


def load_saved(path: str) -> ScanResult:
    import json

    from pydantic import ValidationError

    from scanner.model import ScanResult
    from scanner.model.documents import MAX_SCAN, read_text

    try:
        raw = json.loads(read_text(path, MAX_SCAN))
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read saved scan {path!r}: {exc}")
    except json.JSONDecodeError as exc:
        _fail(f"{path}: not JSON (save scans with --format json): {exc}")
    except RecursionError:  # json recurses per level: [[[... thousands deep
        _fail(f"{path}: not a dicomscan --format json scan: nested far too deeply")
    except ValueError:  # Python refuses to convert integers of more than 4,300 digits
        _fail(f"{path}: not a dicomscan --format json scan: a number thousands of digits long")
    _check_schema(raw, path)
    try:
        return ScanResult.model_validate(raw)
    except ValidationError as exc:
        _fail(f"{path}: not a dicomscan --format json scan: {exc.error_count()} problem(s), "
              f"first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']}")
    raise AssertionError("unreachable")


def _rejudge(result: ScanResult, opts: dict[str, Any]) -> ScanResult:
    """Judge a saved scan again with --baseline and --policy, as of the scan's date."""
    from scanner.rules.baseline_model import BaselineError
    from scanner.rules.baselines import resolve
    from scanner.rules.evaluate import evaluate
    from scanner.rules.policy import PolicyError, read_policy

    if opts.get("baseline"):
        try:
            resolve(opts["baseline"])
        except BaselineError as exc:
            _fail(f"--baseline: {exc}")
    policy = None
    if opts.get("policy"):
        try:
            policy = read_policy(opts["policy"]).model_dump(mode="json")
        except PolicyError as exc:
            _fail(f"Invalid value for '--policy': {exc}")
    findings = evaluate(
        result.hosts, opts.get("baseline"), policy, today=result.scan.finished_at.date()
    )
    return result.model_copy(update={"findings": findings})


@click.command(epilog=EXIT_HELP)
@click.argument("targets", nargs=-1)
@click.option("--from", "from_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Audit a saved 'dicomscan scan --format json' document instead of scanning.")
@click.option("--framework", metavar="NAME",
              help="Also report per requirement of a compliance framework "
                   "(acr-siim-2025, nist-800-53, hipaa-164-312, nist-1800-24).")
@click.option("--format", "audit_fmt", type=click.Choice(["table", "json", "html"]),
              default="table", show_default=True,
              help="Output format; html is a self-contained report to print or file.")
@click.option("-o", "--output", "audit_output", type=click.Path(dir_okay=False),
              help="Write here, not stdout.")
def audit(**opts: Any) -> None:
    """Port audit: every open port per device with its verdict, and PASS/FAIL.

    Scans TARGETS with the same options as 'dicomscan scan', or reads a saved scan
    with --from. A device passes when every open port is allowed by its baseline or
    waived by the site policy (--policy).

    \b
    Examples:
      dicomscan audit 10.20.0.0/24 --policy site.yaml
      dicomscan audit --from scan.json --framework nist-800-53 --format json
    """
    import json

    from scanner.outputs.audit_table import to_table
    from scanner.rules.port_audit import FrameworkError, build_audit, load_framework

    if opts["audit_output"] and opts["audit_output"] != "-":
        # before the scan: a typo or a clash with an input costs nothing
        check_output_path(opts["audit_output"])
        refuse_clashes([("-o", opts["audit_output"])], opts)
    framework = None
    if opts["framework"]:
        try:
            framework = load_framework(opts["framework"])
        except FrameworkError as exc:
            _fail(str(exc))
    interrupted = False
    if opts["from_file"]:
        if opts["targets"] or opts["targets_file"]:
            raise click.UsageError("give TARGETS or --from FILE, not both")
        result = load_saved(opts["from_file"])
        if opts.get("policy") or opts.get("baseline"):
            result = _rejudge(result, opts)
        source = opts["from_file"]
    else:
        settings = build_settings(opts)
        show = not opts["quiet"] and sys.stderr.isatty()
        try:
            result, interrupted = run_scan(settings, show)
        except Exception as exc:  # the scan failed as a whole: exit 3, like scan
            say(f"dicomscan: scan failed: {type(exc).__name__}: {exc}")
            sys.exit(EXIT_FAILED)
        source = "live scan"
    doc = build_audit(result, source, framework)
    if opts["audit_fmt"] == "html":
        from scanner.outputs.html_report import to_html

        text = to_html(result, doc)
    else:
        text = json.dumps(doc, indent=2) + "\n" if opts["audit_fmt"] == "json" else to_table(doc)
    written = True
    if opts["audit_output"] and opts["audit_output"] != "-":
        written = write_output(opts["audit_output"], text)
    else:
        click.echo(text, nl=False)
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if not written:
        sys.exit(EXIT_OUTPUT)
    sys.exit(EXIT_OK if doc["result"] == "PASS" else EXIT_FINDINGS)


# Every scan option (targets file, ports, profile, AE titles, TLS, --baseline, --policy, ...)
# except scan's output format and exit threshold: the audit runs the same scan.
audit.params.extend(
    p for p in scan.params if p.name not in _NOT_SHARED and p.name != "targets"
)
