"""Hardening baselines: the shipped files, validation errors, selection and port verdicts.

Selection and verdicts are tested offline from the saved scans in fixtures/scans, and end
to end with real listeners on loopback scanned by the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanner.model import Host, PortObservation, PortState, ScanResult, Service, Severity
from scanner.model.observations import Association, AssociationOutcome, Fingerprint, PeerIdentity
from scanner.rules.baseline_model import REMOTE_ACCESS_PORTS, BaselineError
from scanner.rules.baseline_rules import baseline_findings, select
from scanner.rules.baselines import load_files, parse_baseline, resolve, shipped, shipped_files
from scanner.rules.catalogue import load_catalogue
from tests.conftest import needs_dcmtk, needs_orthanc, plain_listener

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "fixtures" / "baselines"
SCANS = ROOT / "fixtures" / "scans"
REQUIRED = {"generic-pacs", "generic-modality", "generic-workstation", "orthanc", "dcmtk"}
REQUIRED |= {"dcm4chee-arc"}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def saved_host(name: str) -> Host:
    result = ScanResult.model_validate(json.loads((SCANS / name).read_text(encoding="utf-8")))
    [host] = result.hosts
    return host


def port(n: int, state: PortState = PortState.OPEN) -> PortObservation:
    return PortObservation(port=n, state=state, method="tcp-connect", reason="t", observed_at=NOW)


def host(*ports: PortObservation, role: str | None = None, product: str | None = None) -> Host:
    services = []
    if product is not None:
        fp = Fingerprint(product=product, version=None, confidence="high")
        services = [Service(port=ports[0].port, name="dicom", observations=[fp])]
    return Host(address="127.0.0.9", role=role, ports=list(ports), services=services)


def verdicts(findings: list[Any], rule: str) -> dict[int | None, str]:
    return {f.port: f.status.value for f in findings if f.rule_id == rule}


# --- shipped baselines ----------------------------------------------------------------------


def test_required_baselines_are_shipped() -> None:
    assert set(shipped()) >= REQUIRED


@pytest.mark.parametrize("name", [n for n, _ in shipped_files()])
def test_shipped_baseline_validates_and_resolves(name: str) -> None:
    text = dict(shipped_files())[name]
    b = parse_baseline(text, name)
    assert b.id == Path(name).stem, "a baseline's id is its file name"
    resolved = resolve(b.id)
    # Every generic and vendor baseline judges ports; the rule names are catalogued.
    assert resolved.expectations.ports is not None
    assert resolved.expectations.remote_access is not None
    for exp in resolved.expectations.model_dump(exclude_none=True).values():
        assert exp["rule"] in load_catalogue()


def test_vendor_baselines_state_their_sources() -> None:
    for b in shipped().values():
        assert all(s.url or s.reference for s in b.sources)
    assert any("4242" in t and "8042" in t for n, t in shipped_files() if n == "orthanc.yaml")


def test_extends_merges_ports() -> None:
    r = resolve("dcm4chee-arc")
    ports = r.expectations.ports
    assert ports is not None
    assert (11112, 11112) in ports.allowed and (8443, 8443) in ports.allowed
    assert (9990, 9990) in ports.must_be_closed and (2761, 2761) in ports.must_be_closed
    assert len(ports.allowed) == len(set(ports.allowed)), "inherited ports listed once"
    assert r.lineage == ("dcm4chee-arc", "generic-pacs")
    assert r.origin["echo_from_unknown"] == "generic-pacs"


# --- broken baselines -----------------------------------------------------------------------

BROKEN_CASES = [
    (["unknown-key.yaml"], "unknown-key.yaml:12: expectations.ports.allow: unknown key 'allow'"),
    (["bad-port.yaml"], "bad-port.yaml:12: expectations.ports.allowed.1: 70000 is not a TCP port"),
    (
        ["missing-rule.yaml"],
        "missing-rule.yaml:11: expectations.remote_access.rule: required key 'rule' is missing",
    ),
    (
        ["unknown-rule.yaml"],
        "unknown-rule.yaml:10: expectations.dicom_tls_required.rule: "
        "unknown rule ID 'dicom-no-such-rule' (not in the rule catalogue)",
    ),
    (
        ["circular-a.yaml", "circular-b.yaml"],
        "circular-a.yaml:4: extends: circular extends: circular-a -> circular-b -> circular-a",
    ),
]


def _texts(names: list[str]) -> list[tuple[str, str]]:
    return [(str(BROKEN / n), (BROKEN / n).read_text(encoding="utf-8")) for n in names]


@pytest.mark.parametrize(("names", "message"), BROKEN_CASES)
def test_broken_baseline_gives_clear_error(names: list[str], message: str) -> None:
    with pytest.raises(BaselineError) as exc:
        load_files(_texts(names), shipped())
    assert any(message in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize(("names", "message"), BROKEN_CASES)
def test_validate_command_exits_2_on_broken_baseline(names: list[str], message: str) -> None:
    out = cli("baselines", "validate", *(str(BROKEN / n) for n in names))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_wrong_rule_for_expectation(tmp_path: Path) -> None:
    text = (BROKEN / "must-close-telnet.yaml").read_text(encoding="utf-8")
    text = text.replace("rule: port-not-allowed", "rule: dicom-echo-open")
    with pytest.raises(BaselineError, match="ports is checked by rule 'port-not-allowed'"):
        parse_baseline(text, "wrong.yaml")


def test_self_extends_is_circular(tmp_path: Path) -> None:
    text = (BROKEN / "circular-a.yaml").read_text(encoding="utf-8")
    text = text.replace("extends: circular-b", "extends: circular-a")
    with pytest.raises(BaselineError, match="circular extends: circular-a -> circular-a"):
        load_files([("self.yaml", text)])


def test_port_range_and_bool_port() -> None:
    text = (BROKEN / "must-close-telnet.yaml").read_text(encoding="utf-8")
    assert parse_baseline(text.replace("[23]", '["5900-5910"]'), "r.yaml")
    for bad in ("[true]", '["10-5"]', "[0]"):
        with pytest.raises(BaselineError, match=r"must_be_closed\.0"):
            parse_baseline(text.replace("[23]", bad), "r.yaml")


# --- the baselines command ------------------------------------------------------------------


def test_validate_command_accepts_shipped_and_valid_files() -> None:
    files = [str(p) for p in sorted((ROOT / "baselines").glob("*.yaml"))]
    out = cli("baselines", "validate", *files, str(BROKEN / "must-close-telnet.yaml"))
    assert out.returncode == 0, out.stderr
    assert f"{len(files) + 1} baseline file(s) valid" in out.stdout


def test_list_and_show_commands() -> None:
    out = cli("baselines", "list")
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0] for line in out.stdout.splitlines()[1:]}
    assert listed == set(shipped())
    out = cli("baselines", "show", "orthanc")
    assert out.returncode == 0, out.stderr
    assert "inherits_from:\n- generic-pacs" in out.stdout
    for text in ("- 4242", "- 8042", "- 11112", "dicom-echo-open", "dicom-query-open"):
        assert text in out.stdout  # own and inherited expectations
    out = cli("baselines", "show", "no-such-baseline")
    assert out.returncode == 2 and "unknown baseline 'no-such-baseline'" in out.stderr


def test_baselines_group_imports_only_click() -> None:
    code = (
        "import sys\nimport scanner.cli.baselines\n"
        "print(','.join(m for m in ('pydantic', 'yaml', 'scanner.rules.baselines')\n"
        "               if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- selection ------------------------------------------------------------------------------


def test_saved_orthanc_scan_selects_orthanc() -> None:
    sel = select(saved_host("orthanc-find-open.json"))
    assert sel.resolved.id == "orthanc" and sel.selected_by == "product"
    # The DICOM port's fingerprint or the web side's /system: whichever port came first.
    assert "'Orthanc" in sel.reasons[0]
    [f] = [
        f
        for f in baseline_findings(saved_host("orthanc-find-open.json"))
        if f.rule_id == "baseline-unmatched"
    ]
    assert f.status.value == "pass" and f.evidence["baseline"] == "orthanc"


def test_saved_ctn_scan_gets_generic_baseline_and_unmatched_info() -> None:
    h = saved_host("ctn-called-ae-enforced.json")
    findings = baseline_findings(h)
    [f] = [f for f in findings if f.rule_id == "baseline-unmatched"]
    assert f.status.value == "fail" and f.severity is Severity.INFO
    assert f.evidence["baseline"].startswith("generic-")
    assert f.evidence["selected_by"] == "default" and f.evidence["why"]


@pytest.mark.parametrize(
    ("h", "expected", "by"),
    [
        (host(port(4242), port(8042)), "orthanc", "open-ports"),
        (host(port(11112), product="DCMTK"), "dcmtk", "product"),
        # dcm4che alone is also Weasis or the dcm4che tools: the role or a web port decides.
        (host(port(11112), product="dcm4che"), "generic-pacs", "default"),
        (host(port(11112), port(8443), product="dcm4che"), "dcm4chee-arc", "product"),
        (host(port(104), role="modality"), "generic-modality", "role"),
        (host(port(104), role="workstation"), "generic-workstation", "role"),
    ],
)
def test_selection(h: Host, expected: str, by: str) -> None:
    sel = select(h)
    assert (sel.resolved.id, sel.selected_by) == (expected, by), sel.reasons


def test_like_devices_share_a_scoring_but_not_their_selections() -> None:
    # Selection is scored once per set of facts; each host still gets its own reasons.
    a = select(host(port(104), port(8042), product="Orthanc"))
    b = select(host(port(104), port(8042), product="Orthanc"))
    c = select(host(port(104), product="DCMTK storescp"))
    assert a.resolved.id == b.resolved.id == "orthanc" and c.resolved.id != "orthanc"
    assert a.reasons == b.reasons and a.reasons is not b.reasons
    a.reasons.append("changed by a caller")
    assert "changed by a caller" not in select(host(port(104), port(8042),
                                                    product="Orthanc")).reasons


def test_product_beats_role_and_uid_alone_does_not_select_dcmtk() -> None:
    peer = PeerIdentity(implementation_class_uid="1.2.276.0.7230010.3.0.3.6.7")
    assoc = Association(
        purpose="detect",
        calling_ae="A",
        called_ae="B",
        outcome=AssociationOutcome.ACCEPTED,
        peer=peer,
        elapsed_ms=1.0,
    )
    svc = Service(port=4242, name="dicom", observations=[assoc])
    h = Host(address="127.0.0.9", role="pacs", ports=[port(4242)], services=[svc])
    assert select(h).resolved.id == "generic-pacs"  # Orthanc sends this UID too
    assert select(host(port(4242), role="pacs", product="Orthanc")).resolved.id == "orthanc"


def test_forced_baseline() -> None:
    sel = select(saved_host("orthanc-find-open.json"), forced="generic-modality")
    assert (sel.resolved.id, sel.selected_by) == ("generic-modality", "forced")
    with pytest.raises(BaselineError, match="unknown baseline 'nope'"):
        select(host(port(104)), forced="nope")


# --- port verdicts --------------------------------------------------------------------------


def test_port_verdicts_against_orthanc() -> None:
    closed = PortState.CLOSED
    h = host(
        port(4242), port(8042), port(23), port(22, closed), port(2761, closed), product="Orthanc"
    )
    findings = baseline_findings(h)
    ports = verdicts(findings, "port-not-allowed")
    assert ports == {4242: "pass", 8042: "pass", 23: "fail", 2761: "pass"}
    remote = verdicts(findings, "remote-access-exposed")
    assert remote[23] == "fail" and remote[22] == "pass"
    # Remote-access ports that were not scanned are "not checked", never passed.
    assert remote[None] == "not-checked"
    assert baseline_findings(host(port(23, closed), port(2761, closed))) == []  # nothing open
    [nc] = [f for f in findings if f.rule_id == "remote-access-exposed" and f.port is None]
    assert set(nc.evidence["ports"]) == set(REMOTE_ACCESS_PORTS) - {22, 23}
    [f23] = [f for f in findings if f.rule_id == "port-not-allowed" and f.port == 23]
    ev = f23.evidence
    assert ev["state"] == "open" and ev["measured_at"] == NOW.isoformat()
    assert ev["baseline"] == "orthanc" and ev["why"] and ev["selected_by"] == "product"


# --- end to end: a real listener on loopback ------------------------------------------------


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[int]:
    """A plain TCP listener on 127.0.0.1 that accepts and closes; yields its port."""
    with plain_listener("127.0.0.1", request.param) as port:
        yield port


def _scan_target(target: str, ports: str) -> dict[str, Any]:
    out = cli(
        "scan",
        target,
        "-p",
        ports,
        "--format",
        "json",
        "--fail-on",
        "never",
        "-q",
        "--profile",
        "normal",
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _scan(port_no: int, *extra: str) -> dict[str, Any]:
    out = cli(
        "scan",
        "127.0.0.1",
        "-p",
        str(port_no),
        "--format",
        "json",
        "--fail-on",
        "never",
        "--profile",
        "fast",
        "-q",
        *extra,
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


@pytest.mark.parametrize("listener", [0, 23], indirect=True, ids=["free-port", "telnet-23"])
def test_listener_on_forbidden_port_fails_port_not_allowed(listener: int) -> None:
    result = ScanResult.model_validate(_scan(listener))
    [h] = result.hosts
    findings = baseline_findings(h)
    assert verdicts(findings, "port-not-allowed")[listener] == "fail"
    [f] = [f for f in findings if f.rule_id == "port-not-allowed" and f.port == listener]
    assert f.evidence["state"] == "open" and f.evidence["measured_at"]
    assert f.evidence["baseline"] == "generic-pacs"  # nothing identifies a bare listener
    if listener == 23:
        assert verdicts(findings, "remote-access-exposed")[23] == "fail"


@pytest.mark.parametrize("listener", [0], indirect=True)
def test_scan_reports_baseline_findings(listener: int) -> None:
    # Needs the wiring: rules.evaluate runs baseline_findings and --baseline reaches it.
    doc = _scan(listener, "--baseline", "generic-modality")
    got = {(f["rule_id"], f["port"]): f for f in doc["findings"]}
    f = got[("port-not-allowed", listener)]
    assert f["status"] == "fail" and f["evidence"]["baseline"] == "generic-modality"
    assert got[("baseline-unmatched", None)]["evidence"]["selected_by"] == "forced"
    out = cli("scan", "127.0.0.1", "-p", str(listener), "--baseline", "nope")
    assert out.returncode == 2 and "unknown baseline 'nope'" in out.stderr


@pytest.mark.peers
@needs_orthanc
def test_real_orthanc_on_default_ports_selects_orthanc() -> None:
    from scanner.lab import peers

    # Orthanc's own default ports, on a loopback address of its own so nothing clashes.
    with peers.start_orthanc({"DicomPort": 4242, "HttpPort": 8042}, host="127.0.0.31") as o:
        doc = _scan_target(o.info.host, "4242,8042,23,2761")
    [h] = ScanResult.model_validate(doc).hosts
    findings = baseline_findings(h)
    [f] = [f for f in findings if f.rule_id == "baseline-unmatched"]
    assert (f.evidence["baseline"], f.evidence["selected_by"]) == ("orthanc", "product")
    assert verdicts(findings, "port-not-allowed") == {4242: "pass", 8042: "pass", 2761: "pass"}
    assert verdicts(findings, "remote-access-exposed")[23] == "pass"


@pytest.mark.peers
@needs_dcmtk
def test_real_storescp_selects_dcmtk() -> None:
    from scanner.lab import peers

    with peers.start_storescp(host="127.0.0.32") as p:
        doc = _scan_target(p.info.host, str(p.info.port))
    [h] = ScanResult.model_validate(doc).hosts
    sel = select(h)
    assert (sel.resolved.id, sel.selected_by) == ("dcmtk", "product"), sel.reasons
    # The lab's free port is no DICOM port a baseline allows.
    assert verdicts(baseline_findings(h), "port-not-allowed")[p.info.port] == "fail"


# --- packaging ------------------------------------------------------------------------------


def test_pyproject_installs_baselines_folder() -> None:
    # The package list is explicit (find cannot rename a folder), so it must name every
    # package folder, or a non-editable install silently loses one.
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    st = tool["setuptools"]
    assert st["package-dir"]["dicomscan_baselines"] == "baselines"
    assert "*.yaml" in st["package-data"]["dicomscan_baselines"]
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("scanner", "probes")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert set(st["packages"]) == folders | {"dicomscan_baselines"}


def test_a_shipped_baseline_is_merged_once_for_every_device() -> None:
    """Every device of a scan was judged against a baseline merged afresh from its
    ``extends`` chain: a tenth of the rules' time. A given set is still merged anew."""
    some = next(b for b in shipped().values() if b.extends)
    assert resolve(some.id) is resolve(some.id)
    own = resolve(some.id, dict(shipped()))
    assert own is not resolve(some.id) and own == resolve(some.id)
