"""The Slack surface end to end: signed HTTP requests into `cockpit web`'s aiohttp app (and
Socket Mode envelopes), the fake Slack Web API's received calls out. Time is the harness's
FakeClock (signatures are checked against it); nothing sleeps longer than a poll interval."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet
from fakes.fake_slack import BOT_USER_ID, DEFAULT_TEAM_ID, Call, FakeSlack
from pydantic import BaseModel, ConfigDict
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

from bot.adapters import slack_blocks
from bot.adapters.slack import SlackAdapter, SlackConfigError, key_provider
from bot.app import Cockpit, load_tool_modules
from bot.cli import EXIT_TERMINATED
from bot.testing import BotHarness, running_bot
from bot.testing import test_settings as make_settings
from bot.web import build_web_app, resolve_port
from storage import slack_store
from storage.crypto import SecretBox
from storage.db import Database
from storage.models import AuditEvent, Member, ProcessedEvent
from storage.slack_models import SlackInstallation
from storage.slack_store import InstallationRecord
from tools.contract import (
    REGISTRY,
    Button,
    Image,
    Registry,
    Reply,
    Role,
    SideEffect,
    Table,
    ToolContext,
    arg,
    tool,
)

ROOT = Path(__file__).resolve().parents[1]
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


def _tools(*, connect: bool = False, spend: bool = False, chart: Path | None = None) -> Tools:
    """Built-in tools plus: an approval-gated `launch` that reports progress, a `slow` tool
    standing in for a slow provider, a `warmup` tool with progress and no approval."""
    load_tool_modules()  # the shipped tools, whatever this build has (deterministically)
    reg = Registry()
    for t in REGISTRY.all():
        if t.name not in _REPLACED and (t.command or t.name) not in _REPLACED:
            reg.add(t)
    tools = Tools(registry=reg, runs={"launch": 0, "slow": 0})

    class LaunchInput(BaseModel):
        model_config = ConfigDict(extra="forbid")
        target: str = arg(description="What to launch", positional=True)
        size: int = arg(1, description="How many", ge=1, le=8)

    @tool(
        name="launch",
        description="Launch something that costs money.",
        input_model=LaunchInput,
        role=Role.member,
        side_effect=SideEffect.spend,
        needs_approval=True,
        registry=reg,
    )
    async def launch(tc: ToolContext, args: LaunchInput) -> Reply:
        tools.runs["launch"] += 1
        await tc.progress(f"launching {args.target}")
        return Reply(text=f"Launched {args.size} × {args.target}.")

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
        self, card: Call, action_id: str, *, user: str, user_name: str
    ) -> ClientResponse:
        blocks = card.blocks()
        value = next(
            e["value"]
            for b in blocks
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        ts = self.fake_ts(card)
        return await self.interactive(
            {
                "type": "block_actions",
                "user": {"id": user, "username": user_name, "name": user_name, "team_id": "T0FAKE"},
                "api_app_id": "AFAKE",
                "token": "legacy",
                "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL},
                "trigger_id": self.next_id("trigger-"),
                "team": {"id": DEFAULT_TEAM_ID, "domain": "fake-team"},
                "channel": {"id": CHANNEL, "name": "general"},
                "message": {
                    "type": "message",
                    "ts": ts,
                    "text": card.body.get("text"),
                    "blocks": blocks,
                    "user": BOT_USER_ID,
                },
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


async def _env(
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


@pytest.fixture
async def slack(tmp_path: Path, fake: FakeSlack) -> AsyncIterator[SlackEnv]:
    async for env in _env(tmp_path, fake, _tools()):
        yield env


def _texts(call: Call) -> str:
    return json.dumps(call.body.get("blocks") or []) + str(call.body.get("text") or "")


# --- request verification and the 3-second ack ---------------------------------------------


async def test_signed_command_is_acked_at_once_with_no_provider_call(slack: SlackEnv) -> None:
    resp = await slack.command("slow")
    assert resp.status == 200
    assert await resp.text() == ""  # an empty ack: the answer follows as a message
    # (ack latency is measured in benchmarks/slack_ack.py, not asserted here)
    # The "provider" is still blocked: the ack did not wait for it, and nothing was posted.
    assert slack.tools.runs["slow"] == 0
    assert slack.fake.calls_to("chat.postMessage") == []
    slack.tools.gate.set()
    posted = await slack.fake.wait_for("chat.postMessage")
    assert "slow provider answered" in _texts(posted)
    assert posted.body["channel"] == CHANNEL
    assert posted.token == BOT_TOKEN


async def test_bad_signature_is_rejected(slack: SlackEnv) -> None:
    resp = await slack.command("whoami", secret="not-the-secret")
    assert resp.status == 401
    await slack.adapter.drain()
    assert [c.method for c in slack.fake.calls if c.method != "auth.test"] == []


async def test_timestamp_older_than_five_minutes_is_rejected(slack: SlackEnv) -> None:
    stale = int(slack.bot.clock.now().timestamp()) - 301
    resp = await slack.command("whoami", timestamp=stale)
    assert resp.status == 401
    fresh = int(slack.bot.clock.now().timestamp()) - 200
    assert (await slack.command("whoami", timestamp=fresh)).status == 200


def test_signature_matches_slacks_documented_example() -> None:
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook"
        "-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977"
        "00885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d1"
        "0d2c447fce8b6703c"
    )
    assert sign(body, 1531420618)["X-Slack-Signature"] == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


# --- commands, approvals, progress ---------------------------------------------------------


async def test_command_to_approval_card_to_requester_click(slack: SlackEnv) -> None:
    fake = slack.fake
    assert (await slack.command("launch rocket --size 2")).status == 200
    card = await fake.wait_for("chat.postMessage")
    actions = [b for b in card.blocks() if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [
        "cockpit_approve",
        "cockpit_cancel",
    ]
    approval_id = actions[0]["elements"][0]["value"]
    assert approval_id.isdigit()
    assert "Expires <!date^" in _texts(card)
    assert "sandbox" in _texts(card)
    assert slack.tools.runs["launch"] == 0

    # Bob (a member, not the requester nor an admin) is refused privately; the card stays.
    assert (await slack.click(card, "cockpit_approve", user="UBOB", user_name="bob")).status == 200
    refusal = await fake.wait_for("chat.postEphemeral")
    assert refusal.body["user"] == "UBOB"
    assert "Only the person who asked, or an admin" in _texts(refusal)
    await slack.adapter.drain()
    assert fake.calls_to("chat.update") == []
    assert slack.tools.runs["launch"] == 0

    # Alice, who asked, approves: runs once, card updated, progress and result in the thread.
    await slack.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    update = await fake.wait_for("chat.update")
    card_ts = slack.fake_ts(card)
    assert update.body["ts"] == card_ts and update.body["channel"] == CHANNEL
    assert "Approved by <@UALICE>" in _texts(update)
    assert not [b for b in update.blocks() if b["type"] == "actions"]
    result = await fake.wait_for("chat.postMessage", where=lambda c: "Launched" in _texts(c))
    assert result.body["thread_ts"] == card_ts
    assert "Launched 2 × rocket" in _texts(result)
    progress = [c for c in fake.calls_to("chat.postMessage") if "launching rocket" in _texts(c)]
    assert len(progress) == 1 and progress[0].body["thread_ts"] == card_ts
    assert slack.tools.runs["launch"] == 1

    # A second click changes nothing and says why, privately.
    await slack.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    again = await fake.wait_for("chat.postEphemeral", count=2)
    assert "already executed" in _texts(again)
    await slack.adapter.drain()
    assert slack.tools.runs["launch"] == 1
    assert len(fake.calls_to("chat.update")) == 1


async def test_cancel_click_updates_the_card(slack: SlackEnv) -> None:
    await slack.command("launch rocket")
    card = await slack.fake.wait_for("chat.postMessage")
    await slack.click(card, "cockpit_cancel", user="UALICE", user_name="alice")
    update = await slack.fake.wait_for("chat.update")
    assert "Cancelled by <@UALICE>" in _texts(update)
    assert slack.tools.runs["launch"] == 0


async def test_expired_approval_is_shown_on_the_card(slack: SlackEnv) -> None:
    await slack.command("launch rocket")
    card = await slack.fake.wait_for("chat.postMessage")
    slack.bot.clock.advance(601)
    await slack.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    update = await slack.fake.wait_for("chat.update")
    assert "Expired" in _texts(update)
    note = await slack.fake.wait_for("chat.postEphemeral")
    assert "expired" in _texts(note)
    assert slack.tools.runs["launch"] == 0


async def test_progress_goes_into_a_thread_under_the_first_message(slack: SlackEnv) -> None:
    await slack.command("", command="/warmup")
    final = await slack.fake.wait_for("chat.postMessage", count=4)
    first, step1, step2 = slack.fake.calls_to("chat.postMessage")[:3]
    root = slack.fake_ts(first)
    assert "working on it" in _texts(first) and "thread_ts" not in first.body
    assert step1.body["thread_ts"] == root and "step 1 of 2" in _texts(step1)
    assert step2.body["thread_ts"] == root
    assert final.body["thread_ts"] == root and final.body.get("reply_broadcast") is True
    assert "Warm and ready" in _texts(final)


async def test_shortcut_and_umbrella_commands_reach_the_same_tool(slack: SlackEnv) -> None:
    await slack.command("", command="/whoami")
    await slack.command("whoami")
    first = await slack.fake.wait_for("chat.postMessage", count=1)
    second = await slack.fake.wait_for("chat.postMessage", count=2)
    for call in (first, second):
        assert "You are alice" in _texts(call) and "Role" in _texts(call)
    # The first Slack user of the workspace owns its organisation.
    assert "owner" in _texts(first)


async def test_errors_go_only_to_the_requester(slack: SlackEnv) -> None:
    await slack.command("", command="/whoamii")
    note = await slack.fake.wait_for("response_url")
    assert note.body["response_type"] == "ephemeral"
    # Slack has no /whoami of its own: the hint is spelled as Slack types it.
    assert "Did you mean /cockpit whoami?" in _texts(note)
    assert slack.fake.calls_to("chat.postMessage") == []


async def test_same_command_delivered_twice_runs_once(slack: SlackEnv) -> None:
    await slack.command("launch rocket", trigger="trig-dup")
    await slack.command("launch rocket", trigger="trig-dup")
    await slack.fake.wait_for("chat.postMessage")
    await slack.adapter.drain()
    assert len(slack.fake.calls_to("chat.postMessage")) == 1


async def test_rate_limited_post_is_retried_after_retry_after(slack: SlackEnv) -> None:
    slack.fake.rate_limit_once("chat.postMessage", retry_after=3)
    before = slack.bot.clock.now()
    await slack.command("whoami")
    await slack.fake.wait_for("chat.postMessage", count=2)
    await slack.adapter.drain()
    assert len(slack.fake.calls_to("chat.postMessage")) == 2
    # The retry waited Retry-After on the cockpit clock (a fake one here, so no real sleep).
    assert (slack.bot.clock.now() - before).total_seconds() >= 3


async def test_answer_falls_back_to_response_url_when_not_in_channel(slack: SlackEnv) -> None:
    slack.fake.fail_once("chat.postMessage", "not_in_channel")
    await slack.command("whoami")
    answer = await slack.fake.wait_for("response_url")
    assert answer.body["response_type"] == "in_channel"
    assert "You are alice" in _texts(answer)


async def test_reply_image_is_uploaded_into_the_thread(tmp_path: Path, fake: FakeSlack) -> None:
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    async for env in _env(tmp_path, fake, _tools(chart=png)):
        await env.command("chart")
        done = await fake.wait_for("files.completeUploadExternal")
        message = fake.calls_to("chat.postMessage")[0]
        assert "Spend by day" in _texts(message)
        assert done.body["channel_id"] == CHANNEL
        assert done.body["thread_ts"] == env.fake_ts(message)
        assert fake.calls_to("upload")[0].body["_raw_length"] == png.stat().st_size


# --- events: mentions, DMs, dedupe, pasted keys --------------------------------------------


async def test_mention_is_answered_by_the_agent_in_a_thread(slack: SlackEnv) -> None:
    resp = await slack.event(slack.mention("who am i?", ts="1699999999.000200"))
    assert resp.status == 200
    answer = await slack.fake.wait_for("chat.postMessage")
    assert answer.body["thread_ts"] == "1699999999.000200"
    assert "Role" in _texts(answer) and "limited mode" in _texts(answer)


async def test_mention_inside_a_thread_answers_in_that_thread(slack: SlackEnv) -> None:
    event = {**slack.mention("whoami"), "thread_ts": "1699999000.000001"}
    await slack.event(event)
    answer = await slack.fake.wait_for("chat.postMessage")
    assert answer.body["thread_ts"] == "1699999000.000001"


async def test_same_event_delivered_twice_is_handled_once(slack: SlackEnv) -> None:
    event = slack.mention("who am i")
    assert (await slack.event(event, event_id="EvDUP")).status == 200
    assert (await slack.event(event, event_id="EvDUP", retry=1)).status == 200
    await slack.fake.wait_for("chat.postMessage")
    await slack.adapter.drain()
    assert len(slack.fake.calls_to("chat.postMessage")) == 1


async def test_direct_message_is_answered_and_bot_messages_are_ignored(slack: SlackEnv) -> None:
    dm = {
        "type": "message",
        "channel_type": "im",
        "channel": "D0ALICE",
        "user": "UALICE",
        "text": "who am i",
        "ts": "1699999999.000300",
    }
    await slack.event(dm)
    answer = await slack.fake.wait_for("chat.postMessage")
    assert answer.body["channel"] == "D0ALICE"
    assert answer.body["thread_ts"] == "1699999999.000300"
    await slack.event({**dm, "bot_id": "BOTHER", "ts": "1699999999.000400"})
    await slack.event({**dm, "subtype": "message_changed", "ts": "1699999999.000500"})
    await slack.adapter.drain()
    assert len(slack.fake.calls_to("chat.postMessage")) == 1


async def test_pasted_key_is_never_echoed_and_rotation_is_asked(slack: SlackEnv) -> None:
    event = slack.mention(f"here is our key {PASTED_KEY} please use it")
    await slack.event(event)
    # The same message also arriving as a plain channel message warns only once.
    await slack.event(
        {k: v for k, v in event.items() if k != "type"}
        | {"type": "message", "channel_type": "channel"}
    )
    warning = await slack.fake.wait_for("chat.postEphemeral")
    await slack.adapter.drain()
    assert warning.body["user"] == "UALICE" and warning.body["channel"] == CHANNEL
    assert "rotate" in _texts(warning) and "RunPod" in _texts(warning)
    assert len(slack.fake.calls_to("chat.postEphemeral")) == 1
    assert slack.fake.calls_to("chat.postMessage") == []
    assert PASTED_KEY not in slack.fake.all_text()
    with slack.bot.services.db.session() as s:
        for table in (AuditEvent, ProcessedEvent):
            for row in s.exec(select(table)).all():
                assert PASTED_KEY not in row.model_dump_json()


async def test_key_in_a_direct_message_is_not_given_to_the_agent(slack: SlackEnv) -> None:
    await slack.event(
        {
            "type": "message",
            "channel_type": "im",
            "channel": "D0ALICE",
            "user": "UALICE",
            "text": f"my key is sk-ant-{'x' * 20}",
            "ts": "1699999999.000600",
        }
    )
    note = await slack.fake.wait_for("chat.postMessage")
    assert "/connect" in _texts(note) and "sk-ant-" not in note.text_dump()


def test_key_shapes() -> None:
    assert key_provider(f"x {PASTED_KEY} y") == "RunPod"
    assert key_provider("hf_abcdefghijklmnop") == "Hugging Face"
    assert key_provider("xoxb-123456789-abcdef") == "Slack"
    assert key_provider("what's my spend this week?") is None


# --- App Home and /connect -----------------------------------------------------------------


async def test_app_home_shows_whoami_and_available_tools(tmp_path: Path, fake: FakeSlack) -> None:
    async for env in _env(tmp_path, fake, _tools(spend=True)):
        await env.event(
            {"type": "app_home_opened", "user": "UALICE", "channel": "D1", "tab": "home"}
        )
        published = await fake.wait_for("views.publish")
        view = published.body["view"]
        assert published.body["user_id"] == "UALICE" and view["type"] == "home"
        dump = json.dumps(view)
        assert "You are alice" in dump and "Spend this week" in dump and "$12.34" in dump
        assert "Deployments" not in dump  # list_deployments is not registered: skipped
        assert len(view["blocks"]) <= slack_blocks.MAX_VIEW_BLOCKS


async def test_connect_without_the_tool_says_not_available(slack: SlackEnv) -> None:
    await slack.command("runpod", command="/connect")
    note = await slack.fake.wait_for("response_url")
    assert "isn't available yet" in _texts(note)
    assert slack.fake.calls_to("views.open") == []


async def test_connect_opens_a_modal_and_submits_to_the_tool(
    tmp_path: Path, fake: FakeSlack
) -> None:
    tools = _tools(connect=True)
    async for env in _env(tmp_path, fake, tools):
        await env.command("connect runpod", trigger="trig-connect")
        opened = await fake.wait_for("views.open")
        assert opened.body["trigger_id"] == "trig-connect"
        view = opened.body["view"]
        assert view["callback_id"] == slack_blocks.CONNECT_CALLBACK_ID
        resp = await env.interactive(
            {
                "type": "view_submission",
                "team": {"id": DEFAULT_TEAM_ID, "domain": "fake-team"},
                "user": {"id": "UALICE", "username": "alice", "name": "alice"},
                "api_app_id": "AFAKE",
                "token": "legacy",
                "trigger_id": "trig-submit",
                "view": {
                    "id": "V1",
                    "type": "modal",
                    "callback_id": view["callback_id"],
                    "private_metadata": view["private_metadata"],
                    "state": {
                        "values": {
                            "key": {"key": {"type": "plain_text_input", "value": PASTED_KEY}}
                        }
                    },
                },
            }
        )
        assert resp.status == 200
        done = await fake.wait_for("chat.postEphemeral")
        assert "Connected runpod (…3456)" in _texts(done)
        assert tools.connected == [("runpod", PASTED_KEY)]
        assert PASTED_KEY not in fake.all_text()
        with env.bot.services.db.session() as s:
            rows = s.exec(select(AuditEvent)).all()
            assert rows and all(PASTED_KEY not in r.args_json for r in rows)


# --- Block Kit rendering -------------------------------------------------------------------


def _assert_within_limits(blocks: list[dict[str, Any]], max_blocks: int) -> None:
    assert len(blocks) <= max_blocks
    for block in blocks:
        Block.parse(block).to_dict()  # type: ignore[union-attr]  # raises past SDK-known limits
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= slack_blocks.MAX_SECTION_TEXT
            assert len(block.get("fields", [])) <= slack_blocks.MAX_SECTION_FIELDS
            for f in block.get("fields", []):
                assert len(f["text"]) <= slack_blocks.MAX_FIELD_TEXT
        if block["type"] == "context":
            assert len(block["elements"]) <= slack_blocks.MAX_CONTEXT_ELEMENTS
            for e in block["elements"]:
                assert len(e["text"]) <= slack_blocks.MAX_CONTEXT_TEXT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= slack_blocks.MAX_HEADER_TEXT
        if block["type"] == "actions":
            for e in block["elements"]:
                assert len(e["text"]["text"]) <= slack_blocks.MAX_BUTTON_TEXT


def test_long_reply_renders_within_block_kit_limits() -> None:
    reply = Reply(title="T" * 400, text=("word " * 2000).strip(), footer="f" * 5000)
    for i in range(30):
        reply.add_field(f"field {i}", "v" * 2500)
    reply.table = Table(columns=["a", "b"], rows=[[str(i), "x" * 100] for i in range(2000)])
    reply.buttons = [
        Button(label="A" * 200, action="approve", value="7", style="primary"),
        Button(label="Cancel", action="cancel", value="7", style="danger"),
    ]
    message = slack_blocks.render_reply(reply, sandbox=True)
    _assert_within_limits(message.blocks, slack_blocks.MAX_MESSAGE_BLOCKS)
    assert len(message.text) <= slack_blocks.MAX_FALLBACK_TEXT
    # The buttons and the footer survive the cut; the cut is marked.
    assert message.blocks[-2]["type"] == "actions"
    assert message.blocks[-1]["type"] == "context"
    assert "more part(s) not shown" in json.dumps(message.blocks)
    assert slack_blocks.ELLIPSIS in message.blocks[0]["text"]["text"]


def test_thirty_fields_and_ten_thousand_chars_fit() -> None:
    reply = Reply(text="y" * 10_000)
    for i in range(30):
        reply.add_field(f"f{i}", str(i))
    blocks = slack_blocks.render_reply(reply).blocks
    _assert_within_limits(blocks, slack_blocks.MAX_MESSAGE_BLOCKS)
    sections = [b for b in blocks if b["type"] == "section"]
    assert sum(len(b.get("fields", [])) for b in sections) == 30
    assert sum(len(b["text"]["text"]) for b in sections if "text" in b) == 10_000


def test_rendering_escapes_mentions_and_marks_sandbox() -> None:
    message = slack_blocks.render_reply(Reply(text="hi <!channel> & **bold**"), sandbox=True)
    text = message.blocks[0]["text"]["text"]
    assert text == "hi &lt;!channel&gt; &amp; *bold*"
    assert "sandbox" in json.dumps(message.blocks[-1])
    real = slack_blocks.render_reply(Reply(text="x"), sandbox=False)
    assert "sandbox" not in json.dumps(real.blocks)


def test_error_reply_is_marked() -> None:
    message = slack_blocks.render_reply(Reply.error("No such deployment."))
    assert message.blocks[0]["text"]["text"].startswith(":warning:")


# --- cockpit web: health, readiness, configuration -----------------------------------------


async def test_healthz_and_readyz(slack: SlackEnv) -> None:
    health = await slack.http.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "ok"}
    ready = await slack.http.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


async def test_readyz_is_503_when_migrations_are_missing(tmp_path: Path) -> None:
    cockpit = Cockpit(make_settings(tmp_path))  # never started: the schema was not applied
    try:
        async with TestClient(TestServer(build_web_app(cockpit), host="127.0.0.1")) as http:
            resp = await http.get("/readyz")
            body = await resp.json()
            assert resp.status == 503
            assert "migrations are not current" in body["reason"]
            assert "cockpit db upgrade" in body["reason"]
            assert (await http.get("/healthz")).status == 200
            missing = await http.post("/slack/events", data=b"{}")
            assert missing.status == 404 and "SLACK_SIGNING_SECRET" in (await missing.text())
    finally:
        cockpit.db.dispose()


def test_port_resolution_and_configuration_errors(tmp_path: Path) -> None:
    assert resolve_port(8080, 5000, 3000) == 8080
    assert resolve_port(None, 5000, 3000) == 5000
    assert resolve_port(None, None, 3000) == 3000
    cockpit = Cockpit(make_settings(tmp_path, SLACK_SIGNING_SECRET="s"))
    try:
        with pytest.raises(SlackConfigError, match="SLACK_BOT_TOKEN"):
            SlackAdapter(cockpit, mode="http")
        with pytest.raises(SlackConfigError, match="SLACK_APP_TOKEN"):
            SlackAdapter(cockpit, mode="socket")
    finally:
        cockpit.db.dispose()


# --- multi-workspace OAuth -----------------------------------------------------------------


async def test_oauth_install_stores_encrypted_token_and_makes_installer_owner(
    tmp_path: Path, fake: FakeSlack
) -> None:
    fake.users["UINSTALLER"] = {"id": "UINSTALLER", "profile": {"display_name": "ines"}}
    overrides = {"SLACK_CLIENT_ID": "111.222", "SLACK_CLIENT_SECRET": "client-secret-xyz"}
    async for env in _env(tmp_path, fake, _tools(), **overrides):
        install = await env.http.get("/slack/install")
        assert install.status == 200
        page = await install.text()
        state = re.search(r"state=([A-Za-z0-9_\-]+)", page)
        assert state and "client_id=111.222" in page and "commands" in page
        cookie = install.headers["Set-Cookie"].split(";")[0]
        redirect = f"/slack/oauth_redirect?code=fake-code&state={state.group(1)}"
        done = await env.http.get(redirect, headers={"Cookie": cookie})
        assert done.status == 200, await done.text()
        access = fake.calls_to("oauth.v2.access")[0]
        assert access.body["code"] == "fake-code"

        with env.bot.services.db.session() as s:
            row = s.exec(select(SlackInstallation)).one()
            assert row.team_id == DEFAULT_TEAM_ID and row.user_id == "UINSTALLER"
            assert row.bot_token_encrypted and fake.installed_token not in row.bot_token_encrypted
            owner = s.exec(select(Member).where(Member.platform_user_id == "UINSTALLER")).one()
            assert owner.role == "owner" and owner.display_name == "ines"
            assert owner.org_id == row.org_id

        # Requests from that workspace now use the installed (decrypted) token.
        await env.command("whoami", user="UINSTALLER", user_name="ines")
        answer = await fake.wait_for("chat.postMessage")
        assert answer.token == fake.installed_token
        assert "owner" in _texts(answer)

        # A state is good for one use only.
        replay = await env.http.get(redirect, headers={"Cookie": cookie})
        assert replay.status != 200 or "error" in (await replay.text()).lower()
        assert len(fake.calls_to("oauth.v2.access")) == 1


def _record(**overrides: Any) -> InstallationRecord:
    values: dict[str, Any] = {
        "client_id": "111.222",
        "team_id": "T1",
        "team_name": "Acme",
        "bot_token": "xoxb-acme-1",
        "bot_id": "B1",
        "bot_user_id": "U0BOT",
        "bot_scopes": "commands,chat:write",
        "user_id": "U1",
        "installed_at": _now(),
    }
    values.update(overrides)
    return InstallationRecord(**values)


def _now() -> Any:
    from tools.clock import FakeClock

    return FakeClock().now()


def test_slack_store_on_both_engines(database: Database) -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    now = _now()
    with database.session() as s:
        slack_store.save_installation(s, record=_record(), box=box, now=now, installer_name="ann")
    with database.session() as s:
        found = slack_store.find_bot(
            s, client_id="111.222", enterprise_id=None, team_id="T1", box=box
        )
        assert found is not None and found.bot_token == "xoxb-acme-1"
        assert "xoxb" not in repr(found)
        raw = s.exec(select(SlackInstallation)).one()
        assert raw.bot_token_encrypted and "xoxb" not in raw.bot_token_encrypted
        owner = s.exec(select(Member)).one()
        assert (owner.role, owner.display_name, owner.org_id) == ("owner", "ann", raw.org_id)
    # A reinstall by someone else refreshes the bot token; they do not become owner.
    later = now.replace(hour=13)
    with database.session() as s:
        slack_store.save_installation(
            s,
            record=_record(user_id="U2", bot_token="xoxb-acme-2", installed_at=later),
            box=box,
            now=later,
        )
    with database.session() as s:
        mine = slack_store.find_installation(
            s, client_id="111.222", enterprise_id=None, team_id="T1", user_id="U1", box=box
        )
        assert mine is not None and mine.user_id == "U1" and mine.bot_token == "xoxb-acme-2"
        assert len(s.exec(select(Member)).all()) == 1
        assert (
            slack_store.find_bot(s, client_id="other", enterprise_id=None, team_id="T1", box=box)
            is None
        )
        slack_store.delete_bot(s, client_id="111.222", enterprise_id=None, team_id="T1")
    with database.session() as s:
        assert (
            slack_store.find_bot(s, client_id="111.222", enterprise_id=None, team_id="T1", box=box)
            is None
        )
        assert (
            slack_store.delete_installation(
                s, client_id="111.222", enterprise_id=None, team_id="T1"
            )
            == 2
        )
    # OAuth states: one use each, and only before they expire.
    with database.session() as s:
        slack_store.issue_state(s, state="s1", now=now, ttl_seconds=60)
        slack_store.issue_state(s, state="s2", now=now, ttl_seconds=60)
    with database.session() as s:
        assert slack_store.consume_state(s, state="s1", now=now)
        assert not slack_store.consume_state(s, state="s1", now=now)
        assert not slack_store.consume_state(s, state="s2", now=now.replace(minute=5))


# --- Socket Mode ---------------------------------------------------------------------------


async def test_socket_mode_command_is_acked_on_the_socket(tmp_path: Path, fake: FakeSlack) -> None:
    tools = _tools()
    settings = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": "xapp-1-test-token",
        "SLACK_API_URL": fake.api_url,
    }
    async with running_bot(tmp_path, registry=tools.registry, **settings) as bot:
        adapter = SlackAdapter(bot.cockpit, mode="socket")
        await adapter.start_socket_mode()
        try:
            opened = fake.calls_to("apps.connections.open")
            assert opened and opened[0].token == "xapp-1-test-token"
            envelope = await fake.push_envelope(
                "slash_commands",
                {
                    "team_id": DEFAULT_TEAM_ID,
                    "team_domain": "fake-team",
                    "channel_id": CHANNEL,
                    "user_id": "UALICE",
                    "user_name": "alice",
                    "command": "/cockpit",
                    "text": "whoami",
                    "response_url": fake.response_url("sock"),
                    "trigger_id": "trig-sock",
                },
            )
            ack = await fake.wait_for_ack(envelope)
            assert ack["envelope_id"] == envelope
            answer = await fake.wait_for("chat.postMessage")
            assert "You are alice" in _texts(answer) and answer.token == BOT_TOKEN
        finally:
            await adapter.close()


# --- more plumbing: url verification, failures, the chat hook, `cockpit run` / `cockpit web` --


async def test_url_verification_is_answered(slack: SlackEnv) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "ch4llenge", "token": "legacy"})
    resp = await slack.post(body, content_type="application/json")
    assert resp.status == 200 and "ch4llenge" in await resp.text()


async def test_a_failure_after_the_ack_is_reported_without_details(slack: SlackEnv) -> None:
    slack.fake.fail_once("chat.postMessage", "invalid_blocks")
    await slack.command("whoami")
    note = await slack.fake.wait_for("response_url")
    assert note.body["response_type"] == "ephemeral"
    assert "Something went wrong" in _texts(note) and "reference slack-" in _texts(note)
    assert "invalid_blocks" not in _texts(note) and "Traceback" not in _texts(note)


async def test_cockpit_run_connects_socket_mode_and_handles_events(
    tmp_path: Path, fake: FakeSlack
) -> None:
    from bot.adapters.slack_run import run_slack

    settings = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": "xapp-1-test-token",
        "SLACK_API_URL": fake.api_url,
    }
    async with running_bot(tmp_path, registry=_tools().registry, **settings) as bot:
        task = asyncio.create_task(run_slack(bot.cockpit, console=False))
        try:
            await fake.wait_for("apps.connections.open")
            payload = {
                "team_id": DEFAULT_TEAM_ID,
                "api_app_id": "AFAKE",
                "type": "event_callback",
                "event_id": "EvSOCK",
                "event": {
                    "type": "app_mention",
                    "user": "UALICE",
                    "text": f"<@{BOT_USER_ID}> who am i",
                    "ts": "1699999999.000800",
                    "channel": CHANNEL,
                },
            }
            first = await fake.push_envelope("events_api", payload)
            await fake.wait_for_ack(first)
            answer = await fake.wait_for("chat.postMessage")
            assert answer.body["thread_ts"] == "1699999999.000800"
            assert "Role" in _texts(answer)
            # Slack redelivers the same event (a retry): acknowledged, not answered again.
            second = await fake.push_envelope("events_api", payload)
            await fake.wait_for_ack(second)
            await asyncio.sleep(0.1)
            assert len(fake.calls_to("chat.postMessage")) == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cockpit_web_serves_health_on_port_env_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"
    }
    env.update(
        {
            "COCKPIT_DATA_DIR": str(tmp_path),
            "COCKPIT_SANDBOX": "on",
            "COCKPIT_SECRET_KEY": Fernet.generate_key().decode(),
            "PORT": str(port),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "web"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert health == {"status": "ok"}, proc.stderr.read() if proc.stderr else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert json.loads(r.read())["status"] == "ready"
        proc.send_signal(signal.SIGTERM)
        # The CLI cancels the server on SIGTERM, cleans up, and exits 143 (terminated).
        assert proc.wait(timeout=30) == EXIT_TERMINATED
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_manifest_matches_the_code() -> None:
    import yaml

    from bot.adapters.slack_commands import SHORTCUT_COMMANDS, SLACK_BUILTIN_COMMANDS
    from bot.slack_oauth import BOT_SCOPES

    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    commands = [c["command"].lstrip("/") for c in manifest["features"]["slash_commands"]]
    assert commands == ["cockpit", *SHORTCUT_COMMANDS]
    assert not set(commands) & set(SLACK_BUILTIN_COMMANDS)
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.im",
        "message.channels",
        "message.groups",
        "app_home_opened",
        "assistant_thread_started",
        "assistant_thread_context_changed",
    }
    assert "assistant:write" in BOT_SCOPES
    assert manifest["features"]["assistant_view"]["assistant_description"]
    assert settings["interactivity"]["is_enabled"] and settings["socket_mode_enabled"]


async def test_deploy_end_to_end_through_slack_on_the_sandbox(
    tmp_path: Path, fake: FakeSlack
) -> None:
    """/deploy with the shipped deploy tool: price card → requester approves → saga progress
    in the card's thread → result broadcast, on the sandbox cloud."""
    load_tool_modules()
    if REGISTRY.get("deploy_model") is None:
        pytest.skip("this build has no deploy_model tool")
    async for env in _env(tmp_path, fake, Tools(registry=REGISTRY)):
        await env.command("qwen", command="/deploy")
        card = await fake.wait_for("chat.postMessage", timeout=20)
        assert [
            e["action_id"] for b in card.blocks() if b["type"] == "actions" for e in b["elements"]
        ] == [
            "cockpit_approve",
            "cockpit_cancel",
        ]
        assert "sandbox" in _texts(card)
        await env.click(card, "cockpit_approve", user="UALICE", user_name="alice")
        update = await fake.wait_for("chat.update", timeout=30)
        assert "Approved by <@UALICE>" in _texts(update) and "done" in _texts(update)
        await env.adapter.drain(60)
        card_ts = env.fake_ts(card)
        in_thread = [
            c for c in fake.calls_to("chat.postMessage") if c.body.get("thread_ts") == card_ts
        ]
        progress = [c for c in in_thread if not c.body.get("reply_broadcast")]
        final = [c for c in in_thread if c.body.get("reply_broadcast")]
        assert len(progress) >= 2
        assert len(final) == 1 and not str(final[0].body["text"]).startswith(":warning:")


