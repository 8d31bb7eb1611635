"""Output paths a user can get wrong: a name the system cannot take, the same file named
twice, an output that is one of the command's inputs. Each is exit 2 and one message
before any work, never a traceback or a replaced input. Run as real processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAVED = ROOT / "fixtures" / "scans" / "ctn-called-ae-enforced.json"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "HOME": str(cwd)})


def assert_usage(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    for word in words:
        assert word in out.stderr, out.stderr[-2000:]


LONG = "A" * 300  # longer than any file name Linux takes (255 bytes)


@pytest.mark.parametrize("args", [
    ("scan", "--plan", "127.0.0.1", "-o", LONG),
    ("report", "saved.json", "-o", LONG),
    ("report", "saved.json", "-o", f"csv:{LONG}"),
    ("audit", "--from", "saved.json", "-o", LONG),
], ids=["scan", "report", "report-format", "audit"])
def test_output_name_too_long_is_a_usage_error(args: tuple[str, ...], tmp_path: Path) -> None:
    shutil.copy(SAVED, tmp_path / "saved.json")
    assert_usage(run(*args, cwd=tmp_path), "cannot use", "File name too long")


def test_same_output_file_twice_is_refused(tmp_path: Path) -> None:
    shutil.copy(SAVED, tmp_path / "saved.json")
    assert_usage(run("report", "saved.json", "-o", "a.csv", "-o", "./a.csv", cwd=tmp_path),
                 "named twice")
    assert_usage(run("report", "saved.json", "-o", "csv:out.x", "-o", "out.x",
                     cwd=tmp_path), "named twice")
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "out.x").exists()
    # a device may take two outputs; two files are still two files
    ok = run("report", "saved.json", "-o", "/dev/null", "-o", "csv:/dev/null",
             "-o", "a.csv", "-o", "b.csv", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text() != ""


def test_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path: Path) -> None:
    shutil.copy(SAVED, tmp_path / "saved.json")
    saved = (tmp_path / "saved.json").read_bytes()
    (tmp_path / "targets.txt").write_text("127.0.0.1\n")
    (tmp_path / "policy.yaml").write_text("waivers: []\n")
    cases = [
        (("report", "saved.json", "-o", "saved.json"), "SCAN.json"),
        (("report", "saved.json", "-o", "table:./saved.json"), "SCAN.json"),
        (("audit", "--from", "saved.json", "-o", "saved.json"), "--from"),
        (("scan", "--plan", "-T", "targets.txt", "-o", "targets.txt"), "--targets-file"),
        (("scan", "--plan", "127.0.0.1", "--policy", "policy.yaml", "-o", "policy.yaml"),
         "--policy"),
        (("scan", "127.0.0.1", "-p", "1", "--job", "j", "-T", "targets.txt",
          "--drift-output", "jsonl:targets.txt"), "--targets-file"),
    ]
    for args, source in cases:
        assert_usage(run(*args, cwd=tmp_path), f"is also the input {source}")
    assert (tmp_path / "saved.json").read_bytes() == saved
    assert (tmp_path / "targets.txt").read_text() == "127.0.0.1\n"
    assert (tmp_path / "policy.yaml").read_text() == "waivers: []\n"


def test_output_onto_the_history_is_refused(tmp_path: Path) -> None:
    """scan and diff with -o the history file itself replaced the store with a report
    (scan: before it was even created; diff: every scan in it lost)."""
    out = run("scan", "127.0.0.1", "-p", "1", "--history", "h.sqlite", "-o", "h.sqlite",
              cwd=tmp_path)
    assert_usage(out, "is also the input --history")
    assert not (tmp_path / "h.sqlite").exists()
    for _ in range(2):
        done = run("scan", "127.0.0.1", "-p", "1", "--job", "j", "--history", "h.sqlite",
                   "--format", "json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    store = (tmp_path / "h.sqlite").read_bytes()
    assert_usage(run("diff", "--history", "h.sqlite", "-o", "h.sqlite", cwd=tmp_path),
                 "is also the input --history")
    assert (tmp_path / "h.sqlite").read_bytes() == store
    listed = run("history", "list", "--history", "h.sqlite", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.count("complete") == 2, listed


def test_two_outputs_on_standard_output_are_refused(tmp_path: Path) -> None:
    """Two formats on stdout came out one after the other in one stream (a JSON document,
    then a CSV table): refused before any packet, naming both."""
    shutil.copy(SAVED, tmp_path / "saved.json")
    cases = [
        (("scan", "127.0.0.1", "-p", "9", "--history", "h.sqlite", "-o", "json:-",
          "-o", "csv:-"), ("'json:-'", "'csv:-'")),
        (("report", "saved.json", "-o", "-", "-o", "-"), ("-o '-' and -o '-'",)),
        (("report", "saved.json", "-o", "json:-", "-o", "a.csv", "-o", "table:-"),
         ("'json:-'", "'table:-'")),
        (("scan", "127.0.0.1", "-p", "9", "--job", "j", "--history", "h.sqlite",
          "--drift-output", "jsonl:-"), ("the results (no -o)", "--drift-output 'jsonl:-'")),
    ]
    for args, words in cases:
        out = run(*args, cwd=tmp_path)
        assert_usage(out, "both write to standard output", *words)
        assert out.stdout == ""
    assert not (tmp_path / "h.sqlite").exists()  # refused before the scan began
    assert not (tmp_path / "a.csv").exists()
    # /dev/stdout is standard output too when it is the same pipe
    piped = subprocess.run(
        f"{sys.executable} -m scanner report saved.json -o - -o csv:/dev/stdout | cat",
        shell=True, capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "both write to standard output" in piped.stderr and piped.stdout == ""
    # one on stdout and the others in files, or /dev/null twice, still work
    ok = run("report", "saved.json", "-o", "json:-", "-o", "a.csv", "-o", "/dev/null",
             "-o", "csv:/dev/null", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("{") and (tmp_path / "a.csv").read_text()
