"""Placements and acquisition attempts, append-only.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NO_UPDATE_SQLITE = """
CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'history is append-only: {table} rows are never updated'); END
"""
_NO_UPDATE_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION acode_placement_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'history is append-only: % rows are never updated', TG_TABLE_NAME; END;
$$ LANGUAGE plpgsql
"""
_NO_UPDATE_POSTGRES = """
CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table}
FOR EACH ROW EXECUTE FUNCTION acode_placement_append_only()
"""


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("task_name", sa.String(256)),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(256), index=True),
        sa.Column("target_type", sa.String(16)),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("estimated_cost", sa.Float),
        sa.Column("price_source", sa.String(128)),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("failure_message", sa.Text),
        sa.Column("requirements", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("engine_version", sa.String(32), nullable=False),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("target_id", sa.String(256), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("retryable", sa.Boolean, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_NO_UPDATE_POSTGRES_FUNCTION)
    for table in ("placements", "attempts"):
        if dialect == "sqlite":
            op.execute(_NO_UPDATE_SQLITE.format(table=table))
        elif dialect == "postgresql":
            op.execute(_NO_UPDATE_POSTGRES.format(table=table))


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_table("placements")
