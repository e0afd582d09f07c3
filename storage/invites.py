"""Invite codes: stored only as a hash, single use, expiring."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import Invite


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def create(
    s: Session,
    *,
    org_id: int,
    code: str,
    role: str,
    invited_user: str | None,
    invited_platform: str | None = None,
    created_by: str,
    now: datetime,
    expires_at: datetime,
) -> Invite:
    inv = Invite(
        org_id=org_id,
        code_hash=code_hash(code),
        role=role,
        invited_user=invited_user,
        invited_platform=invited_platform,
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    s.add(inv)
    s.flush()
    return inv


def is_for(inv: Invite, *, platform: str, user_id: str) -> bool:
    """Whether this person may redeem `inv`: anyone for an open invite, else exactly the bound
    platform user id (display names never count: their owner chooses them)."""
    if not inv.invited_user:
        return True
    if inv.invited_platform is not None and inv.invited_platform != platform:
        return False
    return inv.invited_user == user_id


def lookup(s: Session, *, code: str) -> Invite | None:
    """Find by code across organisations: the code itself is the proof of invitation."""
    return s.exec(select(Invite).where(Invite.code_hash == code_hash(code))).first()


def redeem(s: Session, *, invite_id: int, used_by: str, now: datetime) -> bool:
    result = s.execute(
        update(Invite)
        .where(
            col(Invite.id) == invite_id, col(Invite.used_at).is_(None), col(Invite.expires_at) > now
        )
        .values(used_at=now, used_by=used_by)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
