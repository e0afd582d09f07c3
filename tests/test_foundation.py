"""The pipeline end to end through the console harness: registry → router → dispatcher → audit."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.standins import add_launch
from pydantic import BaseModel, ConfigDict

from bot.testing import BotHarness, running_bot
from storage import audit
from storage.models import ApiKey
from tools.contract import REGISTRY, Registry, Reply, Role, SideEffect, ToolContext, arg, tool

ROOT = Path(__file__).resolve().parents[1]


def _registry_with_test_tools() -> tuple[Registry, dict[str, int]]:
    """The built-in tools plus an admin tool and the shared approval-gated `launch`, which counts
    its runs."""
    reg = Registry()
    for t in REGISTRY.all():
        reg.add(t)
    runs = {"launch": 0}

    add_launch(reg, runs, with_token=True)

    class KeyInput(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str = arg(description="Key name", positional=True)
        secret: str = arg(description="The value", secret=True)

    @tool(
        name="store_key",
        command="storekey",
        description="Admin-only: store a key.",
        input_model=KeyInput,
        role=Role.admin,
        side_effect=SideEffect.admin,
        registry=reg,
    )
    async def store_key(tc: ToolContext, args: KeyInput) -> Reply:
        logging.getLogger("test.tool").warning(
            "storing key %s with value %s", args.name, args.secret
        )
        return Reply(text=f"Stored {args.name} (…{args.secret[-4:]}).")

    return reg, runs


@pytest.fixture
async def bot(tmp_path: Path):
    reg, runs = _registry_with_test_tools()
    async with running_bot(tmp_path, registry=reg) as harness:
        harness.runs = runs  # type: ignore[attr-defined]
        yield harness


def audit_rows(bot: BotHarness, **filters):
    ctx = bot.ctx(user="alice")
    with bot.services.db.session() as s:
        return audit.query(s, org_id=ctx.org_id, **filters)


async def test_help_lists_commands_from_the_registry(cockpit: BotHarness) -> None:
    reply = await cockpit.send("/help")
    text = reply.as_plain_text()
    assert reply.ok
    assert "/whoami" in text and "/help [topic]" in text
    # The list stays readable: optional flags are folded, `/help <command>` spells them out.
    assert "/deploy <model> [options]" in text and "--idle-timeout" not in text
    detail = await cockpit.send("/help whoami")
    assert "Show who you are" in detail.as_plain_text()
    deploy = (await cockpit.send("/help deploy")).as_plain_text()
    assert "--idle-timeout IDLE_TIMEOUT" in deploy and "e.g. /deploy" in deploy


async def test_whoami_answers_role_and_workspace(cockpit: BotHarness) -> None:
    reply = await cockpit.send("/whoami", user="alice", role="member")
    text = reply.as_plain_text()
    assert "Role: member" in text
    assert "Workspace: local (console)" in text
    assert "sandbox" in (reply.footer or "")


async def test_first_member_of_a_new_workspace_is_owner_then_members(cockpit: BotHarness) -> None:
    first = await cockpit.send("/whoami", user="founder", workspace="T1")
    second = await cockpit.send("/whoami", user="newbie", workspace="T1")
    assert "Role: owner" in first.as_plain_text()
    assert "Role: member" in second.as_plain_text()


async def test_unknown_command_suggests_the_closest(cockpit: BotHarness) -> None:
    reply = await cockpit.send("/whoamii")
    assert not reply.ok
    assert "Unknown command /whoamii" in reply.text and "Did you mean /whoami?" in reply.text


async def test_missing_argument_prints_usage_and_writes_nothing(bot: BotHarness) -> None:
    before = len(audit_rows(bot))
    reply = await bot.send("/launch", user="alice", role="member")
    assert not reply.ok
    assert "target is required" in reply.text
    assert "Usage: /launch <target> [--size SIZE] [--token TOKEN]" in reply.text
    bad = await bot.send("/launch rocket --size 99", user="alice", role="member")
    assert "size: Input should be less than or equal to 8" in bad.text
    unknown = await bot.send("/launch rocket --colour red", user="alice", role="member")
    assert "Unknown option --colour" in unknown.text
    assert len(audit_rows(bot)) == before
    assert bot.runs["launch"] == 0  # type: ignore[attr-defined]


async def test_viewer_calling_admin_tool_is_refused_and_audited(bot: BotHarness) -> None:
    reply = await bot.send("/storekey runpod --secret rpa_ABCDEFGHIJKL", user="vic", role="viewer")
    assert not reply.ok
    assert "needs the admin role; you are a viewer" in reply.text
    denied = audit_rows(bot, outcome="denied")
    assert denied and denied[0].tool == "store_key" and denied[0].actor == "vic"
    assert "rpa_ABCDEFGHIJKL" not in denied[0].args_json


async def test_approval_by_requester_executes_exactly_once(bot: BotHarness) -> None:
    ask = await bot.send("/launch rocket --size 2", user="alice", role="member")
    assert ask.approval_id is not None
    assert [b.label for b in ask.buttons] == ["Approve", "Cancel"]
    assert "expires in 10 min" in (ask.footer or "")
    assert bot.runs["launch"] == 0  # type: ignore[attr-defined]
    done = await bot.approve(ask.approval_id, user="alice")
    assert done.ok and "Launched 2 × rocket" in done.text
    assert bot.progress == ["launching rocket"]
    again = await bot.approve(ask.approval_id, user="alice")
    assert not again.ok and "already executed" in again.text
    assert bot.runs["launch"] == 1  # type: ignore[attr-defined]
    outcomes = [r.outcome for r in audit_rows(bot, tool="launch")]
    assert outcomes[::-1] == ["approval_requested", "approved", "succeeded", "denied"]


async def test_approval_by_another_member_is_refused_but_admin_may(bot: BotHarness) -> None:
    ask = await bot.send("/launch rocket", user="alice", role="member")
    refused = await bot.approve(ask.approval_id, user="bob", role="member")
    assert not refused.ok and "Only the person who asked, or an admin" in refused.text
    assert bot.runs["launch"] == 0  # type: ignore[attr-defined]
    ok = await bot.approve(ask.approval_id, user="carol", role="admin")
    assert ok.ok and bot.runs["launch"] == 1  # type: ignore[attr-defined]


async def test_expired_approval_gives_clear_message(bot: BotHarness) -> None:
    ask = await bot.send("/launch rocket", user="alice", role="member")
    bot.clock.advance(601)
    late = await bot.approve(ask.approval_id, user="alice")
    assert not late.ok and "This approval expired; nothing was done" in late.text
    assert bot.runs["launch"] == 0  # type: ignore[attr-defined]
    assert audit_rows(bot, outcome="expired")


async def test_double_approval_at_once_executes_once(bot: BotHarness) -> None:
    ask = await bot.send("/launch rocket", user="alice", role="member")
    a, b = await asyncio.gather(
        bot.approve(ask.approval_id, user="alice"), bot.approve(ask.approval_id, user="alice")
    )
    assert sorted([a.ok, b.ok]) == [False, True]
    assert bot.runs["launch"] == 1  # type: ignore[attr-defined]


async def test_cancel_does_nothing_and_blocks_later_approval(bot: BotHarness) -> None:
    ask = await bot.send("/launch rocket", user="alice", role="member")
    cancelled = await bot.cancel(ask.approval_id, user="alice")
    assert "Cancelled" in cancelled.text
    late = await bot.approve(ask.approval_id, user="alice")
    assert not late.ok and bot.runs["launch"] == 0  # type: ignore[attr-defined]


async def test_same_idempotency_key_runs_once(bot: BotHarness) -> None:
    first = await bot.send("/launch rocket", user="alice", role="member", idempotency_key="evt-1")
    second = await bot.send("/launch rocket", user="alice", role="member", idempotency_key="evt-1")
    assert first.approval_id is not None
    assert second.approval_id == first.approval_id
    assert "already handled" in (second.footer or "")
    requested = audit_rows(bot, outcome="approval_requested")
    assert len(requested) == 1


async def test_secrets_never_reach_logs_or_audit(bot: BotHarness, caplog) -> None:
    secret = "rpa_SUPERSECRETVALUE123"
    with caplog.at_level(logging.DEBUG):
        reply = await bot.send(f"/storekey runpod --secret {secret}", user="alice", role="admin")
    assert reply.ok and secret not in reply.as_plain_text() and "…E123" in reply.text
    assert secret not in caplog.text
    assert "[redacted]" in caplog.text
    for row in audit_rows(bot):
        assert secret not in row.args_json and secret not in row.detail


async def test_rate_limit_per_user(tmp_path: Path) -> None:
    async with running_bot(tmp_path, COCKPIT_RATE_LIMIT_PER_MINUTE=3) as bot:
        for _ in range(3):
            assert (await bot.send("/whoami", user="alice")).ok
        limited = await bot.send("/whoami", user="alice")
        assert not limited.ok and "Slow down" in limited.text
        assert (await bot.send("/whoami", user="bob")).ok  # per user
        bot.clock.advance(61)
        assert (await bot.send("/whoami", user="alice")).ok


async def test_plain_words_use_limited_mode_matcher(cockpit: BotHarness) -> None:
    reply = await cockpit.send("who am i?", user="alice")
    assert "Role:" in reply.as_plain_text()
    assert "limited mode" in (reply.footer or "")
    lost = await cockpit.send("sing me a song")
    assert not lost.ok and "/help" in lost.text


async def test_tool_crash_gives_reference_not_traceback(tmp_path: Path) -> None:
    reg = Registry()

    @tool(name="boom", description="Always fails.", registry=reg)
    async def boom(tc: ToolContext, args: BaseModel) -> Reply:
        raise RuntimeError("internal detail")

    async with running_bot(tmp_path, registry=reg) as bot:
        reply = await bot.send("/boom")
        assert not reply.ok and "Something went wrong running /boom (reference" in reply.text
        assert "internal detail" not in reply.text and "Traceback" not in reply.text


def test_schema_generation_for_claude() -> None:
    reg, _ = _registry_with_test_tools()
    schema = reg.get("launch").anthropic_schema()  # type: ignore[union-attr]
    assert schema["name"] == "launch"
    assert schema["input_schema"]["required"] == ["target"]
    assert schema["input_schema"]["properties"]["size"]["maximum"] == 8
    assert "positional" not in str(schema)


def test_console_piped_non_interactive(tmp_path: Path) -> None:
    env = {**os.environ, "COCKPIT_DATA_DIR": str(tmp_path), "COCKPIT_SANDBOX": "on"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--user", "alice", "--role", "member"],
        input="/help\n/whoami\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "/whoami" in out.stdout and "Role: member" in out.stdout
    assert "Workspace: local (console)" in out.stdout
    assert (tmp_path / "cockpit.db").exists()
    assert oct((tmp_path / "secret.key").stat().st_mode)[-3:] == "600"
    assert "COCKPIT_SECRET_KEY is not set" in out.stderr


def test_api_key_table_exists() -> None:
    assert ApiKey.__tablename__ == "apikey"


def test_env_example_lists_every_setting() -> None:
    from bot.settings import Settings

    text = (ROOT / ".env.example").read_text()
    missing = [
        f.alias for f in Settings.model_fields.values() if f.alias and f"{f.alias}=" not in text
    ]
    assert missing == []
