"""The Slack test harness: signed requests into `cockpit web`'s app (`SlackEnv`), the stand-in
tools the Slack suites use, and `slack_env`, which boots the bot on the fake Slack Web API. The
fixtures built from it are in tests/slack/conftest.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict

from bot.adapters import slack_blocks
from bot.adapters.slack import SlackAdapter
from bot.app import load_tool_modules
from bot.testing import BotHarness, running_bot
from bot.web import build_web_app
from fakes.fake_slack import BOT_USER_ID, DEFAULT_TEAM_ID, Call, FakeSlack
from fakes.standins import add_launch
from tools.contract import (
    REGISTRY,
    Image,
    Registry,
    Reply,
    Role,
    SideEffect,
    ToolContext,
    arg,
    tool,
)

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token-1234"
PASTED_KEY = "rpa_ABCDEFGHIJKLMNOP123456"
CHANNEL = "C0GENERAL"


# --- test tools ----------------------------------------------------------------------------


@dataclass
class Tools:
    registry: Registry
    runs: dict[str, int] = field(default_factory=dict)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    connected: list[tuple[str, str]] = field(default_factory=list)


# Tools the tests define themselves (colleagues' real versions are left out, so these tests do
# not depend on them): the approval-gated stand-ins and the optional App Home / connect tools.
_REPLACED = {
    "talk",
    "launch",
    "slow",
    "warmup",
    "chart",
    "get_spend",
    "list_deployments",
    "connect_provider",
    "connect",
}


def slack_tools(*, connect: bool = False, spend: bool = False, chart: Path | None = None) -> Tools:
    """Built-in tools plus: an approval-gated `launch` that reports progress, a `slow` tool
    standing in for a slow provider, a `warmup` tool with progress and no approval."""
    load_tool_modules()  # the shipped tools, whatever this build has (deterministically)
    reg = Registry()
    for t in REGISTRY.all():
        if t.name not in _REPLACED and (t.command or t.name) not in _REPLACED:
            reg.add(t)
    tools = Tools(registry=reg, runs={"launch": 0, "slow": 0})

    add_launch(reg, tools.runs)

    @tool(name="slow", description="Waits for a slow provider.", registry=reg)
    async def slow(tc: ToolContext, args: BaseModel) -> Reply:
        await tools.gate.wait()
        tools.runs["slow"] += 1
        return Reply(text="slow provider answered")

    @tool(name="talk", description="Streams its answer.", registry=reg)
    async def talk(tc: ToolContext, args: BaseModel) -> Reply:
        words = ["Hel", "lo ", "there, ", "world"]
        for word in words:
            if tc.stream is not None:
                await tc.stream(word)
        return Reply(text="".join(words), footer="4 tokens")

    @tool(name="warmup", description="Reports progress, then finishes.", registry=reg)
    async def warmup(tc: ToolContext, args: BaseModel) -> Reply:
        await tc.progress("step 1 of 2")
        await tc.progress("step 2 of 2")
        return Reply(text="Warm and ready.")

    if chart is not None:

        @tool(name="chart", description="Returns a chart.", registry=reg)
        async def chart_tool(tc: ToolContext, args: BaseModel) -> Reply:
            return Reply(text="Spend chart", image=Image(path=str(chart), title="Spend by day"))

    if spend:

        class SpendInput(BaseModel):
            model_config = ConfigDict(extra="forbid")
            period: str = arg("this_week", description="Period")

        @tool(name="get_spend", description="Spend.", input_model=SpendInput, registry=reg)
        async def get_spend(tc: ToolContext, args: SpendInput) -> Reply:
            return Reply(text=f"Spent $12.34 ({args.period}).")

    if connect:

        class ConnectInput(BaseModel):
            model_config = ConfigDict(extra="forbid")
            provider: str = arg(description="Provider", positional=True)
            key: str = arg(description="The key", secret=True)

        @tool(
            name="connect_provider",
            description="Store a provider key.",
            input_model=ConnectInput,
            role=Role.admin,
            side_effect=SideEffect.admin,
            registry=reg,
        )
        async def connect_provider(tc: ToolContext, args: ConnectInput) -> Reply:
            tools.connected.append((args.provider, args.key))
            return Reply(text=f"Connected {args.provider} (…{args.key[-4:]}).")

    return tools


# --- harness -------------------------------------------------------------------------------


def sign(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    base = f"v0:{timestamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


@dataclass
class SlackEnv:
    bot: BotHarness
    fake: FakeSlack
    adapter: SlackAdapter
    http: TestClient
    tools: Tools
    _n: int = 0

    def next_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    async def post(
        self,
        body: str,
        *,
        content_type: str,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        headers: dict[str, str] | None = None,
    ) -> ClientResponse:
        ts = int(self.bot.clock.now().timestamp()) if timestamp is None else timestamp
        all_headers = {"Content-Type": content_type, **sign(body, ts, secret), **(headers or {})}
        return await self.http.post("/slack/events", data=body.encode(), headers=all_headers)

    async def command(
        self,
        text: str,
        *,
        command: str = "/cockpit",
        user: str = "UALICE",
        user_name: str = "alice",
        trigger: str | None = None,
        **kwargs: Any,
    ) -> ClientResponse:
        form = {
            "token": "legacy",
            "team_id": DEFAULT_TEAM_ID,
            "team_domain": "fake-team",
            "channel_id": CHANNEL,
            "channel_name": "general",
            "user_id": user,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": "AFAKE",
            "response_url": self.fake.response_url(self.next_id("cmd")),
            "trigger_id": trigger or self.next_id("trigger-"),
        }
        return await self.post(
            urlencode(form), content_type="application/x-www-form-urlencoded", **kwargs
        )

    async def interactive(self, payload: dict[str, Any]) -> ClientResponse:
        return await self.post(
            urlencode({"payload": json.dumps(payload)}),
            content_type="application/x-www-form-urlencoded",
        )

    async def click(
        self,
        card: Call,
        action_id: str,
        *,
        user: str,
        user_name: str,
        channel: str = CHANNEL,
        channel_name: str = "general",
        thread_ts: str | None = None,
    ) -> ClientResponse:
        """A click on one of `card`'s buttons (the card posted in `thread_ts`, when given)."""
        blocks = card.blocks()
        value = next(
            e["value"]
            for b in blocks
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        ts = self.fake_ts(card)
        message = {
            "type": "message",
            "ts": ts,
            "text": card.body.get("text"),
            "blocks": blocks,
            "user": BOT_USER_ID,
        }
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        return await self.interactive(
            {
                "type": "block_actions",
                "user": {"id": user, "username": user_name, "name": user_name, "team_id": "T0FAKE"},
                "api_app_id": "AFAKE",
                "token": "legacy",
                "container": {"type": "message", "message_ts": ts, "channel_id": channel},
                "trigger_id": self.next_id("trigger-"),
                "team": {"id": DEFAULT_TEAM_ID, "domain": "fake-team"},
                "channel": {"id": channel, "name": channel_name},
                "message": message,
                "response_url": self.fake.response_url(self.next_id("act")),
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": slack_blocks.APPROVAL_BLOCK_ID,
                        "value": value,
                        "type": "button",
                        "action_ts": "1700000000.1",
                    }
                ],
            }
        )

    def fake_ts(self, call: Call) -> str:
        """The ts the fake answered for a chat.postMessage call (ts are issued in order)."""
        posts = self.fake.calls_to("chat.postMessage")
        return f"1700000000.{posts.index(call) + 1:06d}"

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> ClientResponse:
        body = {
            "token": "legacy",
            "team_id": DEFAULT_TEAM_ID,
            "api_app_id": "AFAKE",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or self.next_id("Ev"),
            "event_time": int(self.bot.clock.now().timestamp()),
        }
        headers = {}
        if retry is not None:
            headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(json.dumps(body), content_type="application/json", headers=headers)

    def mention(self, text: str, *, user: str = "UALICE", ts: str = "1699999999.000100") -> dict:
        return {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER_ID}> {text}",
            "ts": ts,
            "channel": CHANNEL,
            "event_ts": ts,
        }


async def slack_env(
    tmp_path: Path, fake: FakeSlack, tools: Tools, **overrides: Any
) -> AsyncIterator[SlackEnv]:
    settings = {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        **overrides,
    }
    if "SLACK_CLIENT_ID" not in overrides:
        settings.setdefault("SLACK_BOT_TOKEN", BOT_TOKEN)
    async with running_bot(tmp_path, registry=tools.registry, **settings) as bot:
        adapter = SlackAdapter(bot.cockpit, mode="http")
        await adapter.start()
        app = build_web_app(bot.cockpit, slack=adapter)
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            try:
                yield SlackEnv(bot=bot, fake=fake, adapter=adapter, http=http, tools=tools)
            finally:
                await adapter.close()


def texts(call: Call) -> str:
    return json.dumps(call.body.get("blocks") or []) + str(call.body.get("text") or "")
