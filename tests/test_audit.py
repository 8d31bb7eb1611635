"""``dicomscan audit``: port-by-port verdicts per device, from saved scans and end to end
against real peers on loopback, and per-requirement compliance reports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanner.model import ScanResult
from scanner.rules.catalogue import load_catalogue
from tests.conftest import needs_dcmtk, plain_listener

ROOT = Path(__file__).resolve().parent.parent
SCANS = ROOT / "fixtures" / "scans"
ORTHANC = SCANS / "orthanc-find-open.json"
FRAMEWORKS = ("acr-siim-2025", "nist-800-53", "hipaa-164-312", "nist-1800-24")


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


def audit_json(*args: str) -> tuple[int, dict[str, Any]]:
    out = cli("audit", *args, "--format", "json")
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode in (0, 1), out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return out.returncode, doc


def verdicts(doc: dict[str, Any], address: str) -> dict[int, str]:
    [d] = [d for d in doc["devices"] if d["address"] == address]
    return {p["port"]: p["verdict"] for p in d["ports"]}


def waiver_policy(tmp_path: Path, scope: str, expires: str, port: int | None = None) -> Path:
    entry = {
        **({"host": scope} if "/" not in scope else {"cidr": scope}),
        "rule": "port-not-allowed",
        "reason": "vendor service port, change CHG-42",
        "approved_by": "J. Smith (CISO)",
        "expires": expires,
    }
    if port is not None:
        entry["port"] = port
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"waivers": [entry]}), encoding="utf-8")
    return path


# --- from saved scans -----------------------------------------------------------------------


def test_audit_from_saved_scan_table() -> None:
    saved = ScanResult.model_validate_json(ORTHANC.read_text(encoding="utf-8"))
    [h] = saved.hosts
    out = cli("audit", "--from", str(ORTHANC))
    assert out.returncode == 1, out.stderr
    assert "127.0.0.20: FAIL  baseline orthanc (product)" in out.stdout
    for p in h.ports:
        line = next(ln for ln in out.stdout.splitlines() if f"{p.port}/tcp" in ln)
        assert "not allowed" in line and p.observed_at.isoformat() in line
        assert "port-not-allowed fail" in line
    assert saved.scan.started_at.isoformat() in out.stdout
    assert "OVERALL: FAIL  (0 of 1 devices pass)" in out.stdout


def test_audit_from_saved_scan_json() -> None:
    code, doc = audit_json("--from", str(ORTHANC))
    assert code == 1 and doc["result"] == "FAIL"
    [d] = doc["devices"]
    assert (d["baseline"], d["selected_by"], d["result"]) == ("orthanc", "product", "FAIL")
    assert set(verdicts(doc, "127.0.0.20").values()) == {"not allowed"}
    [port] = [p for p in d["ports"] if p["service"].startswith("dicom ")]
    assert port["measured_at"] and port["service"].startswith("dicom (Orthanc")
    [ev] = port["evidence"]
    assert ev["rule_id"] == "port-not-allowed" and ev["baseline"] == "orthanc"
    assert doc["scan"]["source"] == str(ORTHANC)


def test_audit_with_waivers_passes(tmp_path: Path) -> None:
    policy = waiver_policy(tmp_path, "127.0.0.0/24", "2099-12-31")
    code, doc = audit_json("--from", str(ORTHANC), "--policy", str(policy))
    assert set(verdicts(doc, "127.0.0.20").values()) == {"waived"}
    assert code == 0 and doc["result"] == "PASS"
    [d] = doc["devices"]
    ev = next(e for e in d["ports"][0]["evidence"] if e["rule_id"] == "port-not-allowed")
    assert ev["waiver"]["reason"] == "vendor service port, change CHG-42"
    assert ev["waiver"]["approved_by"] == "J. Smith (CISO)"
    assert ev["waiver"]["expires"] == "2099-12-31"
    out = cli("audit", "--from", str(ORTHANC), "--policy", str(policy))
    assert out.returncode == 0 and "waived" in out.stdout and "CHG-42" in out.stdout


def test_audit_with_expired_waiver_fails(tmp_path: Path) -> None:
    policy = waiver_policy(tmp_path, "127.0.0.20", "2020-01-01")
    code, doc = audit_json("--from", str(ORTHANC), "--policy", str(policy))
    assert code == 1
    assert set(verdicts(doc, "127.0.0.20").values()) == {"not allowed"}
    [d] = doc["devices"]
    [expired] = d["expired_waivers"]
    assert expired["rule_id"] == "waiver-expired"
    assert any("expired waiver" in r for r in d["reasons"])


def test_audit_usage_errors(tmp_path: Path) -> None:
    out = cli("audit", "--from", str(ORTHANC), "127.0.0.1")
    assert out.returncode == 2 and "not both" in out.stderr
    bad = tmp_path / "scan.json"
    bad.write_text('{"hosts": []}', encoding="utf-8")
    out = cli("audit", "--from", str(bad))
    assert out.returncode == 2 and "not a dicomscan --format json scan" in out.stderr
    out = cli("audit", "--from", str(tmp_path / "missing.json"))
    assert out.returncode == 2 and "cannot read saved scan" in out.stderr
    out = cli("audit", "--from", str(ORTHANC), "--framework", "nope")
    assert out.returncode == 2 and "unknown framework 'nope'" in out.stderr
    assert "Traceback" not in out.stderr


# --- compliance frameworks ------------------------------------------------------------------


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_framework_file_is_well_formed(name: str) -> None:
    path = resources.files("scanner") / "data" / "frameworks" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["id"] == name and doc["title"] and doc["source"]
    ids = [r["id"] for r in doc["requirements"]]
    assert ids and len(ids) == len(set(ids))
    for req in doc["requirements"]:
        assert set(req) == {"id", "title", "rules"} and req["title"]
        assert req["rules"] and set(req["rules"]) <= set(load_catalogue()), req["id"]


def test_every_rule_rests_some_framework_requirement() -> None:
    """A new rule that no framework maps would be invisible in every per-requirement audit."""
    mapped: set[str] = set()
    for name in FRAMEWORKS:
        path = resources.files("scanner") / "data" / "frameworks" / f"{name}.yaml"
        for req in yaml.safe_load(path.read_text(encoding="utf-8"))["requirements"]:
            mapped |= set(req["rules"])
    assert set(load_catalogue()) - mapped == set()


def test_audit_framework_report() -> None:
    code, doc = audit_json("--from", str(ORTHANC), "--framework", "nist-800-53")
    assert code == 1
    reqs = {r["id"]: r for r in doc["framework"]["requirements"]}
    assert reqs["CM-7"]["status"] == "fail"
    assert "port-not-allowed@127.0.0.20:" + str(doc["devices"][0]["ports"][0]["port"]) in (
        reqs["CM-7"]["failed"]
    )
    assert reqs["SC-8"]["status"] == "fail"  # DICOM in the clear
    assert reqs["SC-23"]["status"] == "not-checked"  # no TLS certificate on this device
    assert reqs["AC-17"]["status"] == "not-checked"  # remote-access ports were not scanned
    out = cli("audit", "--from", str(ORTHANC), "--framework", "hipaa-164-312")
    assert out.returncode == 1
    assert "164.312(e)(1)" in out.stdout and "Transmission security" in out.stdout


def test_framework_waived_counts_as_held(tmp_path: Path) -> None:
    policy = waiver_policy(tmp_path, "127.0.0.20", "2099-12-31")
    _, doc = audit_json("--from", str(ORTHANC), "--policy", str(policy),
                        "--framework", "acr-siim-2025")
    [req] = [r for r in doc["framework"]["requirements"] if r["id"] == "unused-ports-disabled"]
    # Waived findings hold the requirement; what was not scanned is counted, never passed.
    assert (req["status"], req["waived"], req["not_checked"]) == ("pass", 2, 2)
    assert req["failed"] == []


# --- end to end on loopback -----------------------------------------------------------------


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A plain TCP listener that accepts and closes; yields (address, port)."""
    address, wanted = request.param
    with plain_listener(address, wanted) as port:
        yield address, port


