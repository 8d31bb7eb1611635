"""Drift of real peers from the CLI and in the SIEM outputs: TLS switched off between two
scans (DCMTK storescp with +tls, then without, on the same port), and a waiver that
expired between two scans (the scans run under faketime on dates either side of the
expiry; the rules judge a waiver by the scan's own date). Every OCSF event validates
against the official 1.8.0 schema; the CEF events go through a real rsyslog."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scanner.lab.peers import start_storescp
from tests.conftest import needs_dcmtk
from tests.test_ocsf import assert_valid
from tests.test_syslog import Rsyslog, parse_cef, rsyslog  # noqa: F401 (fixture)
from tests.tls_peers import dcmtk_tls, generate_certs

pytestmark = pytest.mark.peers
FAKETIME = shutil.which("faketime")


def cli(*args: str, env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*prefix, sys.executable, "-m", "scanner", *args],
                         capture_output=True, text=True, timeout=180, env=env)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def scan(store: str, port: int, *extra: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    out = cli("scan", "127.0.0.1", "-p", str(port), "--discovery", "none", "--fail-on",
              "never", "-q", "--format", "json", "--history", store, "--job", "lab",
              "--baseline", "dcmtk", *extra, **kw)
    assert out.returncode == 0, out.stderr
    return out


def ocsf_lines(text: str) -> list[dict[str, Any]]:
    events = [json.loads(x) for x in text.splitlines()]
    for event in events:
        assert_valid(event)
    return events


@needs_dcmtk
def test_tls_switched_off_is_that_drift_in_every_siem_output(tmp_path: Path,
                                                             rsyslog: Rsyslog) -> None:  # noqa: F811
    store, certs = str(tmp_path / "history.sqlite"), generate_certs(tmp_path / "certs")
    tls = dcmtk_tls(certs, "-ic")  # DICOM over TLS without a client certificate
    port = tls.info.port
    try:
        scan(store, port)
    finally:
        tls.stop()
    plain = start_storescp(port=port)  # the same service, TLS switched off
    try:
        second = scan(store, port, "--drift-output", f"ocsf:{tmp_path / 'drift.out'}",
                      "--syslog", f"udp://127.0.0.1:{rsyslog.udp}")
    finally:
        plain.stop()
    # The stored scan's own outputs carry first/last seen from the history.
    doc = json.loads(second.stdout)
    assert doc["hosts"][0]["first_seen"] < doc["hosts"][0]["last_seen"]

    changes = json.loads(cli("diff", "--history", store, "--job", "lab", "--format",
                             "json").stdout)["changes"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for c in changes:
        by_kind.setdefault(c["kind"], []).append(c)
    assert [(c["field"], c["before"], c["after"]) for c in by_kind["tls-changed"]] == [
        ("tls.tls", True, False)]
    renamed = [c for c in by_kind["service-changed"] if c["field"] == "service.name"]
    assert [(c["before"], c["after"]) for c in renamed] == [("dicom-tls", "dicom")]
    new = {c["rule_id"]: c for c in by_kind["finding-new"]}
    assert new["dicom-cleartext"]["after"] == "fail"  # no such check on a TLS port before
    assert {c["rule_id"] for c in by_kind["finding-resolved"]} == {
        "tls-client-cert-not-required", "tls-weak-cipher"}
    assert set(by_kind) <= {"tls-changed", "service-changed", "finding-new",
                            "finding-resolved"}, by_kind.keys()
    # Anything else is a value the probes did not measure over TLS (identification,
    # the called-AE check): unmeasured before, measured now, never a changed measurement.
    others = [c for c in changes if c not in by_kind["tls-changed"] + renamed
              + by_kind["finding-resolved"] and c["rule_id"] != "dicom-cleartext"]
    assert all(c["before"] in (None, "not-checked") for c in others), others

    # OCSF from the scan's --drift-output: one valid event per change, classes as chosen.
    ocsf = ocsf_lines((tmp_path / "drift.out").read_text())
    assert len(ocsf) == len(changes)
    tls_event = next(e for e in ocsf if e["unmapped"]["drift"]["kind"] == "tls-changed")
    assert (tls_event["class_uid"], tls_event["type_uid"]) == (5001, 500102)
    assert tls_event["device"]["first_seen_time"] <= tls_event["device"]["last_seen_time"]
    cleartext = next(e for e in ocsf if e["class_uid"] == 2003
                     and e["finding_info"]["types"] == ["dicom-cleartext"])
    assert (cleartext["activity_id"], cleartext["status_id"],
            cleartext["compliance"]["status_id"]) == (1, 1, 3)
    resolved = [e for e in ocsf if e["activity_id"] == 3 and e["class_uid"] == 2003]
    assert {e["finding_info"]["types"][0] for e in resolved} == {
        "tls-client-cert-not-required", "tls-weak-cipher"}
    assert all(e["status_id"] == 4 for e in resolved)

    # CEF: one syslog message per change (MSGID drift) beside the scan's findings.
    findings = len(doc["findings"])
    received = rsyslog.received(findings + len(changes))
    drift_msgs = [parse_cef(m["msg"].lstrip()) for m in received if m["msgid"] == "drift"]
    assert sorted(h[4] for h, _ in drift_msgs) == sorted(f"drift:{c['kind']}" for c in changes)
    ids = {e["metadata"]["uid"] for e in ocsf}
    assert {ext["externalId"] for _, ext in drift_msgs} == ids  # same event IDs everywhere
    tls_cef = next(ext for h, ext in drift_msgs if h[4] == "drift:tls-changed")
    assert json.loads(tls_cef["cs4"]) == {"field": "tls.tls", "before": True, "after": False}
    assert int(tls_cef["dpt"]) == port

    # diff renders the same drift as CEF lines and OCSF.
    cef = cli("diff", "--history", store, "--job", "lab", "--format", "cef")
    assert cef.returncode == 0 and len(cef.stdout.splitlines()) == len(changes)
    assert len(ocsf_lines(cli("diff", "--history", store, "--job", "lab", "--format",
                              "ocsf").stdout)) == len(changes)


POLICY = """\
waivers:
  - host: 127.0.0.1
    rule: dicom-echo-open
    reason: modality vendor needs C-ECHO from anyone, change CHG-1
    approved_by: J. Smith (CISO)
    expires: 2026-12-05
