"""A small TTL cache table for public metadata (Hugging Face model info)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from storage.models import CacheEntry


def get(s: Session, *, key: str, now: datetime) -> dict[str, Any] | None:
    row = s.get(CacheEntry, key)
    if row is None or row.expires_at <= now:
        return None
    value = json.loads(row.value_json)
    return value if isinstance(value, dict) else None


def put(s: Session, *, key: str, value: dict[str, Any], ttl_seconds: int, now: datetime) -> None:
    row = s.get(CacheEntry, key) or CacheEntry(key=key, expires_at=now)
    row.value_json = json.dumps(value, default=str)
    row.expires_at = now + timedelta(seconds=ttl_seconds)
    s.add(row)
