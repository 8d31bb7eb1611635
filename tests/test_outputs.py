"""Several outputs from one run, written atomically; JSON Lines events; CSV; re-rendering
a saved scan; and one real scan of DCMTK's storescp producing every format at once."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from scanner.lab import peers
from scanner.model import ScanResult
from scanner.outputs.csv_report import COLUMNS, safe_cell, to_csv
from scanner.outputs.files import OutputError, write_or_keep
from scanner.outputs.jsonl import EventType, to_jsonl
from tests.conftest import needs_dcmtk
from tests.test_ocsf import assert_valid

ROOT = Path(__file__).resolve().parent.parent
SCANS = sorted((ROOT / "fixtures" / "scans").glob("*.json"))
ORTHANC = ROOT / "fixtures" / "scans" / "orthanc-find-open.json"
SCHEMA = ROOT / "scanner" / "schema" / "report.schema.json"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                         text=True, timeout=timeout, cwd=ROOT)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def load(path: Path) -> ScanResult:
    return ScanResult.model_validate_json(path.read_text(encoding="utf-8"))


def test_report_writes_every_format_at_once_from_a_saved_scan(tmp_path: Path) -> None:
    names = ["r.html", "f.jsonl", "s.json", "x.csv", "e.ocsf.json", "t.txt"]
    out = run("report", str(ORTHANC), *[a for n in names for a in ("-o", str(tmp_path / n))],
              "--events", "findings,inventory,scan")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temp file left
    original = load(ORTHANC)
    assert load(tmp_path / "s.json") == original
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    kinds = [json.loads(line)["event_type"] for line in (tmp_path / "f.jsonl").open()]
    assert kinds[0] == "scan_start" and kinds[-1] == "scan_end"
    assert kinds.count("finding") == len(original.findings)
    assert json.loads((tmp_path / "e.ocsf.json").read_text().splitlines()[0])["class_uid"] == 5001
    assert next(csv.reader((tmp_path / "x.csv").open()))[:3] == list(COLUMNS[:3])
    assert "Findings" in (tmp_path / "t.txt").read_text()
    assert oct((tmp_path / "s.json").stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's


def test_explicit_prefix_and_single_output_with_format_keep_working(tmp_path: Path) -> None:
    out = run("report", str(ORTHANC), "--format", "jsonl", "-o", str(tmp_path / "a.out"),)
    assert out.returncode == 0
    assert json.loads((tmp_path / "a.out").read_text().splitlines()[0])["event_type"] == "finding"
    out = run("report", str(ORTHANC), "-o", f"csv:{tmp_path / 'b.txt'}", "-o",
              f"ocsf:{tmp_path / 'c.json'}", "--ocsf-array")
    assert out.returncode == 0
    assert (tmp_path / "b.txt").read_text().startswith(",".join(COLUMNS))
    assert isinstance(json.loads((tmp_path / "c.json").read_text()), list)


def test_an_unwritable_output_keeps_the_results_and_the_other_outputs(tmp_path: Path) -> None:
    # A folder that exists but takes no file, even from root: only writing shows it (a
    # folder named as the file is refused before any work, test_cli).
    blocked = Path("/proc/self/report.html")
    out = run("report", str(ORTHANC), "-o", str(blocked), "-o", str(tmp_path / "s.json"))
    assert out.returncode == 4, out.stderr
    assert f"cannot write {blocked}" in out.stderr
    kept = Path(out.stderr.split("results kept in ")[1].split()[0])
    try:
        assert kept.read_text().startswith("<!DOCTYPE html>")
    finally:
        kept.unlink()
    assert load(tmp_path / "s.json") == load(ORTHANC)
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left behind


def test_a_missing_folder_is_a_usage_error_before_any_work(tmp_path: Path) -> None:
    out = run("scan", "127.0.0.1", "-p", "9", "-o", str(tmp_path / "nope" / "r.html"))
    assert out.returncode == 2
    assert "does not exist" in out.stderr


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "scan.json"
    target.write_text("previous report\n")
    # A file size limit makes the kernel refuse the write part-way (EFBIG), as a full disk
    # would (ENOSPC): the old report must survive and no temp file may stay behind.
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
            "from scanner.outputs.files import OutputError, write_or_keep\n"
            "try:\n"
            f"    write_or_keep({str(target)!r}, 'x' * 5000)\n"
            "except OutputError as exc:\n"
            "    print(exc.reason, exc.kept_at)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert "File too large None" in out.stdout
    assert target.read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scan.json"]


def test_a_large_report_is_written_whole_across_its_encoding_slices(tmp_path: Path) -> None:
    """The text is encoded a slice (of characters) at a time: multi-byte characters on
    every boundary still arrive whole, and nothing is lost at the end."""
    import tracemalloc

    from scanner.outputs import files

    text = ("é€𝄞 patient-free text " * 200_000)[: 3 * files._SLICE + 7]
    target = tmp_path / "report.json"
    write_or_keep(target, text)
    assert target.read_text(encoding="utf-8") == text
    # No whole encoded copy beside the text: a 32 MB report adds a slice, not 32 MB.
    big = "x" * (32 << 20)
    tracemalloc.start()
    try:
        write_or_keep(target, big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * files._SLICE, peak


def test_write_or_keep_names_where_the_text_went(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as caught:
        write_or_keep(tmp_path, "the results")  # a folder: cannot be replaced by a file
    assert caught.value.kept_at is not None
    assert Path(caught.value.kept_at).read_text() == "the results"
    Path(caught.value.kept_at).unlink()


@pytest.mark.parametrize("path", SCANS, ids=lambda p: p.stem)
def test_jsonl_events_describe_themselves(path: Path) -> None:
    result = load(path)
    lines = [json.loads(x) for x in to_jsonl(result, set(EventType)).splitlines()]
    assert {e["event_type"] for e in lines} == {"scan_start", "inventory", "finding", "scan_end"}
    inventory = [e for e in lines if e["event_type"] == "inventory"]
    assert [e["device_id"] for e in inventory] == [h.device_id for h in result.hosts]
    assert set(inventory[0]) >= {"address", "mac", "mac_vendor", "role", "services", "products"}
    findings = [e for e in lines if e["event_type"] == "finding"]
    # The finding lines of earlier versions are unchanged, plus event_type.
    for event, finding in zip(findings, result.findings, strict=True):
        assert {k: event[k] for k in finding.model_dump(mode="json")} == \
            finding.model_dump(mode="json")
        assert event["scan_id"] == result.scan.id
    assert lines[-1]["findings"] == len(result.findings)
    only_findings = to_jsonl(result).splitlines()
    assert [json.loads(x)["event_type"] for x in only_findings] == ["finding"] * len(findings)


def test_csv_is_one_quoted_row_per_finding_and_defuses_formulas() -> None:
    result = load(ORTHANC)
    hostile = result.findings[0].model_copy(update={
        "title": '=HYPERLINK("http://x","click"), with "quotes"\nand a newline',
        "remediation": "@SUM(1)", "evidence": {"banner": "-2+3"}})
    rows = list(csv.reader(io.StringIO(to_csv(result.model_copy(update={
        "findings": [hostile, *result.findings[1:]]})))))
    assert rows[0] == list(COLUMNS)
    assert len(rows) == 1 + len(result.findings)
    row = dict(zip(COLUMNS, rows[1], strict=True))
    assert row["title"].startswith("'=HYPERLINK(") and row["title"].endswith("a newline")
    assert row["remediation"] == "'@SUM(1)"
    assert row["finding_id"] == hostile.finding_id
    assert [safe_cell(v) for v in ("+1", "-1", "ok", "\tx")] == ["'+1", "'-1", "ok", "'\tx"]


@needs_dcmtk
def test_a_real_scan_writes_every_format_and_keeps_finding_ids(tmp_path: Path) -> None:
    ids = []
    with peers.start_storescp(host="127.0.0.61") as peer:
        for n in (1, 2):
            folder = tmp_path / str(n)
            folder.mkdir()
            out = run("scan", "127.0.0.61", "-p", str(peer.info.port), "--discovery", "none",
                      "--fail-on", "never", "-q", "--events", "findings,inventory,scan",
                      *[a for name in ("r.html", "f.jsonl", "s.json", "x.csv", "e.ocsf")
                        for a in ("-o", str(folder / name))])
            assert out.returncode == 0, out.stderr
            doc = json.loads((folder / "s.json").read_text())
            jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
            assert doc["findings"], "a real storescp gives findings"
            ids.append({(f["rule_id"], f["port"]): f["finding_id"] for f in doc["findings"]})
            events = [json.loads(x) for x in (folder / "e.ocsf").read_text().splitlines()]
            assert {e["class_uid"] for e in events} >= {5001, 2003}
            for event in events:
                assert_valid(event)
    assert ids[0] == ids[1]


def test_a_device_pipe_or_link_is_written_to_never_renamed_over(tmp_path: Path) -> None:
    """`-o /dev/null` as root once replaced the machine's /dev/null with a plain file: an
    output path that is a device or a pipe is written to as it is; a link keeps pointing
    at its (replaced) report."""
    import stat

    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    write_or_keep(device, "report")
    assert stat.S_ISCHR(device.lstat().st_mode)

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # The reader is in place before the write (a reader thread raced the writer, which
    # then found no reader: ENXIO, as designed); the text fits the pipe's buffer.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_or_keep(fifo, "through the pipe")
        got = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert got == b"through the pipe" and stat.S_ISFIFO(fifo.lstat().st_mode)

    real = tmp_path / "report.json"
    real.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    write_or_keep(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
