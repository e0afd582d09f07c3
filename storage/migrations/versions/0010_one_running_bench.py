"""one running /bench per deployment, enforced by the database (a partial unique index)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    # Runs a crash left `running` would break the index: the start-up sweep marks them failed
    # anyway ("interrupted by a restart"); all but the newest per deployment are closed first.
    op.execute(
        """
        UPDATE benchrun SET status = 'failed', stop_reason = 'interrupted by a restart'
        WHERE status = 'running' AND id NOT IN (
            SELECT max(id) FROM benchrun WHERE status = 'running'
            GROUP BY org_id, deployment_id
        )
        """
    )
    op.create_index(
        "ux_benchrun_one_running",
        "benchrun",
        ["org_id", "deployment_id"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ux_benchrun_one_running", table_name="benchrun")
