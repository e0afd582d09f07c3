"""Pending actions waiting for a human click. A row is claimed atomically (pending → executing)
so a double click or two processes can never run it twice."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.instances import not_owned_by
from storage.models import Approval, ApprovalStatus


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


def claim(
    s: Session,
    *,
    org_id: int,
    approval_id: int,
    decided_by: str,
    now: datetime,
    owner: str | None = None,
) -> bool:
    """Move pending → executing if still pending and unexpired. True for exactly one caller;
    `owner` is the process that runs it (storage.instances)."""
    result = s.execute(
        update(Approval)
        .where(
            col(Approval.id) == approval_id,
            col(Approval.org_id) == org_id,
            col(Approval.status) == ApprovalStatus.pending,
            col(Approval.expires_at) > now,
        )
        .values(status=ApprovalStatus.executing, decided_by=decided_by, decided_at=now, owner=owner)
    )
    s.flush()
    return bool(getattr(result, "rowcount", 0) == 1)


INTERRUPTED_REASON = "interrupted by a restart"


def finish(
    s: Session,
    *,
    org_id: int,
    approval_id: int,
    status: str,
    result_text: str = "",
    reason: str | None = None,
    only_if: str | None = None,
    decided_by: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Put an approval in a final state. `reason` says why it ended that way (kept in
    `result_text`, first line, when there is a result too); with `only_if`, nothing changes
    unless the row is still in that state (a `finally` after a cancel must not overwrite what
    the run already recorded). True when the row was changed."""
    a = get(s, org_id=org_id, approval_id=approval_id)
    if a is None or (only_if is not None and a.status != only_if):
        return False
    a.status = status
    text = "\n".join(part for part in (reason, result_text) if part)
    a.result_text = text[:4000]
    if decided_by:
        a.decided_by = decided_by
    if now:
        a.decided_at = a.decided_at or now
    s.add(a)
    s.flush()
    return True


def fail_interrupted(
    s: Session, *, now: datetime, before: datetime | None = None, spare: Collection[str] = ()
) -> int:
    """Across organisations: approvals still `executing` whose process is gone (`owner` not in
    `spare`, the live instances) were cut short (their run cannot finish any more). They
    become `failed` with the reason. `before` limits this to rows claimed before that moment.
    Returns how many."""
    stmt = update(Approval).where(
        col(Approval.status) == ApprovalStatus.executing, not_owned_by(Approval, spare)
    )
    if before is not None:
        stmt = stmt.where(col(Approval.decided_at) <= before)
    result = s.execute(
        stmt.values(
            status=ApprovalStatus.failed,
            result_text=INTERRUPTED_REASON,
            decided_at=func.coalesce(col(Approval.decided_at), now),
        ).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def expire_due(s: Session, *, org_id: int, now: datetime) -> int:
    result = s.execute(
        update(Approval)
        .where(
            col(Approval.org_id) == org_id,
            col(Approval.status) == ApprovalStatus.pending,
            col(Approval.expires_at) <= now,
        )
        .values(status=ApprovalStatus.expired)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def list_pending(s: Session, *, org_id: int, now: datetime) -> list[Approval]:
    return list(
        s.exec(
            select(Approval).where(
                Approval.org_id == org_id,
                Approval.status == ApprovalStatus.pending,
                Approval.expires_at > now,
            )
        )
    )
