"""Block Kit rendering of a `Reply` (and the few Slack-only views: approval decisions, the App
Home tab, the /connect modal). Pure functions: no I/O, no decisions, only layout within Slack's
limits (see reference A9). Anything too long is cut with "…", never rejected by Slack.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.render import (
    ELLIPSIS,
    SANDBOX_NOTE,
    code_blocks,
    sandbox_footer,
    split_text,
    table_lines,
    truncate,
)
from bot.surface import spell_reply
from tools.contract import REGISTRY, Button, Reply, Table

UMBRELLA_COMMAND = "cockpit"
# Slash commands in slack-manifest.yml besides /cockpit; each maps to the registry command of
# the same name, exactly like `/cockpit <name> ...` (a test holds this and the manifest together).
# Every other command is `/cockpit <name>` in Slack, and replies spell their hints that way.
SHORTCUT_COMMANDS = (
    "deploy",
    "models",
    "fit",
    "spend",
    "budget",
    "stop",
    "rollback",
    "chat",
    "alerts",
    "connect",
)

# Slack limits (docs.slack.dev block reference).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTION_ELEMENTS = 25
MAX_FALLBACK_TEXT = 3000  # message `text` works to 40k, but notifications want it short
MAX_MODAL_TITLE = 24
MAX_TABLE_CELL = 60

APPROVE_ACTION_ID = "cockpit_approve"
CANCEL_ACTION_ID = "cockpit_cancel"
COMMAND_ACTION_ID = "cockpit_command"
ACTION_ID_PREFIX = "cockpit_"
APPROVAL_BLOCK_ID = "cockpit_approval"
ACTIONS_BLOCK_ID = "cockpit_actions"
DECISION_BLOCK_ID = "cockpit_decision"
CONNECT_CALLBACK_ID = "cockpit_connect"
CONNECT_KEY_BLOCK = "key"
CONNECT_KEY_ACTION = "key"
CONNECT_PROVIDER_BLOCK = "provider"
CONNECT_PROVIDER_ACTION = "provider"
KNOWN_PROVIDERS = ("runpod", "huggingface", "anthropic")

_BOLD = re.compile(r"\*\*(.+?)\*\*")


@dataclass
class SlackMessage:
    """What chat.postMessage / chat.update / respond() take: fallback text plus blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        # No "blocks" key at all for a text-only message (Slack rejects an empty list).
        return {"text": self.text, "blocks": self.blocks} if self.blocks else {"text": self.text}


# --- text helpers --------------------------------------------------------------------------


def escape(text: str) -> str:
    """Make arbitrary text safe for mrkdwn: no `<!channel>`, links or mentions sneak in."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Escape, then map the one Markdown habit tools have (`**bold**`) to Slack's `*bold*`."""
    return _BOLD.sub(r"*\1*", escape(text))


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}}


def _context(*texts: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": truncate(t, MAX_CONTEXT_TEXT)}
            for t in texts[:MAX_CONTEXT_ELEMENTS]
            if t
        ],
    }


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_TEXT), "emoji": True},
    }


# --- parts of a reply ----------------------------------------------------------------------


