"""Fixtures of the Discord suites: a bot wired to the fake Discord API (`env`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.discord_env import DiscordEnv, discord_bot


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordEnv]:
    async with discord_bot(tmp_path, monkeypatch) as e:
        yield e
