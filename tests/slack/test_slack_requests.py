"""The Slack surface end to end: signed HTTP requests into `cockpit web`'s aiohttp app (and
Socket Mode envelopes), the fake Slack Web API's received calls out. Time is the harness's
FakeClock (signatures are checked against it); nothing sleeps longer than a poll interval."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from fakes.fake_slack import BOT_USER_ID, DEFAULT_TEAM_ID, FakeSlack
from fakes.slack_env import (
    BOT_TOKEN,
    CHANNEL,
    PASTED_KEY,
    SlackEnv,
    Tools,
    sign,
    slack_env,
    slack_tools,
    texts,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

from bot.adapters import slack_blocks
from bot.adapters.slack import SlackAdapter, key_provider
from bot.app import load_tool_modules
from bot.testing import running_bot
from storage.models import AuditEvent, ProcessedEvent
from tools.contract import (
    REGISTRY,
    Reply,
)

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
    assert "slow provider answered" in texts(posted)
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
    assert "Expires <!date^" in texts(card)
    assert "sandbox" in texts(card)
    assert slack.tools.runs["launch"] == 0

    # Bob (a member, not the requester nor an admin) is refused privately; the card stays.
    assert (await slack.click(card, "cockpit_approve", user="UBOB", user_name="bob")).status == 200
    refusal = await fake.wait_for("chat.postEphemeral")
    assert refusal.body["user"] == "UBOB"
    assert "Only the person who asked, or an admin" in texts(refusal)
    await slack.adapter.drain()
    assert fake.calls_to("chat.update") == []
    assert slack.tools.runs["launch"] == 0

    # Alice, who asked, approves: runs once, card updated, progress and result in the thread.
    await slack.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    update = await fake.wait_for("chat.update")
    card_ts = slack.fake_ts(card)
    assert update.body["ts"] == card_ts and update.body["channel"] == CHANNEL
    assert "Approved by <@UALICE>" in texts(update)
    assert not [b for b in update.blocks() if b["type"] == "actions"]
    result = await fake.wait_for("chat.postMessage", where=lambda c: "Launched" in texts(c))
    assert result.body["thread_ts"] == card_ts
    assert "Launched 2 × rocket" in texts(result)
    progress = [c for c in fake.calls_to("chat.postMessage") if "launching rocket" in texts(c)]
    assert len(progress) == 1 and progress[0].body["thread_ts"] == card_ts
    assert slack.tools.runs["launch"] == 1

    # A second click changes nothing and says why, privately.
    await slack.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    again = await fake.wait_for("chat.postEphemeral", count=2)
    assert "already executed" in texts(again)
    await slack.adapter.drain()
    assert slack.tools.runs["launch"] == 1
    assert len(fake.calls_to("chat.update")) == 1


async def test_cancel_click_updates_the_card(slack: SlackEnv) -> None:
    await slack.command("launch rocket")
    card = await slack.fake.wait_for("chat.postMessage")
    await slack.click(card, "cockpit_cancel", user="UALICE", user_name="alice")
    update = await slack.fake.wait_for("chat.update")
    assert "Cancelled by <@UALICE>" in texts(update)
    assert slack.tools.runs["launch"] == 0


async def test_expired_approval_is_shown_on_the_card(slack: SlackEnv) -> None:
    await slack.command("launch rocket")
    card = await slack.fake.wait_for("chat.postMessage")
    slack.bot.clock.advance(601)
    await slack.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    update = await slack.fake.wait_for("chat.update")
    assert "Expired" in texts(update)
    note = await slack.fake.wait_for("chat.postEphemeral")
    assert "expired" in texts(note)
    assert slack.tools.runs["launch"] == 0


async def test_progress_goes_into_a_thread_under_the_first_message(slack: SlackEnv) -> None:
    await slack.command("", command="/warmup")
    final = await slack.fake.wait_for("chat.postMessage", count=4)
    first, step1, step2 = slack.fake.calls_to("chat.postMessage")[:3]
    root = slack.fake_ts(first)
    assert "working on it" in texts(first) and "thread_ts" not in first.body
    assert step1.body["thread_ts"] == root and "step 1 of 2" in texts(step1)
    assert step2.body["thread_ts"] == root
    assert final.body["thread_ts"] == root and final.body.get("reply_broadcast") is True
    assert "Warm and ready" in texts(final)


async def test_shortcut_and_umbrella_commands_reach_the_same_tool(slack: SlackEnv) -> None:
    await slack.command("", command="/whoami")
    await slack.command("whoami")
    first = await slack.fake.wait_for("chat.postMessage", count=1)
    second = await slack.fake.wait_for("chat.postMessage", count=2)
    for call in (first, second):
        assert "You are alice" in texts(call) and "Role" in texts(call)
    # The first Slack user of the workspace owns its organisation.
    assert "owner" in texts(first)


async def test_errors_go_only_to_the_requester(slack: SlackEnv) -> None:
    await slack.command("", command="/whoamii")
    note = await slack.fake.wait_for("response_url")
    assert note.body["response_type"] == "ephemeral"
    # Slack has no /whoami of its own: the hint is spelled as Slack types it.
    assert "Did you mean /cockpit whoami?" in texts(note)
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
    assert "You are alice" in texts(answer)


async def test_reply_image_is_uploaded_into_the_thread(tmp_path: Path, fake: FakeSlack) -> None:
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    async for env in slack_env(tmp_path, fake, slack_tools(chart=png)):
        await env.command("chart")
        done = await fake.wait_for("files.completeUploadExternal")
        message = fake.calls_to("chat.postMessage")[0]
        assert "Spend by day" in texts(message)
        assert done.body["channel_id"] == CHANNEL
        assert done.body["thread_ts"] == env.fake_ts(message)
        assert fake.calls_to("upload")[0].body["_raw_length"] == png.stat().st_size


# --- events: mentions, DMs, dedupe, pasted keys --------------------------------------------


async def test_mention_is_answered_by_the_agent_in_a_thread(slack: SlackEnv) -> None:
    resp = await slack.event(slack.mention("who am i?", ts="1699999999.000200"))
    assert resp.status == 200
    answer = await slack.fake.wait_for("chat.postMessage")
    assert answer.body["thread_ts"] == "1699999999.000200"
    assert "Role" in texts(answer) and "limited mode" in texts(answer)


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
    assert "rotate" in texts(warning) and "RunPod" in texts(warning)
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
    assert "/connect" in texts(note) and "sk-ant-" not in note.text_dump()


def test_key_shapes() -> None:
    assert key_provider(f"x {PASTED_KEY} y") == "RunPod"
    assert key_provider("hf_abcdefghijklmnop") == "Hugging Face"
    assert key_provider("xoxb-123456789-abcdef") == "Slack"
    assert key_provider("what's my spend this week?") is None


# --- App Home and /connect -----------------------------------------------------------------


async def test_app_home_shows_whoami_and_available_tools(tmp_path: Path, fake: FakeSlack) -> None:
    async for env in slack_env(tmp_path, fake, slack_tools(spend=True)):
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
    assert "isn't available yet" in texts(note)
    assert slack.fake.calls_to("views.open") == []


async def test_connect_opens_a_modal_and_submits_to_the_tool(
    tmp_path: Path, fake: FakeSlack
) -> None:
    tools = slack_tools(connect=True)
    async for env in slack_env(tmp_path, fake, tools):
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
        assert "Connected runpod (…3456)" in texts(done)
        assert tools.connected == [("runpod", PASTED_KEY)]
        assert PASTED_KEY not in fake.all_text()
        with env.bot.services.db.session() as s:
            rows = s.exec(select(AuditEvent)).all()
            assert rows and all(PASTED_KEY not in r.args_json for r in rows)


# --- Socket Mode ---------------------------------------------------------------------------


async def test_socket_mode_command_is_acked_on_the_socket(tmp_path: Path, fake: FakeSlack) -> None:
    tools = slack_tools()
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
            assert "You are alice" in texts(answer) and answer.token == BOT_TOKEN
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
    assert "Something went wrong" in texts(note) and "reference slack-" in texts(note)
    assert "invalid_blocks" not in texts(note) and "Traceback" not in texts(note)


async def test_cockpit_run_connects_socket_mode_and_handles_events(
    tmp_path: Path, fake: FakeSlack
) -> None:
    from bot.adapters.slack_run import run_slack

    settings = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": "xapp-1-test-token",
        "SLACK_API_URL": fake.api_url,
    }
    async with running_bot(tmp_path, registry=slack_tools().registry, **settings) as bot:
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
            assert "Role" in texts(answer)
            # Slack redelivers the same event (a retry): acknowledged, not answered again.
            second = await fake.push_envelope("events_api", payload)
            await fake.wait_for_ack(second)
            await asyncio.sleep(0.1)
            assert len(fake.calls_to("chat.postMessage")) == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_deploy_end_to_end_through_slack_on_the_sandbox(
    tmp_path: Path, fake: FakeSlack
) -> None:
    """/deploy with the shipped deploy tool: price card → requester approves → saga progress
    in the card's thread → result broadcast, on the sandbox cloud."""
    load_tool_modules()
    if REGISTRY.get("deploy_model") is None:
        pytest.skip("this build has no deploy_model tool")
    async for env in slack_env(tmp_path, fake, Tools(registry=REGISTRY)):
        await env.command("qwen", command="/deploy")
        card = await fake.wait_for("chat.postMessage", timeout=20)
        assert [
            e["action_id"] for b in card.blocks() if b["type"] == "actions" for e in b["elements"]
        ] == [
            "cockpit_approve",
            "cockpit_cancel",
        ]
        assert "sandbox" in texts(card)
        await env.click(card, "cockpit_approve", user="UALICE", user_name="alice")
        update = await fake.wait_for("chat.update", timeout=30)
        assert "Approved by <@UALICE>" in texts(update) and "done" in texts(update)
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
    assert "Hel" in texts(first) and "writing…" in texts(first)
    final = await slack.fake.wait_for(
        "chat.update", where=lambda c: "Hello there, world" in texts(c)
    )
    await slack.adapter.drain()
    assert final.body["ts"] == slack.fake_ts(first)
    assert "writing…" not in texts(final) and "4 tokens" in texts(final)
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
    async for env in slack_env(tmp_path, fake, Tools(registry=REGISTRY)):
        before = await _deployed(env, "qwen")

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
        assert "limited mode" not in texts(final) and "prompt" in texts(final)