def field_sections(fields: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Fields as sections of at most ten two-column fields each."""
    blocks = []
    for start in range(0, len(fields), MAX_SECTION_FIELDS):
        chunk = fields[start : start + MAX_SECTION_FIELDS]
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": truncate(f"*{escape(label)}*\n{mrkdwn(value)}", MAX_FIELD_TEXT),
                    }
                    for label, value in chunk
                ],
            }
        )
    return blocks


def table_sections(table: Table) -> list[dict[str, Any]]:
    """A table as monospace code blocks (Block Kit has no table in messages); rows are split over
    several sections when they do not fit one, each repeating the header."""
    lines = [escape(line) for line in table_lines(table, cell_limit=MAX_TABLE_CELL)]
    return [_section(b) for b in code_blocks(lines, MAX_SECTION_TEXT, header=2)]


def action_id_for(button: Button) -> str:
    return f"{ACTION_ID_PREFIX}{button.action}"


def is_command_action(action_id: str) -> bool:
    """A command button: `cockpit_command`, or `cockpit_command_<n>` when one actions block
    holds several (action ids must be unique within a block, see `actions_block`)."""
    if action_id == COMMAND_ACTION_ID:
        return True
    suffix = action_id.removeprefix(f"{COMMAND_ACTION_ID}_")
    return suffix != action_id and suffix.isascii() and suffix.isdigit()


def actions_block(buttons: list[Button]) -> dict[str, Any]:
    """Buttons as one actions block. Approve/Cancel carry the approval id as their value."""
    approval = any(b.action in ("approve", "cancel") for b in buttons)
    elements: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, b in enumerate(buttons[:MAX_ACTION_ELEMENTS]):
        action_id = action_id_for(b)
        if action_id in seen:  # action ids must be unique within a block
            action_id = f"{action_id}_{i}"
        seen.add(action_id)
        element: dict[str, Any] = {
            "type": "button",
            "text": {
                "type": "plain_text",
                "text": truncate(b.label, MAX_BUTTON_TEXT),
                "emoji": True,
            },
            "action_id": action_id,
            "value": truncate(b.value, MAX_BUTTON_VALUE),
        }
        if b.style in ("primary", "danger"):
            element["style"] = b.style
        elements.append(element)
    return {
        "type": "actions",
        "block_id": APPROVAL_BLOCK_ID if approval else ACTIONS_BLOCK_ID,
        "elements": elements,
    }


def slack_date(moment: datetime, *, label: str = "{date_short_pretty} at {time}") -> str:
    """A date Slack shows in each reader's timezone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{label}|{fallback}>"


def render_reply(
    reply: Reply,
    *,
    sandbox: bool = False,
    expires_at: datetime | None = None,
    max_blocks: int = MAX_MESSAGE_BLOCKS,
    include_actions: bool = True,
) -> SlackMessage:
    """The whole reply as Block Kit: header, text sections, fields, table, image note, buttons,
    expiry and footer, within `max_blocks` and every per-block limit. Command hints are
    spelled as Slack has them (`/cockpit status 3`)."""
    reply = spell_reply(
        reply,
        commands=REGISTRY.commands(),
        native=(UMBRELLA_COMMAND, *SHORTCUT_COMMANDS),
        umbrella=UMBRELLA_COMMAND,
    )
    content: list[dict[str, Any]] = []
    warn = ":warning: " if reply.is_error else ""
    if reply.title:
        content.append(_header(reply.title))
    if reply.text:
        chunks = split_text(mrkdwn(reply.text), MAX_SECTION_TEXT - len(warn))
        for i, chunk in enumerate(chunks):
            content.append(_section((warn if i == 0 else "") + chunk))
    elif warn and not reply.title:
        content.append(_section(warn + "Something went wrong."))
    if reply.fields:
        content.extend(field_sections([(f.label, f.value) for f in reply.fields]))
    if reply.table and (reply.table.rows or reply.table.columns):
        content.extend(table_sections(reply.table))
    if reply.image:
        content.append(_context(f":bar_chart: *{escape(reply.image.title)}* (attached below)"))

    tail: list[dict[str, Any]] = []
    if reply.buttons and include_actions:
        tail.append(actions_block(reply.buttons))
    notes = []
    if expires_at is not None:
        notes.append(f":hourglass_flowing_sand: Expires {slack_date(expires_at)}")
    footer = sandbox_footer(reply.footer, sandbox=sandbox)
    if footer:
        notes.append(mrkdwn(footer))
    if notes:
        tail.append(_context(*notes))

    room = max_blocks - len(tail)
    if len(content) > room:
        hidden = len(content) - (room - 1)
        content = content[: room - 1]
        content.append(
            _section(
                f"_{ELLIPSIS} {hidden} more part(s) not shown: too long for one Slack message._"
            )
        )
    # The fallback text feeds notifications: escaped too, so no text can ping `<!channel>`.
    fallback = reply.as_plain_text() or ("Done." if reply.ok else "Something went wrong.")
    return SlackMessage(
        text=truncate(warn + escape(fallback), MAX_FALLBACK_TEXT), blocks=content + tail
    )


# --- approval cards ------------------------------------------------------------------------


def decided_blocks(blocks: list[dict[str, Any]], decision: str) -> list[dict[str, Any]]:
    """An approval card after the decision: the same card without its buttons (and without an
    earlier decision line), plus one line saying what was decided and by whom."""
    kept = [
        b
        for b in blocks
        if b.get("block_id") not in (APPROVAL_BLOCK_ID, DECISION_BLOCK_ID)
        and not (b.get("type") == "actions" and _has_approval_button(b))
    ]
    decision_block = _context(decision)
    decision_block["block_id"] = DECISION_BLOCK_ID
    kept = kept[: MAX_MESSAGE_BLOCKS - 1]
    return [*kept, decision_block]


def _has_approval_button(block: dict[str, Any]) -> bool:
    return any(
        e.get("action_id") in (APPROVE_ACTION_ID, CANCEL_ACTION_ID)
        for e in block.get("elements", [])
    )


def note(text: str) -> SlackMessage:
    """A one-section message (ephemeral notes: refusals, warnings)."""
    return SlackMessage(
        text=truncate(escape(text), MAX_FALLBACK_TEXT),
        blocks=[_section(truncate(mrkdwn(text), MAX_SECTION_TEXT))],
    )


def progress_line(text: str) -> SlackMessage:
    line = truncate(mrkdwn(text), MAX_SECTION_TEXT - 2)
    blocks = [_context(f"… {line}")]
    buttons = list(getattr(text, "buttons", ()))  # a ProgressNote (e.g. Cancel on /bench)
    if buttons:
        blocks.append(actions_block(buttons))
    return SlackMessage(text=truncate(escape(text), MAX_FALLBACK_TEXT), blocks=blocks)


# --- App Home and modals -------------------------------------------------------------------


def home_view(parts: list[tuple[str, Reply]], *, sandbox: bool) -> dict[str, Any]:
    """The App Home tab: one titled part per reply (who you are, deployments, spend)."""
    blocks: list[dict[str, Any]] = [_header("AI Dev Cockpit")]
    if sandbox:
        blocks.append(_context(f":test_tube: {SANDBOX_NOTE}"))
    for heading, reply in parts:
        rendered = render_reply(
            reply.model_copy(update={"footer": None, "buttons": []}),
            sandbox=False,
            max_blocks=MAX_VIEW_BLOCKS,
        ).blocks
        section = [{"type": "divider"}, _section(f"*{escape(heading)}*"), *rendered]
        if len(blocks) + len(section) > MAX_VIEW_BLOCKS - 1:
            blocks.append(_context(f"{ELLIPSIS} more is available with the slash commands."))
            break
        blocks.extend(section)
    blocks.append(_context("Use `/cockpit help` in any channel, or mention me with a question."))
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}


