"""Messages: mentions and DMs go to the agent (`Cockpit.converse`), answered in a thread; every
message in a thread bound to a deployment (`/chat <deployment>`) goes to that model, the answer
streamed by editing one message. Bots (this one included) are ignored; a pasted secret key is
never stored, echoed or given to the agent."""

from __future__ import annotations

import re

import discord

from bot import router
from bot.adapters.discord_base import INTERNAL_ERROR_TEXT, DiscordBase, log
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
from bot.logs import secret_provider
from tools.contract import RequestContext

KEY_WARNING = (
    "🔒 That message looks like it contains a secret key. I did not store, repeat or use it. "
    "If this is a shared channel, treat the key as leaked: rotate it at the provider, then "
    "connect the new one with `/connect` (answered privately)."
)


def looks_like_secret(text: str) -> bool:
    return secret_provider(text) is not None


def strip_bot_mention(text: str, bot_id: int | None) -> str:
    """Drop the bot's own mention(s) (`<@id>` and `<@!id>`)."""
    if bot_id is not None:
        text = re.sub(rf"<@!?{bot_id}>", " ", text)
    return " ".join(text.split())


def message_guild_id(message: discord.Message) -> int | None:
    if message.guild is not None:
        return message.guild.id
    return getattr(message.channel, "guild_id", None)


class EventHandlers(DiscordBase):
    async def on_message(self, message: discord.Message) -> None:
        """Gateway MESSAGE_CREATE (discord.py runs each in its own task)."""
        if message.author.bot or message.webhook_id is not None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        self.track()
        try:
            await self.handle_message(message)
        except Exception:
            ref = self.error_reference()
            log.exception("Discord message handling failed (reference %s)", ref)
            try:
                await message.channel.send(
                    embed=note_embed(INTERNAL_ERROR_TEXT.format(ref=ref)),
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except Exception:
                log.warning("could not tell the user about %s", ref, exc_info=True)

    async def handle_message(self, message: discord.Message) -> None:
        me = self.client.user
        channel = message.channel
        guild_id = message_guild_id(message)
        dm = guild_id is None or is_dm(channel)
        in_thread = is_thread(channel)
        mentioned = me is not None and any(u.id == me.id for u in message.mentions)
        text = strip_bot_mention(message.content or "", me.id if me else None)

        # A thread bound to a deployment (the channel type is unknown when the gateway cache
        # lacks it: look the binding up anyway).
        if guild_id is not None and not dm and (in_thread or channel_type(channel) is None):
            deployment_id = await self.bound_deployment(guild_id=guild_id, thread_id=channel.id)
            if deployment_id is not None:
                if text and not await self.refused_secret(message, text):
                    ctx = await self.context(
                        user=message.author,
                        guild_id=guild_id,
                        channel=str(channel.id),
                        thread=str(channel.id),
                    )
                    await self.relay_to_model(ctx, channel, deployment_id, text)
                return
        if not (dm or mentioned) or not text:
            return
        if await self.refused_secret(message, text):
            return
        if dm:
            ctx = await self.context(user=message.author, guild_id=None, channel=str(channel.id))
            target: discord.abc.Messageable = channel
        elif in_thread:
            ctx = await self.context(
                user=message.author,
                guild_id=guild_id,
                channel=str(channel.id),
                thread=str(channel.id),
            )
            target = channel
        else:
            try:
                thread_id = await start_thread(
                    self.client, channel.id, message.id, name=thread_name(text)
                )
            except discord.HTTPException:
                # No thread here (no permission, or the channel is itself a thread the cache
                # did not know): answer in place.
                log.info("could not start a thread in %s; answering in place", channel.id)
                thread_id = channel.id
            ctx = await self.context(
                user=message.author,
                guild_id=guild_id,
                channel=str(thread_id),
                thread=str(thread_id),
            )
            target = self.client.get_partial_messageable(
                thread_id, guild_id=guild_id, type=discord.ChannelType.public_thread
            )
        await self.answer_message(ctx, target, text, guild_id=guild_id)

    async def answer_message(
        self,
        ctx: RequestContext,
        target: discord.abc.Messageable,
        text: str,
        *,
        guild_id: int | None,
    ) -> None:
        """A command or plain words, answered in `target` (the thread or the DM); the agent's
        text streams into one message when it arrives in pieces."""
        progress = ThreadProgress(
            self.client,
            channel_id=int(ctx.channel or 0),
            guild_id=guild_id,
            in_place=True,
            anchor=_no_anchor,
            name=text,
        )
        stream = StreamedMessage(target, clock=self.clock)
        if router.is_command(text):
            # `/chat 3 hello` here binds this thread to deployment #3 and streams the answer.
            reply = await self.cockpit.handle(ctx, text, progress=progress.post, stream=stream.feed)
        else:
            reply = await self.cockpit.converse(
                ctx, text, progress=progress.post, on_text=stream.feed
            )
        await deliver(self, target, reply, stream, ctx=ctx)

    async def relay_to_model(
        self,
        ctx: RequestContext,
        channel: discord.abc.Messageable,
        deployment_id: int,
        text: str,
    ) -> None:
        """A message in a thread bound to a deployment: `/chat <deployment> <text>`, streamed."""
        stream = StreamedMessage(channel, clock=self.clock)
        reply = await self.cockpit.chat_with_deployment(
            ctx, deployment_id, text, stream=stream.feed
        )
        await deliver(self, channel, reply, stream, ctx=ctx)

    async def refused_secret(self, message: discord.Message, text: str) -> bool:
        """A secret pasted into chat: warn, never store, echo or forward it."""
        if not looks_like_secret(text):
            return False
        log.warning("a secret key was pasted in Discord channel %s; warned", message.channel.id)
        await message.channel.send(
            embed=note_embed(KEY_WARNING), allowed_mentions=discord.AllowedMentions.none()
        )
        return True


async def _no_anchor() -> int | None:
    return None
