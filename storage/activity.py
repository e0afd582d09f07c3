"""Daily activity per user, derived from the audit trail and the ledger: commands run, agent
requests and tokens, agent spend; and the daily cap's counter (`DailyCommandCount`, kept in
the unit of work that writes each counted audit row)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Integer, String, func, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from storage import events
from storage.models import AuditEvent, DailyCommandCount, LedgerEntry, ProcessedEvent

# Outcomes that mean "this person asked for something" (not the follow-up rows of one request).
COUNTED_OUTCOMES = ("allowed", "approval_requested", "denied")
_TOKENS = re.compile(r"in (\d+) \(cache write (\d+), read (\d+)\), out (\d+) tokens")


@dataclass
class UserActivity:
    user: str
    commands: int = 0
    agent_requests: int = 0
    agent_tokens: int = 0
    agent_spend: Decimal = Decimal(0)


def count_command(s: Session, *, org_id: int, actor: str, day: date, by: int = 1) -> int:
    """Add `by` to the person's count for `day` (UTC) and return the new count: one
    `INSERT … ON CONFLICT DO UPDATE … RETURNING` inside the caller's transaction. The row stays
    locked until that commits, so two processes' commands for one person are counted in turn."""
    dialect = s.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(DailyCommandCount)
            .values(org_id=org_id, actor=actor, day=day, count=by)
            .on_conflict_do_update(
                index_elements=["org_id", "actor", "day"],
                set_={"count": col(DailyCommandCount.count) + by},
            )
            .returning(col(DailyCommandCount.count))
        )
        return int(s.connection().execute(stmt).scalar_one())
    row = s.get(DailyCommandCount, (org_id, actor, day), with_for_update=True)
    if row is None:
        row = DailyCommandCount(org_id=org_id, actor=actor, day=day)
    row.count += by
    s.add(row)
    s.flush()
    return row.count


def claim_and_count(
    s: Session, *, org_id: int, actor: str, day: date, key: str, now: datetime
) -> int | None:
    """The idempotency claim of `key` (see `events.claim`) and, when it is new, `count_command`;
    None when the key was already claimed (a redelivery: nothing counted). One statement on
    PostgreSQL (the claim as a data-modifying CTE feeding the counter's upsert), so a keyed
    command's cap costs no round trip of its own; two on SQLite."""
    if s.get_bind().dialect.name != "postgresql":
        if not events.claim(s, org_id=org_id, key=key, now=now):
            return None
        return count_command(s, org_id=org_id, actor=actor, day=day)
    claim = (
        pg_insert(ProcessedEvent)
        .values(org_id=org_id, key=key, result_json=events.EMPTY_RESULT, created_at=now)
        .on_conflict_do_nothing(index_elements=["org_id", "key"])
        .returning(col(ProcessedEvent.id))
        .cte("claim")
    )
    one = select(
        literal(org_id, Integer()),
        literal(actor, String()),
        literal(day, Date()),
        literal(1, Integer()),
    ).select_from(claim)
    stmt = (
        pg_insert(DailyCommandCount)
        .from_select(["org_id", "actor", "day", "count"], one)
        .on_conflict_do_update(
            index_elements=["org_id", "actor", "day"],
            set_={"count": col(DailyCommandCount.count) + 1},
        )
        .returning(col(DailyCommandCount.count))
        .add_cte(claim)
    )
    count = s.connection().execute(stmt).scalar_one_or_none()
    return None if count is None else int(count)


def commands_on(s: Session, *, org_id: int, actor: str, day: date) -> int:
    """How many counted rows the person has on `day` (UTC): one primary-key look-up."""
    count = s.exec(
        select(DailyCommandCount.count).where(
            DailyCommandCount.org_id == org_id,
            DailyCommandCount.actor == actor,
            DailyCommandCount.day == day,
        )
    ).first()
    return int(count or 0)


def per_user(s: Session, *, org_id: int, since: datetime, until: datetime) -> list[UserActivity]:
    by_user: dict[str, UserActivity] = defaultdict(lambda: UserActivity(user=""))
    rows = s.exec(
        select(AuditEvent.actor, func.count(col(AuditEvent.id)))
        .where(
            AuditEvent.org_id == org_id,
            col(AuditEvent.created_at) >= since,
            col(AuditEvent.created_at) < until,
            col(AuditEvent.outcome).in_(COUNTED_OUTCOMES),
        )
        .group_by(col(AuditEvent.actor))
    ).all()
    for actor, count in rows:
        by_user[actor].commands = int(count)
    for entry in s.exec(
        select(LedgerEntry).where(
            LedgerEntry.org_id == org_id,
            LedgerEntry.kind == "agent",
            col(LedgerEntry.period_start) >= since,
            col(LedgerEntry.period_start) < until,
        )
    ):
        act = by_user[entry.user or "unknown"]
        act.agent_requests += 1
        act.agent_spend += entry.amount
        m = _TOKENS.search(entry.description or "")
        if m:
            act.agent_tokens += sum(int(x) for x in m.groups())
    for name, act in by_user.items():
        act.user = name
    return sorted(by_user.values(), key=lambda a: (-a.commands, a.user))
