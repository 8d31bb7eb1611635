"""The TLS probe against scripted misbehaving peers: each ends as a clear observation,
within the answer timeout, and a cleartext DICOM port never sees a ClientHello."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from scanner.rules.tls_rules import tls_findings
from tests.tls_peers import (
    garbage,
    generate_certs,
    hang_mid_handshake,
    of_kind,
    python_tls_server,
    read_client_hello,
    run_probe,
    scripted,
    silent,
    versions,
)

TIMEOUT = 1.0
SLACK = 1.5  # connect, thread start-up and teardown on a loaded CI machine


def test_cleartext_dicom_port_gets_no_client_hello() -> None:
    with scripted(silent) as server:
        svc, host, _ = run_probe(server.port, name="dicom")
        time.sleep(0.2)
    assert server.connections == 0
    assert svc.observations == [] and svc.name == "dicom" and not svc.tls
    assert host.services[0].observations == []


def test_hang_mid_handshake_is_a_clear_observation() -> None:
    with scripted(hang_mid_handshake) as server:
        svc, _, elapsed = run_probe(server.port, answer_timeout=TIMEOUT)
    assert elapsed < TIMEOUT + SLACK
    [summary] = of_kind(svc, "tls-summary")
    assert (summary.speaks_tls, summary.outcome) == (False, "no-answer")
    assert summary.detail == f"handshake stalled after 11 bytes, nothing more in {TIMEOUT:g} s"
    assert summary.first_bytes_hex.startswith("1603030050")
    assert summary.connections == 1 and server.connections == 1
    assert not svc.tls and svc.name == "unknown"


def test_garbage_answer_is_not_tls() -> None:
    with scripted(garbage) as server:
        svc, _, elapsed = run_probe(server.port, answer_timeout=TIMEOUT)
    assert elapsed < TIMEOUT + SLACK
    [summary] = of_kind(svc, "tls-summary")
    assert (summary.speaks_tls, summary.outcome) == (False, "not-tls")
    assert summary.detail == "answer is not a TLS record"
    assert bytes.fromhex(summary.first_bytes_hex).startswith(b"\x00\x07NONSENSE")


def test_silent_server_times_out() -> None:
    with scripted(silent) as server:
        svc, _, elapsed = run_probe(server.port, answer_timeout=TIMEOUT)
    assert elapsed < TIMEOUT + SLACK
    [summary] = of_kind(svc, "tls-summary")
    assert summary.outcome == "no-answer" and summary.detail == f"no answer within {TIMEOUT:g} s"


def test_server_that_closes_on_hello() -> None:
    def close(conn: socket.socket) -> None:
        read_client_hello(conn)

    with scripted(close) as server:
        svc, _, _ = run_probe(server.port, answer_timeout=TIMEOUT)
    [summary] = of_kind(svc, "tls-summary")
    assert summary.outcome == "closed" and not summary.speaks_tls
    assert summary.connections == server.connections == 2  # the TLS 1.3-only retry


def test_client_hello_is_well_formed_for_tls12() -> None:
    hellos: list[bytes] = []

    def capture(conn: socket.socket) -> None:
        hellos.append(read_client_hello(conn))

    with scripted(capture) as server:
        run_probe(server.port, answer_timeout=TIMEOUT)
    hello, retry = hellos  # closing on the TLS 1.2 hello earns one TLS 1.3-only retry
    assert hello[:3] == b"\x16\x03\x01"  # handshake record, TLS 1.0 record version
    assert hello[5] == 1 and hello[9:11] == b"\x03\x03"  # ClientHello offering TLS 1.2
    assert len(hello) >= 512  # padded out of the 256..511 range some stacks choke on
    assert b"\x00\x2b\x00\x03\x02\x03\x04" in retry  # supported_versions: TLS 1.3 only


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("required", [False, True], ids=["anonymous", "client-cert-required"])
def test_tls13_only_server(certs: Path, required: bool) -> None:
    """A TLS 1.3-only server: the certificate is encrypted in its handshake, so it comes
    from the full handshake, and it is obtained even when the server then refuses us."""
    handler = python_tls_server(certs, require_client_cert=required)
    with scripted(handler) as server:
        svc, host, _ = run_probe(server.port, answer_timeout=TIMEOUT)
    v = versions(svc)
    assert [name for name, obs in v.items() if obs.outcome == "accepted"] == ["TLSv1.3"]
    assert (v["TLSv1.2"].outcome, v["TLSv1.2"].alert_text) == ("refused", "protocol_version")
    [cert] = of_kind(svc, "tls-certificate")
    assert cert.source == "full handshake" and cert.subject.startswith("CN=dicomscan server")
    [summary] = of_kind(svc, "tls-summary")
    assert summary.client_cert_required is required
    assert summary.client_cert_requested is None  # encrypted in TLS 1.3: not seen
    [hs] = of_kind(svc, "tls-handshake")
    assert hs.outcome == ("client-cert-required" if required else "completed")
    assert svc.name == "tls" and svc.tls
    status = {f.rule_id: f.status.value for f in tls_findings(host)}
    assert status["tls-client-cert-not-required"] == ("pass" if required else "fail")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_tls10_only_server_is_graded_and_reached(certs: Path) -> None:
    only_10 = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1)
    with scripted(python_tls_server(certs, versions=only_10)) as server:
        svc, host, _ = run_probe(server.port, answer_timeout=TIMEOUT)
    v = versions(svc)
    assert [name for name, obs in v.items() if obs.outcome == "accepted"] == ["TLSv1.0"]
    assert v["TLSv1.2"].outcome == "refused"
    assert "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" in {s.name for s in v["TLSv1.0"].suites}
    [hs] = of_kind(svc, "tls-handshake")
    assert (hs.outcome, hs.version) == ("completed", "TLSv1")  # the full handshake got there
    [summary] = of_kind(svc, "tls-summary")
    assert summary.best_profile == "B.3" and summary.meets_b12 is False  # retired AES profile
    legacy = next(f for f in tls_findings(host) if f.rule_id == "tls-legacy-protocol")
    assert legacy.status.value == "fail"
