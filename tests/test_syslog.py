"""CEF over syslog, received by a real rsyslog on loopback over UDP, TCP and TLS, and
parsed back to the findings (finding_id, title, severity, evidence)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.model import FindingStatus, ScanResult
from scanner.outputs.cef import EVIDENCE_LIMIT, escape_extension, escape_header
from scanner.outputs.syslog import SyslogError, send_findings
from tests.tls_peers import generate_certs

ROOT = Path(__file__).resolve().parent.parent
ORTHANC = ROOT / "fixtures" / "scans" / "orthanc-find-open.json"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
# In CI a missing rsyslog is a broken install step: fail there instead of skipping.
pytestmark = pytest.mark.skipif(not Path(RSYSLOGD).exists() and not os.environ.get("CI"),
                                reason="rsyslog not installed")

CONF = """\
global(workDirectory="{d}/work" maxMessageSize="64k"
  parser.escapeControlCharactersOnReceive="off" net.enableDNS="off"
  defaultNetstreamDriverCAFile="{certs}/ca.pem"
  defaultNetstreamDriverCertFile="{certs}/server.pem"
  defaultNetstreamDriverKeyFile="{certs}/server.key")
module(load="imudp")
module(load="imtcp" maxSessions="20")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="rs")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="rs")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="rs" streamDriver.name="gtls"
      streamDriver.mode="1" streamDriver.authMode="anon" gnutlsPriorityString="NORMAL")
