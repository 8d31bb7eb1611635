"""The JSON document's schema: committed, current, and obeyed by real output."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from scanner.model import ScanResult

SCHEMA_FILE = Path(str(resources.files("scanner") / "schema" / "report.schema.json"))
SAVED_SCANS = sorted((Path(__file__).parent.parent / "fixtures" / "scans").glob("*.json"))


def test_committed_schema_matches_the_model() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == ScanResult.model_json_schema(), (
        "scanner/schema/report.schema.json is stale: regenerate it with "
        "'dicomscan schema > scanner/schema/report.schema.json'"
    )


@pytest.mark.parametrize("path", SAVED_SCANS, ids=[p.name for p in SAVED_SCANS])
def test_saved_real_scans_validate_and_round_trip(path: Path) -> None:
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, json.loads(SCHEMA_FILE.read_text()))
    again = json.loads(ScanResult.model_validate(doc).model_dump_json())
    assert again == doc


@pytest.mark.parametrize("path", SAVED_SCANS, ids=[p.name for p in SAVED_SCANS])
def test_rules_judge_saved_observations_offline(path: Path) -> None:
    """Rules are a pure function of the observations: a saved scan is judged the same again."""
    from scanner.rules.evaluate import evaluate

    result = ScanResult.model_validate_json(path.read_text())
    assert evaluate(result.hosts) == result.findings
