"""central run where another program already listens on central's address: nats-server
exited at once, the listening check found the other program, and central dialled it
for ever (SIGTERM did not stop it). Now one line and exit 3 before nats-server starts."""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet_harness import dicomscan
from tests.test_fleet_inputs import one_line_error

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None,
                                reason="needs nats-server")


@contextlib.contextmanager
def centre_behind_a_silent_listener(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A centre made for a port where another program listens: it accepts, never speaks."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        root = tmp_path / "c"
        assert dicomscan("central", "init", str(root), "--listen", f"127.0.0.1:{port}"
                         ).returncode == 0
        yield root, port


def test_central_run_on_an_address_another_program_holds(tmp_path: Path) -> None:
    with centre_behind_a_silent_listener(tmp_path) as (root, port):
        one_line_error(dicomscan("central", "run", str(root), timeout=30), 3,
                       f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert not (root / "nats" / "nats-server.pid").exists()


def test_central_run_stops_on_sigterm_while_its_server_does_not_answer(
        tmp_path: Path) -> None:
    """--external-server on a port where something accepts and never answers: central
    dialled for ever and SIGTERM went unheard; it now stops with the reason, exit 3."""
    import signal
    import subprocess
    import sys
    import time

    with centre_behind_a_silent_listener(tmp_path) as (root, port):
        proc = subprocess.Popen([sys.executable, "-m", "scanner", "central", "run",
                                 str(root), "--external-server"], stderr=subprocess.PIPE,
                                text=True)
        try:
            time.sleep(3)
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 3, err
    assert f"stopped before the nats-server at tls://127.0.0.1:{port} answered" in err
    assert "Traceback" not in err, err
