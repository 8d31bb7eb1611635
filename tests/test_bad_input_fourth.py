"""Bad input, fourth pass: an AE wordlist with no title, lax booleans in the files a user
edits. Each was accepted silently (AE guessing tried nothing; 1 or "yes" read as true);
each is now one line and exit 2. Run as real processes where the command line is the
point, in-process where the file's reader is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.parametrize("text", ["", "\n\n", "# titles\n   \n# none yet\n"],
                         ids=["empty", "blank", "comments"])
def test_ae_wordlist_without_a_title_is_refused(text: str, tmp_path: Path) -> None:
    """AE guessing with such a list quietly tried nothing."""
    (tmp_path / "words.txt").write_text(text)
    assert_usage(run("scan", "--plan", "127.0.0.1", "-p", "9", "--ae-guess",
                     "--ae-wordlist", "words.txt", cwd=tmp_path),
                 "--ae-wordlist", "'words.txt' holds no AE title")


def test_ae_wordlist_with_one_title_is_taken(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("# one\n\nPACS\n")
    out = run("scan", "--plan", "127.0.0.1", "-p", "9", "--ae-guess", "--ae-wordlist",
              "words.txt", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
