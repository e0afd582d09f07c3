"""Events API: mentions and DMs (answered in a thread by the agent), pasted secrets (never
echoed, never stored), and the App Home tab.

Slack retries an event it thinks we missed (`X-Slack-Retry-Num`), and `app_mention` plus
`message.*` can deliver one message twice; the event_id is claimed in the database
(`storage.events`) before anything happens, so each event is handled once across restarts
and replicas.
"""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot import router
from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_base import SlackBase, log
from bot.adapters.slack_post import SlackConversation
from bot.logs import secret_provider
from tools.contract import Reply, RequestContext

HOME_TOOLS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("list_deployments", {}, "Deployments"),
    ("get_spend", {"period": "this_week"}, "Spend this week"),
)
IGNORED_MESSAGE_SUBTYPES = frozenset(
    {"bot_message", "message_changed", "message_deleted", "channel_join", "channel_leave"}
)
_MENTION = r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>"
KEY_IN_CHANNEL_WARNING = (
    ":rotating_light: That message looks like it contains a {provider} secret key, pasted in a "
    "channel. Treat it as leaked: rotate (revoke) it at {provider} now, then connect the new key "
    "privately with `/connect <provider>` (a private form). I did not store or repeat it; "
    "delete your message too."
)
KEY_IN_DM_NOTE = (
    ":lock: That looks like a {provider} secret key. I did not store it from a chat message: use "
    "`/connect <provider>` to store a key in a private form (encrypted, shown only as …last4)."
)


# The pasted-key check is shared by every surface; this name is what the adapter exports.
key_provider = secret_provider


def from_a_bot(event: dict[str, Any]) -> bool:
    return bool(event.get("bot_id")) or event.get("subtype") in IGNORED_MESSAGE_SUBTYPES