@pytest.mark.parametrize("listener", [("127.0.0.35", 3389)], indirect=True)
def test_audit_live_listener_not_allowed(listener: tuple[str, int]) -> None:
    address, port = listener
    out = cli("audit", address, "-p", f"{port},104", "--profile", "fast", "-q")
    assert out.returncode == 1, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if f"{port}/tcp" in ln)
    assert "not allowed" in line and "port-not-allowed fail" in line
    assert "104/tcp" not in out.stdout  # closed ports are not listed
    assert "OVERALL: FAIL" in out.stdout
    code, doc = audit_json(address, "-p", str(port), "--profile", "fast", "-q")
    assert code == 1 and verdicts(doc, address) == {port: "not allowed"}
    [d] = doc["devices"]
    rules = {e["rule_id"]: e["status"] for e in d["ports"][0]["evidence"]}
    assert rules == {"port-not-allowed": "fail", "remote-access-exposed": "fail"}


@pytest.mark.peers
@needs_dcmtk
@pytest.mark.parametrize("listener", [("127.0.0.34", 0)], indirect=True)
def test_audit_real_storescp_with_forbidden_listener(
    listener: tuple[str, int], tmp_path: Path
) -> None:
    from scanner.lab import peers

    address, forbidden = listener
    with peers.start_storescp(host=address) as p:
        dicom = p.info.port
        policy = waiver_policy(tmp_path, address, "2099-12-31", port=dicom)
        ports = f"{dicom},{forbidden}"
        code, doc = audit_json(address, "-p", ports, "--profile", "normal", "-q",
                               "--policy", str(policy))
        table = cli("audit", address, "-p", ports, "--profile", "normal", "-q",
                    "--policy", str(policy))
    assert code == 1 and doc["result"] == "FAIL" and doc["scan"]["source"] == "live scan"
    [d] = doc["devices"]
    assert (d["baseline"], d["selected_by"]) == ("dcmtk", "product")
    assert verdicts(doc, address) == {dicom: "waived", forbidden: "not allowed"}
    assert d["reasons"] == [f"port {forbidden}: not allowed"]
    assert all(p["measured_at"] for p in d["ports"])
    assert table.returncode == 1, table.stderr
    line = next(ln for ln in table.stdout.splitlines() if f"{forbidden}/tcp" in ln)
    assert "not allowed" in line
    assert "waived" in next(ln for ln in table.stdout.splitlines() if f"{dicom}/tcp" in ln)
