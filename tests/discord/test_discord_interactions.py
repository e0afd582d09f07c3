"""The Discord surface end to end without a gateway: interaction and message payloads go in
through the client's connection state (what the gateway does), discord.py's HTTP client talks
to the loopback fake Discord API (`Route.BASE`), and the fake's recorded calls come out. Time is
the harness's FakeClock (the fake records it too), so edit-rate assertions are deterministic."""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from fakes import discord_payloads as p
from fakes.discord_env import (
    ALERT_CHANNEL_ID,
    CHAT_WORDS,
    REAL_PACE_SECONDS,
    TOKEN_DELAY_SECONDS,
    DiscordEnv,
    custom_ids,
    deploy_directly,
    discord_bot,
    embed_text,
)
from fakes.fake_discord import APPLICATION_ID, EPHEMERAL_FLAG, GATEWAY_PATH, Call
from pydantic import BaseModel
from sqlmodel import select

from bot.adapters import discord_render as render
from bot.adapters.discord_stream import STREAM_EDIT_INTERVAL_SECONDS, StreamedMessage
from storage import conversations, deployments
from storage.models import Conversation, Workspace
from tools.clock import FakeClock
from tools.contract import (
    Button,
    Platform,
    Registry,
    Reply,
    ToolContext,
    tool,
)

# --- /deploy: deferred → approval card → the requester's click deploys ----------------------


async def test_deploy_interaction_approval_button_and_refusal(env: DiscordEnv) -> None:
    deploy = p.slash_command("deploy", {"model": "qwen 0.5b"}, user_id=p.ALICE_ID)
    followups = await env.interact(deploy)

    callback = env.fake.callbacks(int(deploy["id"]))[0]
    assert callback.payload["type"] == 5  # deferred: answered within Discord's 3 s
    assert callback.at == followups[0].at  # no fake time passed before the defer
    card_call = followups[0]
    assert "Deploy Qwen/Qwen2.5-0.5B-Instruct" in embed_text(card_call.embeds)
    assert "Price" in embed_text(card_call.embeds) and "sandbox" in embed_text(card_call.embeds)
    assert re.search(r"Expires: <t:\d+:R>", embed_text(card_call.embeds))
    card = copy.deepcopy(env.fake.messages[max(env.fake.messages)])
    assert custom_ids(card) == ["cockpit:approve:1", "cockpit:cancel:1"]
    assert card["embeds"][0]["color"] == render.COLOUR_APPROVAL

    # Bob is not the requester and not an admin: refused, privately; the card stays.
    await env.interact(p.component_click("cockpit:approve:1", card, user_id=p.BOB_ID))
    refusal = env.fake.calls[-1]
    assert refusal.method == "POST" and refusal.flags & EPHEMERAL_FLAG
    assert "Only the person who asked, or an admin" in embed_text(refusal.embeds)
    assert custom_ids(env.fake.message(int(card["id"]))) == [
        "cockpit:approve:1",
        "cockpit:cancel:1",
    ]
    assert not env.bot.cockpit.runpod.emulator.state.endpoints

    # Alice approves: the card shows the decision, progress and the result go into a thread.
    click = p.component_click("cockpit:approve:1", env.fake.message(int(card["id"])))
    await env.interact(click)
    assert env.fake.callbacks(int(click["id"]))[0].payload["type"] == 6  # deferred update
    edit = env.fake.calls_matching(
        "PATCH", rf"/webhooks/{APPLICATION_ID}/{click['token']}/messages/@original"
    )
    assert edit and edit[0].payload["components"] == []
    assert f"Approved by <@{p.ALICE_ID}>" in embed_text(edit[0].embeds)
    thread = env.fake.calls_matching(
        "POST", rf"/channels/{p.CHANNEL_ID}/messages/{card['id']}/threads"
    )
    assert len(thread) == 1
    in_thread = env.fake.calls_matching("POST", rf"/channels/{card['id']}/messages")
    lines = " | ".join(c.content for c in in_thread)
    for phase in ("creating endpoint", "waiting for workers", "healthy after"):
        assert phase in lines
    assert "is healthy" in embed_text(in_thread[-1].embeds)
    assert len(env.bot.cockpit.runpod.emulator.state.endpoints) == 1
    with env.bot.services.db.session() as s:
        row = deployments.get(s, org_id=env.org_id(), deployment_id=1)
    assert row is not None and row.status == "healthy" and row.created_by == str(p.ALICE_ID)

    # A second click (a client still showing the old card) does nothing twice.
    again = p.component_click("cockpit:approve:1", card)
    await env.interact(again)
    assert "already executed" in embed_text(env.fake.calls[-1].embeds)
    assert len(env.bot.cockpit.runpod.emulator.state.endpoints) == 1


