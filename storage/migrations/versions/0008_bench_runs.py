"""bench runs: `/bench` results per organisation, compared by `/bench history`

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from storage.models import Money

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "benchrun",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("deployment_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("gpu", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("price_per_hour", Money(), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("results_json", sa.Text(), nullable=False),
        sa.Column("best_tokens_per_second", sa.Float(), nullable=True),
        sa.Column("best_concurrency", sa.Integer(), nullable=True),
        sa.Column("ttft_p50_seconds", sa.Float(), nullable=True),
        sa.Column("cost_per_million_output", sa.Float(), nullable=True),
        sa.Column("cost_per_million_input", sa.Float(), nullable=True),
        sa.Column("cold_start_seconds", sa.Float(), nullable=True),
        sa.Column("stop_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployment.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("benchrun") as batch:
        batch.create_index("ix_benchrun_org_created", ["org_id", "created_at"], unique=False)
        batch.create_index(batch.f("ix_benchrun_org_id"), ["org_id"], unique=False)
        batch.create_index(batch.f("ix_benchrun_deployment_id"), ["deployment_id"], unique=False)


def downgrade() -> None:
    op.drop_table("benchrun")
