"""Site configuration values that parse but mean nothing (a week-long random delay ten
sextillion seconds long, port true, minute 99) and output folders this host cannot
write: refused with exit 2, or warned about, never written into a timer or a crontab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_input_limits import assert_input_error, run


def _site(tmp_path: Path, job: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text("version: 1\njobs:\n  night:\n    targets: [10.20.0.0/30]\n"
                    f"    discovery: none\n{job}", encoding="utf-8")
    return path


NONSENSE = [
    ("    schedule: {randomized_delay: 99999999999999999999999}\n",
     "randomized_delay: Input should be less than or equal to 604800"),
    ("    schedule: {randomized_delay: 604801}\n", "less than or equal to 604800"),
    ("    schedule: {randomized_delay: true}\n", "randomized_delay: Input should be a valid "
                                                 "integer"),
    ("    schedule: {randomized_delay: 2.0}\n", "randomized_delay: Input should be a valid "
                                                "integer"),
    ("    schedule: {randomized_delay: -1}\n", "greater than or equal to 0"),
    ("    schedule: {randomized_delay: .nan}\n", "randomized_delay"),
    ("    schedule: {cron: '99 2 * * *'}\n", "cron minute '99': not a value, range or step "
                                             "within 0-59"),
    ("    schedule: {cron: '0 24 * * *'}\n", "cron hour '24'"),
    ("    schedule: {cron: '*/0 * * * *'}\n", "cron minute '*/0'"),
    ("    schedule: {cron: '0 2 32 * *'}\n", "cron day of month '32'"),
    ("    schedule: {cron: '0 2 * 13 *'}\n", "cron month '13'"),
    ("    schedule: {cron: '0 2 * * funday'}\n", "cron day of week 'funday'"),
    ("    ports: [-1]\n", "ports.0: Input should be greater than or equal to 1"),
    ("    ports: [true]\n", "ports.0"),
    ("    ports: [70000]\n", "port 70000 in '70000' is outside 1-65535"),
]


@pytest.mark.parametrize(("job", "problem"), NONSENSE, ids=[n[0].strip() for n in NONSENSE])
def test_schedule_and_site_numbers_that_mean_nothing_are_refused(
        job: str, problem: str, tmp_path: Path) -> None:
    site = _site(tmp_path, job)
    # They were written into RandomizedDelaySec=, the crontab line, or scanned as port 1.
    commands = [("config", "check", str(site)),
                ("schedule", "--print", "systemd", "--config", str(site)),
                ("schedule", "--print", "cron", "--config", str(site))]
    for args in commands:
        out = run(*args)
        assert_input_error(out, problem)
        assert out.stdout == "", out.stdout


@pytest.mark.parametrize("job", [
    "    schedule: {randomized_delay: 604800, cron: '*/15 1-5/2 1,15 jan-dec mon-fri'}\n",
    "    schedule: {cron: '0 2 * * 7'}\n",
    "    ports: [104, '2000-2010', 65535]\n",
])
def test_sensible_schedules_and_ports_still_pass(job: str, tmp_path: Path) -> None:
    out = run("config", "check", str(_site(tmp_path, job)))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("job", "problem"), [
    ("    exclude: [10.20.0.0/99]\n", "10.20.0.0/99"),
    ("    syslog: ftp://127.0.0.1:514\n", "syslog: "),
    ("    ae_titles: [THIS-TITLE-IS-TOO-LONG-FOR-DICOM]\n", "THIS-TITLE-IS-TOO-LONG"),
], ids=["exclusion", "syslog", "ae-title"])
def test_schedule_refuses_a_job_its_scan_would_refuse(job: str, problem: str,
                                                      tmp_path: Path) -> None:
    # It printed (or wrote) the units, and the scan failed at its hour with nobody watching;
    # 'config check' already said so.
    site = _site(tmp_path, job)
    units = tmp_path / "units"
    for args in (("schedule", "--print", "cron", "--config", str(site)),
                 ("schedule", "--print", "systemd", "--config", str(site), "--write",
                  str(units))):
        out = run(*args)
        assert_input_error(out, problem)
        assert out.stdout == "", out.stdout
    assert not units.exists()
    assert_input_error(run("config", "check", str(site)), problem)


def test_schedule_write_to_a_folder_that_cannot_be_made_is_exit_4(tmp_path: Path) -> None:
    site = _site(tmp_path, "")
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = run("schedule", "--print", "systemd", "--config", str(site), "--write",
              str(blocker / "units"))
    # It was a NotADirectoryError traceback.
    assert out.returncode == 4, out.stderr
    assert "Traceback" not in out.stderr and "Not a directory; results kept in " in out.stderr
    for line in out.stderr.splitlines():
        Path(line.rsplit("results kept in ", 1)[1]).unlink()


def test_config_check_warns_about_output_folders_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    outputs = [{"format": "json", "path": str(tmp_path / "missing" / "night.json")},
               {"format": "csv", "path": "/proc/sys/night.csv"},  # read-only, even for root
               {"format": "html", "path": "reports"},  # a folder
               {"format": "jsonl", "path": "reports/night.jsonl"}]  # fine
    site = _site(tmp_path, f"    outputs: {json.dumps(outputs)}\n"
                           "    drift_output: ocsf:drift/night.ocsf.json\n")
    out = run("config", "check", str(site))
    # Warnings, not errors: the folders may exist only on the scanning host.
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(f"{site}: ok\n"), out.stdout
    warned = [line.split(": job night: ", 1)[1] for line in out.stderr.splitlines()]
    assert warned == [
        f"output json {tmp_path}/missing/night.json: folder {tmp_path}/missing does not "
        "exist on this host",
        "output csv /proc/sys/night.csv: folder /proc/sys is not writable here",
        f"output html {tmp_path}/reports: is a folder",
        f"drift_output {tmp_path}/drift/night.ocsf.json: folder {tmp_path}/drift does not "
        "exist on this host",
    ], out.stderr
    assert all(line.startswith(f"dicomscan: warning: {site}: ") for line in
               out.stderr.splitlines())


def test_site_drift_output_with_a_format_keeps_its_format(tmp_path: Path) -> None:
    """'drift_output: ocsf:FILE' was made '<folder>/ocsf:FILE', written as JSON Lines."""
    from scanner.engine.site_config import load_site_config

    site = _site(tmp_path, "    drift_output: ocsf:drift/night.ocsf.json\n")
    job = load_site_config(site).jobs["night"]
    assert job.drift_output == f"ocsf:{tmp_path}/drift/night.ocsf.json"
