"""Daily activity per user, derived from the audit trail and the ledger (no extra writes on the
request path): commands run, agent requests and tokens, agent spend."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import AuditEvent, LedgerEntry

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


def commands_since(s: Session, *, org_id: int, actor: str, since: datetime) -> int:
    return int(
        s.exec(
            select(func.count(col(AuditEvent.id))).where(
                AuditEvent.org_id == org_id,
                AuditEvent.actor == actor,
                col(AuditEvent.created_at) >= since,
                col(AuditEvent.outcome).in_(COUNTED_OUTCOMES),
            )
        ).one()
    )


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
