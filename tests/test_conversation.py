"""Slack and Discord share one conversation and approval path (issue 18): the same scenario,
driven through each surface's fake (a signed Slack request, a Discord interaction or gateway
message), reaches `Cockpit.on_message` and `Cockpit.decide` and yields the same outcomes and
decisions; only the rendering differs. Also the typed outcomes themselves, surface-free."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fakes import discord_payloads as p
from fakes.discord_env import discord_bot
from fakes.fake_slack import FakeSlack
from fakes.slack_env import PASTED_KEY, Tools, slack_env
from fakes.standins import add_launch

from bot.app import Cockpit, load_tool_modules
from bot.conversation import (
    Answered,
    Decision,
    DecisionOutcome,
    Ignored,
    MessageOutcome,
    SecretRefused,
)
from bot.testing import running_bot
from tools.contract import REGISTRY, Platform, Registry

# The scenario's people, by surface: the first to speak owns the organisation, the second is a
# member (neither the requester nor an admin, so a click of theirs is refused).
SLACK_PEOPLE = {"UALICE": "alice", "UBOB": "bob"}
DISCORD_PEOPLE = {str(p.ALICE_ID): "alice", str(p.BOB_ID): "bob"}

Step = tuple[str, str]  # (who, what)
SCENARIO: list[Step] = [
    ("alice", "mention: who am i"),
    ("alice", f"mention: our key is {PASTED_KEY}"),
    ("alice", "command: launch rocket"),
    ("bob", "approve"),
    ("alice", "approve"),
    ("alice", "approve"),
    ("alice", "command: launch probe"),
    ("alice", "cancel"),
    ("alice", "cancel"),
]


def scenario_registry() -> tuple[Registry, Counter[str]]:
    """The shipped tools plus the shared approval-gated `launch` stand-in."""
    load_tool_modules()
    reg, runs = Registry(), Counter[str]()
    add_launch(reg, runs)
    for t in REGISTRY.all():
        if reg.get(t.name) is None and reg.by_command(t.command or t.name) is None:
            reg.add(t)
    return reg, runs


class Recorder:
    """Keeps what `Cockpit.on_message` and `Cockpit.decide` returned (wrapping, not replacing,
    them on this one cockpit), in surface-free terms."""

    def __init__(self, cockpit: Cockpit, people: dict[str, str]) -> None:
        self.people = people
        self.messages: list[tuple[str, ...]] = []
        self.decisions: list[tuple[Any, ...]] = []
        self._wrap(cockpit, "on_message", self._message)
        self._wrap(cockpit, "decide", self._decision)

    @staticmethod
    def _wrap(cockpit: Cockpit, name: str, keep: Callable[[Any], None]) -> None:
        original = getattr(cockpit, name)

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            keep(result)
            return result

        setattr(cockpit, name, recorded)

    def _message(self, outcome: MessageOutcome) -> None:
        if isinstance(outcome, Answered):
            self.messages.append((outcome.kind, outcome.route, str(outcome.reply.ok)))
        else:
            self.messages.append((outcome.kind,))

    def _decision(self, d: Decision) -> None:
        self.decisions.append(
            (
                self.people[d.who],
                "approve" if d.approve else "cancel",
                d.outcome.value,
                d.status_before,
                d.status,
                d.note if not d.decided else d.summary(who="@", when="t", icons={}),
            )
        )


SurfaceStep = Callable[[str, str], Awaitable[None]]


@asynccontextmanager
async def on_slack(tmp_path: Path) -> AsyncIterator[tuple[SurfaceStep, Recorder, Counter[str]]]:
    registry, runs = scenario_registry()
    users = {
        "UALICE": {"id": "UALICE", "name": "alice", "profile": {"display_name": "alice"}},
        "UBOB": {"id": "UBOB", "name": "bob", "profile": {"display_name": "bob"}},
    }
    ids = {name: uid for uid, name in SLACK_PEOPLE.items()}
    async with FakeSlack(users=users) as fake:
        envs = slack_env(tmp_path, fake, Tools(registry=registry))
        env = await anext(envs)
        try:
            recorder = Recorder(env.bot.cockpit, SLACK_PEOPLE)
            cards: list[Any] = []
            stamps = iter(range(1, 100))

            async def step(who: str, what: str) -> None:
                user = ids[who]
                if what.startswith("mention: "):
                    ts = f"1699999999.{next(stamps):06d}"
                    event = env.mention(what.removeprefix("mention: "), user=user, ts=ts)
                    await env.event(event)
                elif what.startswith("command: "):
                    before = len(fake.calls_to("chat.postMessage"))
                    await env.command(what.removeprefix("command: "), user=user, user_name=who)
                    await env.adapter.drain()
                    cards.append(fake.calls_to("chat.postMessage")[before])
                else:
                    await env.click(cards[-1], f"cockpit_{what}", user=user, user_name=who)
                await env.adapter.drain()

            yield step, recorder, runs
        finally:
            await envs.aclose()


@asynccontextmanager
async def on_discord(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SurfaceStep, Recorder, Counter[str]]]:
    registry, runs = scenario_registry()
    ids = {name: int(uid) for uid, name in DISCORD_PEOPLE.items()}
    async with discord_bot(tmp_path, monkeypatch, registry=registry) as env:
        recorder = Recorder(env.bot.cockpit, DISCORD_PEOPLE)
        channel = p.text_channel()
        cards: list[dict[str, Any]] = []

        async def step(who: str, what: str) -> None:
            user = ids[who]
            if what.startswith("mention: "):
                text = f"<@{p.BOT_USER_ID}> {what.removeprefix('mention: ')}"
                await env.message(
                    p.guild_message(text, user_id=user, mentions_bot=True), channel=channel
                )
            elif what.startswith("command: "):
                _, target = what.removeprefix("command: ").split()
                await env.interact(p.slash_command("launch", {"target": target}, user_id=user))
                cards.append(json.loads(json.dumps(env.fake.messages[max(env.fake.messages)])))
            else:
                card = cards[-1]
                approval = [
                    c["custom_id"]
                    for row in card["components"]
                    for c in row["components"]
                    if c["custom_id"].startswith(f"cockpit:{what}:")
                ]
                await env.interact(p.component_click(approval[0], card, user_id=user))

        yield step, recorder, runs


async def test_slack_and_discord_reach_the_same_outcomes_and_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    results = {}
    async with on_slack(tmp_path / "slack") as (step, recorder, runs):
        for who, what in SCENARIO:
            await step(who, what)
        results["slack"] = (recorder.messages, recorder.decisions, dict(runs))
    async with on_discord(tmp_path / "discord", monkeypatch) as (step, recorder, runs):
        for who, what in SCENARIO:
            await step(who, what)
        results["discord"] = (recorder.messages, recorder.decisions, dict(runs))

    messages, decisions, runs_by_tool = results["slack"]
    assert messages == [("answered", "agent", "True"), ("secret",)]
    assert [d[:5] for d in decisions] == [
        ("bob", "approve", "refused", "pending", "pending"),
        ("alice", "approve", "approved", "pending", "executed"),
        ("alice", "approve", "refused", "executed", "executed"),
        ("alice", "cancel", "cancelled", "pending", "cancelled"),
        ("alice", "cancel", "refused", "cancelled", "cancelled"),
    ]
    assert "Only the person who asked, or an admin" in decisions[0][5]
    assert decisions[1][5] == "Approved by @ at t; done."
    assert runs_by_tool == {"launch": 1}
    # The very same outcomes, decisions and wording through Discord.
    assert results["discord"] == results["slack"]


# --- the core's outcomes, surface-free ---------------------------------------------------------


@pytest.fixture
async def cockpit(tmp_path: Path) -> AsyncIterator[Cockpit]:
    registry, _ = scenario_registry()
    async with running_bot(tmp_path, registry=registry) as bot:
        yield bot.cockpit


async def _ctx(cockpit: Cockpit, user: str) -> Any:
    return await cockpit.context(
        platform=Platform.slack,
        workspace_id="T1",
        workspace_name="team",
        user_id=user,
        display_name=user,
        channel="C1",
        thread="1.1",
    )


async def test_on_message_outcomes(cockpit: Cockpit) -> None:
    ctx = await _ctx(cockpit, "U1")
    assert await cockpit.on_message(ctx, f"key {PASTED_KEY}") == SecretRefused(provider="RunPod")
    assert isinstance(await cockpit.on_message(ctx, "hello", addressed=False), Ignored)
    command = await cockpit.on_message(ctx, "/whoami")
    assert isinstance(command, Answered) and command.route == "command" and command.reply.ok
    moved: list[str | None] = []

    async def into_thread(c: Any) -> Any:
        moved.append(c.thread)
        return c.model_copy(update={"thread": "2.2"})

    agent = await cockpit.on_message(ctx, "who am i", before_answer=into_thread)
    assert isinstance(agent, Answered) and agent.route == "agent" and moved == ["1.1"]


async def test_decide_carries_expiry_who_and_when(cockpit: Cockpit) -> None:
    ctx = await _ctx(cockpit, "U1")
    ask = await cockpit.handle(ctx, "/launch rocket")
    assert ask.approval_id is not None and ask.expires_at is not None
    assert ask.expires_at.tzinfo is not None and ask.expires_at > cockpit.clock.now()
    invalid = await cockpit.decide(ctx, "9" * 30, approve=True)
    assert invalid.outcome is DecisionOutcome.invalid and not invalid.decided
    assert invalid.note == "That button does not carry an approval id."
    done = await cockpit.decide(ctx, str(ask.approval_id), approve=True)
    assert done.outcome is DecisionOutcome.approved and done.posts_result
    assert (done.who, done.when) == ("U1", cockpit.clock.now())
    assert "Launched 1 × rocket" in done.reply.text
