"""HTTP probe helpers and HTTP rules, without a network."""

from __future__ import annotations

import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from probes.http import (
    Answer,
    count_items,
    dechunk,
    identify,
    page_title,
    parse_head,
)
from probes.web_products import web_table
from scanner.model import Host, Service
from scanner.model.http_observations import HttpCheck, HttpSummary
from scanner.rules.http_rules import http_findings
from tests.conftest import run_scan


def test_parse_head_and_body_helpers() -> None:
    status, headers = parse_head(
        b'HTTP/1.1 401 Unauthorized\r\nServer: x\r\nWWW-Authenticate: Basic realm="R"\r\n'
        b"Set-Cookie: a\r\nSet-Cookie: b"
    )
    assert status == 401
    assert headers == {"server": "x", "www-authenticate": 'Basic realm="R"', "set-cookie": "a, b"}
    assert parse_head(b"SSH-2.0-x") == (None, {})
    assert dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n") == (b"abcde", True)
    assert dechunk(b"5\r\nab") == (b"ab", False)
    assert page_title(b"<html><TITLE>\n Orthanc &amp; co </title>") == "Orthanc & co"
    assert page_title(b"<html></html>") is None


def _json(status: int, body: bytes) -> Answer:
    return Answer(status, {"content-type": "application/json"}, body, complete=True)


def test_count_items_never_keeps_entries() -> None:
    assert count_items(_json(200, b'["a1b2"]')) == 1
    assert count_items(Answer(204)) == 0
    assert count_items(_json(200, b'{"x": 1}')) is None
    truncated = Answer(200, {"content-type": "application/json"}, b'["a", "b', complete=False)
    assert count_items(truncated) is None


DCM4CHEE_QIDO = "/dcm4chee-arc/aets/DCM4CHEE/rs/studies?limit=1"


def test_identify() -> None:
    system = _json(200, b'{"Version": "1.12.4", "Name": "X", "ApiVersion": 22}')
    ident = identify({"/system": system})
    assert (ident.product, ident.version) == ("Orthanc", "1.12.4")
    assert identify({"/system": _json(200, b'{"Version": "1.5.7", "Name": "X"}')}).by == (
        "GET /system: Version, Name"
    )
    # JSON with a Version alone is not enough.
    assert identify({"/system": _json(200, b'{"Version": "2"}')}).product is None
    realm = Answer(401, {"www-authenticate": 'Basic realm="Orthanc Secure Area"'})
    assert (identify({"/system": realm}).product, identify({"/system": realm}).version) == (
        "Orthanc",
        None,
    )
    assert identify({DCM4CHEE_QIDO: Answer(204)}).product == "dcm4chee-arc"
    assert identify({"/system": Answer(404), DCM4CHEE_QIDO: Answer(404)}).product is None
    # The realm signature holds on any path's answer; another realm names nothing.
    assert identify({"/": realm}).by == (
        "GET /: 401, www-authenticate 'Basic realm=\"Orthanc Secure Area\"'"
    )
    other = Answer(401, {"www-authenticate": 'Basic realm="Other"'})
    assert identify({"/": other}).product is None


def test_web_table_requests_and_products() -> None:
    table = web_table()
    assert [r.path for r in table.requests] == [
        "/system", "/dicom-web/studies?limit=1", "/wado", DCM4CHEE_QIDO
    ]
    signatures = {s.id: s for s in table.signatures}
    assert all(s.source and (s.path is None or s.path in {r.path for r in table.requests})
               for s in signatures.values())
    orthanc = table.product("Orthanc")
    assert orthanc is not None and orthanc.default_credentials is not None
    assert table.product("unknown") is None


def _host(*obs: HttpCheck | HttpSummary) -> Host:
    svc = Service(port=8443, name="tls", tls=True, observations=list(obs))
    return Host(address="127.0.0.1", ports=[], services=[svc])


def test_rules() -> None:
    plain = HttpSummary(scheme="http", tls=False, status=200)
    page = HttpCheck(
        scheme="http", path="/dicom-web/studies?limit=1", purpose="dicomweb", status=404
    )
    assert http_findings(_host(plain, page)) == []  # an ordinary web page is not judged

    https = HttpSummary(scheme="https", tls=True, status=200)
    qido = HttpCheck(
        scheme="https", path="/dicom-web/studies?limit=1", purpose="dicomweb", status=200, items=1
    )
    verdicts = {f.rule_id: f.status.value for f in http_findings(_host(https, qido))}
    assert verdicts == {"http-unauthenticated": "fail", "http-cleartext": "pass"}

    guarded = qido.model_copy(update={"status": 403, "items": None})
    verdicts = {f.rule_id: f.status.value for f in http_findings(_host(https, guarded))}
    assert verdicts == {"http-unauthenticated": "pass", "http-cleartext": "pass"}


class _Challenge(BaseHTTPRequestHandler):
    """SCRIPTED stand-in (Python's http.server, not Orthanc): 401 with Orthanc's realm
    for every path. Debian's Orthanc 1.10.1 with SslEnabled closed every HTTPS
    connection in this lab, so the HTTPS path is exercised against this instead."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="Orthanc Secure Area"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_https_scripted_orthanc_challenge(tmp_path: Path) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Challenge)
    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sslctx.load_cert_chain(cert, key)
    server.socket = sslctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        run = run_scan("127.0.0.1", str(port), "--profile", "fast")
    finally:
        server.shutdown()
        server.server_close()
    svc = run.service(port)
    assert (svc["tls"], svc["product"], svc["version"]) == (True, "Orthanc", None)
    [summary] = run.observations(port, "http-summary")
    assert (summary["scheme"], summary["status"], summary["auth_challenge"]) == ("https", 401, True)
    assert {c["scheme"] for c in run.observations(port, "http-check")} == {"https"}
    verdicts = {k: v for k, v in run.verdicts(port).items() if k.startswith("http-")}
    assert verdicts == {"http-unauthenticated": "pass", "http-cleartext": "pass"}
