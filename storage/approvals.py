"""Pending actions waiting for a human click. A row is claimed atomically (pending → executing)
so a double click or two processes can never run it twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import Approval


def create(
    s: Session,
    *,
    org_id: int,
    workspace_id: int | None,
    tool: str,
    args_json: str,
    request_json: str,
    summary: str,
    requester: str,
    expires_at: datetime,
    now: datetime,
    approver_role: str | None = None,
) -> Approval:
    a = Approval(
        approver_role=approver_role,
        org_id=org_id,
        workspace_id=workspace_id,
        tool=tool,
        args_json=args_json,
        request_json=request_json,
        summary=summary,
        requester=requester,
        expires_at=expires_at,
        created_at=now,
    )
    s.add(a)
    s.flush()
    return a


def get(s: Session, *, org_id: int, approval_id: int) -> Approval | None:
    return s.exec(
        select(Approval).where(Approval.id == approval_id, Approval.org_id == org_id)
    ).first()


def claim(s: Session, *, org_id: int, approval_id: int, decided_by: str, now: datetime) -> bool:
    """Move pending → executing if still pending and unexpired. True for exactly one caller."""
    result = s.execute(
        update(Approval)
        .where(
            col(Approval.id) == approval_id,
            col(Approval.org_id) == org_id,
            col(Approval.status) == "pending",
            col(Approval.expires_at) > now,
        )
        .values(status="executing", decided_by=decided_by, decided_at=now)
    )
    s.flush()
    return bool(getattr(result, "rowcount", 0) == 1)


def finish(
    s: Session,
    *,
    org_id: int,
    approval_id: int,
    status: str,
    result_text: str = "",
    decided_by: str | None = None,
    now: datetime | None = None,
) -> None:
    a = get(s, org_id=org_id, approval_id=approval_id)
    if a is None:
        return
    a.status = status
    a.result_text = result_text[:4000]
    if decided_by:
        a.decided_by = decided_by
    if now:
        a.decided_at = a.decided_at or now
    s.add(a)


def expire_due(s: Session, *, org_id: int, now: datetime) -> int:
    result = s.execute(
        update(Approval)
        .where(
            col(Approval.org_id) == org_id,
            col(Approval.status) == "pending",
            col(Approval.expires_at) <= now,
        )
        .values(status="expired")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def list_pending(s: Session, *, org_id: int, now: datetime) -> list[Approval]:
    return list(
        s.exec(
            select(Approval).where(
                Approval.org_id == org_id, Approval.status == "pending", Approval.expires_at > now
            )
        )
    )