async def test_streamed_answer_grows_one_message_then_becomes_the_reply(slack: SlackEnv) -> None:
    await slack.command("talk")
    first = await slack.fake.wait_for("chat.postMessage")
    assert "Hel" in _texts(first) and "writing…" in _texts(first)
    final = await slack.fake.wait_for(
        "chat.update", where=lambda c: "Hello there, world" in _texts(c)
    )
    await slack.adapter.drain()
    assert final.body["ts"] == slack.fake_ts(first)
    assert "writing…" not in _texts(final) and "4 tokens" in _texts(final)
    assert len(slack.fake.calls_to("chat.postMessage")) == 1
    # Edits are batched: never more than one per delta, and the last one is the full reply.
    assert len(slack.fake.calls_to("chat.update")) <= 4
    assert slack.fake.calls_to("chat.update")[-1] is final


async def test_chat_with_a_deployed_model_continues_in_its_thread(
    tmp_path: Path, fake: FakeSlack
) -> None:
    load_tool_modules()
    if REGISTRY.get("deploy_model") is None or REGISTRY.get("chat_with_model") is None:
        pytest.skip("this build has no deploy/chat tools")
    async for env in _env(tmp_path, fake, Tools(registry=REGISTRY)):
        await env.command("qwen", command="/deploy")
        card = await fake.wait_for("chat.postMessage", timeout=20)
        await env.click(card, "cockpit_approve", user="UALICE", user_name="alice")
        await fake.wait_for("chat.update", timeout=30)
        await env.adapter.drain(60)
        before = len(fake.calls_to("chat.postMessage"))

        thread = "1699999999.009000"
        await env.event(env.mention("/chat 1 hello there", ts=thread))
        opened = await fake.wait_for("chat.postMessage", count=before + 1, timeout=20)
        await env.adapter.drain(30)
        assert opened.body["thread_ts"] == thread
        # A plain follow-up in the same thread goes to the model, not to the agent.
        await env.event({**env.mention("and again?", ts="1699999999.009100"), "thread_ts": thread})
        follow = await fake.wait_for("chat.postMessage", count=before + 2, timeout=20)
        await env.adapter.drain(30)
        assert follow.body["thread_ts"] == thread
        finished = [c for c in fake.calls_to("chat.update") if c.body["ts"] == env.fake_ts(follow)]
        final = finished[-1] if finished else follow
        assert "limited mode" not in _texts(final) and "prompt" in _texts(final)


