"""Real DICOM peers on loopback, for the tests and for ``dicomscan demo``.

Each ``start_*`` function runs one real implementation (Orthanc, DCMTK's storescp and
dcmqrscp, MIR CTN's simple_storage, pynetdicom's own apps (``pynetdicom_apps``), or a
pynetdicom SCP of the lab's own) as a subprocess in its own
temporary directory, on a free port of 127.0.0.1, and returns once that process is
listening. ``RunningPeer.stop()`` kills it and removes the directory; ``lab()`` does that
for a whole set of peers, whatever happens.

Loopback only. Orthanc 1.10, DCMTK 3.6.7 and CTN have no option to choose a listening
address: they bind 0.0.0.0, which would put a test peer on every network of the machine.
So the native peers run with a small LD_PRELOAD library, compiled on first use with the
system C compiler, that turns wildcard binds into loopback binds and refuses to bind to,
connect to or send datagrams to any address outside loopback (calls made inside libc
itself, such as its DNS resolver, are not seen). Independently of that library, a peer
counts as started only when the kernel shows *its own* socket listening on 127.0.0.1;
a peer found listening anywhere else is killed at once. The checks read
``/proc/net/tcp{,6}`` rather than connecting, because connecting and closing without
sending data kills MIR CTN's simple_storage. Linux only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from scanner.lab.errors import PeerStartError
from scanner.lab.process import (
    DEFAULT_TIMEOUT,
    LOOPBACK,
    PeerInfo,
    RunningPeer,
    free_port,
    launch,
)
from scanner.lab.pynetdicom_apps import start_pynetdicom_app
from scanner.lab.shim import loopback_shim

# The harness names are re-exported: tests and the demo reach every peer through here.
__all__ = [
    "CTN_STORAGE_BIN",
    "DCMQRSCP_ALLOWED_AE",
    "DCMQRSCP_BIN",
    "DEFAULT_TIMEOUT",
    "LOOPBACK",
    "ORTHANC_BIN",
    "STORESCP_BIN",
    "PeerInfo",
    "PeerStartError",
    "RunningPeer",
    "available_starters",
    "free_port",
    "lab",
    "loopback_shim",
    "start_ctn_simple_storage",
    "start_dcmqrscp",
    "start_orthanc",
    "start_pynetdicom_app",
    "start_pynetdicom_scp",
    "start_storescp",
    "which_available",
]

ORTHANC_BIN = Path("/usr/sbin/Orthanc")
# Not plain "storescp": on PATH that may be pynetdicom's Python app of the same name.
STORESCP_BIN = Path("/usr/bin/storescp")
DCMQRSCP_BIN = Path("/usr/bin/dcmqrscp")
CTN_STORAGE_BIN = Path("/usr/bin/simple_storage")

# The one calling AE title (from this host) that the default dcmqrscp config lets in.
DCMQRSCP_ALLOWED_AE = "LABSCU"

def _require(binary: Path, name: str, package: str) -> None:
    if not os.access(binary, os.X_OK):
        raise PeerStartError(name, f"{binary} not found (Debian package {package!r})")


def _tmpdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"dicomscan-{name}-"))


# --------------------------------------------------------------------------- peers


def start_orthanc(
    config_overrides: dict[str, Any] | None = None,
    aet: str = "ORTHANC",
    *,
    host: str = LOOPBACK,
    verbose: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> RunningPeer:
    """Orthanc with its own config, SQLite index and storage in a temporary directory.

    DICOM and HTTP go on free loopback ports (``extra_ports["http"]``), remote HTTP access
    is off and no plugins load. ``config_overrides`` is merged over that, e.g.
    ``{"DicomCheckCalledAet": True}``, ``{"DicomModalities": {...}}`` or the
    ``DicomTls*`` settings; give file paths in it as absolute paths. Orthanc logs to
    stderr, which goes to the peer's log; ``verbose`` adds ``--verbose``.
    """
    _require(ORTHANC_BIN, "orthanc", "orthanc")
    tmpdir = _tmpdir("orthanc")
    storage = tmpdir / "storage"
    storage.mkdir()
    config: dict[str, Any] = {
        "Name": f"dicomscan-lab-{aet}",
        "DicomAet": aet,
        "DicomPort": free_port(host),
        "HttpPort": free_port(host),
        "DicomServerEnabled": True,
        "HttpServerEnabled": True,
        "RemoteAccessAllowed": False,
        "Plugins": [],
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "SaveJobs": False,
    }
    config.update(config_overrides or {})
    config_path = tmpdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    argv = [str(ORTHANC_BIN), *(["--verbose"] if verbose else []), str(config_path)]
    extra = {"http": int(config["HttpPort"])} if config["HttpServerEnabled"] else {}
    return launch(
        name="orthanc",
        product="Orthanc",
        argv=argv,
        port=int(config["DicomPort"]),
        ae_title=str(config["DicomAet"]),
        tmpdir=tmpdir,
        extra_ports=extra,
        timeout=timeout,
        host=host,
    )


def start_storescp(
    args: Sequence[str] = (),
    aet: str = "STORESCP",
    *,
    host: str = LOOPBACK,
    timeout: float = DEFAULT_TIMEOUT,
    port: int | None = None,
) -> RunningPeer:
    """DCMTK's storescp: ``storescp --aetitle AET ARGS... -od TMP/incoming PORT`` (a free
    port unless given: the same port again shows a peer changed between two scans).

    ``args`` go to storescp as they are, e.g. ``["--refuse"]``, ``["--reject"]`` or
    ``["+tls", KEY, CERT, "--profile-bcp195", "-ic"]``. It answers to any called AE title.
    """
    _require(STORESCP_BIN, "storescp", "dcmtk")
    tmpdir = _tmpdir("storescp")
    incoming = tmpdir / "incoming"
    incoming.mkdir()
    port = port or free_port(host)
    argv = [str(STORESCP_BIN), "--aetitle", aet, *args, "-od", str(incoming), str(port)]
    return launch(
        name="storescp",
        product="DCMTK storescp",
        argv=argv,
        port=port,
        ae_title=aet,
        tmpdir=tmpdir,
        timeout=timeout,
        host=host,
    )


DEFAULT_DCMQRSCP_CONFIG = f"""\
# dicomscan lab: one read/write storage area, open only to AE {DCMQRSCP_ALLOWED_AE} on this host.
NetworkTCPPort  = {{port}}
MaxPDUSize      = 16384
MaxAssociations = 16

