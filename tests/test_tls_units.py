"""Unit tests of the TLS probe's parts: suite table, ClientHello, answer reader,
certificate description, profile assessment, rules and the JSON round trip."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from probes.tls import certificate
from probes.tls.ciphers import Grade, info, suites_for, table
from probes.tls.clienthello import (
    SSL3,
    TLS10,
    TLS12,
    TLS13,
    ServerAnswer,
    client_hello,
    read_answer,
)
from probes.tls.profiles import assess
from probes.tls.versions import suite_model
from scanner.model import FindingStatus, Host, Service
from scanner.model.observations import Observation
from scanner.model.tls_observations import (
    HandshakeOutcome,
    TlsHandshake,
    TlsSummary,
    TlsVersion,
    VersionOutcome,
)
from scanner.rules.catalogue import load_catalogue
from scanner.rules.tls_rules import tls_findings
from tests.tls_peers import generate_certs

RULES = {
    "tls-legacy-protocol",
    "tls-weak-cipher",
    "tls-client-cert-not-required",
    "tls-cert-self-signed",
    "tls-cert-expired",
    "tls-cert-expiring",
    "tls-cert-weak-key",
    "tls-cert-weak-signature",
    "tls-cert-default",
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_certs(tmp_path_factory.mktemp("certs"))


# --------------------------------------------------------------------------- suites


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not installed")
def test_suite_codes_agree_with_openssl() -> None:
    out = subprocess.run(
        ["openssl", "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    checked = 0
    for line in out.splitlines():
        code_text, _, name = line.split()[:3]
        code = int(code_text.replace("0x", "").replace(",", ""), 16)
        if code in table():
            assert table()[code].name == name
            checked += 1
    assert checked > 80


@pytest.mark.parametrize(
    ("code", "grade", "weaknesses"),
    [
        (0xC02F, Grade.RECOMMENDED, ()),
        (0x1301, Grade.RECOMMENDED, ()),
        (0xCCA8, Grade.ACCEPTABLE, ()),
        (0x009E, Grade.DISCOURAGED, ("dhe",)),
        (0xC013, Grade.DISCOURAGED, ("cbc",)),
        (0x002F, Grade.WEAK, ("no-forward-secrecy", "cbc")),
        (0x000A, Grade.WEAK, ("3des", "no-forward-secrecy", "cbc")),
        (0x0002, Grade.INSECURE, ("null-cipher", "no-forward-secrecy")),
        (0x0005, Grade.INSECURE, ("rc4", "no-forward-secrecy")),
        (
            0x0003,
            Grade.INSECURE,
            ("export", "rc4", "no-forward-secrecy", "below-112-bit", "md5-mac"),
        ),
        (0x0034, Grade.INSECURE, ("anonymous", "cbc")),
        (0x0009, Grade.INSECURE, ("des", "no-forward-secrecy", "below-112-bit", "cbc")),
    ],
)
def test_suite_classification(code: int, grade: Grade, weaknesses: tuple[str, ...]) -> None:
    suite = info(code)
    assert suite.grade is grade
    assert suite.weaknesses[: len(weaknesses)] == weaknesses


def test_offers_per_version() -> None:
    tls10 = suites_for(TLS10)
    assert 0xC02F not in tls10 and 0x002F in tls10  # AEAD suites are TLS 1.2-only
    assert set(tls10) < set(suites_for(TLS12))
    assert suites_for(TLS13) == [0x1301, 0x1302, 0x1303, 0x1304, 0x1305]
    assert info(0xABCD).name == "UNKNOWN_0xABCD"


# --------------------------------------------------------------------------- ClientHello


def _extensions(hello: bytes) -> dict[int, bytes]:
    body = hello[9:]
    pos = 2 + 32
    pos += 1 + body[pos]
    pos += 2 + struct.unpack_from("!H", body, pos)[0]
    pos += 1 + body[pos]
    end = pos + 2 + struct.unpack_from("!H", body, pos)[0]
    pos += 2
    out = {}
    while pos < end:
        ext_type, length = struct.unpack_from("!HH", body, pos)
        out[ext_type] = body[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return out


def test_client_hello_versions() -> None:
    ssl3 = client_hello(SSL3, suites_for(SSL3))
    assert ssl3[1:3] == b"\x03\x00" and ssl3[9:11] == b"\x03\x00"
    assert len(ssl3) == 5 + struct.unpack("!H", ssl3[3:5])[0]
    tls13 = client_hello(TLS13, suites_for(TLS13), server_name="pacs.example")
    ext = _extensions(tls13)
    assert ext[43] == b"\x02\x03\x04"  # supported_versions: TLS 1.3 only
    assert ext[51][2:4] == b"\x00\x1d"  # an X25519 key share
    assert b"pacs.example" in ext[0]
    assert 0 not in _extensions(client_hello(TLS12, [0xC02F], server_name="127.0.0.1"))


# --------------------------------------------------------------------------- answers


def _record(ctype: int, payload: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(payload)) + payload


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _server_hello(version: int, suite: int, tls13: bool = False, random: bytes = b"") -> bytes:
    ext = struct.pack("!HHH", 43, 2, version) if tls13 else b""
    body = struct.pack("!H", 0x0303 if tls13 else version) + (random or bytes(32)) + b"\x00"
    body += struct.pack("!HB", suite, 0) + struct.pack("!H", len(ext)) + ext
    return _handshake(2, body)


def _read(data: bytes, whole_flight: bool = False) -> ServerAnswer:
    async def go() -> ServerAnswer:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_answer(reader, 1.0, whole_flight)

    return asyncio.run(go())


def test_reads_tls12_flight(certs: Path) -> None:
    [der] = _chain(certs, "server")
    cert_msg = _handshake(11, (len(der) + 3).to_bytes(3, "big") + len(der).to_bytes(3, "big") + der)
    flight = _server_hello(TLS12, 0xC02F) + cert_msg + _handshake(13, b"\x00") + _handshake(14, b"")
    ans = _read(_record(22, flight), whole_flight=True)
    assert (ans.kind, ans.version, ans.suite) == ("server-hello", TLS12, 0xC02F)
    assert ans.certificates == [der] and ans.certificate_request is True


def test_reads_tls13_hello_retry_alert_and_garbage() -> None:
    hrr_random = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
    hrr = _read(_record(22, _server_hello(TLS13, 0x1302, tls13=True, random=hrr_random)))
    assert (hrr.version, hrr.suite, hrr.hello_retry) == (TLS13, 0x1302, True)
    alert = _read(_record(21, b"\x02\x46"))
    assert (alert.kind, alert.alert) == ("alert", 70)
    junk = _read(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert junk.kind == "not-tls" and junk.first_bytes.startswith(b"HTTP/1.1")
    closed = _read(b"\x16\x03")
    assert closed.kind == "closed"


# --------------------------------------------------------------------------- certificates


def _chain(certs: Path, name: str) -> list[bytes]:
    cert = x509.load_pem_x509_certificate((certs / f"{name}.pem").read_bytes())
    return [cert.public_bytes(Encoding.DER)]


def test_describe_certificates(certs: Path) -> None:
    bundle = certificate.load_bundle(str(certs / "ca.pem"))
    server = certificate.describe(_chain(certs, "server"), "test", bundle)
    assert (server.self_signed, server.expired, server.expiring_soon) == (False, False, False)
    assert (server.key_type, server.key_bits, server.signature_hash) == ("RSA", 2048, "sha256")
    assert server.ca_verified is True and "DNS:localhost" in server.sans
    assert certificate.describe(_chain(certs, "selfsigned"), "t", bundle).self_signed
    assert certificate.describe(_chain(certs, "expired"), "t").expired
    expiring = certificate.describe(_chain(certs, "expiring"), "t")
    assert expiring.expiring_soon and 8 <= expiring.days_left <= 10
    assert certificate.describe(_chain(certs, "rsa1024"), "t").key_bits == 1024
    sha1 = certificate.describe(_chain(certs, "sha1"), "t", bundle)
    assert sha1.signature_hash == "sha1" and sha1.ca_verified is True
    future = datetime(2020, 1, 1, tzinfo=UTC)
    assert certificate.describe(_chain(certs, "server"), "t", now=future).not_yet_valid


# --------------------------------------------------------------------------- profiles


def _version(name: str, codes: list[int]) -> TlsVersion:
    outcome = VersionOutcome.ACCEPTED if codes else VersionOutcome.REFUSED
    return TlsVersion(version=name, outcome=outcome, suites=[suite_model(c) for c in codes],
                      enumeration_complete=True)  # fmt: skip


def test_profile_assessment() -> None:
    b12_only = [_version("TLSv1.0", []), _version("TLSv1.2", [0xC02F, 0xC030]),
                _version("TLSv1.3", [0x1301, 0x1302, 0x1303])]  # fmt: skip
    checks, best, meets = assess(b12_only, None, "TLSv1.3")
    assert best == "B.12" and meets
    assert [c.profile for c in checks if c.conforms] == ["B.12", "B.9"]  # B.10 needs DHE too
    _, _, meets = assess(b12_only, None, "TLSv1.2")  # 1.3 supported but not preferred
    assert not meets
    modified = [_version("TLSv1.2", [0xC02F, 0xCCA8]),
                _version("TLSv1.3", [0x1301, 0x1302, 0x1303, 0x1304, 0x1305])]  # fmt: skip
    assert assess(modified, None, "TLSv1.3")[1] == "B.13"
    basic = [_version("TLSv1.0", [0x000A]), _version("TLSv1.2", [0x000A])]
    checks, best, _ = assess(basic, None, "TLSv1.2")
    assert best == "B.9" and [c.profile for c in checks if c.conforms] == ["B.9", "B.1"]


# --------------------------------------------------------------------------- rules


def test_catalogue_has_every_tls_rule() -> None:
    catalogue = load_catalogue()
    assert set(catalogue) >= RULES
    for rule in RULES:
        assert catalogue[rule].references and catalogue[rule].pass_title


def _host(*observations: Observation) -> Host:
    service = Service(port=2762, name="tls", tls=True, observations=list(observations))
    return Host(address="127.0.0.1", services=[service])


def test_rules_without_certificate_or_handshake() -> None:
    summary = TlsSummary(speaks_tls=True, outcome="tls", client_cert_required=None)
    handshake = TlsHandshake(with_client_cert=False, outcome=HandshakeOutcome.NO_ANSWER,
                             detail="handshake did not finish in time", elapsed_ms=1.0)  # fmt: skip
    host = _host(summary, _version("TLSv1.2", [0xC02F]), handshake)
    verdicts = {f.rule_id: f.status for f in tls_findings(host)}
    assert set(verdicts) == RULES
    assert verdicts["tls-legacy-protocol"] is FindingStatus.PASS
    assert verdicts["tls-weak-cipher"] is FindingStatus.PASS
    not_checked = {r for r, s in verdicts.items() if s is FindingStatus.NOT_CHECKED}
    assert not_checked == RULES - {"tls-legacy-protocol", "tls-weak-cipher"}
    assert tls_findings(_host(TlsSummary(speaks_tls=False, outcome="not-tls"))) == []


def test_ssl3_is_critical_and_json_round_trips() -> None:
    summary = TlsSummary(speaks_tls=True, outcome="tls", client_cert_required=False)
    host = _host(summary, _version("SSLv3", [0x0005]), _version("TLSv1.2", [0xC02F]))
    findings = {f.rule_id: f for f in tls_findings(host)}
    assert findings["tls-legacy-protocol"].severity.value == "critical"
    assert findings["tls-weak-cipher"].severity.value == "high"  # RC4
    again = Host.model_validate_json(host.model_dump_json())
    assert again == host and again.services[0].observations[0].kind == "tls-summary"
