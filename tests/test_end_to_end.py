"""The whole pipeline through the real CLI: formats, schema, TLS and mutual TLS.

These are the spine's "done" criteria: scanning a running Orthanc reports its open ports
correctly in all three formats, and the JSON obeys the committed schema.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from scanner.lab import peers
from tests.conftest import needs_dcmtk, needs_orthanc, run_scan
from tests.tls_peers import dcmtk_tls, generate_certs

pytestmark = pytest.mark.peers
SCHEMA = json.loads((resources.files("scanner") / "schema" / "report.schema.json").read_text())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", "scan", *args], capture_output=True, text=True,
        timeout=120,
    )


@needs_orthanc
def test_orthanc_ports_in_all_three_formats() -> None:
    closed = closed_port()
    with peers.start_orthanc() as orthanc:
        dicom, http = orthanc.info.port, orthanc.info.extra_ports["http"]
        ports = f"{dicom},{http},{closed}"
        as_json = cli("127.0.0.1", "-p", ports, "--format", "json")
        as_jsonl = cli("127.0.0.1", "-p", ports, "--format", "jsonl")
        as_table = cli("127.0.0.1", "-p", ports, "--format", "table")
    # Debian's Orthanc answers its REST API on loopback without credentials and is 1.10.1
    # (CVE-2023-33466): both high, so the default --fail-on high exits 1 in every format.
    for out in (as_json, as_jsonl, as_table):
        assert out.returncode == 1, out.stderr
    doc = json.loads(as_json.stdout)
    jsonschema.validate(doc, SCHEMA)
    [host] = doc["hosts"]
    assert {p["port"]: p["state"] for p in host["ports"]} == {
        dicom: "open", http: "open", closed: "closed"
    }
    assert {s["port"]: (s["name"], s["tls"]) for s in host["services"]} == {
        dicom: ("dicom", False), http: ("http", False)
    }
    assert host["role"] == "pacs"

    events = [json.loads(line) for line in as_jsonl.stdout.splitlines()]
    assert events and all(e["host"] == "127.0.0.1" and e["scan_id"] for e in events)
    assert {e["rule_id"] for e in events if e["status"] == "fail"} >= {
        "dicom-cleartext", "dicom-calling-ae-not-validated", "http-unauthenticated",
        "software-vulnerable-version",
    }
    assert {e["rule_id"] for e in events if e["severity"] == "high" and e["status"] == "fail"} == {
        "http-unauthenticated", "software-vulnerable-version"
    }
    assert len({e["scan_id"] for e in events}) == 1

    assert ", ".join(str(p) for p in sorted((dicom, http))) in as_table.stdout
    assert f"{dicom}/dicom (Orthanc" in as_table.stdout
    assert "dicom-cleartext" in as_table.stdout


@needs_orthanc
def test_fail_on_sets_exit_code() -> None:
    with peers.start_orthanc({"DicomAlwaysAllowFind": True}) as orthanc:
        port = str(orthanc.info.port)
        assert cli("127.0.0.1", "-p", port, "--format", "json").returncode == 1  # high
        assert cli("127.0.0.1", "-p", port, "--fail-on", "critical").returncode == 0
        assert cli("127.0.0.1", "-p", port, "--fail-on", "never").returncode == 0


@needs_dcmtk
def test_dicom_over_tls_with_and_without_a_client_certificate(tmp_path: Path) -> None:
    certs = generate_certs(tmp_path)
    # DCMTK's default profile, client certificate required, our test CA trusted.
    with dcmtk_tls(certs, "--add-cert-file", str(certs / "ca.pem")) as peer:
        port = peer.info.port
        anonymous = run_scan("127.0.0.1", str(port), "--ca", str(certs / "ca.pem"))
        mutual = run_scan(
            "127.0.0.1", str(port),
            "--client-cert", str(certs / "client.pem"),
            "--client-key", str(certs / "client.key"),
        )
    svc = anonymous.service(port)
    assert svc["tls"] is True
    assert svc["name"] in ("tls", "dicom-tls")
    assert anonymous.verdicts(port)["tls-client-cert-not-required"] == "pass"
    assert anonymous.verdicts(port)["tls-legacy-protocol"] == "pass"
    assert "dicom-cleartext" not in anonymous.verdicts(port)
    # With the CA-signed client certificate DICOM runs inside TLS.
    assert mutual.service(port)["name"] == "dicom-tls"
    inside = mutual.association(port, "detect-tls-client-cert")
    assert inside["outcome"] == "accepted"
    assert inside["peer"]["implementation_version_name"] == "OFFIS_DCMTK_367"
    # The AE title and unknown-peer checks run inside TLS too (storescp accepts anyone).
    assert mutual.association(port, "calling-ae")["outcome"] == "accepted"
    verdicts = mutual.verdicts(port)
    assert verdicts["dicom-calling-ae-not-validated"] == "fail"
    assert verdicts["dicom-echo-open"] == "fail"
    assert "dicom-cleartext" not in verdicts
    key_text = (certs / "client.key").read_text()
    assert key_text.splitlines()[1] not in json.dumps(mutual.doc)  # key material never logged


@needs_dcmtk
def test_cleartext_beside_tls_is_reported_as_a_downgrade(tmp_path: Path) -> None:
    certs = generate_certs(tmp_path)
    with dcmtk_tls(certs, "--profile-bcp195", "-ic") as tls, peers.start_storescp() as clear:
        run = run_scan("127.0.0.1", f"{tls.info.port},{clear.info.port}")
    assert run.service(tls.info.port)["name"] == "dicom-tls"
    finding = run.finding(clear.info.port, "dicom-cleartext")
    assert finding["status"] == "fail"
    assert finding["evidence"]["also_offered_over_tls"] == [tls.info.port]
    assert "dicom-cleartext" not in run.verdicts(tls.info.port)
