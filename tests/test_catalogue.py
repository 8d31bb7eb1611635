"""The rule catalogue matches the code: every rule ID code can emit is catalogued, and
every catalogued rule is emitted by some code. Plus the ``dicomscan rules`` commands.

Rule IDs are collected two ways, so that one blind spot does not hide a gap:
- statically, from the syntax tree of ``scanner/rules/evaluate.py`` and every
  ``scanner/rules/*_rules.py``: the first argument of each ``make_finding``/``.finding``
  call and every catalogue-shaped string in a module-level UPPERCASE table (``RULES``,
  ``_CERT_RULES``, ``RULE_ID``);
- dynamically, from what the registered rule families emit on the saved scans in
  ``fixtures/scans/*.json``; those must be a subset of the static set.
Baseline and framework files, once they exist, add the IDs they reference.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanner.model import ScanResult, Severity
from scanner.rules.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parent.parent
RULE_DIR = ROOT / "scanner" / "rules"
RULE_MODULES = [RULE_DIR / "evaluate.py", *sorted(RULE_DIR.glob("*_rules.py"))]
SCANS = sorted((ROOT / "fixtures" / "scans").glob("*.json"))
RULE_SHAPED = re.compile(
    r"^(?:dicom|tls|software|port|http|remote|waiver|baseline|smb|rdp|snmp|device)-[a-z0-9-]+$"
)
# Functions whose first argument is a rule ID.
FINDING_CALLS = {"make_finding", "finding"}
# Keys under which baseline, policy and framework files name rule IDs.
RULE_KEYS = {"rule", "rule_id", "rules", "rule_ids"}


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _strings(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def _table_targets(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    return []


def ids_in_source(path: Path) -> dict[str, str]:
    """Rule IDs a rule module can emit -> where they were seen."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in FINDING_CALLS:
            args = [
                *node.args[:1],
                *(k.value for k in node.keywords if k.arg in ("rule_id", "rule")),
            ]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, f"{path.name}:{node.lineno}")
    for stmt in tree.body:
        names = _table_targets(stmt)
        if names and all(n.lstrip("_").isupper() for n in names):
            for value in _strings(stmt):
                if RULE_SHAPED.match(value):
                    found.setdefault(value, f"{path.name}:{stmt.lineno} ({names[0]})")
    return found


