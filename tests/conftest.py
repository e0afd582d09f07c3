from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.testing import BotHarness, running_bot
from storage.db import Database

POSTGRES_URL = os.environ.get("COCKPIT_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("COCKPIT_REQUIRE_POSTGRES") == "1"


@pytest.fixture
async def cockpit(tmp_path: Path) -> AsyncIterator[BotHarness]:
    """The whole bot on a temporary SQLite database, the sandbox cloud and a fake clock."""
    async with running_bot(tmp_path) as bot:
        yield bot


def _engines() -> list[str]:
    return ["sqlite", "postgres"]


@pytest.fixture(params=_engines())
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database on each engine, migrated to head. PostgreSQL comes from .ci/run."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'storage.db'}")
    else:
        if not POSTGRES_URL:
            if REQUIRE_POSTGRES:
                pytest.fail("COCKPIT_TEST_POSTGRES_URL is required in CI")
            pytest.skip("set COCKPIT_TEST_POSTGRES_URL to run storage tests on PostgreSQL")
        db = Database(POSTGRES_URL)
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    db.upgrade()
    yield db
    db.dispose()
