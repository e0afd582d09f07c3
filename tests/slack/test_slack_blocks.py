"""Block Kit rendering of replies: limits, escaping, the sandbox mark, errors."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import Block

from bot.adapters import slack_blocks
from tools.contract import (
    Button,
    Reply,
    Table,
)

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
