"""What judging a device reuses from devices alike, on the saved scans: the fingerprint
table searched once per distinct identity, the vendor table matched once per distinct
disclosure (the host analysis and the baseline selection both ask), the advisories matched
once per product and version, and no model attribute looked up that is not there. Each
reuse gives what the work done afresh gives."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic._internal._model_construction import ModelMetaclass

import scanner.identify.fingerprint as fingerprint
import scanner.identify.vendor as vendor
import scanner.rules.software_rules as software_rules
from probes.context import HostState, ServiceState
from scanner.engine.registry import HOST_ANALYSES
from scanner.identify.vendor import identify_vendor_state, identify_vendors, vendor_table
from scanner.model import Host, ScanResult
from scanner.model.observations import Association, Fingerprint
from scanner.model.vendor import VendorEvidenceKind
from scanner.rules.advisories import load_advisories
from scanner.rules.evaluate import evaluate
from tests.conftest import needs_dcmtk
from tests.test_policy import LENIENT  # a baseline allowing echo, query and GET

SCANS = Path(__file__).resolve().parent.parent / "fixtures" / "scans"


def saved_hosts() -> list[Host]:
    return [h for f in sorted(SCANS.glob("*.json"))
            for h in ScanResult.model_validate(json.loads(f.read_text())).hosts]


def orthanc() -> Host:
    return ScanResult.model_validate(
        json.loads((SCANS / "orthanc-find-open.json").read_text())).hosts[0]


def moved(host: Host, address: str, uid: str | None = None) -> Host:
    """The same device at another address, its DICOM identity's UID set to ``uid``."""
    services = []
    for svc in host.services:
        obs: list[Any] = []
        for o in svc.observations:
            if uid is not None and isinstance(o, Association) and o.peer is not None:
                o = o.model_copy(update={
                    "peer": o.peer.model_copy(update={"implementation_class_uid": uid})})
            obs.append(o)
        services.append(svc.model_copy(update={"observations": obs}))
    return host.model_copy(update={"address": address, "device_id": "", "services": services})


def state_of(host: Host) -> HostState:
    """The host as the engine holds it before its analysis (no fingerprint yet)."""
    state = HostState(host.address, host.hostname)
    state.ports = {p.port: p for p in host.ports}
    state.services = {
        s.port: ServiceState(s.port, s.name, s.tls, s.protocol, None, None,
                             [o for o in s.observations if not isinstance(o, Fingerprint)])
        for s in host.services
    }
    state.mac, state.mac_vendor = host.mac, host.mac_vendor
    return state


def vendor_uid() -> str:
    row = next(r for r in vendor_table() if r.kind is VendorEvidenceKind.UID_ROOT)
    return row.value + ".5.1"


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    real = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_a_device_alike_is_identified_by_vendor_without_matching_the_table_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every device matched the whole vendor table twice: in the host analysis and again
    in the baseline selection (about 7% of a detection-only scan)."""
    first = moved(orthanc(), "198.18.0.1", vendor_uid())
    vendor._cached.cache_clear()
    matches = count_calls(monkeypatch, vendor.VendorRow, "matches")
    found = identify_vendors(first)
    assert found and matches[0] > 0
    done = matches[0]
    second = moved(orthanc(), "198.18.0.2", vendor_uid())
    state = state_of(second)
    for analysis in HOST_ANALYSES:
        analysis(state)
    evaluate([state.freeze()])
    assert matches[0] == done  # neither the analysis nor the rules matched the table again
    assert state.vendors == found


def test_the_host_analysis_names_the_vendors_of_the_frozen_host_without_freezing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = [*saved_hosts(), moved(orthanc(), "198.18.0.3", vendor_uid())]
    expected = [identify_vendors(state_of(h).freeze()) for h in hosts]
    assert any(expected)
    freezes = count_calls(monkeypatch, HostState, "freeze")
    for host, want in zip(hosts, expected, strict=True):
        state = state_of(host)
        identify_vendor_state(state)
        assert state.vendors == want
    assert freezes[0] == 0


def test_a_peer_s_long_texts_are_matched_each_time_and_never_kept() -> None:
    vendor._cached.cache_clear()
    fingerprint._cached.cache_clear()
    long_uid = vendor_uid() + ".1" * 3000
    host = moved(orthanc(), "198.18.0.4", long_uid)
    state = state_of(host)
    for analysis in HOST_ANALYSES:
        analysis(state)
    assert vendor._cached.cache_info().currsize == 0
    assert fingerprint._cached.cache_info().currsize == 0
    assert [v.vendor for v in state.vendors] == [v.vendor for v in identify_vendors(host)]


def test_a_device_alike_is_fingerprinted_without_searching_the_table_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every DICOM service searched the product table twice (its fingerprint, then its
    host's role), and every device of a kind again (about 9% of a detection-only scan)."""
    fingerprint._cached.cache_clear()
    searches = count_calls(monkeypatch, fingerprint, "_uid_hit")
    first, second = state_of(moved(orthanc(), "198.18.0.5")), state_of(orthanc())
    HOST_ANALYSES[0](first)
    assert searches[0] == 1
    HOST_ANALYSES[0](second)
    assert searches[0] == 1
    # The same fingerprint, role and reasons as the saved scan's own analysis.
    saved = orthanc()
    assert (second.role, second.role_confidence, second.role_reasons) == (
        saved.role, saved.role_confidence, saved.role_reasons)
    for port, svc in second.services.items():
        if svc.name != "dicom":
            continue  # the analysis names DICOM services; the HTTP probe names the web side
        kept = next(s for s in saved.services if s.port == port)
        assert (svc.product, svc.version) == (kept.product, kept.version)
        assert [o for o in svc.observations if isinstance(o, Fingerprint)] == [
            o for o in kept.observations if isinstance(o, Fingerprint)]


