"""This checkout installed as a user installs it: a plain ``pip install`` into a venv of its
own, not the editable install a developer runs the tests from.

A start-up benchmark measures the whole process, and an editable install or the machine's
own site hooks (``.pth`` files other tools drop into the system interpreter's
site-packages) cost tens of milliseconds before the first line of dicomscan runs. A venv
reads only its own site-packages, so the figures are the product's, on this interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv"


def installed_dicomscan() -> Path:
    """The console script of a venv holding this checkout's current code (the venv is
    made once, about 30 s; later calls only reinstall the package itself)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"making {VENV} (once) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # The code measured is the tree as it is now; deps only when something is missing.
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(ROOT)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*pip, str(ROOT)], check=True, stdout=subprocess.DEVNULL)
    return VENV / "bin" / "dicomscan"


def clean_env() -> dict[str, str]:
    """The environment without what would point the venv back at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