async def _deployed(env: SlackEnv, model: str) -> int:
    """Deploy `model` as #1 (alice approves): how many messages were posted by then."""
    fake = env.fake
    await env.command(model, command="/deploy")
    card = await fake.wait_for("chat.postMessage", timeout=20)
    await env.click(card, "cockpit_approve", user="UALICE", user_name="alice")
    await fake.wait_for("chat.update", timeout=30)
    await env.adapter.drain(60)
    return len(fake.calls_to("chat.postMessage"))


async def _deployed_model_thread(env: SlackEnv, model: str) -> str:
    """Deploy `model` as #1 (alice approves), then `/chat 1`: the ts of the thread it opens."""
    fake = env.fake
    before = await _deployed(env, model)
    await env.command("1", command="/chat")
    opener = await fake.wait_for("chat.postMessage", count=before + 1, timeout=20)
    await env.adapter.drain(30)
    assert "reply in this thread" in texts(opener)
    return env.fake_ts(opener)


async def test_slash_chat_opens_a_thread_where_plain_replies_reach_the_model(
    tmp_path: Path, fake: FakeSlack
) -> None:
    load_tool_modules()
    if REGISTRY.get("deploy_model") is None or REGISTRY.get("chat_with_model") is None:
        pytest.skip("this build has no deploy/chat tools")
    async for env in slack_env(tmp_path, fake, Tools(registry=REGISTRY)):
        thread = await _deployed_model_thread(env, "qwen")
        reply = {**env.mention("three questions", ts="1699999999.019100"), "thread_ts": thread}
        reply["type"] = "message"
        reply["text"] = "three questions"
        await env.event(reply)
        answer = await fake.wait_for(
            "chat.postMessage",
            where=lambda c, t=thread: c.body.get("thread_ts") == t and "[sandbox]" in texts(c),
            timeout=20,
        )
        await env.adapter.drain(30)
        assert answer.body["thread_ts"] == thread