"""


@needs_dcmtk
@pytest.mark.skipif(FAKETIME is None and not os.environ.get("CI"),
                    reason="faketime not installed (Debian: faketime)")
def test_a_waiver_that_expired_between_two_scans_is_that_drift(tmp_path: Path,
                                                               rsyslog: Rsyslog) -> None:  # noqa: F811
    store, policy = str(tmp_path / "history.sqlite"), tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    # Real clocks for the kernel and asyncio; only the wall-clock date moves.
    env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    peer = start_storescp()
    try:
        first = scan(store, peer.info.port, "--policy", str(policy), env=env,
                     prefix=(str(FAKETIME), "2026-12-04 08:00:00"))
        gated = cli("scan", "127.0.0.1", "-p", str(peer.info.port), "--discovery", "none",
                    "--fail-on", "never", "-q", "--format", "json", "--history", store,
                    "--job", "lab", "--baseline", "dcmtk", "--policy", str(policy),
                    "--drift-output", str(tmp_path / "drift.ocsf.json"),
                    "--fail-on-drift", "finding-new",
                    "--syslog", f"tcp://127.0.0.1:{rsyslog.tcp}", env=env,
                    prefix=(str(FAKETIME), "2026-12-06 08:00:00"))
    finally:
        peer.stop()
    waived = [f for f in json.loads(first.stdout)["findings"] if f["status"] == "waived"]
    assert [f["rule_id"] for f in waived] == ["dicom-echo-open"]
    assert gated.returncode == 1 and "finding-new" in gated.stderr  # --fail-on-drift

    changes = json.loads(cli("diff", "--history", store, "--job", "lab", "--format",
                             "json").stdout)["changes"]
    got = sorted((c["kind"], c["rule_id"], c["before"], c["after"]) for c in changes)
    assert got == [("finding-new", "dicom-echo-open", "waived", "fail"),
                   ("finding-new", "waiver-expired", "pass", "fail")]

    ocsf = ocsf_lines((tmp_path / "drift.ocsf.json").read_text())
    assert sorted(e["finding_info"]["types"][0] for e in ocsf) == [
        "dicom-echo-open", "waiver-expired"]
    assert all((e["class_uid"], e["activity_id"], e["status_id"]) == (2003, 1, 1)
               for e in ocsf)
    received = rsyslog.received(len(json.loads(gated.stdout)["findings"]) + 2)
    drift_msgs = [parse_cef(m["msg"].lstrip()) for m in received if m["msgid"] == "drift"]
    assert sorted(ext["cs6"] for _, ext in drift_msgs) == ["dicom-echo-open",
                                                          "waiver-expired"]
    assert all(int(h[6]) > 0 for h, _ in drift_msgs)  # failing again: the rule's severity
