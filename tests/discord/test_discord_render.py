"""Discord rendering of replies: embed limits, plain small replies, code fences, a huge reply
through a command."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import discord_payloads as p
from fakes.discord_env import (
    assert_within_limits,
    discord_bot,
)
from pydantic import BaseModel

from bot.adapters import discord_render as render
from tools.contract import (
    Image,
    Registry,
    Reply,
    ReplyField,
    Table,
    ToolContext,
    tool,
)

# --- rendering ------------------------------------------------------------------------------


def _huge_reply(chart: Path | None = None) -> Reply:
    return Reply(
        title="T" * 400,
        text=("a long line of output " * 20 + "\n") * 150,
        fields=[ReplyField(label=f"field {i} " + "n" * 300, value="v" * 2000) for i in range(40)],
        table=Table(
            columns=["#", "name", "value"], rows=[[str(i), f"row{i}", "x" * 50] for i in range(400)]
        ),
        footer="f" * 3000,
        image=Image(path=str(chart), title="chart") if chart else None,
    )


def test_huge_reply_stays_within_embed_limits(tmp_path: Path) -> None:
    chart = tmp_path / "spend chart.png"
    chart.write_bytes(b"\x89PNG fake")
    message = render.render_reply(_huge_reply(chart), sandbox=True)
    embeds = [e.to_dict() for e in message.embeds]
    assert_within_limits(embeds)  # type: ignore[arg-type]
    assert message.cut and message.total_length() <= render.MAX_TOTAL
    names = [a.filename for a in message.attachments]
    assert names == ["spend_chart.png", "reply.txt"]
    full = message.attachments[1].data or b""
    assert b"row399" in full and b"v" * 2000 in full
    assert embeds[0]["image"]["url"] == "attachment://spend_chart.png"
    assert "sandbox" in embeds[-1]["footer"]["text"]
    for e in embeds:  # code blocks stay balanced across the split
        assert (e.get("description") or "").count("```") % 2 == 0


def test_small_replies_render_plainly() -> None:
    ok = render.render_reply(Reply(title="Done", text="All good.", footer="x"), sandbox=False)
    assert not ok.cut and not ok.attachments
    assert ok.embeds[0].colour and ok.embeds[0].colour.value == render.COLOUR_OK
    assert ok.embeds[0].footer.text == "x"
    err = render.render_reply(Reply.error("Nope."), sandbox=True)
    assert err.embeds[0].colour and err.embeds[0].colour.value == render.COLOUR_ERROR
    assert "sandbox" in (err.embeds[0].footer.text or "")
    table = render.render_reply(
        Reply(table=Table(columns=["a", "b"], rows=[["1", "2"]])), sandbox=False
    )
    assert (table.embeds[0].description or "").startswith("```\n  a  b")


def test_split_text_keeps_code_fences_balanced() -> None:
    text = "intro\n```\n" + "\n".join(f"line {i}" for i in range(500)) + "\n```\nafter"
    pieces = render.split_text(text, 1000)
    assert all(len(piece) <= 1000 for piece in pieces)
    assert all(piece.count("```") % 2 == 0 for piece in pieces)
    assert "line 499" in pieces[-1] and pieces[-1].endswith("after")


async def test_huge_reply_through_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Registry
) -> None:
    @tool(name="dump", description="Prints a lot.", registry=registry)
    async def dump(tc: ToolContext, args: BaseModel) -> Reply:
        return _huge_reply()

    async with discord_bot(tmp_path, monkeypatch, registry=registry) as e:
        cmd = p.slash_command("dump")
        followups = await e.interact(cmd)
        assert_within_limits(followups[0].embeds)
        assert [name for name, _ in followups[0].files] == ["reply.txt"]
