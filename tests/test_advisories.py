"""Known-vulnerable software: the advisory data, version comparison and the rule's verdicts.

Hosts are built from real fingerprints (``identify`` on an A-ASSOCIATE-AC's identity)
and from the saved scans in fixtures/scans, so no network is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanner.identify.fingerprint import HttpHit, apply_http_signals, identify
from scanner.identify.product_table import load_table
from scanner.model import Finding, FindingStatus, Host, ScanResult, Service
from scanner.model.observations import Confidence, Fingerprint, PeerIdentity
from scanner.rules.advisories import (
    Advisory,
    AdvisoryError,
    load_advisories,
    load_advisories_file,
    parse_advisories,
    parse_version,
)
from scanner.rules.software_rules import RULE_ID, service_finding, software_findings

SCANS = Path(__file__).resolve().parent.parent / "fixtures" / "scans"
DCMTK_UID = "1.2.276.0.7230010.3.0."


def dcmtk(version: str, *, with_uid: bool = True, name: bool = True) -> Fingerprint:
    digits = version.replace(".", "")
    return identify(
        PeerIdentity(
            implementation_class_uid=DCMTK_UID + version if with_uid else None,
            implementation_version_name=f"OFFIS_DCMTK_{digits}" if name else None,
            max_pdu_length=16384,
        )
    )


def host_with(*fps: Fingerprint | None, port: int = 11112) -> Host:
    services = [
        Service(
            port=port + i,
            name="dicom",
            product=fp.product if fp else None,
            version=fp.version if fp else None,
            observations=[fp] if fp else [],
        )
        for i, fp in enumerate(fps)
    ]
    return Host(address="127.0.0.1", services=services)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    assert findings[0].rule_id == RULE_ID
    return findings[0]


# --- the rule on the shipped data ---------------------------------------------------------


def test_dcmtk_366_fails_with_the_icsma_22_174_01_cves() -> None:
    f = only(software_findings(host_with(dcmtk("3.6.6"))))
    assert f.status is FindingStatus.FAIL
    assert {"CVE-2022-2119", "CVE-2022-2120", "CVE-2022-2121"} <= set(f.evidence["cves"])
    # The tag of each source is carried, not upgraded: 2119 is confirmed, 2120/2121 are not.
    certainty = f.evidence["advisory_certainty"]
    assert "CVE-2022-2119" in certainty["confirmed"]
    assert {"CVE-2022-2120", "CVE-2022-2121"} <= set(certainty["secondary"])
    assert f.confidence is Confidence.CONFIRMED
    assert f.evidence["version_source"].startswith("read from the peer")
    assert "OFFIS_DCMTK_366" in f.evidence["version_source"]
    assert f.title and f.references and f.severity.value == "high"
    assert "back-ported" in f.evidence["caveat"]


def test_dcmtk_367_is_clear_of_the_2022_advisories() -> None:
    # 3.6.7 is the fix release of CVE-2022-2119..2121. The shipped data still flags it for
    # later advisories (CVE-2024-34508, fixed in 3.6.9, among them), so the range
    # boundary itself is tested here and the plain "pass" further down.
    f = only(software_findings(host_with(dcmtk("3.6.7"))))
    cves = set(f.evidence.get("cves", []))
    assert not cves & {"CVE-2022-2119", "CVE-2022-2120", "CVE-2022-2121"}
    assert "CVE-2024-34508" in cves


def test_dcmtk_367_passes_when_only_the_2022_advisories_apply() -> None:
    icsma = [a for a in load_advisories() if "CVE-2022-2119" in a.cves or "CVE-2022-2120" in a.cves]
    assert len(icsma) == 2
    host = host_with(dcmtk("3.6.7"))
    f = service_finding(host, host.services[0], icsma)
    assert f is not None and f.status is FindingStatus.PASS
    assert f.evidence["checked_advisories"] == 2
    assert "cves" not in f.evidence
    f366 = service_finding(host_with(dcmtk("3.6.6")), host_with(dcmtk("3.6.6")).services[0], icsma)
    assert f366 is not None and f366.status is FindingStatus.FAIL


def test_product_without_advisories_passes() -> None:
    fp = identify(
        PeerIdentity(
            implementation_version_name="PYNETDICOM_304",
            implementation_class_uid="1.2.826.0.1.3680043.9.3811.3.0.4",
        )
    )
    assert (fp.product, fp.version) == ("pynetdicom", "3.0.4")
    f = only(software_findings(host_with(fp)))
    assert f.status is FindingStatus.PASS  # CVE-2026-56445 is stated as "< 3.0.4"


def test_unknown_version_gives_no_finding() -> None:
    no_version = Fingerprint(product="DCMTK", version=None, confidence="low")
    no_product = Fingerprint(product=None, version=None, confidence="low")
    assert software_findings(host_with(no_version, no_product, None)) == []


def test_version_only_from_the_uid_is_inferred() -> None:
    fp = dcmtk("3.6.6", name=False)
    assert fp.version == "3.6.6"
    f = only(software_findings(host_with(fp)))
    assert f.status is FindingStatus.FAIL
    assert f.confidence is Confidence.INFERRED
    assert f.evidence["version_source"].startswith("inferred")


def test_low_confidence_fingerprint_is_inferred() -> None:
    fp = dcmtk("3.6.6").model_copy(update={"confidence": "low"})
    f = only(software_findings(host_with(fp)))
    assert f.confidence is Confidence.INFERRED
    assert "confidence low" in f.evidence["version_source"]


def test_orthanc_built_on_dcmtk_is_not_matched() -> None:
    # Orthanc over DICOM shows only the DCMTK it links; that number is not Orthanc's release.
    fp = dcmtk("3.6.6")
    orthanc = Fingerprint(
        product="Orthanc (built on DCMTK 3.6.6)",
        version=None,
        confidence="medium",
        matched_by=[*fp.matched_by, "dcmtk_version=3.6.6"],
    )
    assert software_findings(host_with(orthanc)) == []


def test_orthanc_fixture_gives_no_software_finding() -> None:
    result = ScanResult.model_validate(json.loads((SCANS / "orthanc-find-open.json").read_text()))
    products = [s.product for h in result.hosts for s in h.services if s.product]
    assert any(p.startswith("Orthanc (built on DCMTK") for p in products)
    # The DICOM side (DCMTK identity) gets none; the web side's /system version does.
    dicom = {s.port for h in result.hosts for s in h.services if s.name == "dicom"}
    findings = [f for h in result.hosts for f in software_findings(h)]
    assert [f for f in findings if f.port in dicom] == []
    assert [(f.evidence["product"], f.evidence["version"]) for f in findings] == [
        ("Orthanc", "1.10.1")
    ]
    # Orthanc stated its release itself: the version is read, not inferred.
    [web] = findings
    assert web.confidence.value == "confirmed"
    assert web.evidence["version_source"] == (
        "read from the peer (GET /system: Version, Name, ApiVersion)"
    )


@pytest.mark.parametrize("name", sorted(p.name for p in SCANS.glob("*.json")))
def test_saved_scans_evaluate(name: str) -> None:
    result = ScanResult.model_validate(json.loads((SCANS / name).read_text()))
    for host in result.hosts:
        for f in software_findings(host):
            assert f.rule_id == RULE_ID and f.host == host.address


def test_orthanc_release_when_known_is_matched() -> None:
    # A probe that reads Orthanc's own release (REST /system) would set it on the service.
    svc = Service(port=8042, name="http", product="Orthanc", version="1.11.3")
    f = only(software_findings(Host(address="127.0.0.1", services=[svc])))
    assert f.status is FindingStatus.FAIL
    assert "CVE-2023-33466" in f.evidence["cves"]
    assert f.confidence is Confidence.INFERRED  # no fingerprint says how it was read


def test_uncomparable_version_is_not_checked() -> None:
    svc = Service(port=104, name="dicom", product="DCMTK", version="3.6.9+DEV")
    f = only(software_findings(Host(address="127.0.0.1", services=[svc])))
    assert f.status is FindingStatus.NOT_CHECKED
    assert "3.6.9+DEV" in f.evidence["reason"]


def test_unconfirmed_advisory_never_fails_alone() -> None:
    [adv] = parse_advisories(
        {
            "advisories": [
                {
                    "id": "x",
                    "product": "DCMTK",
                    "cves": ["CVE-2026-52868"],
                    "affected": [{"last_affected": "3.7.0"}],
                    "summary": "conflicting descriptions",
                    "sources": ["one blog"],
                    "certainty": "unconfirmed",
                }
            ]
        }
    )
    host = host_with(dcmtk("3.7.0"))
    f = service_finding(host, host.services[0], [adv])
    assert f is not None and f.status is FindingStatus.PASS
    assert f.evidence["unconfirmed_advisories"][0]["cves"] == ["CVE-2026-52868"]


def test_orthanc_from_the_real_http_combination_is_not_matched() -> None:
    # The same path analyse_host takes: a DCMTK identity plus Orthanc's HTTP answer.
    signal = next(s for s in load_table().http_signals if s.product == "Orthanc")
    combined = apply_http_signals(dcmtk("3.6.6"), [HttpHit(8042, signal)])
    assert combined.product == "Orthanc (built on DCMTK 3.6.6)"
    assert combined.version is None
    assert software_findings(host_with(combined)) == []


# --- versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "low, high",
    [("3.6.6", "3.6.7"), ("3.6.7", "3.6.10"), ("1.9.9", "1.12.0"), ("3.6", "3.6.1"), ("2", "10")],
)
def test_versions_compare_numerically(low: str, high: str) -> None:
    a, b = parse_version(low), parse_version(high)
    assert a is not None and b is not None and a < b


def test_trailing_zeros_are_equal() -> None:
    assert parse_version("3.6") == parse_version("3.6.0") == parse_version("3.6.0.0")


@pytest.mark.parametrize("text", ["", "3.6.9+DEV", "VE11", "11MAR2003", "v3.6", "3..6", None,
                                  "\u0663.\u0666.\u0667", "3.\uff16", "\u00b3.6"])
def test_non_releases_do_not_parse(text: str | None) -> None:
    assert parse_version(text) is None


def test_range_bounds() -> None:
    [adv] = parse_advisories(
        {
            "advisories": [
                {
                    "id": "r",
                    "product": "P",
                    "cves": ["CVE-2020-0001"],
                    "affected": [
                        {"introduced": "1.0", "fixed": "1.2"},
                        {"introduced": "2.0", "last_affected": "2.1"},
                    ],
                    "summary": "s",
                    "sources": ["s"],
                    "certainty": "confirmed",
                }
            ]
        }
    )
    hit = {
        v: adv.affects("P", parse_version(v) or ())
        for v in ("0.9", "1.0", "1.1.9", "1.2", "1.9", "2.0", "2.1", "2.1.1")
    }
    assert hit == {
        "0.9": False,
        "1.0": True,
        "1.1.9": True,
        "1.2": False,
        "1.9": False,
        "2.0": True,
        "2.1": True,
        "2.1.1": False,
    }
    assert not adv.affects("Q", (1, 1))


# --- the data file ------------------------------------------------------------------------


def test_shipped_data_is_valid_and_honest() -> None:
    advisories = load_advisories()
    assert advisories
    products = {a.product for a in advisories}
    # Products must be spelled as the fingerprint table spells them, or nothing matches.
    known = {e.product for e in load_table().products} | {
        s.product for s in load_table().http_signals
    }
    assert products <= known, products - known
    # ADVISORIES.md says [U] rows are not to be shipped as they are.
    assert all(a.certainty != "unconfirmed" for a in advisories)
    cves = [c for a in advisories for c in a.cves]
    assert len(cves) == len(set(cves)), "a CVE is listed twice"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "advisories.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD_ENTRY = """\
  - id: {id}
    product: DCMTK
    cves: [{cve}]
    affected: [{affected}]
    summary: s
    sources: [s]
    certainty: {certainty}