HostTable BEGIN
# Host names only: dcmqrscp does not accept IP addresses here.
labscu = ({DCMQRSCP_ALLOWED_AE}, localhost, 11113)
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
{{aet}}  {{storage}}  RW (10, 1024mb)  labscu
AETable END
"""


def start_dcmqrscp(
    config_text: str | None = None,
    aet: str = "DCMQRSCP",
    *,
    host: str = LOOPBACK,
    args: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> RunningPeer:
    """DCMTK's dcmqrscp (Q/R and storage SCP) with a generated ``dcmqrscp.cfg``.

    The default config (``DEFAULT_DCMQRSCP_CONFIG``) serves one AE title ``aet`` and lets
    in only calling AE ``DCMQRSCP_ALLOWED_AE`` from localhost; other calling AEs and other
    called AEs are rejected. A caller's ``config_text`` may use the placeholders
    ``{port}``, ``{storage}`` (an existing empty directory) and ``{aet}``; it is otherwise
    used verbatim. The port is also given on the command line, where it wins. ``args`` go
    to dcmqrscp as they are, e.g. ``["--disable-get"]`` or ``["-v"]``.
    """
    _require(DCMQRSCP_BIN, "dcmqrscp", "dcmtk")
    tmpdir = _tmpdir("dcmqrscp")
    storage = tmpdir / "storage"
    storage.mkdir()
    port = free_port(host)
    text = DEFAULT_DCMQRSCP_CONFIG if config_text is None else config_text
    # str.replace, not str.format: a config may contain braces of its own.
    for placeholder, value in (("{port}", str(port)), ("{storage}", str(storage)), ("{aet}", aet)):
        text = text.replace(placeholder, value)
    config_path = tmpdir / "dcmqrscp.cfg"
    config_path.write_text(text)
    argv = [str(DCMQRSCP_BIN), "-c", str(config_path), *args, str(port)]
    return launch(
        name="dcmqrscp",
        product="DCMTK dcmqrscp",
        argv=argv,
        port=port,
        ae_title=aet,
        tmpdir=tmpdir,
        timeout=timeout,
        host=host,
    )


def start_ctn_simple_storage(
    aet: str = "CTN_STORE", *, host: str = LOOPBACK, timeout: float = DEFAULT_TIMEOUT
) -> RunningPeer:
    """MIR CTN's storage SCP: ``simple_storage -c AET -x TMP/images PORT`` in TMP.

    It needs no database: only the transfer-syntax settings in
    ``/etc/ctn/runtime/ctn_cfg.txt``, whose location Debian compiles in. It runs in its
    default single-process mode and enforces its called AE title. It is fragile on
    purpose, like the legacy devices it stands for: it exits (status 0) as soon as a
    connection closes without sending anything, or when the first bytes are not an
    A-ASSOCIATE-RQ (HTTP, a TLS ClientHello). Its ``-f`` fork mode dies the same way.
    So only ever talk DICOM to it; its readiness is read from /proc, never probed.
    """
    _require(CTN_STORAGE_BIN, "ctn", "ctn")
    tmpdir = _tmpdir("ctn")
    images = tmpdir / "images"
    images.mkdir()
    port = free_port(host)
    argv = [str(CTN_STORAGE_BIN), "-c", aet, "-x", str(images), str(port)]
    return launch(
        name="ctn",
        product="MIR CTN simple_storage",
        argv=argv,
        port=port,
        ae_title=aet,
        tmpdir=tmpdir,
        timeout=timeout,
        host=host,
    )


_PYNETDICOM_SCP = """\
import logging, os, sys
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
aet, port, echo, storage, find = sys.argv[1], int(sys.argv[2]), *(a == "1" for a in sys.argv[3:6])
ae = AE(ae_title=aet)
if sys.argv[6:]:  # only these calling AE titles are let in; others are rejected
    ae.require_calling_aet = sys.argv[6:]