def connect_modal(*, provider: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    """The /connect modal: the key goes into a private input, never into a channel message."""
    blocks: list[dict[str, Any]] = []
    if provider is None:
        blocks.append(
            {
                "type": "input",
                "block_id": CONNECT_PROVIDER_BLOCK,
                "label": {"type": "plain_text", "text": "Provider"},
                "element": {
                    "type": "static_select",
                    "action_id": CONNECT_PROVIDER_ACTION,
                    "options": [
                        {"text": {"type": "plain_text", "text": p}, "value": p}
                        for p in KNOWN_PROVIDERS
                    ],
                },
            }
        )
    name = provider or "a provider"
    blocks.append(
        {
            "type": "input",
            "block_id": CONNECT_KEY_BLOCK,
            "label": {"type": "plain_text", "text": "API key"},
            "hint": {
                "type": "plain_text",
                "text": "Stored encrypted; shown afterwards only as its last four characters.",
            },
            "element": {
                "type": "plain_text_input",
                "action_id": CONNECT_KEY_ACTION,
                "placeholder": {"type": "plain_text", "text": f"Paste the key for {name}"},
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": CONNECT_CALLBACK_ID,
        "private_metadata": json.dumps({**metadata, "provider": provider}),
        "title": {"type": "plain_text", "text": truncate(f"Connect {name}", MAX_MODAL_TITLE)},
        "submit": {"type": "plain_text", "text": "Connect"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


__all__ = [
    "APPROVE_ACTION_ID",
    "CANCEL_ACTION_ID",
    "SlackMessage",
    "connect_modal",
    "decided_blocks",
    "escape",
    "home_view",
    "render_reply",
    "split_text",
    "truncate",
]
