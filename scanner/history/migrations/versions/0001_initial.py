"""The first schema: scans with their hosts, ports, services and findings.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _child(name: str, *columns: sa.Column[Any], host: bool = True) -> None:
    parents: list[sa.Column[Any]] = [sa.Column("scan_id", sa.String(64),
                         sa.ForeignKey("scans.scan_id", ondelete="CASCADE"), nullable=False)]
    if host:
        parents.insert(0, sa.Column("host_id", sa.Integer,
                                    sa.ForeignKey("hosts.id", ondelete="CASCADE"),
                                    nullable=False))
    op.create_table(name, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    *parents, *columns)
    op.create_index(f"ix_{name}_scan_id", name, ["scan_id"])
    if host:
        op.create_index(f"ix_{name}_host_id", name, ["host_id"])


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column("scan_id", sa.String(64), primary_key=True),
        sa.Column("job", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("tool_version", sa.String(40), nullable=False),
        sa.Column("profile", sa.String(20), nullable=True),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("meta", sa.JSON, nullable=True),
        sa.Column("host_count", sa.Integer, nullable=False),
        sa.Column("service_count", sa.Integer, nullable=False),
        sa.Column("finding_count", sa.Integer, nullable=False),
        sa.Column("failed_count", sa.Integer, nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
    )
    for column in ("job", "status", "started_at"):
        op.create_index(f"ix_scans_{column}", "scans", [column])
    _child("hosts",
           sa.Column("ordinal", sa.Integer, nullable=False),
           sa.Column("device_id", sa.String(32), nullable=False),
           sa.Column("address", sa.String(64), nullable=False),
           sa.Column("mac", sa.String(32), nullable=True),
           sa.Column("seen", sa.Boolean, nullable=False),
           sa.Column("data", sa.JSON, nullable=False), host=False)
    op.create_index("ix_hosts_device_id", "hosts", ["device_id"])
    _child("ports",
           sa.Column("port", sa.Integer, nullable=False),
           sa.Column("protocol", sa.String(8), nullable=False),
           sa.Column("state", sa.String(16), nullable=False),
           sa.Column("data", sa.JSON, nullable=False))
    _child("services",
           sa.Column("port", sa.Integer, nullable=False),
           sa.Column("protocol", sa.String(8), nullable=False),
           sa.Column("name", sa.String(64), nullable=False),
           sa.Column("tls", sa.Boolean, nullable=False),
           sa.Column("product", sa.String(200), nullable=True),
           sa.Column("version", sa.String(200), nullable=True),
           sa.Column("observations", sa.JSON, nullable=False))
    _child("findings",
           sa.Column("ordinal", sa.Integer, nullable=False),
           sa.Column("finding_id", sa.String(32), nullable=False),
           sa.Column("device_id", sa.String(32), nullable=False),
           sa.Column("rule_id", sa.String(100), nullable=False),
           sa.Column("severity", sa.String(16), nullable=False),
           sa.Column("status", sa.String(16), nullable=False),
           sa.Column("host", sa.String(64), nullable=False),
           sa.Column("port", sa.Integer, nullable=True),
           sa.Column("data", sa.JSON, nullable=False), host=False)
    op.create_index("ix_findings_finding_id", "findings", ["finding_id"])
    op.create_index("ix_findings_device_id", "findings", ["device_id"])


def downgrade() -> None:
    for name in ("findings", "services", "ports", "hosts", "scans"):
        op.drop_table(name)
