"""An imaging subnet built from network namespaces, for tests, the demo and the benchmark.

Layout: a "switch" namespace holds a bridge; every device and the scanner get a namespace
of their own, joined to the bridge by a veth pair created inside the switch namespace,
with an address from 198.18.0.0/15 and, if asked, a chosen MAC. No namespace gets a
route beyond its own subnet and nothing is created in the root namespace, so no packet of
the lab can reach the host's networks. Devices run real software (DCMTK storescp,
Orthanc) or plain TCP listeners, started with ``ip netns exec``; a device's ``drop`` ports
get an nftables drop rule in its namespace so they read as filtered.

Every namespace is named ``dscnlab-<lab>-...``: a lab left over by a crashed run is
found by that prefix and removed before a new one starts. Needs root and iproute2
(and nftables for ``drop``). Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from scanner.lab.errors import PeerStartError
from scanner.lab.netns_spec import DeviceSpec, LabSpec, ServiceSpec

PREFIX = "dscnlab-"
STORESCP = "/usr/bin/storescp"
ORTHANC = "/usr/sbin/Orthanc"
CTN_STORAGE_BIN = "/usr/bin/simple_storage"  # Debian package ctn
START_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1

# A plain TCP listener: sends its banner to each client, then waits for the client to go.
_LISTENER = """\
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(64)
banner = sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
def serve(c):
    with c:
        c.settimeout(10)
        try:
            c.sendall(banner)
            while c.recv(4096):
                pass
        except OSError:
            pass
while True:
    threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
"""


class LabError(RuntimeError):
    """The lab could not be built (missing tool, no root, a command failed)."""


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    out = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {out.stderr.strip() or out.returncode}")
    return out.stdout


def _die_with_parent() -> None:
    # The children go away even if the lab's owner is killed with SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def lab_namespaces(lab_name: str | None = None) -> list[str]:
    """Namespaces of labs named ``lab_name`` (all labs when None) that exist now."""
    prefix = PREFIX + (f"{lab_name}-" if lab_name else "")
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(prefix)]


def delete_namespace(ns: str) -> None:
    """Kill every process inside ``ns``, then delete it (its veths and bridge go with it)."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def cleanup(lab_name: str | None = None) -> list[str]:
    """Remove leftovers of earlier runs; returns the namespaces removed."""
    found = lab_namespaces(lab_name)
    for ns in found:
        delete_namespace(ns)
    return found


