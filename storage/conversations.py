"""Agent memory per thread.

A conversation is keyed by (organisation, platform, channel, thread): a new thread starts fresh.
Messages are stored in order; the agent trims what it sends to Claude, not what is stored.
Every function takes `org_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from storage.models import Conversation, ConversationMessage

NO_CHANNEL = "-"  # the key columns are NOT NULL; a surface without channels/threads uses this
DEFAULT_RECENT_MESSAGES = 200


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


__all__ = [
    "NO_CHANNEL",
    "NewMessage",
    "append",
    "clear",
    "find",
    "get_or_create",
    "recent_messages",
]


MODEL_CHAT = "model_chat"


def bound_deployment(
    s: Session, *, org_id: int, platform: str, channel: str | None, thread: str | None
) -> int | None:
    """The deployment a thread chats with (bound by `/chat <deployment>`), or None."""
    conv = find(s, org_id=org_id, platform=platform, channel=channel, thread=thread)
    return conv.deployment_id if conv is not None and conv.kind == MODEL_CHAT else None
