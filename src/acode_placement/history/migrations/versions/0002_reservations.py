"""Reservations: leases on a target's capacity, and one lock row per target.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("target_id", sa.String(256), nullable=False, index=True),
        sa.Column("request_id", sa.String(64)),
        sa.Column("task_name", sa.String(256)),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("cpu", sa.Float, nullable=False),
        sa.Column("memory_gb", sa.Float, nullable=False),
        sa.Column("gpus", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("end_reason", sa.String(16)),
    )
    op.create_index("reservations_active", "reservations", ["target_id", "ended_at"])
    op.create_table(
        "capacity_locks",
        sa.Column("target_id", sa.String(256), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("capacity_locks")
    op.drop_index("reservations_active", "reservations")
    op.drop_table("reservations")
