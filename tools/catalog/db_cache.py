"""`HubCache` backed by the database's cache table (shared by every organisation: it holds
public model metadata only), read and written on the storage threads."""

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
        return await self._db.read(cache.get, key=key, now=self._clock.now())

    async def put(self, key: str, value: dict[str, Any], ttl_seconds: int) -> None:
        await self._db.run(
            cache.put, key=key, value=value, ttl_seconds=ttl_seconds, now=self._clock.now()
        )
