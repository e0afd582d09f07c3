"""Messages: mentions and DMs go through `Cockpit.on_message` (the agent or a command),
answered in a thread; every message in a thread bound to a deployment (`/chat <deployment>`)
goes to that model, the answer streamed by editing one message. Bots (this one included) are
ignored; a pasted secret key is never stored, echoed or given to the agent."""

from __future__ import annotations

import re

import discord

from bot.adapters.discord_base import DiscordSurface, log
from bot.adapters.discord_commands import deliver
from bot.adapters.discord_render import note_embed, thread_name
from bot.adapters.discord_stream import (
    StreamedMessage,
    ThreadProgress,
    channel_type,
    is_dm,
    is_thread,
    start_thread,
)
from bot.conversation import Answered, SecretRefused
from tools.contract import Platform, RequestContext


def strip_bot_mention(text: str, bot_id: int | None) -> str:
    """Drop the bot's own mention(s) (`<@id>` and `<@!id>`)."""
    if bot_id is not None:
        text = re.sub(rf"<@!?{bot_id}>", " ", text)
    return " ".join(text.split())


def message_guild_id(message: discord.Message) -> int | None:
    if message.guild is not None:
        return message.guild.id
    return getattr(message.channel, "guild_id", None)


class EventHandlers:
    def __init__(self, surface: DiscordSurface) -> None:
        self.surface = surface

    async def on_message(self, message: discord.Message) -> None:
        """Gateway MESSAGE_CREATE (discord.py runs each in its own task)."""
        if message.author.bot or message.webhook_id is not None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        self.surface.work.track()

        async def tell(text: str) -> None:
            await message.channel.send(
                embed=note_embed(text), allowed_mentions=discord.AllowedMentions.none()
            )

        await self.surface.work.guard(self.handle_message(message), what="message", on_error=tell)

    async def handle_message(self, message: discord.Message) -> None:
        """One message through `Cockpit.on_message`. A guild channel that is not a thread
        gets a new thread for the answer (`before_answer`)."""
        surface, cockpit = self.surface, self.surface.cockpit
        me = surface.client.user
        channel = message.channel
        guild_id = message_guild_id(message)
        dm = guild_id is None or is_dm(channel)
        in_thread = is_thread(channel)
        mentioned = me is not None and any(u.id == me.id for u in message.mentions)
        text = strip_bot_mention(message.content or "", me.id if me else None)
        if not text:
            return
        # A thread bound to a deployment takes every message (the channel type is unknown
        # when the gateway cache lacks it: look the binding up anyway). Looked up before
        # anyone gets a context: nobody becomes a member by merely talking in a thread.
        deployment: int | None = None
        if guild_id is not None and not dm and (in_thread or channel_type(channel) is None):
            deployment = await cockpit.thread_binding(
                platform=Platform.discord,
                workspace_id=str(guild_id),
                channel=str(channel.id),
                thread=str(channel.id),
            )
        if deployment is None and not (dm or mentioned):
            return
        answer = DiscordAnswer(surface, channel, guild_id=guild_id, name=text)
        threaded = deployment is not None or in_thread
        ctx = await surface.context(
            user=message.author,
            guild_id=None if dm else guild_id,
            channel=str(channel.id),
            thread=str(channel.id) if threaded and not dm else None,
        )

        async def into_a_thread(ctx: RequestContext) -> RequestContext:
            thread_id = await answer.open_thread(message.id)
            return ctx.model_copy(update={"channel": str(thread_id), "thread": str(thread_id)})

        outcome = await cockpit.on_message(
            ctx,
            text,
            addressed=dm or mentioned,
            deployment=deployment,
            before_answer=None if dm or threaded else into_a_thread,
            progress=answer.progress,
            stream=answer.stream,
        )
        if isinstance(outcome, SecretRefused):
            log.warning("a secret key was pasted in Discord channel %s; warned", channel.id)
            await channel.send(
                embed=note_embed(outcome.warning(shared=not dm)),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        elif isinstance(outcome, Answered):
            await deliver(surface, answer.target, outcome.reply, answer.streamed)


class DiscordAnswer:
    """Where one message's answer goes: the message's channel (a DM, a thread), or a thread
    opened under the message (`open_thread`); progress lines go there too, the agent's text
    streams into one message that grows."""

    def __init__(
        self,
        surface: DiscordSurface,
        channel: discord.abc.Messageable,
        *,
        guild_id: int | None,
        name: str,
    ) -> None:
        self.surface = surface
        self.target = channel
        self.guild_id = guild_id
        self.name = name
        self.channel_id = int(getattr(channel, "id", 0) or 0)
        self.streamed = StreamedMessage(channel, clock=surface.clock)
        self._progress: ThreadProgress | None = None

    async def open_thread(self, message_id: int) -> int:
        client = self.surface.client
        try:
            thread_id = await start_thread(
                client, self.channel_id, message_id, name=thread_name(self.name)
            )
        except discord.HTTPException:
            # No thread here (no permission, or the channel is itself a thread the cache did
            # not know): answer in place.
            log.info("could not start a thread in %s; answering in place", self.channel_id)
            return self.channel_id
        self.channel_id = thread_id
        self.target = client.get_partial_messageable(
            thread_id, guild_id=self.guild_id, type=discord.ChannelType.public_thread
        )
        self.streamed = StreamedMessage(self.target, clock=self.surface.clock)
        return thread_id

    async def progress(self, text: str) -> None:
        if self._progress is None:
            self._progress = ThreadProgress(
                self.surface.client,
                channel_id=self.channel_id,
                guild_id=self.guild_id,
                in_place=True,
                anchor=_no_anchor,
                name=self.name,
            )
        await self._progress.post(text)

    async def stream(self, delta: str) -> None:
        await self.streamed.feed(delta)


async def _no_anchor() -> int | None:
    return None
