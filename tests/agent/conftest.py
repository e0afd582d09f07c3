"""Fixtures of the agent suites: the loopback fake Messages API (`fake`) and a bot that talks
to it with the agent test tools (`bot`; test_agent_boundary.py has its own, with the real
tools)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.agent_env import KEY, agent_registry
from fakes.fake_anthropic import FakeAnthropic, running_fake_anthropic

from bot.testing import BotHarness, running_bot


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with running_fake_anthropic() as f:
        yield f


@pytest.fixture
async def bot(tmp_path: Path, fake: FakeAnthropic) -> AsyncIterator[BotHarness]:
    reg, calls = agent_registry()
    async with running_bot(
        tmp_path, registry=reg, ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=fake.url
    ) as harness:
        harness.calls = calls  # type: ignore[attr-defined]
        yield harness
