"""The json and jsonl formats are written a host or an event at a time
(``scanner/outputs/pieces.py``): the same bytes as the whole text, never the whole text in
memory, and a failed write still keeps all of it elsewhere."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.lab import peers
from scanner.model import ScanResult
from scanner.outputs.files import OutputError, write_or_keep
from scanner.outputs.json_report import json_pieces
from scanner.outputs.jsonl import EventType, jsonl_pieces
from scanner.outputs.pieces import Pieces

SAVED = sorted((Path(__file__).parent.parent / "fixtures" / "scans").glob("*.json"))


def saved() -> list[ScanResult]:
    return [ScanResult.model_validate_json(p.read_text()) for p in SAVED]


def many(result: ScanResult, copies: int) -> ScanResult:
    """``result`` with its hosts and findings repeated under other addresses."""
    hosts, findings = [], []
    for i in range(copies):
        address = f"127.0.{i // 250}.{i % 250 + 1}"
        for h in result.hosts:
            hosts.append(h.model_copy(update={"address": address}))
        for f in result.findings:
            findings.append(f.model_copy(update={"host": address}))
    return result.model_copy(update={"hosts": hosts, "findings": findings})


def test_json_pieces_are_the_whole_document_byte_for_byte() -> None:
    results = saved()
    assert len(results) >= 3 and all(r.hosts and r.findings for r in results)
    empty = results[0].model_copy(update={"hosts": [], "findings": []})
    for r in [*results, empty, many(results[1], 40)]:
        assert json_pieces(r).text() == r.model_dump_json(indent=2) + "\n"


def test_no_json_piece_holds_more_than_one_host_or_finding() -> None:
    r = many(saved()[1], 200)
    pieces = list(json_pieces(r))
    largest_item = max(len(x.model_dump_json(indent=2)) for x in [*r.hosts, *r.findings])
    assert len(pieces) >= len(r.hosts) + len(r.findings)
    # An item moved in two levels gains 4 characters a line, and a separator.
    assert max(len(p) for p in pieces) < 2 * largest_item + 100
    assert sum(map(len, pieces)) > 50 * max(map(len, pieces))


def test_jsonl_pieces_are_one_event_each() -> None:
    r = many(saved()[1], 20)
    pieces = list(jsonl_pieces(r, set(EventType)))
    assert len(pieces) == len(r.hosts) + len(r.findings) + 2
    assert all(p.endswith("\n") and p.count("\n") == 1 for p in pieces)
    assert [json.loads(p)["event_type"] for p in (pieces[0], pieces[-1])] == [
        "scan_start", "scan_end"]


def test_a_failed_write_keeps_the_whole_document(tmp_path: Path) -> None:
    r = many(saved()[0], 30)
    made = 0

    def counted() -> Pieces:
        def gen():  # type: ignore[no-untyped-def]
            nonlocal made
            made += 1
            yield from json_pieces(r)
        return Pieces(gen)

    try:
        write_or_keep(tmp_path / "no-such-folder" / "scan.json", counted())
    except OutputError as exc:
        assert exc.kept_at is not None
        kept = Path(exc.kept_at)
        try:
            assert kept.read_text() == r.model_dump_json(indent=2) + "\n"
        finally:
            kept.unlink()
    else:
        raise AssertionError("the write into a missing folder succeeded")
    assert made == 1  # the failed write made nothing; the kept copy rendered it whole


def test_scan_writes_the_same_document_to_a_file_and_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    with peers.start_storescp() as scp:
        args = [sys.executable, "-m", "scanner", "scan", "127.0.0.1", "-p",
                str(scp.info.port), "--format", "json", "-q", "--fail-on", "never"]
        to_file = subprocess.run([*args, "-o", str(out)], capture_output=True, timeout=120)
        to_stdout = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert to_file.returncode == 0 and to_stdout.returncode == 0, to_file.stderr
    for text in (out.read_text(), to_stdout.stdout):
        result = ScanResult.model_validate_json(text)
        assert [s.product for h in result.hosts for s in h.services] == ["DCMTK"]
        assert result.findings
        assert text == result.model_dump_json(indent=2) + "\n"


class CountingOut(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def write(self, text: str) -> int:
        if text:  # click writes empty strings beside the text
            self.writes.append(len(text))
        return super().write(text)


def test_stdout_gets_a_small_report_in_one_write_and_a_large_one_in_chunks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that leaves after the first line (``| head -1``) cost a small jsonl report
    its exit code once each event was its own write (EPIPE: exit 4)."""
    from scanner.cli.common import _echo

    for result, chunk, most in ((saved()[0], 1 << 20, 1), (many(saved()[1], 100), 1 << 16, 99)):
        out = CountingOut()
        monkeypatch.setattr(sys, "stdout", out)
        pieces = jsonl_pieces(result, set(EventType))
        _echo(pieces, chunk)
        assert out.getvalue() == pieces.text()
        assert 1 <= len(out.writes) <= most
        assert max(out.writes) < chunk + max(map(len, pieces))
        if most > 1:
            assert len(out.writes) > 2
