"""`HubCache` backed by the database's cache table (shared by every organisation: it holds
public model metadata only)."""

from __future__ import annotations

from typing import Any

from storage import cache
from storage.db import Database
from tools.clock import Clock


class DatabaseHubCache:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, key: str) -> dict[str, Any] | None:
        with self._db.session() as s:
            return cache.get(s, key=key, now=self._clock.now())

    async def put(self, key: str, value: dict[str, Any], ttl_seconds: int) -> None:
        with self._db.session() as s:
            cache.put(s, key=key, value=value, ttl_seconds=ttl_seconds, now=self._clock.now())