async def _deployed_model_thread(env: SlackEnv, model: str) -> str:
    """Deploy `model` as #1 (alice approves), then `/chat 1`: the ts of the thread it opens."""
    fake = env.fake
    await env.command(model, command="/deploy")
    card = await fake.wait_for("chat.postMessage", timeout=20)
    await env.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    await fake.wait_for("chat.update", timeout=30)
    await env.adapter.drain(60)
    before = len(fake.calls_to("chat.postMessage"))
    await env.command("1", command="/chat")
    opener = await fake.wait_for("chat.postMessage", count=before + 1, timeout=20)
    await env.adapter.drain(30)
    assert "reply in this thread" in _texts(opener)
    return env.fake_ts(opener)


async def test_slash_chat_opens_a_thread_where_plain_replies_reach_the_model(
    tmp_path: Path, fake: FakeSlack
) -> None:
    load_tool_modules()
    if REGISTRY.get("deploy_model") is None or REGISTRY.get("chat_with_model") is None:
        pytest.skip("this build has no deploy/chat tools")
    async for env in _env(tmp_path, fake, Tools(registry=REGISTRY)):
        thread = await _deployed_model_thread(env, "qwen")
        reply = {**env.mention("three questions", ts="1699999999.019100"), "thread_ts": thread}
        reply["type"] = "message"
        reply["text"] = "three questions"
        await env.event(reply)
        answer = await fake.wait_for(
            "chat.postMessage", where=lambda c, t=thread: c.body.get("thread_ts") == t
            and "[sandbox]" in _texts(c), timeout=20)
        await env.adapter.drain(30)
        assert answer.body["thread_ts"] == thread