async def test_cancel_button_edits_card(env: DiscordEnv) -> None:
    await env.interact(p.slash_command("deploy", {"model": "qwen 0.5b"}))
    card = env.fake.messages[max(env.fake.messages)]
    click = p.component_click("cockpit:cancel:1", card)
    await env.interact(click)
    edit = env.fake.calls_matching("PATCH", rf"/webhooks/\d+/{click['token']}/messages/@original")
    assert "Cancelled by" in embed_text(edit[0].embeds)
    assert not env.bot.cockpit.runpod.emulator.state.endpoints


# --- model chat in a thread: streamed by rate-limited edits --------------------------------


def _edit_times(env: DiscordEnv, channel_id: int) -> list[Call]:
    return env.fake.calls_matching("PATCH", rf"/channels/{channel_id}/messages/\d+")


def _assert_rate(edits: list[Call]) -> None:
    times = [c.at for c in edits]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= STREAM_EDIT_INTERVAL_SECONDS - 1e-9 for g in gaps), gaps
    for t in times:  # Discord: at most 5 edits in any 5 s per channel
        assert sum(1 for u in times if t <= u < t + 5.0) <= 5


class PacedClock:
    """The emulator's view of the shared FakeClock: a streamed token still advances fake time
    by the token delay, and also yields a few real milliseconds, so the relay's HTTP edits
    interleave with the stream as they would over a network."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def now(self) -> Any:
        return self.clock.now()

    def monotonic(self) -> float:
        return self.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(max(seconds, 0.0))
        await asyncio.sleep(REAL_PACE_SECONDS)


async def test_chat_thread_streams_within_edit_rate(env: DiscordEnv) -> None:
    dep_id = await deploy_directly(env)
    emulator = env.bot.cockpit.runpod.emulator
    emulator.token_delay = TOKEN_DELAY_SECONDS
    emulator.clock = PacedClock(env.bot.clock)
    words = " ".join(f"word{i}" for i in range(CHAT_WORDS))
    chat = p.slash_command("chat", {"deployment": str(dep_id), "message": words})
    await env.interact(chat)

    opener = env.fake.followups(chat["token"])[0]
    assert "continue in the thread" in embed_text(opener.embeds)
    thread_call = env.fake.calls_matching("POST", rf"/channels/{p.CHANNEL_ID}/messages/\d+/threads")
    assert len(thread_call) == 1
    thread_id = int(env.fake.channels[max(env.fake.channels)]["id"])
    created = env.fake.calls_matching("POST", rf"/channels/{thread_id}/messages")
    assert len(created) == 1  # one message, then edits
    edits = _edit_times(env, thread_id)
    assert len(edits) >= 4, [c.content for c in edits]  # streamed, not one final post
    _assert_rate(edits)
    final = edits[-1].content
    answer = final.split("\n-# ")[0]
    assert answer.startswith("[sandbox]") and "word29" in answer and "▌" not in final
    assert "sandbox" in final.split("\n-# ")[1] and "completion tokens" in final
    assert "▌" in edits[0].content  # intermediate edits show the cursor

    # A message in the bound thread goes to the model too, with the thread's history.
    thread = p.thread_channel(thread_id)
    before_edits = len(edits)
    await env.message(p.guild_message("and again", channel_id=thread_id), channel=thread)
    edits = _edit_times(env, thread_id)
    assert len(edits) > before_edits
    _assert_rate(edits[before_edits:])
    assert "you said 'and again'" in edits[-1].content
    with env.bot.services.db.session() as s:
        conv = conversations.find(
            s,
            org_id=env.org_id(),
            platform="discord",
            channel=str(thread_id),
            thread=str(thread_id),
        )
        assert conv is not None and conv.deployment_id == dep_id and conv.kind == "model_chat"
        history = conversations.recent_messages(
            s, org_id=env.org_id(), conversation_id=conv.id or 0
        )
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]


async def test_streamed_message_edit_schedule(env: DiscordEnv) -> None:
    """Exact schedule on the fake clock: a delta every 0.5 s, at most one edit per 1.2 s
    (measured from the previous edit), the final edit after the rest of the interval."""
    clock = env.bot.clock
    stream = StreamedMessage(
        env.adapter.client.get_partial_messageable(ALERT_CHANNEL_ID), clock=clock
    )
    start = clock.monotonic()
    for i in range(20):
        await stream.feed(f"w{i} ")
        clock.advance(0.5)
    await stream.finish(footer="done")
    posts = env.fake.calls_matching("POST", rf"/channels/{ALERT_CHANNEL_ID}/messages")
    edits = _edit_times(env, ALERT_CHANNEL_ID)
    assert len(posts) == 1 and posts[0].at == start
    # Deltas at 0, 0.5, … 9.5 s; the loop ends at 10.0 and the final edit waits until 10.2.
    assert [round(c.at - start, 1) for c in edits] == [1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.2]
    assert edits[-1].content == " ".join(f"w{i}" for i in range(20)) + " \n-# done"
    _assert_rate(edits)

    # Past 2,000 characters the text continues in a new message; the first is then final.
    long = StreamedMessage(
        env.adapter.client.get_partial_messageable(ALERT_CHANNEL_ID + 1), clock=clock
    )
    for _ in range(30):
        await long.feed("x" * 99 + "\n")
        clock.advance(2.0)
    await long.finish()
    calls = [c for c in env.fake.calls if f"/channels/{ALERT_CHANNEL_ID + 1}/" in c.path]
    assert [c.method for c in calls].count("POST") == 2
    assert all(len(c.content) <= 2000 for c in calls)
    shown = [env.fake.message(m.id)["content"] for m in long.messages]
    assert len(shown) == 2 and "▌" not in "".join(shown)
    assert "".join(shown).replace("\n", "") == long.text.replace("\n", "")


async def test_chat_with_unknown_deployment_removes_thread(env: DiscordEnv) -> None:
    chat = p.slash_command("chat", {"deployment": "nope"})
    await env.interact(chat)
    started = env.fake.calls_matching("POST", rf"/channels/{p.CHANNEL_ID}/messages/(\d+)/threads")
    assert len(started) == 1
    thread_id = int(started[0].path.split("/")[-2])  # a thread takes its first message's id
    assert env.fake.deleted_channels == [thread_id]
    edit = env.fake.calls_matching("PATCH", rf"/webhooks/\d+/{chat['token']}/messages/\d+")
    assert "No deployment matches 'nope'" in embed_text(edit[-1].embeds)
    with env.bot.services.db.session() as s:
        assert not list(s.exec(select(Conversation)))


# --- mentions, DMs, bots -----------------------------------------------------------------


async def test_mention_is_answered_in_a_thread_and_bots_are_ignored(env: DiscordEnv) -> None:
    channel = p.text_channel()
    mention = p.guild_message(f"<@{p.BOT_USER_ID}> what can you do?", mentions_bot=True)
    await env.message(mention, channel=channel)
    threads = [c for c in env.new_calls if c.path.endswith("/threads")]
    assert (
        threads and threads[0].path == f"/channels/{p.CHANNEL_ID}/messages/{mention['id']}/threads"
    )
    answers = [c for c in env.new_calls if c.path == f"/channels/{mention['id']}/messages"]
    assert answers and embed_text(answers[-1].embeds)

    await env.message(p.guild_message("no mention here"), channel=channel)
    assert env.new_calls == []
    await env.message(p.guild_message(f"<@{p.BOT_USER_ID}> hi", mentions_bot=True, bot_author=True))
    assert env.new_calls == []


async def test_dm_is_answered_in_the_dm_in_a_personal_workspace(env: DiscordEnv) -> None:
    await env.message(p.dm_message("/whoami"))
    answers = [c for c in env.new_calls if c.path == f"/channels/{p.DM_CHANNEL_ID}/messages"]
    assert answers and not any(c.path.endswith("/threads") for c in env.new_calls)
    text = embed_text(answers[-1].embeds)
    assert "owner" in text  # first person of their own DM workspace


async def test_pasted_key_is_not_forwarded(env: DiscordEnv) -> None:
    await env.message(p.dm_message("my key is rpa_ABCDEFGHIJKLMNOP123456"))
    dumped = " ".join(c.text_dump() for c in env.new_calls)
    assert "rpa_ABCDEFGHIJKLMNOP123456" not in dumped and "secret key" in dumped


# --- alerts ----------------------------------------------------------------------------------


async def test_alert_embed_to_bot_channel_and_webhook(env: DiscordEnv) -> None:
    message_id = await render.send_alert_embed(
        client=env.adapter.client,
        channel_id=ALERT_CHANNEL_ID,
        title="#1 qwen is unhealthy",
        text="3 failed health checks in 5 minutes.",
        severity="critical",
        fields={"Deployment": "#1 qwen", "GPU": "ADA_24"},
        sandbox=True,
    )
    sent = env.fake.calls_matching("POST", rf"/channels/{ALERT_CHANNEL_ID}/messages")
    assert len(sent) == 1 and message_id == int(env.fake.messages[message_id]["id"])
    embed = sent[0].embeds[0]
    assert (
        "#1 qwen is unhealthy" in embed["title"]
        and embed["color"] == render.SEVERITY_COLOURS["critical"]
    )
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "Deployment": "#1 qwen",
        "GPU": "ADA_24",
    }
    assert "sandbox" in embed["footer"]["text"]

    url = env.fake.webhook_url()
    async with aiohttp.ClientSession() as session:
        hook_id = await render.send_alert_embed(
            webhook_url=url,
            session=session,
            title="Budget 80% used",
            text="$80 of $100.",
            severity="warning",
        )
    hooked = env.fake.calls_matching("POST", r"/webhooks/1300000000000000001/T+")
    assert len(hooked) == 1 and hooked[0].query.get("wait") in ("1", "true") and hook_id
    assert "Budget 80% used" in hooked[0].embeds[0]["title"]


# --- privacy ---------------------------------------------------------------------------------


async def test_errors_and_secret_commands_stay_private(env: DiscordEnv) -> None:
    status = p.slash_command("status", {"deployment": "nope"})
    followups = await env.interact(status)
    assert env.fake.callbacks(int(status["id"]))[0].flags == 0  # public while working
    deleted = env.fake.calls_matching(
        "DELETE", rf"/webhooks/\d+/{status['token']}/messages/@original"
    )
    assert len(deleted) == 1  # the public "thinking…" goes away
    assert followups[-1].flags & EPHEMERAL_FLAG
    assert "No deployment matches 'nope'" in embed_text(followups[-1].embeds)

    key = "rpa_SECRETSECRETSECRET1234"
    connect = p.slash_command("connect", {"provider": "runpod", "key": key})
    await env.interact(connect)
    defer = env.fake.callbacks(int(connect["id"]))[0].payload
    assert defer["type"] == 5 and defer["data"]["flags"] & EPHEMERAL_FLAG
    answers = env.fake.followups(connect["token"])
    assert answers and all(key not in c.text_dump() for c in answers)


async def test_run_discord_beside_other_surfaces(
    env: DiscordEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cockpit run` with DISCORD_BOT_TOKEN: the bot logs in and connects (here: to the fake's
    refusing gateway, retrying quietly) while the other surfaces run, and closes after them."""
    from bot.adapters.discord_run import run_discord

    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(env.fake.gateway_url)
    )

    async def other_surfaces() -> int:
        await env.fake.wait_for(("GET", GATEWAY_PATH))
        return 7

    assert await run_discord(env.bot.cockpit, alongside=other_surfaces) == 7
    assert len(env.fake.calls_matching("GET", r"/users/@me")) == 2  # the fixture's and this one


