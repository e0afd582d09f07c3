"""Limited mode under attack (issue 14, finding 3): the intent matcher is linear time, every
surface refuses an over-long message with a clear reply before anything runs, and the rate limit
is applied before the matcher. Timings here are correctness bounds, not benchmarks
(benchmarks/matcher.py measures)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakes.fake_slack import BOT_USER_ID, DEFAULT_TEAM_ID, FakeSlack
from sqlmodel import select

from bot import app
from bot.adapters.console import Console
from bot.adapters.slack import SlackAdapter
from bot.agent import offline
from bot.testing import BotHarness, running_bot
from bot.web import build_web_app
from storage import audit
from storage.models import Approval
from tools.contract import Role

ROOT = Path(__file__).resolve().parents[1]
# A message this long is far past every cap, so the clear refusal must come back at once.
HUGE = 39_000
# Generous: the linear matcher takes about a millisecond for these inputs; the old regexes
# took 4.7 s for 1,500 spaces and grew with the cube of the length.
MATCH_BOUND_S = 0.5
CHILD_TIMEOUT_S = 20.0
ALL_TOOLS = sorted({intent.tool for intent in offline.INTENTS})

# Adversarial shapes: long runs of spaces (and other whitespace) between words, and one word
# repeated, after each intent's leading phrase.
_PREFIXES = (
    "deploy a",
    "please deploy a",
    "how much would a",
    "estimate a",
    "which gpu for a",
    "find a",
    "search models a",
    "status of a",
    "delete a",
    "stop a",
    "is a",
    "spend",
    "what's my spend",
)
# (unit, repeats): about 20,000 characters each, built in the child process.
_FILLERS = (
    (" ", 20_000),
    (" \t\n", 7_000),
    ("a ", 10_000),
    ("stop ", 4_000),
    (". ", 10_000),
    ("please ", 3_000),
    ("is ", 7_000),
    ("cost ", 4_000),
    ("!", 20_000),
)


def _slowest_in_child(code: str) -> tuple[float, str]:
    """Run `code` (which prints the slowest time and its input's label) in a child process, so
    a regex that backtracks for hours fails this test after CHILD_TIMEOUT_S instead of hanging
    the run (a regex match holds the GIL: a thread with a deadline cannot stop it)."""
    try:
        out = subprocess.run(
            [sys.executable, "-"],
            input=textwrap.dedent(code),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=True,
        ).stdout
    except subprocess.TimeoutExpired:
        pytest.fail(f"matching did not finish within {CHILD_TIMEOUT_S:.0f} s (backtracking)")
    seconds, label = out.strip().split(" ", 1)
    return float(seconds), label


def test_the_reported_catastrophic_input_matches_in_linear_time() -> None:
    """`deploy a` + 20,000 spaces + `b` (the audit's 4.7 s input had 1,500 spaces) and the same
    shape after every other intent's phrase, through `offline.match` with every tool offered."""
    seconds, label = _slowest_in_child(
        f"""
        import time
        from bot.agent import offline
        available = set({ALL_TOOLS!r})
        slowest = (0.0, "")
        for prefix in {_PREFIXES!r}:
            for unit, repeats in {_FILLERS!r}:
                filler = unit * repeats
                text = prefix + filler + "b"
                t0 = time.perf_counter()
                offline.match(text, available)
                slowest = max(slowest, (time.perf_counter() - t0, repr(prefix + filler[:6])))
        print(*slowest)
        """
    )
    assert seconds < MATCH_BOUND_S, f"{label}: {seconds:.2f} s"


def test_every_intent_pattern_is_linear_even_past_the_matchers_length_cap() -> None:
    """Defence in depth: the length cap is not what keeps matching fast. Each pattern, on the
    normalised text the matcher gives it, stays fast at 20,000 characters."""
    seconds, label = _slowest_in_child(
        f"""
        import time
        from bot.agent import offline
        slowest = (0.0, "")
        for prefix in {_PREFIXES!r}:
            for unit, repeats in {_FILLERS!r}:
                filler = unit * repeats
                text = offline.normalise(prefix + filler + "b")
                for intent in offline.INTENTS:
                    t0 = time.perf_counter()
                    m = intent.pattern.search(text)
                    if m is not None:
                        intent.build(m)
                    took = time.perf_counter() - t0
                    slowest = max(slowest, (took, intent.tool + ":" + repr(prefix + filler[:6])))
        print(*slowest)
        """
    )
    assert seconds < MATCH_BOUND_S, f"{label}: {seconds:.2f} s"


# --- phrasings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "model"),
    [
        ("please spin up llama 8b for me", "llama 8b"),
        ("can you deploy Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("launch mistral on a cheap gpu", "mistral"),
        # neighbours of the three, and the forms the old matcher already took
        ("Can you please deploy Qwen/Qwen2.5-0.5B-Instruct?", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("spin up   llama 8b", "llama 8b"),
        ("launch mistral on the cheapest GPU, please", "mistral"),
        ("could you launch a qwen 0.5b for me?", "qwen 0.5b"),
        ("deploy qwen, please", "qwen"),
        ("please deploy qwen!", "qwen"),
        ("  deploy\tqwen 0.5b  ", "qwen 0.5b"),
    ],
)
def test_deploy_phrasings_map_to_deploy_model_with_the_model_text(text: str, model: str) -> None:
    assert offline.match(text, set(ALL_TOOLS)) == ("deploy_model", {"model": model})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can you help", ("help", {})),
        ("could you stop the idle ones please", ("stop_idle_deployments", {})),
        ("please stop qwen-7b", ("stop_deployment", {"deployment": "qwen-7b"})),
        ("what's my spend this week?", ("get_spend", {"period": "this week"})),
        ("spend", ("get_spend", {"period": "this week"})),
        (
            "how much would it cost to deploy llama 8b cost",
            ("estimate_cost", {"model": "llama 8b"}),
        ),
        ("what gpu does qwen 32b need?", ("recommend_gpu", {"model": "qwen 32b"})),
        ("look for coder models", ("search_models", {"query": "coder"})),
        ("show me my deployments", ("list_deployments", {})),
        ("health?", ("list_deployments", {})),
        ("is the qwen-7b up", ("deployment_status", {"deployment": "qwen-7b"})),
        ("tear down qwen-7b.", ("delete_deployment", {"deployment": "qwen-7b"})),
        ("what is my role", ("whoami", {})),
    ],
)
def test_other_phrasings_keep_their_meaning(
    text: str, expected: tuple[str, dict[str, Any]]
) -> None:
    assert offline.match(text, set(ALL_TOOLS)) == expected


def test_a_long_text_is_not_understood_rather_than_guessed_at() -> None:
    # Limited mode follows short requests; a paragraph that happens to contain "budget" is not
    # a request for the budget.
    text = "deploy qwen " + "and tell me a story " * 100
    assert len(text) > offline.MAX_MATCH_CHARS
    assert offline.match(text, set(ALL_TOOLS)) is None


async def test_new_phrasing_end_to_end_is_an_approval_card_not_a_deploy(
    cockpit: BotHarness,
) -> None:
    reply = await cockpit.send("please spin up llama 8b for me", user="alice", role="member")
    assert reply.approval_id is not None, reply.as_plain_text()
    assert "limited mode" in (reply.footer or "")
    with cockpit.services.db.session() as s:
        row = s.get(Approval, reply.approval_id)
        assert row is not None and row.tool == "deploy_model" and row.status == "pending"
        assert json.loads(row.args_json)["model"] == "llama 8b"


# --- message too long ------------------------------------------------------------------------


def _audit_count(bot: BotHarness) -> int:
    ctx = bot.ctx(user="alice")
    with bot.services.db.session() as s:
        return len(audit.query(s, org_id=ctx.org_id))


def _approval_count(bot: BotHarness) -> int:
    with bot.services.db.session() as s:
        return len(s.exec(select(Approval)).all())


def _assert_too_long(text: str, limit: int) -> None:
    assert f"limited to {limit:,} characters" in text, text
    assert "Shorten it" in text


@pytest.fixture
def matcher_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every text the limited-mode matcher is asked about (and still matches it)."""
    calls: list[str] = []
    real = offline.match

    def spy(text: str, available: set[str]) -> Any:
        calls.append(text)
        return real(text, available)

    monkeypatch.setattr(offline, "match", spy)
    return calls


async def test_over_long_plain_words_are_refused_before_anything_runs(
    cockpit: BotHarness, matcher_calls: list[str]
) -> None:
    before = _audit_count(cockpit)
    reply = await cockpit.send("deploy qwen " + "x" * HUGE, user="alice", role="member")
    assert not reply.ok and reply.error_code == "invalid_input"
    _assert_too_long(reply.text, app.MAX_MESSAGE_CHARS)
    assert f"{len('deploy qwen ') + HUGE:,}" in reply.text  # says how long it was
    assert matcher_calls == []
    assert _audit_count(cockpit) == before and _approval_count(cockpit) == 0
    # Right at the limit is fine.
    ok = await cockpit.send("who am i" + " " * (app.MAX_MESSAGE_CHARS - 8), user="alice")
    assert ok.ok and "Role" in ok.as_plain_text()


async def test_over_long_command_and_model_chat_are_refused(cockpit: BotHarness) -> None:
    before = _audit_count(cockpit)
    command = await cockpit.send("/deploy " + "q" * HUGE, user="alice", role="member")
    assert not command.ok
    _assert_too_long(command.text, app.MAX_MODEL_CHAT_CHARS)
    ctx = cockpit.ctx(user="alice", role=Role.member)
    chat = await cockpit.cockpit.chat_with_deployment(ctx, 1, "y" * (app.MAX_MODEL_CHAT_CHARS + 1))
    assert not chat.ok
    _assert_too_long(chat.text, app.MAX_MODEL_CHAT_CHARS)
    direct = await cockpit.cockpit.converse(ctx, "z" * (app.MAX_MESSAGE_CHARS + 1))
    _assert_too_long(direct.text, app.MAX_MESSAGE_CHARS)
    assert _audit_count(cockpit) == before and _approval_count(cockpit) == 0


async def test_console_prints_the_too_long_reply(cockpit: BotHarness) -> None:
    out = io.StringIO()
    console = Console(cockpit.cockpit, user="alice", stdin=io.StringIO(""), stdout=out)
    await console.handle_line("stop " + "idle " * (HUGE // 5))
    _assert_too_long(out.getvalue(), app.MAX_MESSAGE_CHARS)
    assert out.getvalue().startswith("Error: ")
    assert _audit_count(cockpit) == 0


# --- Slack: a 39 KB mention ------------------------------------------------------------------

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
async def slack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
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
    users = {"UALICE": {"id": "UALICE", "name": "alice", "profile": {"display_name": "alice"}}}
    async with (
        FakeSlack(users=users) as fake,
        running_bot(
            tmp_path,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake.api_url,
            SLACK_BOT_TOKEN="xoxb-test-token-1234",
        ) as bot,
    ):
        adapter = SlackAdapter(bot.cockpit, mode="http")
        await adapter.start()
        async with TestClient(
            TestServer(build_web_app(bot.cockpit, slack=adapter), host="127.0.0.1")
        ) as http:
            try:
                yield bot, fake, adapter, http
            finally:
                await adapter.close()


async def test_a_39kb_slack_mention_gets_the_too_long_reply_and_runs_nothing(
    slack: Any, matcher_calls: list[str]
) -> None:
    bot, fake, adapter, http = slack
    text = "deploy " + "qwen " * (HUGE // 5)  # words, so collapsing whitespace does not shrink it
    event = {
        "type": "app_mention",
        "user": "UALICE",
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": "1699999999.000100",
        "channel": "C0GENERAL",
        "event_ts": "1699999999.000100",
    }
    body = json.dumps(
        {
            "token": "legacy",
            "team_id": DEFAULT_TEAM_ID,
            "api_app_id": "AFAKE",
            "event": event,
            "type": "event_callback",
            "event_id": "EvLONG",
            "event_time": int(bot.clock.now().timestamp()),
        }
    )
    ts = int(bot.clock.now().timestamp())
    digest = hmac.new(
        SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    resp = await http.post(
        "/slack/events",
        data=body.encode(),
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": f"v0={digest}",
        },
    )
    assert resp.status == 200
    answer = await fake.wait_for("chat.postMessage")
    await adapter.drain()
    posted = json.dumps(answer.body.get("blocks") or []) + str(answer.body.get("text") or "")
    _assert_too_long(posted, app.MAX_MESSAGE_CHARS)
    assert answer.body["thread_ts"] == "1699999999.000100"
    assert matcher_calls == []
    assert _audit_count(bot) == 0


# --- rate limit before the matcher -----------------------------------------------------------


async def test_rate_limit_refuses_before_the_matcher_runs(
    tmp_path: Path, matcher_calls: list[str]
) -> None:
    async with running_bot(tmp_path, COCKPIT_RATE_LIMIT_PER_MINUTE=3) as bot:
        # One message that runs one tool counts once, as before (3 fit in the limit of 3).
        for _ in range(3):
            assert (await bot.send("who am i", user="alice")).ok
        assert len(matcher_calls) == 3
        limited = await bot.send("who am i", user="alice")
        assert (
            not limited.ok and "Slow down" in limited.text and limited.error_code == "rate_limited"
        )
        assert limited.retry_after is not None
        assert len(matcher_calls) == 3  # refused before matching
        assert (await bot.send("who am i", user="bob")).ok  # per user, as before
        bot.clock.advance(61)
        assert (await bot.send("who am i", user="alice")).ok


async def test_messages_the_matcher_does_not_understand_count_too(
    tmp_path: Path, matcher_calls: list[str]
) -> None:
    async with running_bot(tmp_path, COCKPIT_RATE_LIMIT_PER_MINUTE=3) as bot:
        for _ in range(3):
            lost = await bot.send("sing me a song", user="alice")
            assert not lost.ok and lost.text == offline.NOT_UNDERSTOOD
        refused = await bot.send("sing me a song", user="alice")
        assert "Slow down" in refused.text
        assert len(matcher_calls) == 3
