"""Events API: mentions and DMs (answered in a thread by the agent), pasted secrets (never
echoed, never stored), and the App Home tab.

Slack retries an event it thinks we missed (`X-Slack-Retry-Num`), and `app_mention` plus
`message.*` can deliver one message twice; the event_id is claimed in the database
(`Cockpit.first_delivery`) before anything happens, so each event is handled once across restarts
and replicas.
"""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_base import SlackSurface, log, reply_in_thread
from bot.adapters.slack_post import ThreadStatus
from bot.conversation import Answered, SecretRefused, overview
from bot.logs import secret_provider
from tools.contract import RequestContext

IGNORED_MESSAGE_SUBTYPES = frozenset(
    {"bot_message", "message_changed", "message_deleted", "channel_join", "channel_leave"}
)
_MENTION = r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>"


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


class EventHandlers:
    def __init__(self, surface: SlackSurface) -> None:
        self.surface = surface

    # -- listeners (Bolt acks events by itself) -------------------------------------------

    async def on_mention(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, client: Any
    ) -> None:
        self._spawn(body, event, context, client, what="mention")

    async def on_message(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, client: Any
    ) -> None:
        if from_a_bot(event):
            return
        if event.get("channel_type") == "im":
            self._spawn(body, event, context, client, what="dm")
        elif key_provider(str(event.get("text") or "")) or event.get("thread_ts"):
            # Channel messages (message.channels): a pasted key is warned about, and a reply in
            # a thread bound to a deployed model goes on to the model. Nothing else is answered
            # (mentions arrive separately, as app_mention).
            self._spawn(body, event, context, client, what="channel message")

    def _spawn(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, client: Any, *, what: str
    ) -> None:
        bot_user = getattr(context, "bot_user_id", None)
        self.surface.work.spawn(
            self.message_event(body, event, client, bot_user),
            what=what,
            on_error=reply_in_thread(client, event),  # a crash is never silent
        )

    async def on_home_opened(
        self, body: dict[str, Any], event: dict[str, Any], client: Any
    ) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        self.surface.work.spawn(self.publish_home(body, event, client), what="home")

    # -- work -----------------------------------------------------------------------------

    async def message_event(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        client: AsyncWebClient,
        bot_user: str | None,
        *,
        status: ThreadStatus | None = None,
    ) -> None:
        """One message (mention, DM, channel message) through `Cockpit.on_message`; `status`
        is the assistant thread's status line when the message came from one."""
        if from_a_bot(event) or not event.get("user"):
            return
        surface, cockpit = self.surface, self.surface.cockpit
        raw = str(event.get("text") or "")
        channel = str(event.get("channel") or "")
        is_dm = event.get("channel_type") == "im"
        thread_ts = event.get("thread_ts") or event.get("ts")
        ctx = await surface.context(
            client,
            team_id=body.get("team_id") or event.get("team") or "",
            user_id=event["user"],
            channel=channel,
            thread=thread_ts,
        )
        event_id = body.get("event_id")
        if event_id and not await cockpit.first_delivery(ctx, f"slack:event:{event_id}"):
            return  # a retry (X-Slack-Retry-Num) or a replay of an event already handled
        text = strip_mentions(raw, bot_user)
        conversation = surface.conversation(
            client,
            status=status,
            channel=channel,
            user=event["user"],
            thread_ts=thread_ts,
            label=text,
            team_id=body.get("team_id") or event.get("team"),
        )
        # A channel message (message.channels) is only model chat in a bound thread; when it
        # mentions the bot, app_mention answers it.
        channel_message = event.get("type") == "message" and not is_dm
        mentioned = bool(bot_user) and f"<@{bot_user}>" in raw
        outcome = await cockpit.on_message(
            ctx,
            text,
            addressed=not channel_message,
            model_chat=not channel_message or (bool(event.get("thread_ts")) and not mentioned),
            progress=conversation.progress,
            stream=conversation.stream,
        )
        if isinstance(outcome, SecretRefused):
            await self.refuse_key(ctx, client, event, outcome, is_dm=is_dm)
        elif isinstance(outcome, Answered):
            await conversation.send(outcome.reply)

    async def refuse_key(
        self,
        ctx: RequestContext,
        client: AsyncWebClient,
        event: dict[str, Any],
        refused: SecretRefused,
        *,
        is_dm: bool,
    ) -> None:
        """A secret pasted into chat: never stored, never echoed, never given to the agent."""
        channel, user, ts = event["channel"], event["user"], event.get("ts")
        message = blocks.note(refused.warning(shared=not is_dm))
        if is_dm:
            await client.chat_postMessage(
                channel=channel, thread_ts=event.get("thread_ts") or ts, **message.as_kwargs()
            )
            return
        # app_mention and message.channels may both deliver this message: warn once.
        if not await self.surface.cockpit.first_delivery(ctx, f"slack:keywarn:{channel}:{ts}"):
            return
        log.warning(
            "a %s key was pasted in Slack channel %s; warned the sender", refused.provider, channel
        )
        await client.chat_postEphemeral(channel=channel, user=user, **message.as_kwargs())

    async def publish_home(
        self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The Home tab: the person's overview (`bot.conversation.overview`)."""
        surface = self.surface
        ctx = await surface.context(
            client, team_id=body.get("team_id") or "", user_id=event["user"]
        )
        parts = await overview(surface.cockpit, ctx)
        await client.views_publish(
            user_id=event["user"], view=blocks.home_view(parts, sandbox=surface.sandbox)
        )