def _walk_rule_refs(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in RULE_KEYS:
                values = value if isinstance(value, list) else [value]
                yield from (v for v in values if isinstance(v, str))
            yield from _walk_rule_refs(value)
    elif isinstance(data, list):
        for item in data:
            yield from _walk_rule_refs(item)


def ids_in_data_files() -> dict[str, str]:
    """Rule IDs referenced by baselines, policies and compliance mappings, when present."""
    found: dict[str, str] = {}
    files = [*ROOT.glob("baselines/**/*.yaml"), *ROOT.glob("scanner/data/frameworks/*.yaml")]
    for path in sorted(files):
        for rule_id in _walk_rule_refs(yaml.safe_load(path.read_text(encoding="utf-8"))):
            found.setdefault(rule_id, str(path.relative_to(ROOT)))
    return found


def static_ids() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in RULE_MODULES:
        for rule_id, where in ids_in_source(path).items():
            found.setdefault(rule_id, where)
    return found


def emitted_on_fixtures() -> dict[str, str]:
    """Rule IDs the rule families actually emit on the saved scans."""
    from scanner.rules.evaluate import RULE_FAMILIES
    from scanner.rules.software_rules import software_findings

    families = list(RULE_FAMILIES)
    if software_findings not in families:  # not wired yet: still check what it emits
        families.append(software_findings)
    found: dict[str, str] = {}
    for scan in SCANS:
        result = ScanResult.model_validate(json.loads(scan.read_text(encoding="utf-8")))
        for host in result.hosts:
            for family in families:
                for f in family(host):
                    found.setdefault(f.rule_id, scan.name)
    return found


def test_static_scan_sees_rule_modules() -> None:
    # Guards the collector itself: if it found nothing, every test below would be vacuous.
    ids = static_ids()
    assert {"dicom-cleartext", "tls-legacy-protocol", "software-vulnerable-version"} <= set(ids)
    assert "dicom-tls" not in ids  # a service name compared in rules_dicom, not a rule


def test_every_rule_used_in_code_is_catalogued() -> None:
    catalogue = load_catalogue()
    missing = {i: w for i, w in static_ids().items() if i not in catalogue}
    assert not missing, f"rule IDs used in code but not in scanner/data/rules/: {missing}"


def test_every_rule_in_baselines_and_mappings_is_catalogued() -> None:
    catalogue = load_catalogue()
    missing = {i: w for i, w in ids_in_data_files().items() if i not in catalogue}
    assert not missing, f"rule IDs referenced by data files but not catalogued: {missing}"


def test_every_catalogued_rule_is_used_by_code() -> None:
    used = set(static_ids())
    unused = sorted(set(load_catalogue()) - used)
    assert not unused, f"catalogued rules no rule module emits: {unused}"


def test_rules_emitted_on_saved_scans_are_catalogued_and_seen_statically() -> None:
    emitted = emitted_on_fixtures()
    assert emitted, "the saved scans produced no findings at all"
    catalogue, static = load_catalogue(), static_ids()
    assert not {i: s for i, s in emitted.items() if i not in catalogue}
    # Anything emitted that the static scan missed means the collector has a blind spot.
    assert not {i: s for i, s in emitted.items() if i not in static}


def test_every_rule_module_is_registered() -> None:
    from scanner.rules import evaluate

    registered = {f.__module__ for f in evaluate.RULE_FAMILIES}
    modules = {f"scanner.rules.{p.stem}" for p in RULE_MODULES if p.stem != "evaluate"}
    assert modules <= registered, f"rule modules not in RULE_FAMILIES: {modules - registered}"


@pytest.mark.parametrize("rule_id", sorted(load_catalogue()))
def test_rule_is_complete(rule_id: str) -> None:
    rule = load_catalogue()[rule_id]
    assert rule.severity in set(Severity)
    assert rule.references, f"{rule_id} has no reference"
    assert all(r.strip() for r in rule.references)
    for field in ("title", "pass_title", "rationale", "remediation"):
        assert getattr(rule, field).strip(), f"{rule_id}: empty {field}"
    assert rule.title != rule.pass_title


def test_rule_files_use_valid_severities_as_written() -> None:
    # pydantic would coerce nothing here, but check the raw files so the error names them.
    valid = {s.value for s in Severity}
    for path in sorted((ROOT / "scanner" / "data" / "rules").glob("*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]:
            assert item.get("severity") in valid, f"{path.name}: {item.get('id')}"


# --- dicomscan rules ------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", "rules", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_rules_list_table() -> None:
    out = run("list")
    assert out.returncode == 0, out.stderr
    for rule in load_catalogue().values():
        line = next(ln for ln in out.stdout.splitlines() if ln.split()[:1] == [rule.id])
        assert rule.severity.value in line and rule.title in line


def test_rules_list_json() -> None:
    out = run("list", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    catalogue = load_catalogue()
    assert [r["id"] for r in rows] == list(catalogue)
    for r in rows:
        assert set(r) == {"id", "severity", "title"}
        assert r["severity"] == catalogue[r["id"]].severity.value
        assert r["title"] == catalogue[r["id"]].title


@pytest.mark.parametrize("rule_id", ["dicom-cleartext", "software-vulnerable-version"])
def test_rules_show(rule_id: str) -> None:
    out = run("show", rule_id)
    assert out.returncode == 0, out.stderr
    rule = load_catalogue()[rule_id]
    flat = " ".join(out.stdout.split())
    for text in (
        rule.id,
        rule.severity.value,
        rule.title,
        rule.pass_title,
        rule.rationale,
        rule.remediation,
        *rule.references,
    ):
        assert " ".join(text.split()) in flat


def test_rules_show_unknown_id() -> None:
    out = run("show", "dicom-no-such-rule")
    assert out.returncode == 2
    assert "unknown rule ID 'dicom-no-such-rule'" in out.stderr
    assert "rules list" in out.stderr
    assert out.stdout == ""


def test_rules_list_rejects_bad_format() -> None:
    out = run("list", "--format", "xml")
    assert out.returncode == 2


def test_rules_group_imports_only_click() -> None:
    code = (
        "import sys\n"
        "import scanner.cli.rules\n"
        "heavy = [m for m in ('pydantic', 'yaml', 'pynetdicom', 'scanner.rules.catalogue') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
