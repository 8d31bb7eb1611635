"""pynetdicom's own applications as lab peers: ``python -m pynetdicom echoscp``, ``storescp``
and ``qrscp``, as their users run them.

They are real software nobody here wrote, with their own defaults (qrscp answers
Verification, Storage and Query/Retrieve for any calling and called AE title and knows one
move destination, STORESCP), unlike ``start_pynetdicom_scp``, whose behaviour the lab
script chooses. Each binds the lab address itself (``--bind-address``), so no shim is
needed, and keeps its files in the peer's temporary folder.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from scanner.lab.errors import PeerStartError
from scanner.lab.process import DEFAULT_TIMEOUT, LOOPBACK, RunningPeer, free_port, launch

App = Literal["echoscp", "storescp", "qrscp"]
# The AE title each app calls itself unless told otherwise (pynetdicom 2 and 3).
DEFAULT_AE_TITLES: dict[App, str] = {"echoscp": "ECHOSCP", "storescp": "STORESCP",
                                     "qrscp": "QRSCP"}


def start_pynetdicom_app(
    app: App,
    aet: str | None = None,
    *,
    args: Sequence[str] = (),
    host: str = LOOPBACK,
    timeout: float = DEFAULT_TIMEOUT,
) -> RunningPeer:
    """``python -m pynetdicom APP`` on a free port of ``host``. storescp writes what it
    receives to ``TMP/received``; qrscp keeps its database and instances in TMP. ``args``
    go to the app as they are, e.g. ``["-v"]``."""
    if importlib.util.find_spec("pynetdicom") is None:
        raise PeerStartError(app, "the pynetdicom package is not installed")
    tmpdir = Path(tempfile.mkdtemp(prefix=f"dicomscan-pynetdicom-{app}-"))
    port = free_port(host)
    title = aet or DEFAULT_AE_TITLES[app]
    argv = [sys.executable, "-m", "pynetdicom", app]
    if app == "qrscp":  # its port is an option; its files would land in the working folder
        argv += ["--port", str(port), "--database-location", str(tmpdir / "qr.sqlite"),
                 "--instance-location", str(tmpdir / "instances")]
    else:
        argv.append(str(port))
    if app == "storescp":
        argv += ["--output-directory", str(tmpdir / "received")]
        (tmpdir / "received").mkdir()
    argv += ["--bind-address", host, "--ae-title", title, *args]
    return launch(name=f"pynetdicom-{app}", product=f"pynetdicom {app}", argv=argv,
                  port=port, ae_title=title, tmpdir=tmpdir, timeout=timeout,
                  needs_shim=False, host=host)