async def test_three_replies_in_a_model_thread_stream_three_answers_with_history(
    tmp_path: Path, fake: FakeSlack
) -> None:
    load_tool_modules()
    if REGISTRY.get("deploy_model") is None or REGISTRY.get("chat_with_model") is None:
        pytest.skip("this build has no deploy/chat tools")
    fake.streaming = True
    async for env in slack_env(tmp_path, fake, Tools(registry=REGISTRY)):
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
        chats = [e.request_json for e in emulator.exchanges if e.path.endswith("/chat/completions")]
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
        async for env in slack_env(tmp_path, fake, slack_tools(), **overrides):
            await env.event(env.mention("who am i?", ts="1699999999.001000"))
            first = await fake.wait_for("chat.postMessage", timeout=10)
            assert first.body["thread_ts"] == "1699999999.001000"
            await env.adapter.drain(20)
            assert len(fake.calls_to("chat.postMessage")) == 1
            final = fake.calls_to("chat.update")[-1]
            assert final.body["ts"] == env.fake_ts(first)
            assert "You are alice, the owner" in texts(final)
            assert "writing…" not in texts(final) and "limited mode" not in texts(final)


async def test_thread_answers_use_slack_streaming_messages(tmp_path: Path, fake: FakeSlack) -> None:
    """Where Slack streams, a threaded answer is one streaming message: started with the first
    words, appended, then stopped with the reply's footer; no message edits."""
    fake.streaming = True
    async for env in slack_env(tmp_path, fake, slack_tools()):
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
    async for env in slack_env(tmp_path, fake, slack_tools()):
        for n, ts in enumerate(("1699999999.003000", "1699999999.004000"), start=1):
            await env.event(env.mention("/talk", ts=ts))
            await fake.wait_for("chat.postMessage", count=n, timeout=10)
            await env.adapter.drain(20)
            final = fake.calls_to("chat.update")[-1]
            assert "Hello there, world" in texts(final) and "4 tokens" in texts(final)
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
