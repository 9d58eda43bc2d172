"""Compact records: the candidates a decision saw, stored once per fleet state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    # A record written before this revision keeps its whole explanation and no snapshot.
    op.add_column("placements", sa.Column("snapshot", sa.String(64)))


def downgrade() -> None:
    op.drop_column("placements", "snapshot")
    op.drop_table("snapshots")