def test_devices_alike_are_matched_against_the_advisories_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    software_rules._shipped_match.cache_clear()
    matched = count_calls(monkeypatch, software_rules, "matching")
    first = evaluate([orthanc()])
    assert any(f.rule_id == "software-vulnerable-version" and f.status.value == "fail"
               for f in first)
    assert matched[0] == 1
    second = evaluate([moved(orthanc(), "198.18.0.6")])
    assert matched[0] == 1
    # Shared matching, separate evidence: no finding holds another's lists or dicts.
    a, b = (next(f for f in found if f.rule_id == "software-vulnerable-version")
            for found in (first, second))
    assert a.evidence == b.evidence
    assert a.evidence["advisories"] is not b.evidence["advisories"]
    assert a.evidence["advisories"][0] is not b.evidence["advisories"][0]


def test_the_shipped_advisories_give_the_verdicts_a_list_of_them_gives() -> None:
    """The cached path (the shipped tuple) and the plain one (any other list) agree."""
    software_rules._shipped_match.cache_clear()
    as_list = list(load_advisories())
    for host in saved_hosts():
        for svc in host.services:
            shipped = software_rules.service_finding(host, svc, load_advisories())
            plain = software_rules.service_finding(host, svc, as_list)
            assert shipped == plain


def test_judging_a_device_looks_up_no_missing_model_attribute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``hasattr`` on a baseline expectation without the field went through pydantic's
    metaclass, about 30 us a call and 3% of a detection-only scan."""
    misses = count_calls(monkeypatch, ModelMetaclass, "__getattr__")
    findings = evaluate(saved_hosts())
    judged = [f for f in findings if "baseline_expectations" in f.evidence]
    assert judged
    assert misses[0] == 0


def test_dicom_findings_judged_as_they_are_made_are_those_judged_afterwards() -> None:
    """The DICOM rules judge each verdict before making its finding; the findings are
    those the judge gives the unjudged ones, pass-turned fails included."""
    from scanner.rules.baselines import load_files, resolve, shipped
    from scanner.rules.dicom_rules import dicom_findings
    from scanner.rules.judge import apply_baseline_expectations

    known = load_files([("lenient.yaml", LENIENT)], shipped())
    baselines = [resolve(b) for b in sorted(shipped())] + [resolve("lenient-orthanc", known)]
    turned = 0
    for host in saved_hosts():
        for resolved in baselines:
            afterwards = apply_baseline_expectations(host, dicom_findings(host), resolved)
            at_once = dicom_findings(host, resolved)
            assert [f.model_dump(mode="json") for f in at_once] == [
                f.model_dump(mode="json") for f in afterwards]
            assert [f.model_fields_set for f in at_once] == [
                f.model_fields_set for f in afterwards]
            turned += sum(f.evidence.get("default_verdict") == "fail" for f in at_once)
    assert turned  # the lenient baseline turned fails into passes


def test_judging_a_device_makes_each_finding_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DICOM finding was made, then copied with the baseline's evidence: seven
    findings of a storage device built twice."""
    import scanner.rules.catalogue as catalogue
    from scanner.model import Finding

    made = count_calls(monkeypatch, catalogue, "make_finding")
    for name, module in list(sys.modules.items()):  # every rule family's own import of it
        if name.startswith("scanner.rules.") and hasattr(module, "make_finding"):
            monkeypatch.setattr(module, "make_finding", catalogue.make_finding)
    copied = count_calls(monkeypatch, Finding, "model_copy")
    findings = evaluate([orthanc()])  # no MAC: every finding already carries its device
    assert any("baseline_expectations" in f.evidence for f in findings)
    assert made[0] == len(findings)
    assert copied[0] == 0


