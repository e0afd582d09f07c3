"""health and idle state on deployments; idle policy per organisation

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployment") as batch:
        batch.add_column(
            sa.Column("health_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("jobs_seen", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("last_health_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("idle_warned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("organization") as batch:
        batch.add_column(
            sa.Column("idle_stop_minutes", sa.Integer(), nullable=False, server_default="60")
        )


def downgrade() -> None:
    with op.batch_alter_table("organization") as batch:
        batch.drop_column("idle_stop_minutes")
    with op.batch_alter_table("deployment") as batch:
        batch.drop_column("idle_warned_at")
        batch.drop_column("last_health_at")
        batch.drop_column("jobs_seen")
        batch.drop_column("health_failures")
