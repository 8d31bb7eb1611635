"""``--format json``: the whole document (``schema_version``, ``scan``, ``hosts``,
``findings``), described by ``scanner/schema/report.schema.json``."""

from __future__ import annotations

from scanner.model import ScanResult


def to_json(result: ScanResult) -> str:
    return result.model_dump_json(indent=2) + "\n"