def test_a_finding_the_rules_make_comes_with_its_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model's validator derived each finding's IDs, copying its fields twice to do
    so; the rules now give them, and the validator derives only what is missing."""
    import scanner.model.results as results
    from scanner.model import Finding

    hosts = saved_hosts()
    derived = count_calls(monkeypatch, results, "device_id")  # the validator's, when missing
    findings = evaluate(hosts)
    assert findings and derived[0] == 0
    given = findings[0].model_dump()
    assert Finding._identity(given) is given  # nothing to derive: not even copied
    # Without IDs (an old saved scan), the validator still derives the same ones.
    for f in findings[:20]:
        bare = f.model_dump(exclude={"finding_id", "device_id"})
        assert Finding.model_validate(bare) == f
    assert derived[0] == 20


@needs_dcmtk
@pytest.mark.peers
def test_detecting_a_real_peer_makes_no_task_per_write_or_close() -> None:
    """The detection's writes and its close each waited through wait_for, which runs the
    wait as a task of its own (and a turn of the event loop) even when nothing waits: three
    tasks a service. The same detection with a timeout scope makes none."""
    import asyncio

    from probes.identify import identify_service
    from probes.ports import open_stream
    from scanner.lab.peers import start_storescp
    from scanner.model import ScanSettings
    from scanner.model.settings import Timeouts

    async def detect(port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        made = [0]
        real = loop.create_task

        def counting(*args: Any, **kwargs: Any) -> Any:
            made[0] += 1
            return real(*args, **kwargs)

        loop.create_task = counting  # type: ignore[method-assign]
        conn = await open_stream("127.0.0.1", port, 5.0)
        try:
            svc = await identify_service(conn, settings)
        finally:
            await conn.close()
        return svc.name, made[0]

    with start_storescp() as peer:
        settings = ScanSettings(
            targets=["127.0.0.1"], target_specs=["127.0.0.1"], ports=[peer.info.port],
            max_concurrency=8, per_host_connections=2, probe_spacing=0.0,
            timeouts=Timeouts(connect=5.0, dicom=5.0, dimse=5.0, host=60.0),
        )
        name, tasks = asyncio.run(detect(peer.info.port))
    assert name == "dicom"
    assert tasks == 0


def test_a_baseline_is_read_once_for_every_device_judged_against_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every DICOM finding of every device asked the baseline each of its expectations
    again; what a baseline says of a rule is now worked out once per baseline."""
    import scanner.rules.judge as judge
    from scanner.rules.baselines import load_files, resolve, shipped
    from scanner.rules.dicom_rules import dicom_findings

    known = load_files([("lenient.yaml", LENIENT)], shipped())
    lenient = resolve("lenient-orthanc", known)
    asked = count_calls(monkeypatch, judge, "_permits")
    first = dicom_findings(orthanc(), lenient)
    done = asked[0]
    assert done > 0
    second = dicom_findings(moved(orthanc(), "198.18.0.7"), lenient)
    assert asked[0] == done
    assert [f.evidence for f in first] == [f.evidence for f in second]
    # Each finding's evidence is its own, though worked out once.
    pairs = [(a.evidence["baseline_expectations"], b.evidence["baseline_expectations"])
             for a, b in zip(first, second, strict=True) if "baseline_expectations" in a.evidence]
    assert pairs and all(a is not b for a, b in pairs)
    # A baseline resolved anew is asked anew (nothing carried between baseline values).
    dicom_findings(orthanc(), resolve("lenient-orthanc", known))
    assert asked[0] > done
