"""ledger: covering index for the spend queries (org, kind, hour -> deployment, amount)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# A plain CREATE INDEX on both engines (no batch mode: SQLite needs no table copy for it).
def upgrade() -> None:
    op.create_index(
        "ix_ledger_org_kind_start",
        "ledgerentry",
        ["org_id", "kind", "period_start", "deployment_id", "amount"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_org_kind_start", table_name="ledgerentry")
