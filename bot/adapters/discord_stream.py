"""Where one request's answers go in Discord, over time: a streamed answer shown by editing one
message (rate-limited), and progress lines posted into a thread opened on first use.

Discord allows about 5 edits per 5 s per channel; a streamed answer is edited at most once per
`STREAM_EDIT_INTERVAL_SECONDS` (measured from the end of the previous edit), and the final edit
carries the full text. Time comes from the cockpit clock, so tests control it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import discord

from bot.adapters.discord_render import MAX_CONTENT, DiscordMessage, thread_name
from bot.render import cut_point, one_line, truncate
from bot.streaming import Throttle
from tools.clock import Clock

log = logging.getLogger(__name__)

STREAM_EDIT_INTERVAL_SECONDS = 1.2  # ≤ 1 edit per 1.2 s: inside Discord's 5 edits / 5 s
STREAM_CURSOR = " ▌"
THREAD_AUTO_ARCHIVE_MINUTES: Literal[60, 1440, 4320, 10080] = 1440
PROGRESS_PREFIX = "… "
MAX_PROGRESS_LINE = 1900

# Returns the id of the message a progress thread starts from (or None: post in place).
Anchor = Callable[[], Awaitable[int | None]]
ThreadTypes = (
    discord.ChannelType.public_thread,
    discord.ChannelType.private_thread,
    discord.ChannelType.news_thread,
)


def channel_type(channel: object) -> discord.ChannelType | None:
    value = getattr(channel, "type", None)
    return value if isinstance(value, discord.ChannelType) else None


def is_thread(channel: object) -> bool:
    return isinstance(channel, discord.Thread) or channel_type(channel) in ThreadTypes


def is_dm(channel: object) -> bool:
    return isinstance(channel, discord.DMChannel | discord.GroupChannel) or channel_type(
        channel
    ) in (discord.ChannelType.private, discord.ChannelType.group)


class StreamedMessage:
    """One answer streamed into `channel` by editing a message: created on the first visible
    text, edited at most once per `interval`, finished with the full text. Text past Discord's
    2,000 characters continues in a new message (earlier ones are then final)."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        clock: Clock,
        interval: float = STREAM_EDIT_INTERVAL_SECONDS,
        limit: int = MAX_CONTENT,
    ) -> None:
        self.channel = channel
        self.throttle = Throttle(interval, now=clock.monotonic, sleep=clock.sleep)
        self.limit = limit
        self.text = ""
        self.messages: list[discord.Message] = []
        self.edits = 0
        self._current: discord.Message | None = None  # the message still being edited
        self._start = 0  # where the current message's text starts in `text`
        self._shown = ""

    @property
    def started(self) -> bool:
        return bool(self.messages)

    async def feed(self, delta: str) -> None:
        """A text delta from the model. Shown now if the last edit is old enough, otherwise
        with a later delta or the final edit. Never raises (a failed edit is retried later)."""
        self.text += delta
        if not self.text.strip() or not self.throttle.ready():
            return
        try:
            await self._show(self.text, cursor=True)
        except Exception:  # the display failing must not break the model call
            log.warning("could not update a streamed Discord message", exc_info=True)
            self.throttle.wrote()

    async def finish(self, text: str | None = None, *, footer: str | None = None) -> None:
        """The final edit: the full text (and a small footer line), after waiting out the rest
        of the edit interval."""
        final = self.text if text is None else text
        if footer:
            final = f"{final}\n-# {one_line(footer, 300)}"
        if not final.strip():
            final = "(no answer)"
        await self.throttle.wait()
        self.text = final
        await self._show(final, cursor=False)

    async def _show(self, text: str, *, cursor: bool) -> None:
        suffix = STREAM_CURSOR if cursor else ""
        # At most one edit per call (the current message); overflow goes into new messages.
        while True:
            tail = text[self._start :]
            if len(tail) + len(suffix) <= self.limit:
                await self._put(tail + suffix)
                break
            cut = cut_point(tail, self.limit)
            await self._put(tail[:cut].rstrip())
            self._current = None
            self._start += cut
            while text[self._start : self._start + 1] == "\n":
                self._start += 1
        self.throttle.wrote()

    async def _put(self, content: str) -> None:
        if not content.strip():
            return
        mentions = discord.AllowedMentions.none()
        if self._current is None:
            self._current = await self.channel.send(content, allowed_mentions=mentions)
            self.messages.append(self._current)
        elif content != self._shown:
            await self._current.edit(content=content, allowed_mentions=mentions)
            self.edits += 1
        self._shown = content


class ThreadProgress:
    """Progress lines of one request. In a guild text channel they go into a thread started
    from the request's message (`anchor`), opened on the first line; in a thread or a DM they
    go straight into that channel. Posting never raises: progress must not break the tool."""

    def __init__(
        self,
        client: discord.Client,
        *,
        channel_id: int,
        guild_id: int | None,
        in_place: bool,
        anchor: Anchor,
        name: str,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.in_place = in_place
        self.anchor = anchor
        self.name = thread_name(name)
        self.thread_id: int | None = None
        self.count = 0
        self._target: discord.abc.Messageable | None = None

    async def target(self) -> discord.abc.Messageable:
        """The channel progress goes to (starting the thread if needed)."""
        if self._target is not None:
            return self._target
        if not self.in_place:
            anchor_id = await self.anchor()
            if anchor_id is not None:
                try:
                    self.thread_id = await start_thread(
                        self.client, self.channel_id, anchor_id, name=self.name
                    )
                except discord.HTTPException:
                    log.warning("could not start a Discord thread; posting in place", exc_info=True)
        target_id = self.thread_id or self.channel_id
        kind = discord.ChannelType.public_thread if self.thread_id else None
        self._target = self.client.get_partial_messageable(
            target_id, guild_id=self.guild_id, type=kind
        )
        return self._target

    async def post(self, text: str) -> None:
        try:
            self.count += 1
            channel = await self.target()
            content = truncate(PROGRESS_PREFIX + text, MAX_PROGRESS_LINE)
            mentions = discord.AllowedMentions.none()
            buttons = list(getattr(text, "buttons", ()))  # a ProgressNote (Cancel on /bench)
            if buttons:
                from bot.adapters.discord_approvals import reply_view
                from tools.contract import Reply

                view = reply_view(Reply(buttons=buttons))
                if view is not None:
                    await channel.send(content, allowed_mentions=mentions, view=view)
                    return
            await channel.send(content, allowed_mentions=mentions)
        except Exception:
            log.warning("could not post a progress line to Discord", exc_info=True)

    async def send(self, message: DiscordMessage, *, view: discord.ui.View | None = None) -> None:
        channel = await self.target()
        await channel.send(**message.send_kwargs(view=view))


async def start_thread(
    client: discord.Client, channel_id: int, message_id: int, *, name: str
) -> int:
    """Start a public thread from a message; returns the thread's id."""
    data = await client.http.start_thread_with_message(
        channel_id,
        message_id,
        name=thread_name(name),
        auto_archive_duration=THREAD_AUTO_ARCHIVE_MINUTES,
    )
    return int(data["id"])
