"""Bad input, third pass: wrong types in a policy, control characters in a site
configuration's messages. Each was a traceback, a silently wrong value or a terminal
sequence; each is now one line and exit 2. Run as real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanner.rules.policy import PolicyError, parse_policy
from tests.test_output_clashes import assert_usage, run

ROOT = Path(__file__).resolve().parent.parent
SAVED = ROOT / "fixtures" / "scans" / "ctn-called-ae-enforced.json"  # 127.0.0.21:56273


def test_policy_do_not_probe_with_an_empty_host(tmp_path: Path) -> None:
    """It passed the policy's check and stopped the scan with a StopIteration traceback."""
    (tmp_path / "p.yaml").write_text('do_not_probe:\n  - host: ""\n    reason: CT\n')
    assert_usage(run("scan", "--plan", "127.0.0.1", "--policy", "p.yaml", cwd=tmp_path),
                 "p.yaml:2: do_not_probe.0.host")


WAIVER = ("waivers:\n  - host: 127.0.0.21\n    rule: port-not-allowed\n    port: {port}\n"
          "    reason: vendor\n    approved_by: me\n    expires: {expires}\n")


@pytest.mark.parametrize(("port", "expires", "problem"), [
    ("true", "2099-01-01", "bad.yaml:4: waivers.0.port"),      # was port 1
    ("1.0", "2099-01-01", "bad.yaml:4: waivers.0.port"),       # was port 1
    ('"56273"', "2099-01-01", "bad.yaml:4: waivers.0.port"),
    ("56273", "0", "bad.yaml:7: waivers.0.expires: 0 is not a date"),  # was 1970-01-01
    ("56273", "4102444800", "bad.yaml:7: waivers.0.expires"),  # was 2100-01-01
    ("56273", "true", "bad.yaml:7: waivers.0.expires"),
])
def test_waiver_port_and_expiry_of_the_wrong_type(port: str, expires: str,
                                                  problem: str) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(WAIVER.format(port=port, expires=expires), "bad.yaml")
    assert any(problem in p for p in exc.value.problems), exc.value.problems


def test_waiver_of_the_right_types_still_waives(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(WAIVER.format(port="56273", expires="2099-01-01"))
    out = run("audit", "--from", str(SAVED), "--policy", "w.yaml", cwd=tmp_path)
    assert out.returncode == 0 and "OVERALL: PASS" in out.stdout, out.stdout + out.stderr


SITE = ('version: 1\nhistory: "{history}"\njobs:\n  a:\n    targets: [127.0.0.1]\n'
        '    policy: "{policy}"\n    schedule: {{on_calendar: daily}}\n')


@pytest.mark.parametrize("args", [
    ("config", "check", "site.yaml"),
    ("scan", "--plan", "--config", "site.yaml"),
    ("schedule", "--print", "systemd", "--config", "site.yaml"),
], ids=["config-check", "scan", "schedule"])
def test_site_configuration_messages_show_control_characters(args: tuple[str, ...],
                                                             tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE.format(history="h.sqlite",
                                                    policy="\\e]0;owned\\a.yaml"))
    out = run(*args, cwd=tmp_path)
    assert_usage(out, "jobs.a.policy", "\\x1b]0;owned\\x07.yaml")
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr


def test_schedule_history_outside_state_shows_control_characters(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("waivers: []\n")
    (tmp_path / "site.yaml").write_text(SITE.format(history="\\e[31mh\\a", policy="p.yaml"))
    out = run("schedule", "--print", "systemd", "--config", "site.yaml", cwd=tmp_path)
    assert_usage(out, "is outside /var/lib/dicomscan", "\\x1b[31mh\\x07")
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr


TITLE = "\x1b]0;owned\x07"  # an OSC sequence that sets the terminal's title, then BEL


@pytest.mark.parametrize("args", [
    ("report", "odd.json"),                      # a key of the saved scan, quoted by pydantic
    ("audit", "--from", "odd.json"),
    ("scan", "--plan", "127.0.0.1", "--events", TITLE, "--format", "jsonl"),  # click's message
    ("diff", "--fail-on-drift", TITLE, "--history", "h.sqlite"),
    ("jobs", TITLE),                             # a fleet error naming the folder
    ("submit", TITLE, "--sensor", "a", "127.0.0.1"),
], ids=["report", "audit", "events", "fail-on-drift", "jobs", "submit"])
def test_error_messages_show_control_characters(args: tuple[str, ...],
                                                tmp_path: Path) -> None:
    doc = json.loads(SAVED.read_text())
    doc[TITLE] = 1
    (tmp_path / "odd.json").write_text(json.dumps(doc))
    out = run(*args, cwd=tmp_path)
    assert_usage(out, "\\x1b]0;owned\\x07")
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr


@pytest.mark.parametrize(("store", "words"), [
    ("postgresql://scan:secret@[::1/history", "invalid literal"),
    ("postgresql://scan:secret@db:port/history", "'port'"),
    ("nosuch://db/history", "Can't load plugin"),
])
def test_central_init_refuses_a_store_url_central_could_not_open(
        store: str, words: str, tmp_path: Path) -> None:
    """It wrote the centre, and 'central run' then failed on the URL."""
    out = run("central", "init", "c", "--address", "127.0.0.1", "--store", store,
              cwd=tmp_path)
    assert_usage(out, "not a usable database URL", words)
    assert "secret" not in out.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("args", [
    ("history", "list"), ("history", "show", "abcd"), ("diff",),
], ids=["list", "show", "diff"])
def test_reading_a_history_path_that_holds_nothing(args: tuple[str, ...],
                                                   tmp_path: Path) -> None:
    """'history list --history typo/h.sqlite' made the folders and an empty store, and
    listed no scans with exit 0."""
    out = run(*args, "--history", "typo/h.sqlite", cwd=tmp_path)
    assert_usage(out, "no history at typo/h.sqlite")
    assert not (tmp_path / "typo").exists()