async def test_slash_command_in_a_dm_uses_a_personal_workspace(env: DiscordEnv) -> None:
    await env.interact(p.slash_command("whoami", guild_id=None, user_id=p.BOB_ID))
    await env.interact(p.slash_command("whoami", user_id=p.CAROL_ID))  # the guild's first
    followups = [c for c in env.fake.calls if c.path.startswith(f"/webhooks/{APPLICATION_ID}/")]
    assert "owner" in embed_text(followups[0].embeds)  # Bob owns his DM workspace
    with env.bot.services.db.session() as s:
        spaces = {w.external_id for w in s.exec(select(Workspace))}
    assert spaces == {f"dm-{p.BOB_ID}", str(p.GUILD_ID)}


async def test_chat_command_inside_a_thread_binds_that_thread(env: DiscordEnv) -> None:
    dep_id = await deploy_directly(env)
    thread_id = 1_000_000_000_000_000_077
    chat = p.slash_command(
        "chat", {"deployment": str(dep_id), "message": "hi"}, channel=p.thread_channel(thread_id)
    )
    await env.interact(chat)
    assert not env.fake.calls_matching("POST", r"/channels/\d+/messages/\d+/threads")
    assert "in this thread" in embed_text(env.fake.followups(chat["token"])[0].embeds)
    shown = [c for c in env.fake.calls if c.path.startswith(f"/channels/{thread_id}/messages")]
    assert "you said 'hi'" in shown[-1].content
    bound = await env.bot.cockpit.thread_binding(
        platform=Platform.discord,
        workspace_id=str(p.GUILD_ID),
        channel=str(thread_id),
        thread=str(thread_id),
    )
    assert bound == dep_id


