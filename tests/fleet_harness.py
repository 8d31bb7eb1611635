"""A central site and its sensors as real processes on loopback, for the fleet tests:
``dicomscan central run`` (which starts Debian's nats-server) and ``dicomscan sensor``,
each stopped by its own PID."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scanner.fleet.layout import CentralDir
from scanner.fleet.ledger import FINAL, JobRow, Ledger
from scanner.lab.process import free_port
from scanner.model import ScanSettings


def loopback_settings(ports: str, profile: str = "safe") -> ScanSettings:
    """Checked settings for a scan of 127.0.0.1 without discovery, as submit builds them."""
    from scanner.engine.settings import build_settings

    return build_settings({
        "targets": ["127.0.0.1"], "targets_file": None, "exclude": (), "scope": (),
        "allow_public": False, "ports": ports, "profile": profile, "calling_ae": "DICOMSCAN",
        "ae_title": (), "ae_guess": None, "ae_wordlist": None, "intrusive": False,
        "discovery": "none"})


def in_ns(ns: str | None) -> list[str]:
    return ["ip", "netns", "exec", ns] if ns else []


def dicomscan(*args: str, timeout: float = 60, ns: str | None = None,
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*in_ns(ns), sys.executable, "-m", "scanner", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


class Fleet:
    def __init__(self, root: Path, ack_wait: float = 3, max_deliver: int = 3,
                 central_ns: str | None = None, address: str = "127.0.0.1") -> None:
        """On loopback, or with central in namespace ``central_ns`` dialled at ``address``."""
        self.root = root
        self.dir = root / "central"
        self.d = CentralDir(self.dir)
        self.central_ns = central_ns
        self.sensor_ns: dict[str, str | None] = {}
        self.port = 4222 if central_ns else free_port("127.0.0.1")
        listen = f"0.0.0.0:{self.port}" if central_ns else f"{address}:{self.port}"
        out = dicomscan("central", "init", str(self.dir), "--listen", listen,
                        "--address", address,
                        "--ack-wait", str(ack_wait), "--max-deliver", str(max_deliver))
        assert out.returncode == 0, out.stderr
        self.central: subprocess.Popen[bytes] | None = None
        self.sensors: dict[str, subprocess.Popen[bytes]] = {}
        self._restarts: dict[str, int] = {}

    def add_sensor(self, name: str, *scope: str) -> Path:
        args = [a for s in scope for a in ("--scope", s)]
        out = dicomscan("central", "add-sensor", str(self.dir), name, *args)
        assert out.returncode == 0, out.stderr
        return self.d.bundle(name)

    def _spawn(self, args: list[str], log: Path, ns: str | None = None,
               ) -> subprocess.Popen[bytes]:
        # 'ip netns exec' execs the command: the PID is the dicomscan process itself.
        with log.open("ab") as fh:
            return subprocess.Popen([*in_ns(ns), sys.executable, "-m", "scanner", *args],
                                    stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start_central(self) -> None:
        self.central = self._spawn(["central", "run", str(self.dir), "-v"],
                                   self.root / "central.log", self.central_ns)
        deadline = time.monotonic() + 30
        while "collecting into" not in self.log("central"):
            assert self.central.poll() is None, self.log("central")
            assert time.monotonic() < deadline, self.log("central")
            time.sleep(0.1)

    def start_sensor(self, name: str, ns: str | None = None) -> subprocess.Popen[bytes]:
        ns = self.sensor_ns.setdefault(name, ns)
        proc = self._spawn(["sensor", str(self.d.bundle(name)), "-v"],
                           self.root / f"sensor-{name}.log", ns)
        self.sensors[name] = proc
        return proc

    def wait_sensor_ready(self, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        marker = f"sensor {name} connected"
        while self.log(f"sensor-{name}").count(marker) < 1 + self._restarts.get(name, 0):
            assert time.monotonic() < deadline, self.log(f"sensor-{name}")
            time.sleep(0.1)

    def kill_sensor(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.sensors.pop(name)
        os.kill(proc.pid, sig)
        proc.wait(10)
        self._restarts[name] = self._restarts.get(name, 0) + 1

    def log(self, which: str) -> str:
        path = self.root / f"{which}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def submit(self, sensor: str, *args: str) -> str:
        out = dicomscan("submit", str(self.dir), "--sensor", sensor, *args, ns=self.central_ns)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def job(self, job_id: str) -> JobRow:
        ledger = Ledger(self.d.ledger)
        try:
            row = ledger.get(job_id)
        finally:
            ledger.close()
        assert row is not None
        return row

    def wait_job(self, job_id: str, timeout: float = 90, final: bool = True,
                 state: str | None = None) -> JobRow:
        deadline = time.monotonic() + timeout
        while True:
            row = self.job(job_id)
            if (state is not None and row.state.value == state) or (
                    state is None and final and row.state in FINAL):
                return row
            assert time.monotonic() < deadline, (row, self.log("central"))
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in [*self.sensors.values(), *([self.central] if self.central else [])]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.sensors.clear()

    def central_call(self, coro_fn: Any) -> Any:
        """Run ``coro_fn(js)`` on a central connection (as the test's own client)."""
        from scanner.fleet.central import connect_central

        async def go() -> Any:
            nc = await connect_central(self.d, self.d.load(), reconnect=False)
            try:
                return await coro_fn(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(go())

    def history_scans(self) -> list[dict[str, Any]]:
        out = dicomscan("history", "list", "--history", str(self.dir / "history.sqlite"),
                        "--format", "json")
        assert out.returncode == 0, out.stderr
        return list(json.loads(out.stdout))
