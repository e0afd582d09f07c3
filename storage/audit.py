"""The audit trail: one row per tool call outcome. Secret fields are redacted by the caller;
key-shaped text typed into any other field is scrubbed here, on the way in."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.models import AuditEvent
from storage.redaction import scrub


def record(
    s: Session,
    *,
    org_id: int,
    workspace_id: int | None,
    actor: str,
    actor_role: str,
    platform: str,
    tool: str,
    outcome: str,
    args: dict[str, Any] | None,
    detail: str,
    request_id: str,
    now: datetime,
) -> AuditEvent:
    ev = AuditEvent(
        org_id=org_id,
        workspace_id=workspace_id,
        actor=actor,
        actor_role=actor_role,
        platform=platform,
        tool=tool,
        outcome=outcome,
        args_json=scrub(json.dumps(args or {}, default=str, sort_keys=True)),
        detail=scrub(detail)[:2000],
        request_id=request_id,
        created_at=now,
    )
    s.add(ev)
    s.flush()
    return ev


def query(
    s: Session,
    *,
    org_id: int,
    actor: str | None = None,
    tool: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if tool:
        stmt = stmt.where(AuditEvent.tool == tool)
    if outcome:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    if since:
        stmt = stmt.where(AuditEvent.created_at >= since)
    stmt = stmt.order_by(col(AuditEvent.id).desc()).limit(limit)
    return list(s.exec(stmt))
