"""Fixtures of the Discord suites: a bot wired to the fake Discord API (`env`), and the shipped
tools in a registry of the test's own (`registry`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.discord_env import DiscordEnv, discord_bot

from bot.app import load_tool_modules
from tools.contract import REGISTRY, Registry


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordEnv]:
    async with discord_bot(tmp_path, monkeypatch) as e:
        yield e


@pytest.fixture
def registry() -> Registry:
    """The shipped tools, in a registry a test may add its own tools to (REGISTRY stays as
    shipped)."""
    load_tool_modules()
    reg = Registry()
    for t in REGISTRY.all():
        reg.add(t)
    return reg
