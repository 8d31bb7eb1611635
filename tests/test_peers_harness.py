"""Tests for the lab harness itself: real peers (scanner.lab.peers) and hostile peers.

Each real peer must answer a real DICOM association on loopback, and stop() must really
end the process and free its port. A peer's test is skipped only when its binary is not
installed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.lab import peers
from scanner.lab import process as peer_process
from scanner.lab.peers import (
    PeerStartError,
    RunningPeer,
    lab,
    start_ctn_simple_storage,
    start_dcmqrscp,
    start_orthanc,
    start_pynetdicom_scp,
    start_storescp,
    which_available,
)
from scanner.lab.process import listening_addresses

try:
    from tests.hostile import A_ABORT, A_ASSOCIATE_RJ, GARBAGE, HTTP_400, SLOW_AC, hostile_peer
except ImportError:  # tests/ is not a package: pytest puts this directory on sys.path
    from hostile import A_ABORT, A_ASSOCIATE_RJ, GARBAGE, HTTP_400, SLOW_AC, hostile_peer

VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
# The first bytes of an A-ASSOCIATE-RQ: type 0x01, reserved, some length.
RQ_START = b"\x01\x00\x00\x00\x00\xcd\x00\x01\x00\x00"

AVAILABLE = which_available()
needs_orthanc = pytest.mark.skipif(
    not AVAILABLE["orthanc"], reason=f"Orthanc not installed ({peers.ORTHANC_BIN}, package orthanc)"
)
needs_dcmtk = pytest.mark.skipif(
    not AVAILABLE["dcmtk"],
    reason=f"DCMTK not installed ({peers.STORESCP_BIN}, {peers.DCMQRSCP_BIN}, package dcmtk)",
)
needs_ctn = pytest.mark.skipif(
    not AVAILABLE["ctn"], reason=f"MIR CTN not installed ({peers.CTN_STORAGE_BIN}, package ctn)"
)


# --------------------------------------------------------------------------- helpers


def associate(
    peer: RunningPeer,
    calling: str = "DICOMSCAN",
    called: str | None = None,
    contexts: tuple[str, ...] = (VERIFICATION,),
    handlers: list[tuple[Any, Callable[[Any], None]]] | None = None,
) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    for context in contexts:
        ae.add_requested_context(context)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 10
    return ae.associate(
        peer.info.host,
        peer.info.port,
        ae_title=called or peer.info.ae_title,
        evt_handlers=handlers or [],
    )


def rejection(
    peer: RunningPeer, calling: str = "DICOMSCAN", called: str | None = None
) -> tuple[int, int, int] | None:
    """(result, source, reason) of the A-ASSOCIATE-RJ the peer sent, or None if it did not.

    Read from the PDU itself: pynetdicom 3.0.4 has a race in which a rejection that comes
    back fast (loopback) is reported as is_aborted instead of is_rejected, and
    EVT_REJECTED does not fire (measured: 8 of 30 associations to storescp --refuse).
    """
    from pynetdicom import evt
    from pynetdicom.pdu import A_ASSOCIATE_RJ

    seen: list[tuple[int, int, int]] = []

    def on_pdu(event: Any) -> None:
        pdu = event.pdu
        if isinstance(pdu, A_ASSOCIATE_RJ):
            seen.append((int(pdu.result), int(pdu.source), int(pdu.reason_diagnostic)))

    assoc = associate(peer, calling, called, handlers=[(evt.EVT_PDU_RECV, on_pdu)])
    if assoc.is_established:
        assoc.release()
    return seen[0] if seen else None


def echo_status(peer: RunningPeer, calling: str = "DICOMSCAN", called: str | None = None) -> int:
    """The C-ECHO status, or -1 when no association was established."""
    assoc = associate(peer, calling, called)
    if not assoc.is_established:
        return -1
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def assert_stops_cleanly(peer: RunningPeer) -> None:
    port, tmpdir = peer.info.port, peer.tmpdir
    ports = [port, *peer.info.extra_ports.values()]
    peer.stop()
    assert not peer.alive()
    assert peer.process.returncode is not None
    assert not tmpdir.exists()
    for p in ports:
        assert listening_addresses(p) == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((peer.info.host, p), timeout=2).close()
    peer.stop()  # idempotent


def assert_loopback_only(peer: RunningPeer) -> None:
    for p in [peer.info.port, *peer.info.extra_ports.values()]:
        assert listening_addresses(p) == ["127.0.0.1"]


@pytest.fixture
def started() -> Iterator[Callable[[RunningPeer], RunningPeer]]:
    """Register a peer so it is stopped even when the test fails."""
    running: list[RunningPeer] = []

    def register(peer: RunningPeer) -> RunningPeer:
        running.append(peer)
        return peer

    yield register
    for peer in running:
        peer.stop()


# --------------------------------------------------------------------------- basics


def test_free_port_is_a_bindable_loopback_port() -> None:
    port = peers.free_port()
    with socket.create_server(("127.0.0.1", port)):
        pass
    with pytest.raises(ValueError, match="loopback"):
        peers.free_port("0.0.0.0")


def test_which_available_names_the_implementations() -> None:
    assert set(AVAILABLE) >= {"orthanc", "dcmtk", "ctn"}
    assert all(isinstance(v, bool) for v in AVAILABLE.values())


def test_loopback_shim_rewrites_wildcard_binds_and_refuses_other_addresses() -> None:
    try:
        shim = peers.loopback_shim()
    except PeerStartError as exc:
        pytest.skip(str(exc))
    # Connecting to 0.0.0.0 reaches this host on Linux, so the check never leaves it.
    script = (
        "import socket\n"
        "s = socket.socket(); s.bind(('0.0.0.0', 0)); print(s.getsockname()[0])\n"
        "srv = socket.create_server(('127.0.0.1', 0)); port = srv.getsockname()[1]\n"
        "c = socket.socket()\n"
        "try:\n"
        "    c.connect(('0.0.0.0', port)); print('connected')\n"
        "except OSError as e:\n"
        "    print(e.errno)\n"
        "socket.create_connection(('127.0.0.1', port)).close(); print('loopback ok')\n"
    )
    env = dict(os.environ, LD_PRELOAD=str(shim))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    import errno

    assert out.stdout.split() == ["127.0.0.1", str(errno.ENETUNREACH), "loopback", "ok"]


# --------------------------------------------------------------------------- real peers


@pytest.mark.peers
@needs_orthanc
def test_orthanc_answers_echo_and_rest_on_loopback_then_stops(
    started: Callable[[RunningPeer], RunningPeer],
) -> None:
    peer = started(start_orthanc(aet="LABORTHANC"))
    assert peer.alive()
    assert peer.info.product == "Orthanc"
    assert peer.info.ae_title == "LABORTHANC"
    assert set(peer.info.extra_ports) == {"http"}
    assert_loopback_only(peer)
    assert echo_status(peer) == 0x0000
    url = f"http://127.0.0.1:{peer.info.extra_ports['http']}/system"
    with urllib.request.urlopen(url, timeout=10) as answer:
        system = json.load(answer)
    assert system["DicomAet"] == "LABORTHANC"
    assert system["DicomPort"] == peer.info.port
    assert "Orthanc has started" in peer.log()
    assert_stops_cleanly(peer)
    assert "Orthanc is stopping" in peer.log()  # kept after stop(); SIGTERM is graceful


@pytest.mark.peers
@needs_orthanc
def test_orthanc_config_overrides_apply(started: Callable[[RunningPeer], RunningPeer]) -> None:
    peer = started(start_orthanc({"DicomCheckCalledAet": True, "HttpServerEnabled": False}))
    assert peer.info.extra_ports == {}
    assert rejection(peer, called="NOT-ORTHANC") == (1, 1, 7)  # called AE not recognised
    assert echo_status(peer) == 0x0000
    assert peer.alive()


@pytest.mark.peers
@needs_dcmtk
def test_storescp_answers_echo_then_stops(started: Callable[[RunningPeer], RunningPeer]) -> None:
    peer = started(start_storescp(aet="LABSTORE"))
    assert_loopback_only(peer)
    assoc = associate(peer, called="ANY-SCP")  # storescp ignores the called AE title
    assert assoc.is_established
    assert assoc.acceptor.implementation_version_name.startswith("OFFIS_DCMTK")
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert_stops_cleanly(peer)


@pytest.mark.peers
@needs_dcmtk
def test_storescp_passes_args(started: Callable[[RunningPeer], RunningPeer]) -> None:
    peer = started(start_storescp(["--refuse"]))
    assert rejection(peer) == (1, 1, 1)  # permanent, service-user, no reason given
    assert peer.alive()


@pytest.mark.peers
@needs_dcmtk
def test_start_failure_raises_with_the_log_tail() -> None:
    with pytest.raises(PeerStartError, match="exited with status") as caught:
        start_storescp(["--no-such-option"])
    assert "no-such-option" in caught.value.log_tail
    assert caught.value.name == "storescp"


@pytest.mark.peers
@needs_dcmtk
def test_dcmqrscp_default_config_restricts_calling_aes(
    started: Callable[[RunningPeer], RunningPeer],
) -> None:
    peer = started(start_dcmqrscp())
    assert_loopback_only(peer)
    assert echo_status(peer, calling=peers.DCMQRSCP_ALLOWED_AE) == 0x0000
    # Measured: an unknown calling AE gets reason 7 (called AE), not 3 (calling AE).
    assert rejection(peer, calling="STRANGER") == (1, 1, 7)
    assert rejection(peer, calling=peers.DCMQRSCP_ALLOWED_AE, called="WRONG") == (1, 1, 7)
    assoc = associate(peer, peers.DCMQRSCP_ALLOWED_AE, contexts=(STUDY_ROOT_FIND,))
    assert assoc.is_established
    assoc.release()
    assert_stops_cleanly(peer)


@pytest.mark.peers
@needs_dcmtk
def test_dcmqrscp_takes_a_config_text_with_placeholders(
    started: Callable[[RunningPeer], RunningPeer],
) -> None:
    config = (
        "NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        "AETable BEGIN\n{aet} {storage} R (5, 10mb) ANY\nAETable END\n"
    )
    peer = started(start_dcmqrscp(config, aet="OPENQR"))
    assert echo_status(peer, calling="STRANGER") == 0x0000
    written = (peer.tmpdir / "dcmqrscp.cfg").read_text()
    assert f"OPENQR {peer.tmpdir / 'storage'} R" in written
    assert f"NetworkTCPPort = {peer.info.port}" in written


@pytest.mark.peers
@needs_ctn
def test_ctn_survives_proper_associations(started: Callable[[RunningPeer], RunningPeer]) -> None:
    peer = started(start_ctn_simple_storage())
    assert_loopback_only(peer)
    assoc = associate(peer)
    assert assoc.is_established
    assert assoc.acceptor.implementation_version_name == "MIRCTN11MAR2003"
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert rejection(peer, called="NOT-CTN") == (1, 1, 7)  # it enforces its called AE title
    assert echo_status(peer, calling="ANYONE") == 0x0000  # but takes any calling AE title
    time.sleep(0.5)
    assert peer.alive()
    assert echo_status(peer) == 0x0000
    assert_stops_cleanly(peer)


@pytest.mark.peers
@needs_ctn
def test_ctn_dies_from_an_empty_connection(started: Callable[[RunningPeer], RunningPeer]) -> None:
    """The harness must start the real fragile stack: this is what scanners must avoid."""
    peer = started(start_ctn_simple_storage())
    socket.create_connection((peer.info.host, peer.info.port), timeout=5).close()
    deadline = time.monotonic() + 5
    while peer.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not peer.alive()
    assert peer.process.returncode == 0
    peer.stop()
    assert not peer.tmpdir.exists()


@pytest.mark.peers
def test_pynetdicom_scp_answers_echo_and_find(
    started: Callable[[RunningPeer], RunningPeer],
) -> None:
    peer = started(start_pynetdicom_scp(find=True))
    assert_loopback_only(peer)
    assert echo_status(peer) == 0x0000

    from pydicom.dataset import Dataset

    assoc = associate(peer, contexts=(STUDY_ROOT_FIND,))
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = "*"
    statuses = [int(status.Status) for status, _ in assoc.send_c_find(query, STUDY_ROOT_FIND)]
    assoc.release()
    assert statuses == [0x0000]
    assert_stops_cleanly(peer)


def test_stop_escalates_to_sigkill(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(peer_process, "STOP_GRACE", 0.5)
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    info = peers.PeerInfo("stubborn", "test", "127.0.0.1", 1, "X", {})
    peer = RunningPeer(info, process, tmp_path / "gone", tmp_path / "log")
    started_at = time.monotonic()
    peer.stop()
    assert process.returncode == -9
    assert time.monotonic() - started_at < 5
    process.stdout.close()


@pytest.mark.peers
def test_lab_stops_every_peer_on_error() -> None:
    seen: list[RunningPeer] = []
    with pytest.raises(RuntimeError, match="boom"), lab([start_pynetdicom_scp] * 2) as running:
        seen.extend(running)
        assert all(p.alive() for p in running)
        raise RuntimeError("boom")
    assert len(seen) == 2
    assert not any(p.alive() for p in seen)
    assert not any(p.tmpdir.exists() for p in seen)


@pytest.mark.peers
def test_lab_stops_started_peers_when_a_later_one_fails() -> None:
    seen: list[RunningPeer] = []

    def first() -> RunningPeer:
        seen.append(start_pynetdicom_scp())
        return seen[-1]

    def broken() -> RunningPeer:
        raise PeerStartError("broken", "does not start")

    with pytest.raises(PeerStartError), lab([first, broken]):
        pass
    assert len(seen) == 1
    assert not seen[0].alive()


# --------------------------------------------------------------------------- hostile peers


def exchange(port: int, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``payload`` and read until the peer closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if payload:
            sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("behaviour", "answer"),
    [("garbage", GARBAGE), ("http", HTTP_400), ("abort", A_ABORT), ("reject", A_ASSOCIATE_RJ)],
)
def test_hostile_answers_then_closes(behaviour: str, answer: bytes) -> None:
    with hostile_peer(behaviour) as peer:
        assert exchange(peer.port, RQ_START) == answer
        assert peer.wait_idle(1)
        assert peer.received == [RQ_START]


def test_hostile_answers_are_as_specified() -> None:
    assert len(GARBAGE) == 64
    assert GARBAGE[0] not in range(1, 8)
    assert bytes([7, 0, 0, 0, 0, 4, 0, 0, 0, 0]) == A_ABORT
    assert bytes([3, 0, 0, 0, 0, 4, 0, 1, 1, 7]) == A_ASSOCIATE_RJ
    assert HTTP_400.startswith(b"HTTP/1.1 400 Bad Request\r\nServer: hostile-test\r\n")


def test_hostile_close_closes_at_once() -> None:
    with hostile_peer("close") as peer:
        with socket.create_connection(("127.0.0.1", peer.port), timeout=5) as sock:
            assert sock.recv(10) == b""
        assert peer.wait_idle(1)
        assert peer.received == [b""]


def test_hostile_silent_reads_and_never_answers() -> None:
    with (
        hostile_peer("silent") as peer,
        socket.create_connection(("127.0.0.1", peer.port), timeout=0.5) as sock,
    ):
        sock.sendall(RQ_START)
        sock.sendall(b"more")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        assert peer.wait_received(len(RQ_START) + 4)
        assert peer.received == [RQ_START + b"more"]


def test_hostile_huge_ac_announces_a_huge_pdu_and_stays_open() -> None:
    with (
        hostile_peer("huge-ac") as peer,
        socket.create_connection(("127.0.0.1", peer.port), timeout=5) as sock,
    ):
        sock.sendall(RQ_START)
        head = b""
        while len(head) < 10:
            head += sock.recv(10 - len(head))
        assert head[:6] == b"\x02\x00\xff\xff\xff\xf0"
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            while sock.recv(4096):  # the rest of the short body, then nothing, no EOF
                pass


def test_hostile_slow_trickles_an_associate_ac() -> None:
    with (
        hostile_peer("slow", slow_interval=0.1) as peer,
        socket.create_connection(("127.0.0.1", peer.port), timeout=5) as sock,
    ):
        sock.sendall(RQ_START)
        got = b""
        started = time.monotonic()
        while len(got) < 6:
            got += sock.recv(100)
        elapsed = time.monotonic() - started
        assert got == SLOW_AC[: len(got)]
        assert got[0] == 0x02
        assert elapsed >= 0.4  # six bytes took at least five intervals


def test_hostile_handles_many_connections() -> None:
    with hostile_peer("abort") as peer:
        answers: list[bytes] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            answer = exchange(peer.port, RQ_START + bytes([i]))
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert answers == [A_ABORT] * 50
        assert peer.wait_idle(50)
        assert sorted(peer.received) == sorted(RQ_START + bytes([i]) for i in range(50))


def test_hostile_stops_cleanly_with_clients_still_connected() -> None:
    clients = []
    started = time.monotonic()
    with hostile_peer("slow") as peer:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", peer.port), timeout=5)
            sock.sendall(RQ_START)
            clients.append(sock)
        assert peer.wait_received(len(RQ_START), index=2)
    assert time.monotonic() - started < 3
    assert not [t for t in threading.enumerate() if t.name.startswith("hostile-")]
    for sock in clients:
        sock.close()


def test_hostile_rejects_unknown_behaviours_and_other_hosts() -> None:
    with pytest.raises(ValueError, match="unknown behaviour"), hostile_peer("friendly"):
        pass
    with pytest.raises(ValueError, match="loopback"), hostile_peer("silent", host="0.0.0.0"):
        pass


def test_pynetdicom_sees_hostile_reject_and_abort() -> None:
    from pynetdicom import AE

    ae = AE(ae_title="DICOMSCAN")
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 5
    with hostile_peer("reject") as peer:
        assoc = ae.associate("127.0.0.1", peer.port)
        # is_aborted too: pynetdicom's race on fast rejections, see rejection().
        assert not assoc.is_established
        assert assoc.is_rejected or assoc.is_aborted
        assert peer.received[0][:1] == b"\x01"  # it got a real A-ASSOCIATE-RQ
    with hostile_peer("abort") as peer:
        assert ae.associate("127.0.0.1", peer.port).is_aborted
