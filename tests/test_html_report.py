"""The HTML audit report in a real headless browser (Debian's chromium driven by
Playwright): it renders, logs no console error, loads nothing but itself, escapes what
peers said, and prints to PDF. The screenshot and PDF are kept under artifacts/html/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.model import ScanResult
from scanner.outputs.html_report import to_html

ROOT = Path(__file__).resolve().parent.parent
SCANS = sorted((ROOT / "fixtures" / "scans").glob("*.json"))
ORTHANC = ROOT / "fixtures" / "scans" / "orthanc-find-open.json"
ARTIFACTS = ROOT / "artifacts" / "html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
HOSTILE = "<script>alert(1)</script>\x1b[31m"


def hostile_result() -> ScanResult:
    """A real scan in which the peer announced a hostile version string."""
    result = ScanResult.model_validate_json(ORTHANC.read_text())
    host = result.hosts[0]
    services = [s.model_copy(update={"version": f"1.10.1{HOSTILE}"}) if s.name == "http" else s
                for s in host.services]
    findings = [f.model_copy(update={"evidence": {**f.evidence, "version": HOSTILE}})
                if f.rule_id == "software-vulnerable-version" else f for f in result.findings]
    return result.model_copy(update={
        "hosts": [host.model_copy(update={"services": services})], "findings": findings})


def test_peer_values_are_escaped_and_control_characters_shown() -> None:
    html = to_html(hostile_result())
    assert "<script>" not in html and "\x1b" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31m" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)


@pytest.mark.parametrize("path", SCANS, ids=lambda p: p.stem)
def test_every_saved_scan_renders_its_counts(path: Path) -> None:
    result = ScanResult.model_validate_json(path.read_text())
    html = to_html(result)
    for status in ("fail", "pass", "not-checked", "waived"):
        n = sum(f.status.value == status for f in result.findings)
        assert f'<td class="{status}">{n}</td>' in html
    for f in result.findings:
        assert f'id="f-{f.finding_id}"' in html


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                    reason="chromium not installed")
def test_report_renders_in_headless_chromium_without_errors_or_requests() -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "report.html"
    report.write_text(to_html(hostile_result()), encoding="utf-8")
    url = report.as_uri()
    requests: list[str] = []
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.wait_for_load_state("networkidle")
            assert page.title().startswith("dicomscan audit report")
            assert page.locator("h1").inner_text().endswith("FAIL")
            assert page.locator("svg rect").count() == 4
            text = page.locator("body").inner_text()
            assert "<script>alert(1)</script>\\x1b[31m" in text  # shown, not run
            assert page.locator("script").count() == 0 and dialogs == []
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            page.pdf(path=str(ARTIFACTS / "report.pdf"), format="A4", print_background=True)
        finally:
            browser.close()
    assert requests == [url]
    assert [c for c in console if c.startswith(("error", "pageerror"))] == []
    assert (ARTIFACTS / "report.pdf").read_bytes().startswith(b"%PDF-")
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_audit_command_writes_the_html_report(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "scanner", "audit", "--from", str(ORTHANC),
                          "--framework", "nist-800-53", "--format", "html", "-o",
                          str(tmp_path / "audit.html")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1, out.stderr  # the Orthanc scan fails its audit
    html = (tmp_path / "audit.html").read_text()
    assert "NIST SP 800-53" in html and 'class="FAIL">FAIL</span></h1>' in html
    assert "from " not in out.stdout and out.stdout == ""
