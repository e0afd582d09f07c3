"""Slack AI assistant threads (the app's assistant side panel), on top of the DM path.

When the app's manifest enables `features.assistant_view`, Slack opens one DM thread per
conversation and sends `assistant_thread_started`; the person's messages in it arrive as
`message.im` events that carry a `thread_ts`. Bolt's `AsyncAssistant` middleware takes those
before the app's own `message` listener: once one of its listeners matches it does not call
`next()`, so each message is answered exactly once, here.

- Thread started: a short greeting and a few suggested prompts.
- User message: the status "is thinking…" at once, then the same path as any DM
  (`EventHandlers.message_event`, i.e. `Cockpit.on_message`: dedupe, pasted-key refusal,
  model-chat threads, commands, the agent with its answer streamed into the thread). The one
  difference: a tool's progress
  updates the thread's status ("is working: creating endpoint on A100") instead of posting
  lines. The same holds for an approved run whose card is in an assistant thread this process
  has seen (a deploy's progress). Slack clears the status when the bot replies; after an edit
  (a streamed answer) or no reply at all (a retried event) it is cleared explicitly.

Registering the assistant is harmless for an app without the assistant view: no assistant
events arrive, and a reply in an ordinary DM thread takes the same path (if Slack refuses the
status there, progress goes into the thread as lines, as for any DM).

The thread context Slack sends (which channel the person is looking at) is kept in memory:
Bolt's default store reads it back with conversations.replies and rewrites message metadata,
and Slack rate-limits conversations.replies hard for new apps.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import (
    AsyncAssistantThreadContextStore,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack_base import SlackSurface, reply_in_thread
from bot.adapters.slack_blocks import render_reply
from bot.adapters.slack_events import EventHandlers
from bot.adapters.slack_post import (
    MAX_REMEMBERED_THREADS,
    THINKING_STATUS,
    RecentThreads,
    SetStatus,
    status_line,
)
from tools.contract import Reply

GREETING = (
    "Hi! I'm the cockpit. Ask me in plain words about deployments, GPUs, spend or health, "
    "or type a command such as `/deploy qwen`."
)
SUGGESTED_PROMPTS_TITLE = "Try one of these"
SUGGESTED_PROMPTS: tuple[dict[str, str], ...] = (
    {"title": "What's my spend this week?", "message": "What's my spend this week?"},
    {"title": "Is anything unhealthy?", "message": "Is anything unhealthy?"},
    {"title": "Deploy qwen 0.5b", "message": "Deploy qwen 0.5b"},
    {"title": "Which GPU fits llama 8b?", "message": "Which GPU fits llama 8b?"},
)

__all__ = [
    "GREETING",
    "SUGGESTED_PROMPTS",
    "THINKING_STATUS",
    "AssistantHandlers",
    "MemoryThreadContextStore",
    "status_line",
]


class MemoryThreadContextStore(AsyncAssistantThreadContextStore):
    """Assistant thread contexts in memory (the most recent MAX_REMEMBERED_THREADS)."""

    def __init__(self, limit: int = MAX_REMEMBERED_THREADS) -> None:
        self._contexts: RecentThreads[dict[str, Any]] = RecentThreads(limit)

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, Any]) -> None:
        self._contexts.add(channel_id, thread_ts, dict(context))

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        context = self._contexts.get(channel_id, thread_ts)
        if not context or not context.get("channel_id"):
            return None
        return AssistantThreadContext(context)


class AssistantHandlers:
    """Assistant threads: the greeting, and each message through the events' message path
    with the thread's status as its progress."""

    def __init__(self, surface: SlackSurface, events: EventHandlers) -> None:
        self.surface = surface
        self.events = events

    def register(self, app: AsyncApp) -> AsyncAssistant:
        """Add the assistant middleware to the app (events arrive only when the app's manifest
        enables the assistant view)."""
        assistant = AsyncAssistant(
            thread_context_store=MemoryThreadContextStore(), logger=app.logger
        )
        assistant.thread_started(self.on_assistant_thread_started)
        assistant.user_message(self.on_assistant_message)
        app.assistant(assistant)
        return assistant

    # -- listeners (ack at once, work in the background) ----------------------------------

    async def on_assistant_thread_started(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        client: Any,
        say: Any,
        set_suggested_prompts: Any,
    ) -> None:
        thread = event.get("assistant_thread") or {}
        if thread.get("channel_id") and thread.get("thread_ts"):
            self.surface.assistant_threads.add(str(thread["channel_id"]), str(thread["thread_ts"]))
        self.surface.work.spawn(
            self.greet_assistant_thread(body, event, client, say, set_suggested_prompts),
            what="assistant thread",
            on_error=lambda text: say(text=text),  # a crash is never silent
        )

    async def on_assistant_message(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        context: Any,
        client: Any,
        set_status: Any,
    ) -> None:
        bot_user = getattr(context, "bot_user_id", None)
        self.surface.assistant_threads.add(str(event.get("channel") or ""), str(event["thread_ts"]))
        self.surface.work.spawn(
            self.assistant_message(body, event, client, bot_user, set_status),
            what="assistant message",
            on_error=reply_in_thread(client, event),
        )

    # -- work -----------------------------------------------------------------------------

    async def greet_assistant_thread(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        client: AsyncWebClient,
        say: Any,
        set_suggested_prompts: Any,
    ) -> None:
        thread = event.get("assistant_thread") or {}
        user = thread.get("user_id")
        event_id = body.get("event_id")
        if user and event_id:
            ctx = await self.surface.context(
                client,
                team_id=body.get("team_id") or "",
                user_id=user,
                channel=thread.get("channel_id"),
                thread=thread.get("thread_ts"),
            )
            if not await self.surface.cockpit.first_delivery(ctx, f"slack:event:{event_id}"):
                return
        greeting = render_reply(Reply(text=GREETING), sandbox=self.surface.sandbox)
        await say(**greeting.as_kwargs())
        await set_suggested_prompts(
            prompts=[dict(p) for p in SUGGESTED_PROMPTS], title=SUGGESTED_PROMPTS_TITLE
        )

    async def assistant_message(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        client: AsyncWebClient,
        bot_user: str | None,
        set_status: SetStatus,
    ) -> None:
        """Status first, then exactly what a DM gets (`message_event`), with tool progress
        shown as the thread's status."""
        channel, thread_ts = str(event.get("channel") or ""), str(event.get("thread_ts") or "")
        status = self.surface.thread_status(set_status, channel, thread_ts)
        await status.show(THINKING_STATUS)
        try:
            await self.events.message_event(body, event, client, bot_user, status=status)
        finally:
            await status.clear()  # nothing was posted (a retried event, say)
