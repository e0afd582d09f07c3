"""The text shaping every surface shares (bot.render): cuts, splits, tables, the sandbox mark."""

from __future__ import annotations

from bot.render import (
    ELLIPSIS,
    FENCE,
    SANDBOX_NOTE,
    code_blocks,
    one_line,
    sandbox_footer,
    table_lines,
    truncate,
)
from tools.contract import Table


def test_truncate_and_one_line() -> None:
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abc def", 5) == "abc" + ELLIPSIS
    assert one_line("  two\nlines  ", 20) == "two lines"
    assert one_line(" \n ", 20, default="conversation") == "conversation"


def test_code_blocks_repeat_the_header_and_keep_fences_inert() -> None:
    table = Table(columns=["name", "value"], rows=[[f"row{i}", "```x" * 3] for i in range(50)])
    lines = table_lines(table, cell_limit=8)
    assert all(len(cell) <= 8 for line in lines[2:] for cell in line.split())
    blocks = code_blocks(lines, 200, header=2)
    assert len(blocks) > 1
    for block in blocks:
        assert len(block) <= 200
        assert block.count(FENCE) == 2  # only its own: a fence in a cell is inert
        assert block.splitlines()[1:3] == lines[:2]
    assert "row49" in blocks[-1]
    assert code_blocks(table_lines(Table(columns=["a"], rows=[])), 200, header=2)


def test_sandbox_footer_says_sandbox_once_within_the_limit() -> None:
    assert sandbox_footer(None, sandbox=False) == ""
    assert sandbox_footer(None, sandbox=True) == SANDBOX_NOTE
    assert sandbox_footer("runs on the sandbox", sandbox=True) == "runs on the sandbox"
    long = sandbox_footer("f" * 500, sandbox=True, limit=100)
    assert len(long) <= 100 and long.endswith(SANDBOX_NOTE)
    assert sandbox_footer("took 2s", sandbox=True, note="sandbox") == "took 2s · sandbox"
    assert sandbox_footer("f" * 500, sandbox=False, limit=100) == "f" * 99 + ELLIPSIS


def test_a_pick_list_renders_as_a_question_with_command_buttons() -> None:
    """Not an error: no warning sign or error colour; each choice is a command button."""
    from bot.adapters import discord_render, slack_blocks
    from tools.contract import Button, Reply

    reply = Reply(text="'mistral' could mean several models. Pick one:", ok=False)
    reply.error_code = "needs_choice"
    reply.buttons = [
        Button(label="Mistral-7B", action="command", value="/deploy mistralai/Mistral-7B")
    ]
    slack = slack_blocks.render_reply(reply)
    assert ":warning:" not in slack.text
    (actions,) = [b for b in slack.blocks if b["type"] == "actions"]
    assert actions["elements"][0]["value"] == "/deploy mistralai/Mistral-7B"
    assert slack_blocks.is_command_action(actions["elements"][0]["action_id"])
    discord = discord_render.render_reply(reply, sandbox=False)
    assert discord.embeds[0].colour is not None
    assert discord.embeds[0].colour.value == discord_render.COLOUR_APPROVAL
    assert "⚠️" not in (discord.embeds[0].description or "")
