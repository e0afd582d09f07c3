"""Discord rendering of a `Reply` (and of alerts): embeds within Discord's limits, a table as a
code block, long output split across embeds or attached as a text file, images attached as files.

Discord does not validate embeds client-side (discord.py builds anything) and answers 400 past a
limit, so every limit is enforced here; whatever is cut is attached in full as `reply.txt`.
Pure functions, except `send_alert_embed`, the one small I/O helper the alert router uses.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import discord

from bot.render import (
    ELLIPSIS,
    code_blocks,
    one_line,
    sandbox_footer,
    split_text,
    table_lines,
    truncate,
)
from tools.contract import Reply, ReplyField

log = logging.getLogger(__name__)

# Discord limits (developer docs "Embed Limits"; reference B1).
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_TOTAL = 6000  # title + description + fields + footer + author, across all embeds
MAX_EMBEDS = 10
MAX_CONTENT = 2000  # plain message content
MAX_THREAD_NAME = 100
MAX_FILES = 10
MIN_PIECE = 64  # a cut-off piece shorter than this is not worth showing

EMPTY_VALUE = "—"  # Discord rejects empty field names/values
ATTACHMENT_NAME = "reply.txt"
CUT_NOTE = f"\n{ELLIPSIS} (cut here: the full text is attached as `{ATTACHMENT_NAME}`)"

COLOUR_OK = 0x2ECC71
COLOUR_ERROR = 0xE74C3C
COLOUR_APPROVAL = 0xF1C40F
COLOUR_NEUTRAL = 0x95A5A6

SEVERITY_COLOURS = {
    "info": 0x3498DB,
    "warning": 0xF39C12,
    "critical": 0xE74C3C,
    "resolved": COLOUR_OK,
}
SEVERITY_ICONS = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨", "resolved": "✅"}

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, default: str = "file") -> str:
    cleaned = _SAFE_NAME.sub("_", name).strip("._") or default
    return cleaned[:80]


# --- messages ------------------------------------------------------------------------------


@dataclass
class Attachment:
    """A file to attach; built into a fresh `discord.File` per send (files are single-use)."""

    filename: str
    data: bytes | None = None
    path: Path | None = None

    def to_file(self) -> discord.File:
        if self.path is not None:
            return discord.File(self.path, filename=self.filename)
        return discord.File(io.BytesIO(self.data or b""), filename=self.filename)


@dataclass
class DiscordMessage:
    """What `send`/`followup.send` take: embeds, attachments and optional plain content."""

    embeds: list[discord.Embed] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    content: str | None = None
    cut: bool = False  # something did not fit and is in the attached reply.txt

    def send_kwargs(self, *, view: discord.ui.View | None = None) -> dict[str, Any]:
        """The keyword arguments of `send`, with the reply's buttons (`view`) when it has any."""
        kwargs: dict[str, Any] = {
            "embeds": self.embeds,
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        if self.content:
            kwargs["content"] = self.content
        if self.attachments:
            kwargs["files"] = [a.to_file() for a in self.attachments[:MAX_FILES]]
        if view is not None:
            kwargs["view"] = view
        return kwargs

    def total_length(self) -> int:
        return sum(len(e) for e in self.embeds)


def reply_colour(reply: Reply) -> int:
    if reply.approval_id is not None or reply.needs_choice:  # a question for the person
        return COLOUR_APPROVAL
    if not reply.ok:
        return COLOUR_ERROR
    return COLOUR_OK


def render_reply(reply: Reply, *, sandbox: bool) -> DiscordMessage:
    """A `Reply` as Discord embeds: the title on the first embed, text (and the table as a code
    block) split over as many embeds as the 6,000-character budget allows, the fields and the
    footer on the last one. Anything cut is attached in full as reply.txt."""
    colour = reply_colour(reply)
    cut = False
    title = reply.title
    if title and len(title) > MAX_TITLE:
        cut = True
        title = truncate(title, MAX_TITLE)
    text = reply.text
    if reply.is_error and text and not title:
        text = f"⚠️ {text}"
    chunks = split_text(text, MAX_DESCRIPTION) if text else []
    if reply.table is not None:
        chunks.extend(code_blocks(table_lines(reply.table), MAX_DESCRIPTION))
    footer = sandbox_footer(reply.footer, sandbox=sandbox, limit=MAX_FOOTER)

    # The budget goes first to what a decision needs (title, fields, footer), then to text.
    budget = MAX_TOTAL - len(title or "") - len(footer or "") - len(CUT_NOTE)
    fields, fields_cut = _fit_fields(reply.fields, budget)
    cut = cut or fields_cut
    budget -= sum(len(n) + len(v) for n, v in fields)
    descriptions: list[str] = []
    for chunk in chunks:
        if len(descriptions) >= MAX_EMBEDS:
            cut = True
            break
        if len(chunk) > budget:
            cut = True
            if budget > MIN_PIECE:
                descriptions.append(split_text(chunk, budget)[0])
            break
        descriptions.append(chunk)
        budget -= len(chunk)
    if cut:
        if not descriptions:
            descriptions = [CUT_NOTE.strip()]
        else:
            last_text = descriptions[-1]
            if len(last_text) + len(CUT_NOTE) > MAX_DESCRIPTION:
                last_text = split_text(last_text, MAX_DESCRIPTION - len(CUT_NOTE))[0]
            descriptions[-1] = last_text + CUT_NOTE

    embeds = [discord.Embed(colour=colour, description=d or None) for d in descriptions]
    if not embeds:
        embeds = [discord.Embed(colour=colour)]
    if title:
        embeds[0].title = title
    last = embeds[-1]
    for name, value in fields:
        last.add_field(name=name, value=value, inline=len(value) <= 40)
    if footer:
        last.set_footer(text=footer)

    message = DiscordMessage(embeds=embeds, cut=cut)
    if reply.image is not None:
        path = Path(reply.image.path)
        if path.is_file():
            filename = safe_filename(path.name, "chart.png")
            message.attachments.append(Attachment(filename=filename, path=path))
            embeds[0].set_image(url=f"attachment://{filename}")
        else:
            log.warning("reply image %s does not exist; not attached", path)
    if cut:
        full = reply.as_plain_text().encode()
        message.attachments.append(Attachment(filename=ATTACHMENT_NAME, data=full))
    if not any(len(e) for e in embeds) and not message.attachments:
        embeds[0].description = "(no output)"
    return message


def _fit_fields(fields: Sequence[ReplyField], budget: int) -> tuple[list[tuple[str, str]], bool]:
    out: list[tuple[str, str]] = []
    cut = len(fields) > MAX_FIELDS
    for f in fields[:MAX_FIELDS]:
        name = truncate(f.label.strip() or EMPTY_VALUE, MAX_FIELD_NAME)
        value = truncate(f.value.strip() or EMPTY_VALUE, MAX_FIELD_VALUE)
        if len(f.label) > MAX_FIELD_NAME or len(f.value) > MAX_FIELD_VALUE:
            cut = True
        if len(name) + len(value) > budget // 2:  # leave half the budget to the text
            cut = True
            break
        out.append((name, value))
        budget -= len(name) + len(value)
    return out, cut


def note_embed(text: str, *, colour: int = COLOUR_NEUTRAL) -> discord.Embed:
    """A one-line notice (refusals, decisions)."""
    return discord.Embed(description=truncate(text, MAX_DESCRIPTION), colour=colour)


def thread_name(text: str) -> str:
    """A thread title from free text: one line, within Discord's 100 characters."""
    return one_line(text, MAX_THREAD_NAME, default="conversation")


# --- alerts --------------------------------------------------------------------------------

AlertFields = Mapping[str, object] | Iterable[tuple[str, object]] | Iterable[ReplyField]


def alert_embed(
    *,
    title: str,
    text: str,
    severity: str = "warning",
    fields: AlertFields = (),
    sandbox: bool = False,
    footer: str | None = None,
) -> discord.Embed:
    """One alert as an embed: icon and colour by severity, within the embed limits."""
    severity = severity.lower()
    icon = SEVERITY_ICONS.get(severity, "")
    embed = discord.Embed(
        title=truncate(f"{icon} {title}".strip(), MAX_TITLE),
        description=truncate(text, MAX_DESCRIPTION) if text else None,
        colour=SEVERITY_COLOURS.get(severity, COLOUR_NEUTRAL),
    )
    pairs: list[tuple[str, str]] = []
    if isinstance(fields, Mapping):
        pairs = [(str(k), str(v)) for k, v in fields.items()]
    else:
        for item in fields:
            if isinstance(item, ReplyField):
                pairs.append((item.label, item.value))
            else:
                pairs.append((str(item[0]), str(item[1])))
    budget = MAX_TOTAL - len(embed)
    for name, value in pairs[:MAX_FIELDS]:
        name = truncate(name or EMPTY_VALUE, MAX_FIELD_NAME)
        value = truncate(value or EMPTY_VALUE, MAX_FIELD_VALUE)
        if len(name) + len(value) > budget - MAX_FOOTER:
            break
        embed.add_field(name=name, value=value, inline=len(value) <= 40)
        budget -= len(name) + len(value)
    note = sandbox_footer(footer or f"severity: {severity}", sandbox=sandbox, limit=MAX_FOOTER)
    if note:
        embed.set_footer(text=note)
    return embed


async def send_alert_embed(
    *,
    title: str,
    text: str,
    severity: str = "warning",
    fields: AlertFields = (),
    channel: discord.abc.Messageable | None = None,
    client: discord.Client | None = None,
    channel_id: int | None = None,
    webhook_url: str | None = None,
    session: aiohttp.ClientSession | None = None,
    sandbox: bool = False,
    username: str | None = "AI Dev Cockpit",
) -> int | None:
    """Post one alert as an embed and return the message id.

    Where to: a bot channel (`channel`, or `client` + `channel_id`; the bot must be logged in
    and allowed to post there) or a Discord webhook URL (`webhook_url`, on `session` or a
    short-lived one). Raises `discord.HTTPException` when Discord refuses, `ValueError` when no
    destination is given."""
    embed = alert_embed(title=title, text=text, severity=severity, fields=fields, sandbox=sandbox)
    mentions = discord.AllowedMentions.none()
    if webhook_url:
        if session is not None:
            return await _send_webhook(webhook_url, session, embed, username, mentions)
        async with aiohttp.ClientSession() as own:
            return await _send_webhook(webhook_url, own, embed, username, mentions)
    if channel is None and client is not None and channel_id is not None:
        channel = client.get_partial_messageable(channel_id)
    if channel is None:
        raise ValueError("send_alert_embed needs a channel, client + channel_id, or webhook_url")
    message = await channel.send(embed=embed, allowed_mentions=mentions)
    return message.id


async def _send_webhook(
    url: str,
    session: aiohttp.ClientSession,
    embed: discord.Embed,
    username: str | None,
    mentions: discord.AllowedMentions,
) -> int | None:
    webhook = discord.Webhook.from_url(url, session=session)
    kwargs: dict[str, Any] = {"embed": embed, "allowed_mentions": mentions, "wait": True}
    if username:
        kwargs["username"] = username
    message = await webhook.send(**kwargs)
    return message.id if message is not None else None