async def test_expired_approval_is_reported_and_card_closed(env: DiscordEnv) -> None:
    await env.interact(p.slash_command("deploy", {"model": "qwen 0.5b"}))
    card = env.fake.messages[max(env.fake.messages)]
    env.bot.clock.advance(env.bot.cockpit.settings.approval_ttl_seconds + 1)
    click = p.component_click("cockpit:approve:1", card)
    await env.interact(click)
    edit = env.fake.calls_matching("PATCH", rf"/webhooks/\d+/{click['token']}/messages/@original")
    assert "Expired" in embed_text(edit[0].embeds) and edit[0].payload["components"] == []
    note = env.fake.followups(click["token"])[-1]
    assert note.flags & EPHEMERAL_FLAG and "expired" in embed_text(note.embeds)
    assert not env.bot.cockpit.runpod.emulator.state.endpoints


async def test_command_buttons_run_as_the_clicker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Registry
) -> None:
    @tool(name="menu", description="Offers a button.", registry=registry)
    async def menu(tc: ToolContext, args: BaseModel) -> Reply:
        return Reply(
            text="Pick one.", buttons=[Button(label="Who am I", action="run", value="/whoami")]
        )

    async with discord_bot(tmp_path, monkeypatch, registry=registry) as e:
        await e.interact(p.slash_command("menu"))
        message = e.fake.messages[max(e.fake.messages)]
        assert custom_ids(message) == ["cockpit:cmd:whoami"]
        followups = await e.interact(
            p.component_click("cockpit:cmd:whoami", message, user_id=p.BOB_ID)
        )
        assert "bob" in embed_text(followups[-1].embeds).lower()


async def test_alert_route_to_a_bot_channel_goes_through_the_router(env: DiscordEnv) -> None:
    from tools.alerts import router_of

    owner = env.bot.ctx(user="owner", workspace="alerts-ws")
    added = await env.bot.send(
        f"/alerts add discord {ALERT_CHANNEL_ID}", user="owner", workspace="alerts-ws"
    )
    assert added.ok, added.text
    env.bot.services.discord_client = env.adapter.client
    try:
        sent = await router_of(env.bot.services).fire(
            org_id=owner.org_id, key="health:9", severity="critical", title="#9 is unhealthy"
        )
    finally:
        env.bot.services.discord_client = None
    assert sent
    posts = env.fake.calls_matching("POST", rf"/channels/{ALERT_CHANNEL_ID}/messages")
    assert posts and "#9 is unhealthy" in posts[-1].embeds[0]["title"]
