"""Agent memory per thread, the agent's token spend, and the few reads its system prompt needs.

A conversation is keyed by (organisation, platform, channel, thread): a new thread starts fresh.
Messages are stored in order; the agent trims what it sends to Claude, not what is stored.
Every function takes `org_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from storage.models import (
    Budget,
    Conversation,
    ConversationMessage,
    Deployment,
    LedgerEntry,
)

NO_CHANNEL = "-"  # the key columns are NOT NULL; a surface without channels/threads uses this
DEFAULT_RECENT_MESSAGES = 200
INACTIVE_DEPLOYMENT_STATUSES = ("deleted",)


@dataclass(frozen=True)
class NewMessage:
    role: str  # user | assistant | tool
    content: str
    tokens: int = 0


# --- conversations -------------------------------------------------------------------------


def find(
    s: Session, *, org_id: int, platform: str, channel: str | None, thread: str | None
) -> Conversation | None:
    return s.exec(
        select(Conversation).where(
            Conversation.org_id == org_id,
            Conversation.platform == platform,
            Conversation.channel == (channel or NO_CHANNEL),
            Conversation.thread == (thread or NO_CHANNEL),
        )
    ).first()


def get_or_create(
    s: Session,
    *,
    org_id: int,
    platform: str,
    channel: str | None,
    thread: str | None,
    now: datetime,
    workspace_id: int | None = None,
    kind: str = "agent",
) -> Conversation:
    """The conversation for this thread, created on first use (safe against a concurrent
    creation of the same thread)."""
    existing = find(s, org_id=org_id, platform=platform, channel=channel, thread=thread)
    if existing is not None:
        return existing
    conv = Conversation(
        org_id=org_id,
        workspace_id=workspace_id,
        platform=platform,
        channel=channel or NO_CHANNEL,
        thread=thread or NO_CHANNEL,
        kind=kind,
        created_at=now,
    )
    try:
        with s.begin_nested():
            s.add(conv)
            s.flush()
    except IntegrityError:
        raced = find(s, org_id=org_id, platform=platform, channel=channel, thread=thread)
        if raced is None:
            raise
        return raced
    return conv


def append(
    s: Session,
    *,
    org_id: int,
    conversation_id: int,
    messages: Sequence[NewMessage],
    now: datetime,
) -> None:
    """Add messages in order (one unit of work with the caller's session)."""
    for m in messages:
        s.add(
            ConversationMessage(
                org_id=org_id,
                conversation_id=conversation_id,
                role=m.role,
                content=m.content,
                tokens=m.tokens,
                created_at=now,
            )
        )
    s.flush()


def recent_messages(
    s: Session, *, org_id: int, conversation_id: int, limit: int = DEFAULT_RECENT_MESSAGES
) -> list[ConversationMessage]:
    """The newest `limit` messages of a conversation, oldest first."""
    rows = s.exec(
        select(ConversationMessage)
        .where(
            ConversationMessage.org_id == org_id,
            ConversationMessage.conversation_id == conversation_id,
        )
        .order_by(col(ConversationMessage.id).desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def clear(s: Session, *, org_id: int, conversation_id: int) -> int:
    """Forget a conversation's messages; returns how many were deleted."""
    result = s.exec(  # type: ignore[call-overload]
        delete(ConversationMessage).where(
            col(ConversationMessage.org_id) == org_id,
            col(ConversationMessage.conversation_id) == conversation_id,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- agent usage ---------------------------------------------------------------------------


def record_agent_usage(
    s: Session,
    *,
    org_id: int,
    user: str,
    amount: Decimal,
    description: str,
    now: datetime,
) -> LedgerEntry:
    """One ledger row (kind "agent", an estimate from token counts) for one agent request."""
    entry = LedgerEntry(
        org_id=org_id,
        kind="agent",
        source="estimate",
        period_start=now,
        period_end=now,
        amount=amount,
        user=user,
        description=description,
        created_at=now,
    )
    s.add(entry)
    s.flush()
    return entry


# --- what the agent's system prompt says about the organisation ----------------------------


def budget(s: Session, *, org_id: int) -> Budget | None:
    return s.exec(select(Budget).where(Budget.org_id == org_id)).first()


def spend_since(s: Session, *, org_id: int, since: datetime) -> Decimal:
    """Sum of the organisation's ledger rows (GPU and agent, estimates included) since `since`."""
    total = s.exec(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.org_id == org_id, LedgerEntry.period_start >= since
        )
    ).one()
    return total if isinstance(total, Decimal) else Decimal(int(total or 0)) / Decimal(1_000_000)


def live_deployments(s: Session, *, org_id: int, limit: int) -> tuple[list[Deployment], int]:
    """Up to `limit` deployments that are not deleted (newest first) and how many there are."""
    where = (
        col(Deployment.org_id) == org_id,
        col(Deployment.status).not_in(INACTIVE_DEPLOYMENT_STATUSES),
    )
    rows = s.exec(
        select(Deployment).where(*where).order_by(col(Deployment.created_at).desc()).limit(limit)
    ).all()
    count = s.exec(select(func.count()).select_from(Deployment).where(*where)).one()
    return list(rows), int(count)


__all__ = [
    "NO_CHANNEL",
    "NewMessage",
    "append",
    "budget",
    "clear",
    "find",
    "get_or_create",
    "live_deployments",
    "recent_messages",
    "record_agent_usage",
    "spend_since",
]
