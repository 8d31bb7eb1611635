"""Helpers for the TLS tests: certificates, a hand-built probe context, scripted peers.

Real peers (DCMTK storescp, Orthanc) come from ``scanner.lab.peers``, which keeps
them on loopback. Scripted peers here are tiny socket servers on 127.0.0.1 that
misbehave on purpose (hang mid-handshake, answer garbage).
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from probes.context import HostGate, HostState, ProbeContext, ServiceState
from probes.tls import TlsOptions, make_tls_probe
from scanner.lab import peers
from scanner.model import Host, ScanSettings, Timeouts

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def generate_certs(folder: Path) -> Path:
    """fixtures/make_certs.py's ``generate`` (the fixtures folder is not a package)."""
    spec = importlib.util.spec_from_file_location("make_certs", ROOT / "fixtures" / "make_certs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: Path = module.generate(folder)
    return result


def settings(
    port: int, per_host: int = 8, answer_timeout: float = 3.0, spacing: float = 0.0
) -> ScanSettings:
    return ScanSettings(
        targets=["127.0.0.1"],
        target_specs=["127.0.0.1"],
        ports=[port],
        max_concurrency=64,
        per_host_connections=per_host,
        probe_spacing=spacing,
        timeouts=Timeouts(connect=2.0, dicom=answer_timeout, dimse=answer_timeout, host=60.0),
    )


def run_probe(
    port: int,
    options: TlsOptions | None = None,
    *,
    name: str = "unknown",
    per_host: int = 8,
    answer_timeout: float = 3.0,
    spacing: float = 0.0,
) -> tuple[ServiceState, Host, float]:
    """Run the TLS probe on one loopback port as the engine would.

    Returns the service state, the frozen host (for the rules) and the elapsed seconds.
    """
    s = settings(port, per_host, answer_timeout, spacing)
    state = HostState("127.0.0.1", None)
    svc = ServiceState(port, name=name)
    state.services[port] = svc

    async def go() -> float:
        gate = HostGate(asyncio.Semaphore(s.max_concurrency), s.per_host_connections, spacing)
        ctx = ProbeContext("127.0.0.1", s, gate, state)
        started = time.perf_counter()
        await make_tls_probe(options or TlsOptions())(ctx, svc)
        return time.perf_counter() - started

    elapsed = asyncio.run(go())
    return svc, state.freeze(), elapsed


def of_kind(svc: ServiceState, kind: str) -> list[Any]:
    return [o for o in svc.observations if o.kind == kind]


def versions(svc: ServiceState) -> dict[str, Any]:
    return {v.version: v for v in of_kind(svc, "tls-version")}


def suites(svc: ServiceState, version: str) -> set[str]:
    return {s.name for s in versions(svc)[version].suites}


def dcmtk_tls(certs: Path, *args: str, cert: str = "server") -> peers.RunningPeer:
    """storescp +tls with the given certificate and options, on a free loopback port."""
    return peers.start_storescp(
        ["+tls", str(certs / f"{cert}.key"), str(certs / f"{cert}.pem"), *args]
    )


def orthanc_tls(certs: Path, required: bool) -> peers.RunningPeer:
    return peers.start_orthanc(
        {
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(certs / "server.pem"),
            "DicomTlsPrivateKey": str(certs / "server.key"),
            "DicomTlsTrustedCertificates": str(certs / "ca.pem"),
            "DicomTlsRemoteCertificateRequired": required,
            "HttpServerEnabled": False,
        }
    )


class ScriptedServer:
    """A loopback TCP server running ``handler(conn)`` per connection, in a thread."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn, suppress(OSError):
            self.handler(conn)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@contextmanager
def scripted(handler: Callable[[socket.socket], None]) -> Iterator[ScriptedServer]:
    with ScriptedServer(handler) as server:
        yield server


def read_client_hello(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    header = conn.recv(5, socket.MSG_WAITALL)
    length = int.from_bytes(header[3:5], "big") if len(header) == 5 else 0
    return header + (conn.recv(length, socket.MSG_WAITALL) if length else b"")


def hang_mid_handshake(conn: socket.socket) -> None:
    """Read the ClientHello, send the start of a ServerHello record, then go silent."""
    read_client_hello(conn)
    conn.sendall(bytes([22, 3, 3, 0, 80]) + bytes([2, 0, 0, 76, 3, 3]))
    time.sleep(8)


def garbage(conn: socket.socket) -> None:
    """Answer a ClientHello with bytes that are not TLS (and not DICOM)."""
    read_client_hello(conn)
    conn.sendall(b"\x00\x07NONSENSE\x9f\x9f\x01 not a tls record at all")
    time.sleep(0.5)


def silent(conn: socket.socket) -> None:
    """Accept and never answer."""
    time.sleep(8)


def python_tls_server(
    certs: Path,
    *,
    versions: tuple[ssl.TLSVersion, ssl.TLSVersion] = (ssl.TLSVersion.TLSv1_3,) * 2,
    require_client_cert: bool = False,
) -> Callable[[socket.socket], None]:
    """A handler that speaks TLS with Python's ssl (OpenSSL), then holds the session."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets OpenSSL 3 speak TLS 1.0 when asked
    context.minimum_version, context.maximum_version = versions
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certs / "ca.pem")

    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        with suppress(ssl.SSLError, OSError), context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)  # wait for the client, or fail on its missing certificate

    return handler