class NetnsLab:
    """A running namespace lab. Use ``running_lab(spec)``; ``stop()`` is idempotent."""

    def __init__(self, spec: LabSpec) -> None:
        self.spec = spec
        self.switch = f"{PREFIX}{spec.name}-sw"
        self.scanner_ns = f"{PREFIX}{spec.name}-scan"
        self._procs: list[subprocess.Popen[bytes]] = []
        self._created: list[str] = []
        self._tmp = Path(tempfile.mkdtemp(prefix=f"dicomscan-netns-{spec.name}-"))

    def ns_of(self, device: str) -> str:
        return f"{PREFIX}{self.spec.name}-d-{device}"

    # ------------------------------------------------------------------ building

    def start(self) -> None:
        missing = [t for t in ("ip",) if shutil.which(t) is None]
        if os.geteuid() != 0 or missing:
            raise LabError("the namespace lab needs root and iproute2 ('ip')")
        cleanup(self.spec.name)
        self._add_ns(self.switch)
        _run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        self._plug(self.scanner_ns, self.spec.scanner, 0)
        for i, dev in enumerate(self.spec.devices, start=1):
            ns = self.ns_of(dev.name)
            self._plug(ns, dev, i)
            if dev.drop:
                self._firewall(ns, dev.drop)
        for dev in self.spec.devices:
            for svc in dev.services:
                self._start_service(dev, svc)
        for dev in self.spec.devices:
            self._wait_listening(dev)

    def _add_ns(self, ns: str) -> None:
        _run(["ip", "netns", "add", ns])
        self._created.append(ns)
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _plug(self, ns: str, dev: DeviceSpec, index: int) -> None:
        """A namespace with eth0 on the bridge: address, MAC, and no route out."""
        self._add_ns(ns)
        port = f"p{index}"
        # Created in the switch namespace with its peer moved straight into ``ns``:
        # no interface of the lab ever exists in the root namespace.
        _run(["ip", "-n", self.switch, "link", "add", port, "type", "veth",
              "peer", "name", "eth0", "netns", ns])
        _run(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"])
        if dev.mac:
            _run(["ip", "-n", ns, "link", "set", "eth0", "address", dev.mac.lower()])
        _run(["ip", "-n", ns, "addr", "add", f"{dev.address}/{self.spec.prefixlen}",
              "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _firewall(self, ns: str, ports: list[int]) -> None:
        if shutil.which("nft") is None:
            raise LabError("a device drops ports but nftables ('nft') is not installed")
        rules = (
            "table inet dscnlab {\n chain input {\n"
            "  type filter hook input priority 0; policy accept;\n"
            f"  tcp dport {{ {', '.join(str(p) for p in ports)} }} drop\n }}\n}}\n"
        )
        _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], stdin=rules)

    def _start_service(self, dev: DeviceSpec, svc: ServiceSpec) -> None:
        work = self._tmp / f"{dev.name}-{svc.port}"
        work.mkdir()
        if svc.kind == "storescp":
            (work / "in").mkdir()
            argv = [STORESCP, "--aetitle", svc.aet, *svc.args, "-od", str(work / "in"),
                    str(svc.port)]
        elif svc.kind == "orthanc":
            argv = [ORTHANC, str(self._orthanc_config(work, svc))]
        elif svc.kind == "ctn":
            (work / "images").mkdir()
            argv = [CTN_STORAGE_BIN, "-c", svc.aet, "-x", str(work / "images"),
                    str(svc.port)]
        else:
            argv = [sys.executable, "-c", _LISTENER, str(svc.port), svc.banner]
        if not os.access(argv[0], os.X_OK):
            raise PeerStartError(svc.kind, f"{argv[0]} is not installed")
        env = dict(os.environ, TCP_NODELAY="1")
        with (work / "log").open("wb") as log:
            self._procs.append(subprocess.Popen(
                ["ip", "netns", "exec", self.ns_of(dev.name), *argv], cwd=work, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            ))

    @staticmethod
    def _orthanc_config(work: Path, svc: ServiceSpec) -> Path:
        (work / "db").mkdir()
        config = {
            "Name": f"dicomscan-netns-{svc.aet}", "DicomAet": svc.aet, "DicomPort": svc.port,
            "HttpPort": svc.http_port or 8042, "HttpServerEnabled": svc.http_port is not None,
            "RemoteAccessAllowed": True, "Plugins": [], "SaveJobs": False,
            "StorageDirectory": str(work / "db"), "IndexDirectory": str(work / "db"),
        }
        path = work / "orthanc.json"
        path.write_text(json.dumps(config))
        return path

    def _wait_listening(self, dev: DeviceSpec) -> None:
        wanted = {s.port for s in dev.services}
        wanted |= {s.http_port for s in dev.services if s.http_port}
        deadline = time.monotonic() + START_TIMEOUT
        while wanted:
            for line in self.exec(self.ns_of(dev.name), ["ss", "-ltnH"]).splitlines():
                local = line.split()[3] if len(line.split()) > 3 else ""
                wanted.discard(int(local.rsplit(":", 1)[-1]) if ":" in local else -1)
            if not wanted:
                return
            dead = [p for p in self._procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f.read_text(errors="replace")[-400:]
                                 for f in self._tmp.glob(f"{dev.name}-*/log"))
                raise PeerStartError(dev.name, f"ports {sorted(wanted)} not listening", logs)
            time.sleep(0.05)

    # ------------------------------------------------------------------ using

    def exec(self, ns: str, argv: Sequence[str], timeout: float = 600) -> str:
        """Run ``argv`` inside namespace ``ns``; returns stdout, raises LabError on failure."""
        out = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                             text=True, timeout=timeout, check=False)
        if out.returncode != 0:
            raise LabError(f"{' '.join(argv)} in {ns} exited {out.returncode}: {out.stderr}")
        return out.stdout

    def in_scanner(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs in the scanner's namespace."""
        return ["ip", "netns", "exec", self.scanner_ns, *argv]

    def namespaces(self) -> list[str]:
        return list(self._created)

    # ------------------------------------------------------------------ teardown

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        for ns in reversed(self._created):
            delete_namespace(ns)
        self._created.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)


@contextlib.contextmanager
def running_lab(spec: LabSpec) -> Iterator[NetnsLab]:
    """Build the lab, yield it, and tear it down on exit, error, Ctrl-C or SIGTERM."""
    lab = NetnsLab(spec)
    previous = None
    if _main_thread():
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scanner.lab.netns LAB.yaml [COMMAND...]``: start the lab, run COMMAND in
    the scanner's namespace (default: an interactive shell), tear the lab down."""
    from scanner.lab.netns_spec import LabSpecError, load_lab_spec

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(main.__doc__)
        return 2
    try:
        spec = load_lab_spec(args[0])
    except LabSpecError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    try:
        with running_lab(spec) as lab:
            for dev in spec.devices:
                print(f"lab: {dev.name:8} {dev.address:15} {dev.mac or '-':17} "
                      f"{', '.join(f'{s.kind}:{s.port}' for s in dev.services)}", file=sys.stderr)
            return subprocess.call(lab.in_scanner(args[1:] or [os.environ.get("SHELL", "sh")]))
    except (LabError, PeerStartError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
