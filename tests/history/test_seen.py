"""First and last seen, from the history, in every output of a stored scan; absent (not
null) from a scan that was not stored, so saved scans still validate and round-trip."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from scanner.history.store import HistoryStore
from scanner.history.timeline import with_seen
from scanner.model import ScanResult
from scanner.outputs.cef import to_cef
from scanner.outputs.csv_report import COLUMNS
from scanner.outputs.jsonl import EventType
from scanner.outputs.registry import WriterOptions, render
from tests.history.conftest import T0, finding, host, scan
from tests.test_ocsf import assert_valid
from tests.test_syslog import parse_cef

A = "198.18.0.2"


def _ms(hours: int) -> int:
    return int((T0 + timedelta(hours=hours)).timestamp() * 1000)


def stored_pair(location: str) -> ScanResult:
    """Scan 0: one failing finding; scan 1: it fails again and another fails for the
    first time, a third passes. Both stored; scan 1 comes back with first/last seen."""
    old = scan(0, [host(A, [104])], [finding("dicom-echo-open", A, 104)])
    new = scan(1, [host(A, [104])], [finding("dicom-echo-open", A, 104),
                                     finding("dicom-find-open", A, 104),
                                     finding("dicom-tls-absent", A, 104, "pass")])
    store = HistoryStore.open(location)
    try:
        store.record(old, "lab")
        store.record(new, "lab")
        return with_seen(store, new, "lab")
    finally:
        store.close()


def test_first_and_last_seen_come_from_the_history(store_location: str) -> None:
    result = stored_pair(store_location)
    device = result.hosts[0]
    assert (device.first_seen, device.last_seen) == (T0, T0 + timedelta(hours=1))
    again, new, passed = result.findings
    assert (again.first_seen, again.last_seen) == (T0, T0 + timedelta(hours=1))
    assert (new.first_seen, new.last_seen) == (T0 + timedelta(hours=1),) * 2
    assert passed.first_seen is None and passed.last_seen is None


def test_every_output_carries_them(store_location: str) -> None:
    result = stored_pair(store_location)
    doc = json.loads(render(result, "json"))
    assert doc["hosts"][0]["first_seen"] == T0.isoformat().replace("+00:00", "Z")
    assert "first_seen" not in doc["findings"][2]  # never failed: absent, not null
    assert ScanResult.model_validate(doc) == result

    options = WriterOptions(events=frozenset({EventType.FINDING, EventType.INVENTORY}))
    events = [json.loads(x) for x in render(result, "jsonl", options).splitlines()]
    inventory = next(e for e in events if e["event_type"] == "inventory")
    assert inventory["first_seen"] == T0.isoformat()
    found = {e["rule_id"]: e for e in events if e["event_type"] == "finding"}
    assert found["dicom-find-open"]["first_seen"].startswith(
        (T0 + timedelta(hours=1)).isoformat()[:19])

    ocsf = [json.loads(x) for x in render(result, "ocsf").splitlines()]
    for event in ocsf:
        assert_valid(event)
    device = next(e for e in ocsf if e["class_uid"] == 5001)["device"]
    assert (device["first_seen_time"], device["last_seen_time"]) == (_ms(0), _ms(1))
    info = {e["finding_info"]["types"][0]: e["finding_info"] for e in ocsf
            if "finding_info" in e}
    assert (info["dicom-echo-open"]["first_seen_time"],
            info["dicom-echo-open"]["last_seen_time"]) == (_ms(0), _ms(1))

    rows = list(csv.reader(io.StringIO(render(result, "csv"))))
    assert rows[0][-4:] == ["first_seen", "last_seen", "device_first_seen", "device_last_seen"]
    assert rows[0] == list(COLUMNS)
    echo = next(r for r in rows if r[COLUMNS.index("rule_id")] == "dicom-echo-open")
    assert echo[-4:] == [T0.isoformat(), (T0 + timedelta(hours=1)).isoformat()] * 2
    passed = next(r for r in rows if r[COLUMNS.index("rule_id")] == "dicom-tls-absent")
    assert passed[-4:-2] == ["", ""]

    html = render(result, "html")
    assert html.count('class="first-seen"') == 1 + 2  # the device, two failed findings
    assert f'<span class="first-seen">{T0.isoformat()}</span>' in html

    _, ext = parse_cef(to_cef(result, result.findings[0]))
    assert (ext["deviceCustomDate1Label"], ext["deviceCustomDate1"]) == ("firstSeen",
                                                                         str(_ms(0)))
    assert ext["deviceCustomDate2"] == str(_ms(1))


def test_a_scan_not_stored_has_none_anywhere(store_location: str) -> None:
    plain = scan(0, [host(A, [104])], [finding("dicom-echo-open", A, 104)])
    assert "first_seen" not in render(plain, "json")
    ocsf = [json.loads(x) for x in render(plain, "ocsf").splitlines()]
    assert "first_seen_time" not in ocsf[0]["device"]
    assert "deviceCustomDate1" not in to_cef(plain, plain.findings[0])
    rows = list(csv.reader(io.StringIO(render(plain, "csv"))))
    assert rows[1][-4:] == ["", "", "", ""]
