"""IPv4 numeric shorthands (``0x7f000001``, ``2130706433``, ``127.1``, ``0177.0.0.1``) are
refused wherever a host name is accepted: the system's resolver read them as an address
(hex, octal, short forms) that other tools read otherwise, so a target, an exclusion or a
do-not-probe fence meant something the user may not have meant. Each is exit 2 with the
dotted form the system would have used. Run as real processes; ``--plan`` sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.model.shorthand import numeric_shorthand
from tests.test_output_clashes import assert_usage, run

DOTTED = "a numeric shorthand for 127.0.0.1; write the address dotted"


@pytest.mark.parametrize(("text", "dotted"), [
    ("0x7f000001", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"), ("1.2.3.0x4", "1.2.3.4"), ("010.0.0.1", "8.0.0.1"),
    ("127.0.0.1", None), ("ct3.example.org", None), ("deadbeef", None), ("", None),
    ("127.1 x", None), ("::1", None), ("08.0.0.1", None),
])
def test_what_is_a_shorthand(text: str, dotted: str | None) -> None:
    assert numeric_shorthand(text) == dotted


@pytest.mark.parametrize("target", ["0x7f000001", "2130706433", "127.1", "0177.0.0.1",
                                    "0x7f.1-5", "127.1/32"])
def test_target_on_the_command_line(target: str, tmp_path: Path) -> None:
    # 0x7f000001 was resolved to 127.0.0.1 and scanned; the others were "not an address".
    assert_usage(run("scan", "--plan", target, "-p", "9", cwd=tmp_path), "TARGET", DOTTED)


def test_target_in_a_targets_file(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("127.0.0.2\n0x7f000001  # the CT\n")
    assert_usage(run("scan", "--plan", "-T", "t.txt", "-p", "9", cwd=tmp_path),
                 "0x7f000001: " + DOTTED)


@pytest.mark.parametrize(("option", "value"), [("--exclude", "0x7f000001"),
                                               ("--scope", "127.1/32")])
def test_exclude_and_scope(option: str, value: str, tmp_path: Path) -> None:
    assert_usage(run("scan", "--plan", "127.0.0.2", "-p", "9", option, value, cwd=tmp_path),
                 option, DOTTED)


def test_do_not_probe_file(tmp_path: Path) -> None:
    """Read as a name, resolved, and the fence put on whatever the resolver guessed."""
    (tmp_path / "fence.txt").write_text("198.18.9.9 printer\n0x7f000001 fragile CT\n")
    assert_usage(run("scan", "--plan", "127.0.0.2", "-p", "9", "--exclude-file", "fence.txt",
                     cwd=tmp_path), "fence.txt:2: 0x7f000001: " + DOTTED)


@pytest.mark.parametrize(("text", "where"), [
    ('do_not_probe:\n  - host: "0x7f000001"\n    reason: fragile\n', "do_not_probe.0.host"),
    ('waivers:\n  - host: "127.1"\n    rule: dicom-echo-open\n    reason: r\n'
     "    approved_by: me\n    expires: 2030-01-01\n", "waivers.0.host"),
    ('baselines:\n  - cidr: "0177.0.0.0/8"\n    baseline: generic-modality\n',
     "baselines.0.cidr"),
], ids=["do-not-probe", "waiver-host", "pin-cidr"])
def test_policy(text: str, where: str, tmp_path: Path) -> None:
    """A waiver or pin host of 127.1 never equalled a scanned address: it silently matched
    nothing."""
    (tmp_path / "policy.yaml").write_text(text)
    dotted = "127.0.0.0" if "cidr" in where else "127.0.0.1"
    assert_usage(run("scan", "--plan", "127.0.0.2", "-p", "9", "--policy", "policy.yaml",
                     cwd=tmp_path),
                 f"policy.yaml:2: {where}: ", f"a numeric shorthand for {dotted}")


@pytest.mark.parametrize("key", ["targets", "exclude", "do_not_probe", "scope"])
def test_site_configuration(key: str, tmp_path: Path) -> None:
    job = {"targets": "[127.0.0.2]", key: '["0x7f000001"]'}
    if key == "scope":
        job[key] = '["0x7f000001/32"]'
    body = "".join(f"    {k}: {v}\n" for k, v in job.items())
    (tmp_path / "site.yaml").write_text(f"version: 1\njobs:\n  night:\n    ports: '9'\n{body}")
    assert_usage(run("config", "check", "site.yaml", cwd=tmp_path), "job night", DOTTED)


def test_dotted_addresses_and_names_still_work(tmp_path: Path) -> None:
    (tmp_path / "fence.txt").write_text("127.0.0.3 kept out\nlocalhost\n")
    out = run("scan", "--plan", "127.0.0.2", "127.0.0.0/30", "-p", "9", "--exclude",
              "127.0.0.4", "--exclude-file", "fence.txt", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_sensor_scope(tmp_path: Path) -> None:
    """A sensor's scope is the promise made once for all its jobs: it said only "is not a
    network (CIDR)"."""
    init = run("central", "init", "c", "--address", "127.0.0.1", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert_usage(run("central", "add-sensor", "c", "s1", "--scope", "0177.0.0.0/8",
                     cwd=tmp_path), "--scope 0177.0.0.0: a numeric shorthand for 127.0.0.0")
    assert not (tmp_path / "c" / "sensors" / "s1").exists()