async def test_three_replies_in_a_model_thread_stream_three_answers_with_history(
    tmp_path: Path, fake: FakeSlack
) -> None:
    load_tool_modules()
    if REGISTRY.get("deploy_model") is None or REGISTRY.get("chat_with_model") is None:
        pytest.skip("this build has no deploy/chat tools")
    fake.streaming = True
    async for env in _env(tmp_path, fake, Tools(registry=REGISTRY)):
        thread = await _deployed_model_thread(env, "qwen 0.5b")
        emulator = env.bot.cockpit.runpod.emulator
        emulator.record_exchanges = True
        questions = ["first question", "second question", "third question"]
        for n, question in enumerate(questions, start=1):
            reply = {**env.mention(question, ts=f"1699999999.03{n}000"), "thread_ts": thread}
            reply.update(type="message", text=question)
            await env.event(reply)
            await fake.wait_for("chat.stopStream", count=n, timeout=20)
            await env.adapter.drain(30)
        answers = [s for s in fake.streams.values() if s["thread_ts"] == thread]
        assert [a["text"] for a in answers] == [
            f"[sandbox] Qwen/Qwen2.5-0.5B-Instruct: you said '{q}'" for q in questions
        ]
        assert all(a["stopped"] and "tokens" in json.dumps(a["blocks"]) for a in answers)
        chats = [
            e.request_json for e in emulator.exchanges if e.path.endswith("/chat/completions")
        ]
        # Each request carries the thread so far: 1, then 3, then 5 messages.
        assert [len(c["messages"]) for c in chats] == [1, 3, 5]
        assert chats[2]["messages"][0]["content"] == "first question"
        assert chats[2]["messages"][1]["content"].startswith("[sandbox]")
        assert all(c["stream"] for c in chats)


