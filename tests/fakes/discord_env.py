"""The Discord test harness: `DiscordEnv` delivers interaction and message payloads through the
client's connection state (what the gateway does) to a bot wired to the loopback fake Discord
API (`discord_bot`); helpers read embeds and buttons back. Fixtures: tests/discord/conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.adapters import discord_render as render
from bot.adapters.discord import DiscordAdapter
from bot.testing import BotHarness, running_bot
from fakes import discord_payloads as p
from fakes.fake_discord import Call, FakeDiscord
from tools.clock import FakeClock
from tools.contract import (
    Platform,
    Registry,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "discord-test-token"
ALERT_CHANNEL_ID = 1_000_000_000_000_000_099
CHAT_WORDS = 30  # the sandbox echoes them back: a long enough answer to need several edits
TOKEN_DELAY_SECONDS = 0.3  # fake seconds between streamed tokens
REAL_PACE_SECONDS = 0.01  # real time per streamed token (see PacedClock)


@dataclass
class DiscordEnv:
    bot: BotHarness
    fake: FakeDiscord
    adapter: DiscordAdapter

    @property
    def state(self) -> Any:
        return self.adapter.client._connection

    async def interact(self, payload: dict[str, Any]) -> list[Call]:
        """Deliver an interaction as the gateway would; wait until it is answered and done."""
        self.fake.register_interaction(payload)
        self.state.parse_interaction_create(payload)
        await self.fake.wait_for(("POST", rf"/interactions/{payload['id']}/[^/]+/callback"))
        await self.adapter.drain()
        return self.fake.followups(payload["token"])

    async def message(self, payload: dict[str, Any], channel: dict[str, Any] | None = None) -> None:
        """Deliver MESSAGE_CREATE; `channel` seeds the gateway's cache (a guild text channel or
        thread), as GUILD_CREATE / THREAD_CREATE would have."""
        if channel is not None:
            guild = self.state._get_or_create_unavailable_guild(int(channel["guild_id"]))
            self.state._add_guild(guild)
            if channel["type"] == 11:
                guild._add_thread(discord.Thread(guild=guild, state=self.state, data=channel))
            else:
                guild._add_channel(discord.TextChannel(guild=guild, state=self.state, data=channel))
        before = len(self.fake.calls)
        self.state.parse_message_create(payload)
        for _ in range(5):  # let discord.py start the on_message task
            await asyncio.sleep(0)
        await self.adapter.drain()
        self.new_calls = self.fake.calls[before:]

    def org_id(self) -> int:
        return self.ctx().org_id

    def ctx(self, user_id: int = p.ALICE_ID) -> Any:
        return self.bot.cockpit.context_for(
            platform=Platform.discord,
            workspace_id=str(p.GUILD_ID),
            workspace_name="guild",
            user_id=str(user_id),
            display_name=p.USER_NAMES.get(user_id, "x"),
        )


@asynccontextmanager
async def discord_bot(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    registry: Registry | None = None,
    **overrides: Any,
) -> AsyncIterator[DiscordEnv]:
    clock = FakeClock()
    async with FakeDiscord(clock=clock) as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        async with running_bot(
            tmp_path,
            clock=clock,
            registry=registry,
            DISCORD_BOT_TOKEN=TOKEN,
            DISCORD_API_URL=fake.api_base,
            **overrides,
        ) as bot:
            adapter = DiscordAdapter(bot.cockpit)
            await adapter.login()
            try:
                yield DiscordEnv(bot=bot, fake=fake, adapter=adapter)
            finally:
                await adapter.close()


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row["components"]]


def embed_text(embeds: list[dict[str, Any]]) -> str:
    parts = []
    for e in embeds:
        parts += [e.get("title") or "", e.get("description") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in e.get("fields") or []]
        parts.append((e.get("footer") or {}).get("text") or "")
    return "\n".join(parts)


def assert_within_limits(embeds: list[dict[str, Any]]) -> None:
    assert 1 <= len(embeds) <= render.MAX_EMBEDS
    total = 0
    for e in embeds:
        assert len(e.get("title") or "") <= render.MAX_TITLE
        assert len(e.get("description") or "") <= render.MAX_DESCRIPTION
        assert len(e.get("fields") or []) <= render.MAX_FIELDS
        for f in e.get("fields") or []:
            assert 0 < len(f["name"]) <= render.MAX_FIELD_NAME
            assert 0 < len(f["value"]) <= render.MAX_FIELD_VALUE
        footer = (e.get("footer") or {}).get("text") or ""
        assert len(footer) <= render.MAX_FOOTER
        total += len(e.get("title") or "") + len(e.get("description") or "") + len(footer)
        total += sum(len(f["name"]) + len(f["value"]) for f in e.get("fields") or [])
    assert total <= render.MAX_TOTAL


async def deploy_directly(env: DiscordEnv) -> int:
    """Deploy the sandbox's Qwen 0.5B as the first person, approved at once; its id (1)."""
    ctx = env.ctx()
    ask = await env.bot.cockpit.handle(ctx, "/deploy Qwen/Qwen2.5-0.5B-Instruct")
    done = await env.bot.cockpit.approve(ctx, ask.approval_id or 0)
    assert done.ok, done.as_plain_text()
    return 1
