"""Vendor identification and vendor baselines: every expectation cites a source, and the
evidence a device discloses selects its vendor's baseline."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from scanner.identify.vendor import identify_vendors, vendor_table
from scanner.model import Host, PortObservation, PortState, Service
from scanner.model.observations import Association, AssociationOutcome, PeerIdentity
from scanner.rules.baseline_model import EXPECTED_RULE, BaselineError
from scanner.rules.baseline_rules import select
from scanner.rules.baselines import parse_baseline, shipped
from scanner.rules.evaluate import evaluate
from tests.conftest import run_scan

ROOT = Path(__file__).resolve().parent.parent
VENDOR_FILES = sorted(p for p in (ROOT / "baselines").glob("*.yaml")
                      if "vendor" in yaml.safe_load(p.read_text()))
GE_UID = "1.2.840.113619.6.115"


def test_vendor_baselines_exist_for_the_sourced_vendors() -> None:
    vendors = {shipped()[p.stem].vendor for p in VENDOR_FILES}
    assert {"GE HealthCare", "Siemens Healthineers", "Philips", "Fujifilm", "Canon Medical",
            "Hologic", "Merge", "Horos/OsiriX", "Agfa HealthCare"} <= vendors


@pytest.mark.parametrize("path", VENDOR_FILES, ids=[p.stem for p in VENDOR_FILES])
def test_every_vendor_expectation_cites_a_source(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    ids = {s["id"] for s in raw["sources"]}
    assert all(s.get("url") or s.get("reference") for s in raw["sources"])
    for key, exp in (raw.get("expectations") or {}).items():
        assert key in EXPECTED_RULE
        assert exp.get("cite"), f"{path.name}: {key} has no source"
        for c in exp["cite"]:
            assert c["source"] in ids and c["confidence"] in (
                "confirmed", "secondary", "unconfirmed") and c["says"].strip()
    for adv in raw.get("advisories") or []:
        assert adv["cite"] and all(c["source"] in ids for c in adv["cite"])


def test_an_uncited_vendor_expectation_is_refused() -> None:
    text = (ROOT / "baselines" / "fujifilm.yaml").read_text()
    uncited = text.split("    cite:\n      - {source: icsma-19-113-01, confidence: confirmed, "
                         "says: \"telnet on")[0]
    with pytest.raises(BaselineError, match="needs a cite"):
        parse_baseline(uncited, "fujifilm-uncited.yaml")
    wrong = text.replace("source: icsma-19-113-01, confidence: confirmed, says: \"telnet",
                         "source: nowhere, confidence: confirmed, says: \"telnet")
    with pytest.raises(BaselineError, match="unknown source 'nowhere'"):
        parse_baseline(wrong, "fujifilm-wrong.yaml")


def test_every_vendor_table_row_has_a_source() -> None:
    rows = vendor_table()
    assert len(rows) > 10 and all(len(r.source) > 10 for r in rows)


def _host(uid: str | None = None, version: str | None = None, mac_vendor: str | None = None,
          ports: tuple[int, ...] = (104,)) -> Host:
    peer = PeerIdentity(implementation_class_uid=uid, implementation_version_name=version)
    assoc = Association(purpose="detect", calling_ae="A", called_ae="B",
                        outcome=AssociationOutcome.ACCEPTED, peer=peer, elapsed_ms=1.0)
    now = datetime.now(UTC)
    return Host(
        address="127.0.0.9", mac_vendor=mac_vendor,
        ports=[PortObservation(port=p, state=PortState.OPEN, method="tcp-connect",
                               reason="connected", observed_at=now) for p in ports],
        services=[Service(port=ports[0], name="dicom", observations=[assoc] if uid else [])],
    )


def test_vendor_from_uid_root_version_name_and_mac() -> None:
    [ge] = identify_vendors(_host(GE_UID, "LOGIQ 7_4"))
    assert ge.vendor == "GE HealthCare" and ge.family == "LOGIQ ultrasound"
    assert ge.confidence == "high"
    assert {e.kind.value for e in ge.evidence} == {"uid-root", "version-name"}
    assert all(e.source for e in ge.evidence)
    [siemens] = identify_vendors(_host(mac_vendor="Siemens Healthineers AG"))
    assert siemens.vendor == "Siemens Healthineers" and siemens.confidence == "medium"
    assert identify_vendors(_host("1.2.276.0.7230010.3.0.3.6.7")) == []  # DCMTK: no vendor
    # A root is matched on a component boundary: 1.2.840.1136190 is not GE.
    assert identify_vendors(_host("1.2.840.1136190.1")) == []


@pytest.mark.parametrize(
    ("host", "baseline", "selected_by"),
    [
        (_host("1.3.12.2.1107.5.1"), "siemens-healthineers", "product"),
        (_host("1.3.12.2.1107.5.1", ports=(104, 3465)), "siemens-molecular-imaging", "product"),
        (_host("1.3.46.670589.30", ports=(104, 6000)), "philips-xper-im", "product"),
        (_host("1.3.46.670589.30", ports=(104, 3010)), "philips-digitaldiagnost", "product"),
        (_host(mac_vendor="Canon Medical Systems Corporation"), "canon-medical", "open-ports"),
        (_host("1.2.392.200036.9125"), "fujifilm", "product"),
    ],
)
def test_vendor_evidence_selects_the_vendor_baseline(
    host: Host, baseline: str, selected_by: str
) -> None:
    sel = select(host)
    assert (sel.resolved.id, sel.selected_by) == (baseline, selected_by)


def test_vendor_baseline_judges_with_its_sourced_expectations() -> None:
    findings = evaluate([_host("1.3.12.2.1107.5.1", ports=(104, 3465))])
    [port] = [f for f in findings if f.rule_id == "port-not-allowed" and f.port == 3465]
    assert port.status.value == "fail" and port.evidence["baseline"] == "siemens-molecular-imaging"
    assert port.evidence["verdict"] == "must be closed by the baseline"
    [sel] = [f for f in findings if f.rule_id == "baseline-unmatched"]
    assert {a["id"] for a in sel.evidence["advisories"]} == {"ICSMA-17-215-01",
                                                             "ICSMA-17-215-02"}


# --- a DICOM peer presenting GE's implementation class UID --------------------------------

_GE_SCP = """
import sys
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
ae = AE(ae_title="LOGIQ7")
ae.implementation_class_uid = sys.argv[1]
ae.implementation_version_name = "LOGIQ 7_4"
ae.add_supported_context(Verification)
ae.start_server(("127.0.0.1", int(sys.argv[2])), block=True)
"""


@contextlib.contextmanager
def ge_peer() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", _GE_SCP, GE_UID, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while f":{port:04X} 00000000:0000 0A" not in Path("/proc/net/tcp").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "GE peer did not start"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_scan_of_a_ge_uid_peer_selects_the_ge_baseline() -> None:
    with ge_peer() as port:
        run = run_scan("127.0.0.1", str(port))
    host = run.doc["hosts"][0]
    [ge] = [v for v in host["vendors"] if v["vendor"] == "GE HealthCare"]
    assert ge["family"] == "LOGIQ ultrasound" and ge["confidence"] == "high"
    [sel] = [f for f in run.doc["findings"] if f["rule_id"] == "baseline-unmatched"]
    assert sel["status"] == "pass" and sel["evidence"]["baseline"] == "ge-healthcare"
    assert any(GE_UID in why for why in sel["evidence"]["why"])
    assert "ICSMA-20-343-01" in {a["id"] for a in sel["evidence"]["advisories"]}
    # The GE baseline's sourced TLS expectation judges the cleartext DICOM port.
    cleartext = run.finding(port, "dicom-cleartext")
    assert cleartext["status"] == "fail"
    assert cleartext["evidence"].get("baseline") == "ge-healthcare"