async def test_mention_answered_by_claude_streams_into_the_thread(
    tmp_path: Path, fake: FakeSlack
) -> None:
    """With a Claude key the agent answers; its text streams into the thread as it comes."""
    from fakes.fake_anthropic import running_fake_anthropic, text_turn, tool_use

    async with running_fake_anthropic() as claude:
        claude.add(tool_use("whoami", {}))
        claude.add(text_turn("You are alice, the owner of this workspace's cockpit."))
        overrides = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": claude.url}
        async for env in _env(tmp_path, fake, _tools(), **overrides):
            await env.event(env.mention("who am i?", ts="1699999999.001000"))
            first = await fake.wait_for("chat.postMessage", timeout=10)
            assert first.body["thread_ts"] == "1699999999.001000"
            await env.adapter.drain(20)
            assert len(fake.calls_to("chat.postMessage")) == 1
            final = fake.calls_to("chat.update")[-1]
            assert final.body["ts"] == env.fake_ts(first)
            assert "You are alice, the owner" in _texts(final)
            assert "writing…" not in _texts(final) and "limited mode" not in _texts(final)


async def test_thread_answers_use_slack_streaming_messages(tmp_path: Path, fake: FakeSlack) -> None:
    """Where Slack streams, a threaded answer is one streaming message: started with the first
    words, appended, then stopped with the reply's footer; no message edits."""
    fake.streaming = True
    async for env in _env(tmp_path, fake, _tools()):
        await env.event(env.mention("/talk", ts="1699999999.002000"))
        stop = await fake.wait_for("chat.stopStream", timeout=10)
        await env.adapter.drain(20)
        start = fake.calls_to("chat.startStream")
        assert len(start) == 1 and start[0].body["thread_ts"] == "1699999999.002000"
        assert start[0].body["recipient_user_id"] == "UALICE"
        assert start[0].body["recipient_team_id"] == DEFAULT_TEAM_ID
        assert start[0].body["markdown_text"] == "Hel"  # the first words go out at once
        stream = fake.streams[stop.body["ts"]]
        assert stream["stopped"] and stream["text"] == "Hello there, world"
        assert "4 tokens" in json.dumps(stream["blocks"])
        assert fake.calls_to("chat.update") == [] and fake.calls_to("chat.postMessage") == []


