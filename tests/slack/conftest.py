"""Fixtures of the Slack suites: the fake Slack Web API and a bot wired to it (`slack`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.fake_slack import FakeSlack
from fakes.slack_env import SlackEnv, slack_env, slack_tools


@pytest.fixture(autouse=True)
def _no_slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bolt and our settings read SLACK_* from the environment; tests set them explicitly."""
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "SLACK_API_URL",
        "SLACK_SCOPES",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(
        users={
            "UALICE": {"id": "UALICE", "name": "alice", "profile": {"display_name": "alice"}},
            "UBOB": {"id": "UBOB", "name": "bob", "profile": {"display_name": "bob"}},
        }
    ) as f:
        yield f


@pytest.fixture
async def slack(tmp_path: Path, fake: FakeSlack) -> AsyncIterator[SlackEnv]:
    async for env in slack_env(tmp_path, fake, slack_tools()):
        yield env