"""


def _entry(**kw: str) -> str:
    values = {
        "id": "a",
        "cve": "CVE-2022-2119",
        "affected": '{fixed: "3.6.7"}',
        "certainty": "confirmed",
        **kw,
    }
    return GOOD_ENTRY.format(**values)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("advisories:\n" + _entry(certainty="certain"), "certainty"),
        ("advisories:\n" + _entry(cve="2022-2119"), "not CVE IDs"),
        ("advisories:\n" + _entry(affected='{fixed: "three"}'), "dotted release number"),
        ("advisories:\n" + _entry(affected='{introduced: "1.0"}'), "exactly one of"),
        (
            "advisories:\n" + _entry(affected='{fixed: "1.0", last_affected: "1.0"}'),
            "exactly one of",
        ),
        ("advisories:\n" + _entry(affected='{introduced: "2.0", fixed: "1.0"}'), "empty"),
        ("advisories:\n" + _entry() + _entry(), "defined twice"),
        ("advisories:\n" + _entry().replace("    summary: s\n", ""), "summary"),
        ("advisories:\n" + _entry() + "    severity: high\n", "severity"),
        ("rules: []\n", "top-level 'advisories:'"),
        ("advisories: [\n", "not valid YAML"),
    ],
)
def test_malformed_file_gives_a_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(AdvisoryError) as err:
        load_advisories_file(_write(tmp_path, text))
    message = str(err.value)
    assert message.startswith("advisories.yaml")
    assert expected in message


def test_error_names_the_entry(tmp_path: Path) -> None:
    text = "advisories:\n" + _entry() + _entry(id="broken-one", certainty="maybe")
    with pytest.raises(AdvisoryError, match=r"advisories\[1\] \(id 'broken-one'\)"):
        load_advisories_file(_write(tmp_path, text))


def test_good_file_loads(tmp_path: Path) -> None:
    [adv] = load_advisories_file(_write(tmp_path, "advisories:\n" + _entry()))
    assert isinstance(adv, Advisory) and adv.cves == ["CVE-2022-2119"]
