"""The spend ledger: estimates the bot accrues (uptime × price) and agent (Claude) usage.

Entries never straddle an hour boundary, so an hour covered by RunPod's billing can replace the
estimate for that hour exactly (no double counting)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import Budget, LedgerEntry

SECONDS_PER_HOUR = Decimal(3600)


def add(
    s: Session,
    *,
    org_id: int,
    kind: str,
    start: datetime,
    end: datetime,
    amount: Decimal,
    now: datetime,
    deployment_id: int | None = None,
    source: str = "estimate",
    user: str | None = None,
    gpu: str | None = None,
    description: str = "",
) -> LedgerEntry:
    entry = LedgerEntry(
        org_id=org_id,
        deployment_id=deployment_id,
        kind=kind,
        source=source,
        period_start=start,
        period_end=end,
        amount=amount,
        user=user,
        gpu=gpu,
        description=description[:500],
        created_at=now,
    )
    s.add(entry)
    return entry


def last_accrued_end(s: Session, *, org_id: int, deployment_id: int) -> datetime | None:
    return s.exec(
        select(func.max(LedgerEntry.period_end)).where(
            LedgerEntry.org_id == org_id,
            LedgerEntry.deployment_id == deployment_id,
            LedgerEntry.kind == "gpu",
        )
    ).one()


class LedgerLine(NamedTuple):
    """What a spend report reads of a ledger row: whose, what, which hour, how much."""

    deployment_id: int | None
    kind: str
    period_start: datetime
    amount: Decimal


def entries(
    s: Session, *, org_id: int, start: datetime, end: datetime, kind: str | None = None
) -> list[LedgerLine]:
    """Rows starting in [start, end), oldest first. Plain tuples of the columns that
    `ix_ledger_org_kind_start` covers, not ORM objects: a month of one organisation is ~10^4
    rows, and building that many LedgerEntry instances (identity map, pydantic, three datetime
    conversions each) cost ~4x the query itself (benchmarks/spend_query.py)."""
    stmt = sa.select(*(getattr(LedgerEntry, name) for name in LedgerLine._fields)).where(
        col(LedgerEntry.org_id) == org_id,
        col(LedgerEntry.period_start) >= start,
        col(LedgerEntry.period_start) < end,
    )
    if kind:
        stmt = stmt.where(col(LedgerEntry.kind) == kind)
    rows = s.connection().execute(stmt.order_by(col(LedgerEntry.period_start))).all()
    return [LedgerLine(*row) for row in rows]


def total(
    s: Session, *, org_id: int, start: datetime, end: datetime, kind: str | None = None
) -> Decimal:
    stmt = select(func.sum(LedgerEntry.amount)).where(
        LedgerEntry.org_id == org_id,
        LedgerEntry.period_start >= start,
        LedgerEntry.period_start < end,
    )
    if kind:
        stmt = stmt.where(LedgerEntry.kind == kind)
    value = s.exec(stmt).one()
    return Decimal(value) if value is not None else Decimal(0)


def get_budget(s: Session, *, org_id: int) -> Budget | None:
    return s.exec(select(Budget).where(Budget.org_id == org_id)).first()


def set_budget(
    s: Session,
    *,
    org_id: int,
    period: str,
    amount: Decimal,
    thresholds: str,
    hard_cap: bool,
    auto_stop: bool,
    actor: str,
    now: datetime,
) -> Budget:
    budget = get_budget(s, org_id=org_id) or Budget(
        org_id=org_id, amount=amount, updated_by=actor, updated_at=now
    )
    budget.period, budget.amount, budget.thresholds = period, amount, thresholds
    budget.hard_cap, budget.auto_stop = hard_cap, auto_stop
    budget.updated_by, budget.updated_at = actor, now
    s.add(budget)
    s.flush()
    return budget


def accrue(
    s: Session,
    *,
    org_id: int,
    deployment_id: int,
    start: datetime,
    end: datetime,
    per_hour: Decimal,
    now: datetime,
    user: str | None = None,
    gpu: str | None = None,
) -> Decimal:
    """Add uptime × price for [start, end), one row per (deployment, hour): an hour's row is
    extended on later accruals rather than duplicated. Returns the amount added."""
    added = Decimal(0)
    cursor = start
    while cursor < end:
        hour = cursor.replace(minute=0, second=0, microsecond=0)
        slice_end = min(end, hour + timedelta(hours=1))
        amount = per_hour * Decimal((slice_end - cursor).total_seconds()) / SECONDS_PER_HOUR
        row = s.exec(
            select(LedgerEntry).where(
                LedgerEntry.org_id == org_id,
                LedgerEntry.deployment_id == deployment_id,
                LedgerEntry.kind == "gpu",
                LedgerEntry.period_start == hour,
            )
        ).first()
        if row is None:
            row = LedgerEntry(
                org_id=org_id,
                deployment_id=deployment_id,
                kind="gpu",
                source="estimate",
                period_start=hour,
                period_end=slice_end,
                amount=Decimal(0),
                user=user,
                gpu=gpu,
                description="uptime × price",
                created_at=now,
            )
        row.amount = (row.amount or Decimal(0)) + amount
        row.period_end = max(row.period_end, slice_end)
        s.add(row)
        added += amount
        cursor = slice_end
    s.flush()
    return added


def budgets_of_all_orgs(s: Session) -> list[Budget]:
    """Every organisation's budget (the budget sweep)."""
    return list(s.exec(select(Budget)))