handlers = []
if echo:
    ae.add_supported_context(Verification)
if storage:
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax)
    handlers.append((evt.EVT_C_STORE, lambda event: 0x0000))
if find:
    ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    handlers.append((evt.EVT_C_FIND, lambda event: iter(())))
ae.start_server((os.environ["DICOMSCAN_LAB_ADDR"], port), block=True, evt_handlers=handlers)
"""


def start_pynetdicom_scp(
    aet: str = "PYNETDICOM",
    echo: bool = True,
    storage: bool = True,
    find: bool = False,
    *,
    require_calling_aet: Sequence[str] = (),
    host: str = LOOPBACK,
    timeout: float = DEFAULT_TIMEOUT,
) -> RunningPeer:
    """A pynetdicom SCP in a subprocess, for machines without Orthanc or DCMTK.

    It accepts any called AE title, and any calling AE title unless
    ``require_calling_aet`` lists the only ones let in (others: A-ASSOCIATE-RJ, calling
    AE title not recognised). ``storage`` answers every C-STORE with
    success and keeps nothing; ``find`` answers Patient and Study Root C-FIND with no
    matches. It binds 127.0.0.1 itself, so it needs no C compiler.
    """
    if importlib.util.find_spec("pynetdicom") is None:
        raise PeerStartError("pynetdicom", "the pynetdicom package is not installed")
    tmpdir = _tmpdir("pynetdicom")
    port = free_port(host)
    flags = ["1" if flag else "0" for flag in (echo, storage, find)]
    argv = [sys.executable, "-c", _PYNETDICOM_SCP, aet, str(port), *flags, *require_calling_aet]
    return launch(
        name="pynetdicom",
        product="pynetdicom",
        argv=argv,
        port=port,
        ae_title=aet,
        tmpdir=tmpdir,
        timeout=timeout,
        needs_shim=False,
        host=host,
    )


def which_available() -> dict[str, bool]:
    """Which peer implementations are installed: orthanc, dcmtk, ctn and pynetdicom."""
    return {
        "orthanc": os.access(ORTHANC_BIN, os.X_OK),
        "dcmtk": os.access(STORESCP_BIN, os.X_OK) and os.access(DCMQRSCP_BIN, os.X_OK),
        "ctn": os.access(CTN_STORAGE_BIN, os.X_OK),
        "pynetdicom": importlib.util.find_spec("pynetdicom") is not None,
    }


def available_starters() -> list[Callable[[], RunningPeer]]:
    """One default starter per installed implementation, e.g. for ``dicomscan demo``."""
    have = which_available()
    starters: list[Callable[[], RunningPeer]] = []
    if have["orthanc"]:
        starters.append(start_orthanc)
    if have["dcmtk"]:
        starters += [start_storescp, start_dcmqrscp]
    if have["ctn"]:
        starters.append(start_ctn_simple_storage)
    if have["pynetdicom"]:
        starters.append(start_pynetdicom_scp)
    return starters


@contextlib.contextmanager
def lab(peers: Sequence[Callable[[], RunningPeer]]) -> Iterator[list[RunningPeer]]:
    """Start every peer in order; on leaving (also on error or Ctrl-C) stop all started."""
    with contextlib.ExitStack() as stack:
        running: list[RunningPeer] = []
        for start in peers:
            peer = start()
            # ExitStack runs every callback even if one raises, in reverse order.
            stack.callback(peer.stop)
            running.append(peer)
        yield running