def strip_mentions(text: str, bot_user: str | None) -> str:
    """Drop the bot's own mention (and a leading mention: how people address a bot)."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", " ", text)
    text = re.sub(rf"^\s*{_MENTION}", " ", text)
    return " ".join(text.split())


def _reply_in_thread(client: AsyncWebClient, event: dict[str, Any]) -> Any:
    async def reply(text: str) -> None:
        await client.chat_postMessage(
            channel=str(event.get("channel") or ""),
            thread_ts=event.get("thread_ts") or event.get("ts"),
            text=text,
        )

    return reply


class EventHandlers(SlackBase):
    # -- listeners (Bolt acks events by itself) -------------------------------------------

    async def on_mention(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, client: Any
    ) -> None:
        bot_user = getattr(context, "bot_user_id", None)
        self.spawn(
            self.message_event(body, event, client, bot_user),
            what="mention",
            on_error=_reply_in_thread(client, event),
        )

    async def on_message(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, client: Any
    ) -> None:
        if from_a_bot(event):
            return
        if event.get("channel_type") == "im":
            bot_user = getattr(context, "bot_user_id", None)
            self.spawn(
                self.message_event(body, event, client, bot_user),
                what="dm",
                on_error=_reply_in_thread(client, event),
            )
        elif key_provider(str(event.get("text") or "")) or event.get("thread_ts"):
            # Channel messages (message.channels): a pasted key is warned about, and a reply in
            # a thread bound to a deployed model goes on to the model. Nothing else is answered
            # (mentions arrive separately, as app_mention).
            bot_user = getattr(context, "bot_user_id", None)
            self.spawn(
                self.message_event(body, event, client, bot_user),
                what="channel message",
                on_error=_reply_in_thread(client, event),  # a crash is never silent
            )

    async def on_home_opened(
        self, body: dict[str, Any], event: dict[str, Any], client: Any
    ) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        self.spawn(self.publish_home(body, event, client), what="home")

    # -- work -----------------------------------------------------------------------------

    async def message_event(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        client: AsyncWebClient,
        bot_user: str | None,
    ) -> None:
        if from_a_bot(event) or not event.get("user"):
            return
        raw = str(event.get("text") or "")
        channel = str(event.get("channel") or "")
        is_dm = event.get("channel_type") == "im"
        thread_ts = event.get("thread_ts") or event.get("ts")
        ctx = await self.context(
            client,
            team_id=body.get("team_id") or event.get("team") or "",
            user_id=event["user"],
            channel=channel,
            thread=thread_ts,
        )
        event_id = body.get("event_id")
        if event_id and not await self.first_delivery(ctx, f"slack:event:{event_id}"):
            return  # a retry (X-Slack-Retry-Num) or a replay of an event already handled
        provider = key_provider(raw)
        if provider:
            await self.refuse_key(ctx, client, event, provider=provider, is_dm=is_dm)
            return
        text = strip_mentions(raw, bot_user)
        conversation = self.conversation(
            client,
            channel=channel,
            user=event["user"],
            thread_ts=thread_ts,
            label=text,
            team_id=body.get("team_id") or event.get("team"),
        )
        if event.get("type") == "message" and not is_dm:
            mentioned = bool(bot_user) and f"<@{bot_user}>" in raw  # app_mention handles it
            if event.get("thread_ts") and not mentioned:
                await self.continue_model_chat(ctx, text, conversation)
            return
        if self.thread_relay is not None and await self.thread_relay(ctx, text, conversation):
            return
        if await self.continue_model_chat(ctx, text, conversation):
            return
        if router.is_command(text):
            reply = await self.cockpit.handle(
                ctx, text, progress=conversation.progress, stream=conversation.stream
            )
        else:
            reply = await self.cockpit.converse(
                ctx, text, progress=conversation.progress, on_text=conversation.stream
            )
        await conversation.send(reply, expires_at=await self.expires_at(ctx, reply))

    async def continue_model_chat(
        self, ctx: RequestContext, text: str, conversation: SlackConversation
    ) -> bool:
        """A message in a thread that is a chat with a deployed model (started there with
        `/chat <deployment> ...`) goes on to that model, streamed into the thread."""
        if router.is_command(text):
            return False
        deployment_id = await self.blocking(self.cockpit.thread_deployment, ctx)
        if deployment_id is None:
            return False
        reply = await self.cockpit.chat_with_deployment(
            ctx, deployment_id, text, progress=conversation.progress, stream=conversation.stream
        )
        await conversation.send(reply)
        return True

    async def refuse_key(
        self,
        ctx: RequestContext,
        client: AsyncWebClient,
        event: dict[str, Any],
        *,
        provider: str,
        is_dm: bool,
    ) -> None:
        """A secret pasted into chat: never stored, never echoed, never given to the agent."""
        channel, user, ts = event["channel"], event["user"], event.get("ts")
        if is_dm:
            note = blocks.note(KEY_IN_DM_NOTE.format(provider=provider))
            await client.chat_postMessage(
                channel=channel, thread_ts=event.get("thread_ts") or ts, **note.as_kwargs()
            )
            return
        # app_mention and message.channels may both deliver this message: warn once.
        if not await self.first_delivery(ctx, f"slack:keywarn:{channel}:{ts}"):
            return
        log.warning("a %s key was pasted in Slack channel %s; warned the sender", provider, channel)
        message = blocks.note(KEY_IN_CHANNEL_WARNING.format(provider=provider))
        await client.chat_postEphemeral(channel=channel, user=user, **message.as_kwargs())

    async def publish_home(
        self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The Home tab: who you are, and deployments / this week's spend when this build has
        those tools (each through the dispatcher, so roles and audit apply)."""
        ctx = await self.context(client, team_id=body.get("team_id") or "", user_id=event["user"])
        dispatcher = self.cockpit.dispatcher
        parts: list[tuple[str, Reply]] = [("Who you are", await dispatcher.run(ctx, "whoami", {}))]
        for tool_name, args, heading in HOME_TOOLS:
            if self.cockpit.services.registry.get(tool_name) is None:
                continue  # not part of this build: leave the section out
            reply = await dispatcher.run(ctx, tool_name, dict(args))
            if reply.ok:
                parts.append((heading, reply))
        await client.views_publish(
            user_id=event["user"], view=blocks.home_view(parts, sandbox=self.sandbox)
        )
