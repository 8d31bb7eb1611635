"""SMB and RDP negotiation against real Samba and xrdp on loopback, and their rules.

Samba 4.17 is started with SMB1 allowed (server min protocol = NT1) or SMB2 only, with
signing mandatory or not; xrdp with its standard RDP security layer or TLS only. xrdp
never selects CredSSP, so the NLA-required answer comes from a scripted X.224 peer.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from probes.context import ServiceState
from probes.rdp import negotiate as rdp_negotiate
from probes.rdp import rdp_probe
from probes.smb import negotiate as smb_negotiate
from probes.smb import smb_probe
from scanner.model import Host, PortObservation, PortState, Service
from scanner.model.observations import Observation
from scanner.rules.baseline_rules import select
from scanner.rules.legacy_rules import legacy_findings
from tests.conftest import run_scan
from tests.legacy_peers import LOOPBACK, samba, xrdp
from tests.legacy_support import context


def _host(port: int, obs: Observation, name: str) -> Host:
    seen = PortObservation(port=port, state=PortState.OPEN, method="tcp-connect",
                           reason="connected", observed_at=datetime.now(UTC))
    return Host(address=LOOPBACK, ports=[seen],
                services=[Service(port=port, name=name, observations=[obs])])


def _verdicts(host: Host) -> dict[str, str]:
    return {f.rule_id: f.status.value for f in legacy_findings(host, select(host))}


@pytest.mark.parametrize(
    ("min_protocol", "signing", "smb1", "has_202", "signing_required"),
    [
        ("NT1", "auto", True, True, False),
        ("NT1", "mandatory", True, True, True),
        ("SMB2_02", "auto", False, True, False),
        ("SMB2", "mandatory", False, False, True),
    ],
)
def test_samba_dialects_and_signing(
    min_protocol: str, signing: str, smb1: bool, has_202: bool, signing_required: bool
) -> None:
    with samba(min_protocol, signing) as port:
        obs = asyncio.run(smb_negotiate(context([port]), port))
    assert obs.answered and obs.smb1_accepted is smb1
    assert ("NT LM 0.12" in obs.dialects) is smb1
    assert ("2.0.2" in obs.dialects) is has_202
    assert {"3.0", "3.1.1"} <= set(obs.dialects)
    # Read on 3.0: on 3.1.1 the client library always says "required".
    assert obs.signing_required is signing_required and obs.signing_measured_on == "3.0"
    # The null session's NTLM challenge names the server; Samba claims Windows 6.1.
    assert obs.server_name == "DICOMTEST" and obs.server_os and "Windows" in obs.server_os
    assert obs.null_session == "accepted"
    verdicts = _verdicts(_host(port, obs, "smb"))
    assert verdicts["smb-v1-enabled"] == ("fail" if smb1 else "pass")
    assert verdicts["smb-signing-not-required"] == ("pass" if signing_required else "fail")


def test_scan_names_smb_on_445_from_its_negotiate_answer() -> None:
    # Samba resets the connection on the A-ASSOCIATE-RQ, so 445 is tried by number; a
    # 127.x alias keeps the well-known port free of other sessions' listeners.
    address = "127.77.0.45"
    with samba("NT1", "auto", address=address, port=445):
        run = run_scan(address, "445")
    [svc] = run.doc["hosts"][0]["services"]
    assert svc["name"] == "smb"
    [obs] = [o for o in svc["observations"] if o["kind"] == "smb-negotiate"]
    assert obs["smb1_accepted"] is True and obs["server_name"] == "DICOMTEST"
    verdicts = {f["rule_id"]: f["status"] for f in run.doc["findings"] if f["port"] == 445}
    assert verdicts["smb-v1-enabled"] == "fail"
    assert verdicts["smb-signing-not-required"] == "fail"


def test_smb_and_rdp_probes_leave_a_dicom_port_alone() -> None:
    with samba("NT1", "auto") as port:
        ctx = context([port])
        for name_port in (445, port):
            svc = ServiceState(port=name_port, name="dicom")
            asyncio.run(smb_probe(ctx, svc))
            asyncio.run(rdp_probe(ctx, svc))
            assert svc.observations == [] and svc.name == "dicom"


@pytest.mark.parametrize(
    ("layer", "accepted", "rdp_answer"),
    [("rdp", ["rdp"], "selected"), ("tls", ["tls"], "failure")],
)
def test_xrdp_security_layers(layer: str, accepted: list[str], rdp_answer: str) -> None:
    with xrdp(layer) as port:
        obs = asyncio.run(rdp_negotiate(context([port]), port))
    assert obs.answered and [p.value for p in obs.accepted] == accepted
    assert obs.attempts[0].answer == rdp_answer
    if layer == "tls":
        assert obs.attempts[0].failure_text == "SSL_REQUIRED_BY_SERVER"
    assert obs.nla_required is False
    assert _verdicts(_host(port, obs, "rdp"))["rdp-nla-not-required"] == "fail"


def test_scan_judges_xrdp_without_nla_with_the_remote_access_baseline() -> None:
    with xrdp("rdp") as port:
        run = run_scan(LOOPBACK, str(port))
    assert run.service(port)["name"] == "rdp"
    f = run.finding(port, "rdp-nla-not-required")
    assert f["status"] == "fail" and f["evidence"]["accepted_protocols"] == ["rdp"]
    assert f["evidence"]["baseline"] and "does not allow remote access" in (
        f["evidence"]["remote_access"])


def _x224_nla_peer(sock: socket.socket, stop: threading.Event) -> None:
    """Answers like Windows with NLA required: CredSSP requests get RDP_NEG_RSP selecting
    PROTOCOL_HYBRID, anything else RDP_NEG_FAILURE HYBRID_REQUIRED_BY_SERVER (5)."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(5)
            data = conn.recv(1024)
            flags = struct.unpack_from("<I", data, len(data) - 4)[0] if len(data) >= 19 else 0
            neg = (struct.pack("<BBHI", 0x02, 0, 8, 2) if flags & 2
                   else struct.pack("<BBHI", 0x03, 0, 8, 5))
            x224 = bytes([6 + len(neg), 0xD0, 0, 0, 0x12, 0x34, 0]) + neg
            conn.sendall(struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224)


@pytest.fixture
def nla_peer() -> Iterator[int]:
    sock = socket.create_server((LOOPBACK, 0))
    stop = threading.Event()
    t = threading.Thread(target=_x224_nla_peer, args=(sock, stop), daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join(5)
    sock.close()


def test_scripted_nla_required_peer_passes(nla_peer: int) -> None:
    obs = asyncio.run(rdp_negotiate(context([nla_peer]), nla_peer))
    assert [p.value for p in obs.accepted] == ["credssp"]
    assert [a.failure_text for a in obs.attempts[:2]] == ["HYBRID_REQUIRED_BY_SERVER"] * 2
    assert obs.nla_required is True
    assert _verdicts(_host(nla_peer, obs, "rdp"))["rdp-nla-not-required"] == "pass"


def test_silent_port_named_smb_costs_one_timeout_not_five() -> None:
    import time

    from scanner.model import Timeouts

    listener = socket.create_server((LOOPBACK, 0))  # accepts (kernel backlog), never answers
    port = listener.getsockname()[1]
    ctx = context([port])
    ctx.settings = ctx.settings.model_copy(
        update={"timeouts": Timeouts(connect=1, dicom=1, dimse=1, host=60)})
    try:
        started = time.monotonic()
        obs = asyncio.run(smb_negotiate(ctx, port))
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert not obs.answered and len(obs.attempts) == 1
    assert elapsed < 6, elapsed  # one attempt of about 2 s, not five
