"""Slack AI assistant threads end to end: signed assistant events into `cockpit web`'s aiohttp
app, the fake Slack Web API's received calls out (the harness is tests/fakes/slack_env.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fakes.fake_slack import DEFAULT_TEAM_ID, Call, FakeSlack
from fakes.slack_env import CHANNEL, SlackEnv, slack_env, slack_tools, texts

from bot.adapters import slack_blocks
from bot.adapters.slack_assistant import (
    SUGGESTED_PROMPTS,
    THINKING_STATUS,
    MemoryThreadContextStore,
    status_line,
)

DM = "D0ALICE"
THREAD = "1700000100.000100"


@pytest.fixture
async def slack(tmp_path: Path, fake: FakeSlack) -> AsyncIterator[SlackEnv]:
    async for env in slack_env(tmp_path, fake, slack_tools()):
        yield env


def thread_started(user: str = "UALICE") -> dict[str, Any]:
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "context": {"channel_id": CHANNEL, "team_id": DEFAULT_TEAM_ID, "enterprise_id": None},
            "channel_id": DM,
            "thread_ts": THREAD,
        },
        "event_ts": "1700000100.000150",
    }


def user_message(text: str, *, ts: str = "1700000100.000200") -> dict[str, Any]:
    """A message the person typed in the assistant thread (Slack sends it as message.im)."""
    return {
        "type": "message",
        "channel_type": "im",
        "channel": DM,
        "user": "UALICE",
        "text": text,
        "ts": ts,
        "thread_ts": THREAD,
        "event_ts": ts,
    }


def statuses(fake: FakeSlack) -> list[str]:
    return [str(c.body.get("status")) for c in fake.calls_to("assistant.threads.setStatus")]


def in_thread(fake: FakeSlack) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if c.body.get("thread_ts") == THREAD]


async def test_thread_started_greets_and_suggests_prompts(slack: SlackEnv) -> None:
    event_id = "EvSTART"
    assert (await slack.event(thread_started(), event_id=event_id)).status == 200
    prompts = await slack.fake.wait_for("assistant.threads.setSuggestedPrompts")
    # A retried delivery of the same event greets no second time.
    assert (await slack.event(thread_started(), event_id=event_id, retry=1)).status == 200
    await slack.adapter.drain()
    assert prompts.body["channel_id"] == DM and prompts.body["thread_ts"] == THREAD
    titles = [p["title"] for p in prompts.body["prompts"]]
    assert 3 <= len(titles) <= 4 and "What's my spend this week?" in titles
    assert titles == [p["title"] for p in SUGGESTED_PROMPTS]
    assert all(p["message"] for p in prompts.body["prompts"])
    greetings = slack.fake.calls_to("chat.postMessage")
    assert len(greetings) == 1 and greetings[0].body["channel"] == DM
    assert greetings[0].body["thread_ts"] == THREAD and "cockpit" in texts(greetings[0])
    assert len(slack.fake.calls_to("assistant.threads.setSuggestedPrompts")) == 1


async def test_message_sets_status_first_then_is_answered_once_in_the_thread(
    slack: SlackEnv,
) -> None:
    assert (await slack.event(user_message("who am i"))).status == 200
    answer = await slack.fake.wait_for("chat.postMessage")
    await slack.adapter.drain()
    methods = [c.method for c in slack.fake.calls]
    first_status = slack.fake.calls_to("assistant.threads.setStatus")[0]
    assert first_status.body["status"] == THINKING_STATUS
    assert first_status.body["channel_id"] == DM and first_status.body["thread_ts"] == THREAD
    assert methods.index("assistant.threads.setStatus") < methods.index("chat.postMessage")
    # Answered by the assistant path only: the `message.im` DM listener did not answer too.
    assert slack.fake.calls_to("chat.postMessage") == [answer]
    assert answer.body["channel"] == DM and answer.body["thread_ts"] == THREAD
    assert "Role" in texts(answer) and "limited mode" in texts(answer)
    # The reply clears the status (Slack does that): no explicit clearing call.
    assert statuses(slack.fake) == [THINKING_STATUS]


async def test_tool_progress_updates_the_status_instead_of_posting_lines(
    slack: SlackEnv,
) -> None:
    await slack.event(user_message("/warmup"))
    answer = await slack.fake.wait_for("chat.postMessage")
    await slack.adapter.drain()
    assert statuses(slack.fake) == [
        THINKING_STATUS,
        "is working: step 1 of 2",
        "is working: step 2 of 2",
    ]
    assert in_thread(slack.fake) == [answer] and "Warm and ready." in texts(answer)
    methods = [c.method for c in slack.fake.calls]
    last_status = len(methods) - 1 - methods[::-1].index("assistant.threads.setStatus")
    assert last_status < methods.index("chat.postMessage")


async def test_approved_run_in_an_assistant_thread_reports_progress_as_status(
    slack: SlackEnv,
) -> None:
    await slack.event(user_message("/launch gpu"))
    card = await slack.fake.wait_for("chat.postMessage")
    await slack.adapter.drain()
    assert card.body["thread_ts"] == THREAD and slack.tools.runs["launch"] == 0
    click = slack.click(
        card,
        slack_blocks.APPROVE_ACTION_ID,
        user="UALICE",
        user_name="alice",
        channel=DM,
        channel_name="directmessage",
        thread_ts=THREAD,
    )
    assert (await click).status == 200
    await slack.fake.wait_for("chat.update")
    await slack.adapter.drain()
    assert slack.tools.runs["launch"] == 1
    assert statuses(slack.fake)[-1] == "is working: launching gpu"
    posts = in_thread(slack.fake)
    assert len(posts) == 2 and posts[0] is card  # the card and the result; no progress line
    assert "Launched 1 × gpu." in texts(posts[1])
    methods = [c.method for c in slack.fake.calls]
    last_status = len(methods) - 1 - methods[::-1].index("assistant.threads.setStatus")
    assert last_status < len(methods) - 1 - methods[::-1].index("chat.postMessage")


async def test_progress_goes_into_the_thread_when_slack_refuses_a_status(
    slack: SlackEnv,
) -> None:
    """An ordinary DM thread (no assistant view) also reaches this path; if Slack refuses the
    status there, progress is posted as lines, as for any DM."""
    slack.fake.fail_once("assistant.threads.setStatus", "not_allowed")
    await slack.event(user_message("/warmup"))
    await slack.fake.wait_for("chat.postMessage", count=3)
    await slack.adapter.drain()
    posts = in_thread(slack.fake)
    assert len(posts) == 3 and "Warm and ready." in texts(posts[-1])
    assert "step 1 of 2" in texts(posts[0]) and "step 2 of 2" in texts(posts[1])
    assert len(slack.fake.calls_to("assistant.threads.setStatus")) == 1  # no more attempts


async def test_claude_streams_into_the_thread_and_the_status_is_cleared(
    tmp_path: Path,
    fake: FakeSlack,
) -> None:
    from fakes.fake_anthropic import running_fake_anthropic, text_turn, tool_use

    async with running_fake_anthropic() as claude:
        claude.add(tool_use("warmup", {}, text="Let me warm it up first."))
        claude.add(text_turn(" It is warm and ready."))
        overrides = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": claude.url}
        async for env in slack_env(tmp_path, fake, slack_tools(), **overrides):
            await env.event(user_message("warm it up please"))
            first = await fake.wait_for("chat.postMessage", timeout=10)
            await env.adapter.drain(20)
            assert fake.calls_to("chat.postMessage") == [first]
            assert first.body["thread_ts"] == THREAD and "Let me" in texts(first)
            final = fake.calls_to("chat.update")[-1]
            assert final.body["ts"] == env.fake_ts(first)
            assert "warm and ready" in texts(final) and "writing…" not in texts(final)
            # Progress after the streamed message started showed as the status; the answer
            # was an edit (which does not clear it), so it was cleared explicitly at the end.
            assert statuses(fake)[0] == THINKING_STATUS
            assert "is working: step 2 of 2" in statuses(fake)
            assert statuses(fake)[-1] == ""
            methods = [c.method for c in fake.calls]
            assert methods[-1] == "assistant.threads.setStatus"


async def test_context_changes_are_kept_without_reading_history(slack: SlackEnv) -> None:
    changed = {
        "type": "assistant_thread_context_changed",
        "assistant_thread": {
            "user_id": "UALICE",
            "context": {"channel_id": "C0OTHER", "team_id": DEFAULT_TEAM_ID},
            "channel_id": DM,
            "thread_ts": THREAD,
        },
        "event_ts": "1700000100.000300",
    }
    assert (await slack.event(changed)).status == 200
    await slack.adapter.drain()
    assert [c.method for c in slack.fake.calls if c.method != "auth.test"] == []


async def test_memory_thread_context_store_keeps_the_latest() -> None:
    store = MemoryThreadContextStore(limit=2)
    for n in range(3):
        await store.save(channel_id=DM, thread_ts=f"t{n}", context={"channel_id": f"C{n}"})
    assert await store.find(channel_id=DM, thread_ts="t0") is None
    found = await store.find(channel_id=DM, thread_ts="t2")
    assert found is not None and found.channel_id == "C2"


def test_status_line_is_short() -> None:
    assert status_line("[12s] creating endpoint on A100") == "is working: creating endpoint on A100"
    assert len(status_line("x" * 500)) <= len("is working: ") + 60
    assert status_line("  ") == THINKING_STATUS
