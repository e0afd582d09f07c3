"""daily command counts: the daily per-person cap's counter, and the audit index by actor

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dailycommandcount",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("org_id", "actor", "day"),
    )
    # Today's counts start at what the audit trail already holds, so a cap in force keeps its
    # figure across the upgrade (the rows the old recount counted). Typed columns, so the UTC
    # midnight binds as each engine stores datetimes.
    audit = sa.table(
        "auditevent",
        sa.column("org_id", sa.Integer()),
        sa.column("actor", sa.String()),
        sa.column("platform", sa.String()),
        sa.column("outcome", sa.String()),
        sa.column("created_at", sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    counts = sa.table(
        "dailycommandcount",
        sa.column("org_id", sa.Integer()),
        sa.column("actor", sa.String()),
        sa.column("day", sa.Date()),
        sa.column("count", sa.Integer()),
    )
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        op.get_bind()
        .execute(
            sa.select(audit.c.org_id, audit.c.actor, sa.func.count())
            .where(
                audit.c.created_at >= midnight,
                audit.c.platform != "system",
                audit.c.outcome.in_(("allowed", "approval_requested", "denied")),
            )
            .group_by(audit.c.org_id, audit.c.actor)
        )
        .all()
    )
    if rows:
        op.bulk_insert(
            counts,
            [
                {"org_id": org, "actor": actor, "day": midnight.date(), "count": int(n)}
                for org, actor, n in rows
            ],
        )
    op.create_index(
        "ix_audit_org_actor_created",
        "auditevent",
        ["org_id", "actor", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_org_actor_created", table_name="auditevent")
    op.drop_table("dailycommandcount")