async def test_workspace_without_streaming_falls_back_to_edits_and_is_not_asked_again(
    tmp_path: Path, fake: FakeSlack
) -> None:
    assert not fake.streaming  # the fake answers unknown_method, like Slack without the feature
    async for env in _env(tmp_path, fake, _tools()):
        for n, ts in enumerate(("1699999999.003000", "1699999999.004000"), start=1):
            await env.event(env.mention("/talk", ts=ts))
            await fake.wait_for("chat.postMessage", count=n, timeout=10)
            await env.adapter.drain(20)
            final = fake.calls_to("chat.update")[-1]
            assert "Hello there, world" in _texts(final) and "4 tokens" in _texts(final)
        assert len(fake.calls_to("chat.startStream")) == 1


async def test_streamed_model_output_cannot_ping_the_channel(fake: FakeSlack) -> None:
    """Model output is untrusted text: `<!channel>` split across deltas still pings nobody."""
    from bot.adapters.slack_post import SlackConversation, StreamingSupport

    fake.streaming = True
    client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
    conversation = SlackConversation(
        client,
        channel=CHANNEL,
        user="UALICE",
        sandbox=True,
        thread_ts="1699999999.005000",
        team_id=DEFAULT_TEAM_ID,
        streaming=StreamingSupport(),
    )
    for delta in ("Hey <", "!channel> and <@U", "BOB> look"):
        await conversation.stream(delta)
    ts = await conversation.send(Reply(text="Hey <!channel> and <@UBOB> look", footer="sandbox"))
    assert ts is not None
    text = fake.streams[ts]["text"]
    assert "<!channel>" not in text and "<@UBOB>" not in text
    assert text.replace("\u200b", "") == "Hey <!channel> and <@UBOB> look"


async def test_cockpit_run_with_a_rejected_token_says_what_to_fix(
    tmp_path: Path, fake: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.adapters.slack_run import run_slack

    fake.fail_once("auth.test", "invalid_auth")
    settings = {
        "SLACK_BOT_TOKEN": "xoxb-revoked",
        "SLACK_APP_TOKEN": "xapp-1-test-token",
        "SLACK_API_URL": fake.api_url,
    }
    async with running_bot(tmp_path, **settings) as bot:
        assert await run_slack(bot.cockpit, console=False) == 2
    err = capsys.readouterr().err
    assert "Slack refused to connect (invalid_auth)" in err and "SLACK_BOT_TOKEN" in err
    assert "Traceback" not in err


async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    cockpit = Cockpit(make_settings(tmp_path, DATABASE_URL=f"postgresql://x@127.0.0.1:{port}/db"))
    try:
        async with TestClient(TestServer(build_web_app(cockpit), host="127.0.0.1")) as http:
            resp = await http.get("/readyz")
            assert resp.status == 503
            assert "database is unreachable" in (await resp.json())["reason"]
    finally:
        cockpit.db.dispose()