template(name="Fields" type="list" option.jsonf="on") {{
  property(outname="inputname" name="inputname" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="appname" name="app-name" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
ruleset(name="rs") {{
  action(type="omfile" file="{d}/fields.jsonl" template="Fields" flushOnTXEnd="on"
         asyncWriting="off")
}}
"""


@dataclass
class Rsyslog:
    folder: Path
    certs: Path
    udp: int
    tcp: int
    tls: int

    def received(self, count: int, timeout: float = 20) -> list[dict[str, str]]:
        path = self.folder / "fields.jsonl"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = path.read_text().splitlines() if path.exists() else []
            if len(lines) >= count:
                return [json.loads(x) for x in lines]
            time.sleep(0.1)
        raise AssertionError(f"rsyslog received {len(lines)} of {count} messages")


def _free_port() -> int:
    # A port free for both TCP and UDP on loopback.
    while True:
        with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)


@pytest.fixture()
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    (tmp_path / "work").mkdir()
    certs = generate_certs(tmp_path / "certs")
    ports = {"udp": _free_port(), "tcp": _free_port(), "tls": _free_port()}
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(CONF.format(d=tmp_path, certs=certs, **ports))
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        for port in (ports["tcp"], ports["tls"]):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                    assert time.monotonic() < deadline, "rsyslogd did not listen"
                    time.sleep(0.1)
        yield Rsyslog(tmp_path, certs, **ports)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """The seven header fields (unescaped) and the extension, as a SIEM parser reads them."""
    assert text.startswith("CEF:"), text
    header, rest, i = [], text[4:], 0
    field = ""
    while len(header) < 7:
        c = rest[i]
        if c == "\\" and rest[i + 1] in "\\|":
            field += rest[i + 1]
            i += 2
            continue
        if c == "|":
            header.append(field)
            field = ""
        else:
            field += c
        i += 1
    extension = rest[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9]+)=", extension))
    fields = {}
    for k, nxt in zip(keys, [*keys[1:], None], strict=True):
        raw = extension[k.end(): nxt.start() if nxt else len(extension)]
        fields[k.group(1)] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(
            m.group(1), m.group(1)), raw)
    return header, fields


def hostile_result() -> ScanResult:
    result = ScanResult.model_validate_json(ORTHANC.read_text())
    first = result.findings[0]
    hostile = first.model_copy(update={
        "title": "pipe | back\\slash = equals\nnew line",
        "evidence": {"banner": "a=b c\\d | e\r\nf", "ansi": "\x1b[31mred"}})
    return result.model_copy(update={"findings": [hostile, *result.findings[1:]]})


def check_round_trip(result: ScanResult, received: list[dict[str, str]], input_name: str) -> None:
    assert len(received) == len(result.findings)
    by_id = {}
    for line in received:
        assert line["inputname"] == input_name
        assert (line["appname"], line["msgid"]) == ("dicomscan", "finding")
        header, ext = parse_cef(line["msg"].lstrip())
        by_id[ext["externalId"]] = (header, ext)
    for f in result.findings:
        header, ext = by_id[f.finding_id]
        assert header[:4] == ["0", "dicomscan", "dicomscan", result.scan.tool_version]
        assert header[4] == f.rule_id
        assert header[5] == f.title.replace("\n", " ")
        assert ext["msg"] == f.title
        assert ext["cs1"] == f.device_id and ext["outcome"] == f.status.value
        evidence = json.dumps(f.evidence, separators=(",", ":"), sort_keys=True,
                              ensure_ascii=False)
        if len(evidence) <= EVIDENCE_LIMIT:
            assert json.loads(ext["cs4"]) == f.evidence
        else:
            assert ext["cs4"] == evidence[:EVIDENCE_LIMIT] + "...[truncated]"
        assert ext["dst"] == f.host and ext.get("dpt") == (str(f.port) if f.port else None)
        assert (int(header[6]) > 0) == (f.status is FindingStatus.FAIL)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_rsyslog_receives_findings_that_parse_back(rsyslog: Rsyslog, transport: str) -> None:
    result = hostile_result()
    port = getattr(rsyslog, transport)
    ca = str(rsyslog.certs / "ca.pem") if transport == "tls" else None
    assert send_findings(result, f"{transport}://127.0.0.1:{port}", ca_file=ca) == \
        len(result.findings)
    name = "imudp" if transport == "udp" else "imtcp"
    check_round_trip(result, rsyslog.received(len(result.findings)), name)


def test_an_untrusted_receiver_certificate_is_refused(rsyslog: Rsyslog) -> None:
    with pytest.raises(SyslogError, match="certificate not trusted"):
        send_findings(hostile_result(), f"tls://127.0.0.1:{rsyslog.tls}",
                      ca_file=str(rsyslog.certs / "selfsigned.pem"))


def test_cli_sends_over_tls_and_an_unreachable_receiver_keeps_the_files(
    rsyslog: Rsyslog, tmp_path: Path
) -> None:
    base = [sys.executable, "-m", "scanner", "report", str(ORTHANC)]
    out = subprocess.run([*base, "-o", str(tmp_path / "s.csv"), "--syslog",
                          f"tls://127.0.0.1:{rsyslog.tls}", "--syslog-ca",
                          str(rsyslog.certs / "ca.pem")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    result = ScanResult.model_validate_json(ORTHANC.read_text())
    check_round_trip(result, rsyslog.received(len(result.findings)), "imtcp")
    closed = _free_port()
    started = time.monotonic()
    out = subprocess.run([*base, "-o", str(tmp_path / "t.csv"), "--syslog",
                          f"tcp://127.0.0.1:{closed}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 4
    assert "unreachable after 3 attempts" in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - started < 30  # bounded retry, no hang
    assert (tmp_path / "t.csv").read_text().count("\n") == 1 + len(result.findings)


def test_escaping_follows_cef() -> None:
    assert escape_header("a|b\\c\nd") == "a\\|b\\\\c d"
    assert escape_extension("a=b\\c\r\nd|e") == "a\\=b\\\\c\\nd|e"


def test_tcp_frames_are_octet_counted() -> None:
    """RFC 6587 §3.4.1 on the wire: ``LEN SP MSG`` back to back, nothing else."""
    result = hostile_result()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        send_findings(result, f"tcp://127.0.0.1:{port}")
        conn, _ = server.accept()
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    frames = []
    while data:
        length, _, rest = data.partition(b" ")
        assert length.isdigit() and not length.startswith(b"0")
        frames.append(rest[: int(length)])
        data = rest[int(length):]
    assert len(frames) == len(result.findings)
    assert all(re.match(rb"<1[67]\d>1 \S+ \S+ dicomscan \d+ finding - CEF:0\|", f)
               for f in frames)
