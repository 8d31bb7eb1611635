"""The layering is enforced, not hoped for: the import-linter contracts in pyproject.toml
hold on the tree, and they break on an upward import or a new circle (checked on a copy
of the tree with one bad import added)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(LINT, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def copy_tree(tmp_path: Path) -> Path:
    for package in ("scanner", "probes"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "data", "schema"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_hold() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "broken"),
    [
        # a probe reaching up into the engine
        ("probes/ports.py", "import scanner.engine.job", "Probes measure and never judge"),
        # the model reaching up into the rules
        ("scanner/model/base.py", "import scanner.rules.catalogue", "Layers only look down"),
        # the labs using the command line instead of the engine
        ("scanner/lab/demo_lab.py", "import scanner.cli.common", "Nothing below the command line"),
        # a circle between two rule modules
        ("scanner/rules/catalogue.py", "import scanner.rules.evaluate", "No import circles"),
    ],
)
def test_contracts_break_on_a_bad_import(
    tmp_path: Path, module: str, bad_import: str, broken: str
) -> None:
    root = copy_tree(tmp_path)
    target = root / module
    target.write_text(target.read_text() + f"\n{bad_import}  # noqa\n")
    out = lint(root)
    assert out.returncode != 0
    verdicts = [line for line in out.stdout.splitlines() if line.startswith(broken)]
    assert verdicts and verdicts[0].endswith("BROKEN"), out.stdout
