"""API keys for the HTTP API: only a hash is stored; the key is shown once at creation."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import ApiKey

KEY_PREFIX = "ck_"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(
    s: Session,
    *,
    org_id: int,
    name: str,
    key: str,
    role: str,
    scopes: str,
    created_by: str,
    now: datetime,
    expires_at: datetime | None,
) -> ApiKey:
    row = ApiKey(
        org_id=org_id,
        name=name,
        prefix=key[: len(KEY_PREFIX) + 6],
        key_hash=key_hash(key),
        role=role,
        scopes=scopes,
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    s.add(row)
    s.flush()
    return row


def lookup(s: Session, *, key: str) -> ApiKey | None:
    """By the presented key (the hash identifies the organisation)."""
    return s.exec(select(ApiKey).where(ApiKey.key_hash == key_hash(key))).first()


def get(s: Session, *, org_id: int, key_id: int) -> ApiKey | None:
    return s.exec(select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id)).first()


def list_for(s: Session, *, org_id: int) -> list[ApiKey]:
    return list(s.exec(select(ApiKey).where(ApiKey.org_id == org_id).order_by(col(ApiKey.id))))


def revoke(s: Session, *, org_id: int, key_id: int, now: datetime) -> bool:
    row = s.exec(select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id)).first()
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    s.add(row)
    return True


def touch(s: Session, *, org_id: int, key_id: int, now: datetime) -> None:
    row = s.exec(select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id)).first()
    if row:
        row.last_used_at = now
        s.add(row)
