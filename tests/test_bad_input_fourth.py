"""Bad input, fourth pass: an AE wordlist with no title, lax booleans in the files a user
edits. Each was accepted silently (AE guessing tried nothing; 1 or "yes" read as true);
each is now one line and exit 2. Run as real processes where the command line is the
point, in-process where the file's reader is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_output_clashes import assert_usage, run

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("text", "words"), [
    ("", "cannot read AE title wordlist 'words.txt': empty (0 bytes)"),  # fifth pass
    ("\n\n", "--ae-wordlist: 'words.txt' holds no AE title"),
    ("# titles\n   \n# none yet\n", "--ae-wordlist: 'words.txt' holds no AE title"),
], ids=["empty", "blank", "comments"])
def test_ae_wordlist_without_a_title_is_refused(text: str, words: str, tmp_path: Path) -> None:
    """AE guessing with such a list quietly tried nothing."""
    (tmp_path / "words.txt").write_text(text)
    assert_usage(run("scan", "--plan", "127.0.0.1", "-p", "9", "--ae-guess",
                     "--ae-wordlist", "words.txt", cwd=tmp_path), words)


def test_ae_wordlist_with_one_title_is_taken(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("# one\n\nPACS\n")
    out = run("scan", "--plan", "127.0.0.1", "-p", "9", "--ae-guess", "--ae-wordlist",
              "words.txt", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


BASELINE = ROOT / "baselines" / "generic-modality.yaml"


@pytest.mark.parametrize(("old", "new", "line"), [
    ("dicom-called-ae-not-enforced, required: true}",
     "dicom-called-ae-not-enforced, required: 1}", "expectations.called_ae_enforced.required"),
    ("dicom-called-ae-not-enforced, required: true}",
     'dicom-called-ae-not-enforced, required: "yes"}',
     "expectations.called_ae_enforced.required"),
    ("dicom-echo-open, allowed: false}", "dicom-echo-open, allowed: 0}",
     "expectations.echo_from_unknown.allowed"),
    ("dicom-echo-open, allowed: false}", 'dicom-echo-open, allowed: "off"}',
     "expectations.echo_from_unknown.allowed"),
], ids=["required-1", "required-yes-string", "allowed-0", "allowed-off-string"])
def test_baseline_boolean_that_is_not_true_or_false(old: str, new: str, line: str,
                                                    tmp_path: Path) -> None:
    """pydantic's lax booleans read 1, 0, "yes", "off" as true or false: a typo in a
    hand-edited baseline silently set an expectation."""
    text = BASELINE.read_text()
    assert old in text
    (tmp_path / "mine.yaml").write_text(text.replace(old, new).replace(
        "id: generic-modality", "id: mine"))
    lineno = next(i for i, row in enumerate(text.splitlines(), 1) if old in row)
    assert_usage(run("baselines", "validate", "mine.yaml", cwd=tmp_path),
                 f"mine.yaml:{lineno}: {line}: Input should be a valid boolean")


def test_baseline_with_true_and_false_still_validates(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(BASELINE.read_text().replace(
        "id: generic-modality", "id: mine"))
    out = run("baselines", "validate", "mine.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("value", ["1", '"yes"', '"true"'])
def test_site_configuration_allow_public_must_be_a_boolean(value: str, tmp_path: Path) -> None:
    """allow_public: 1 let a scheduled job scan public addresses."""
    (tmp_path / "site.yaml").write_text(
        "version: 1\njobs:\n  night:\n    targets: [127.0.0.1]\n    ports: '9'\n"
        f"    allow_public: {value}\n")
    assert_usage(run("config", "check", "site.yaml", cwd=tmp_path),
                 "site.yaml:6: jobs.night.allow_public: Input should be a valid boolean")
    (tmp_path / "site.yaml").write_text(
        "version: 1\njobs:\n  night:\n    targets: [127.0.0.1]\n    ports: '9'\n"
        "    allow_public: false\n")
    ok = run("config", "check", "site.yaml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("value", [1, "yes"])
def test_fleet_files_allow_public_must_be_a_boolean(value: object, tmp_path: Path) -> None:
    """central.json's or sensor.json's allow_public edited to 1 or "yes" let the sensor
    scan the public addresses of its scope."""
    from tests.fleet_harness import dicomscan
    from tests.test_fleet_inputs import central, one_line_error

    root = central(tmp_path)
    conf = root / "central.json"
    doc = json.loads(conf.read_text())
    doc["sensors"]["s1"]["allow_public"] = value
    conf.write_text(json.dumps(doc))
    one_line_error(dicomscan("jobs", str(root)), 2, "central.json",
                   "allow_public: Input should be a valid boolean")
    bundle = root / "sensors" / "s1" / "sensor.json"
    doc = json.loads(bundle.read_text())
    doc["allow_public"] = value
    bundle.write_text(json.dumps(doc))
    one_line_error(dicomscan("sensor", str(bundle.parent), timeout=30), 2, "sensor.json",
                   "allow_public: Input should be a valid boolean")
