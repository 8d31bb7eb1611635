"""The rule catalogue: every rule ID's title, severity, rationale, remediation, references.

Kept as data (``scanner/data/rules/*.yaml``, one file per family) so that adding or
rewording a rule touches no code. Rules in code only say which rule failed or passed
and with what evidence; everything a reader sees about the rule comes from here.
"""

from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scanner.model import Finding, FindingStatus, Severity
from scanner.model.base import empty_list
from scanner.model.data_cache import DataError, shipped_yaml
from scanner.model.identity import device_id, finding_id
from scanner.model.observations import Confidence


class CatalogueError(ValueError):
    """A rule catalogue file is malformed."""


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str
    pass_title: str = Field(description="title used when the check held")
    severity: Severity
    rationale: str
    remediation: str
    references: list[str] = Field(default_factory=empty_list)


@cache
def load_catalogue() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    folder = resources.files("scanner") / "data" / "rules"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            raw: Any = shipped_yaml(entry.read_text(encoding="utf-8"))
        except DataError as exc:
            raise CatalogueError(f"{entry.name}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
            raise CatalogueError(f"{entry.name}: expected a top-level 'rules:' list")
        for i, item in enumerate(raw["rules"]):
            try:
                rule = Rule.model_validate(item)
            except ValidationError as exc:
                raise CatalogueError(f"{entry.name}: rules[{i}]: {exc}") from None
            if rule.id in rules:
                raise CatalogueError(f"{entry.name}: rule {rule.id!r} defined twice")
            rules[rule.id] = rule
    return rules


def make_finding(
    rule_id: str,
    status: FindingStatus,
    host: str,
    port: int | None,
    evidence: dict[str, Any],
    confidence: Confidence = Confidence.CONFIRMED,
    severity: Severity | None = None,
) -> Finding:
    """A finding whose title, severity, remediation and references come from the catalogue."""
    rule = load_catalogue()[rule_id]
    # The identity the model would derive, given: its validator then copies nothing.
    device = device_id(host)
    baseline = evidence.get("baseline")
    ident = finding_id(rule.id, device, port, baseline if isinstance(baseline, str) else None)
    return Finding(
        finding_id=ident,
        device_id=device,
        rule_id=rule.id,
        severity=severity or rule.severity,
        status=status,
        host=host,
        port=port,
        title=rule.title if status is FindingStatus.FAIL else rule.pass_title,
        evidence=evidence,
        remediation=rule.remediation,
        references=list(rule.references),
        confidence=confidence,
    )
