"""Slack AI assistant threads (the app's assistant side panel), on top of the DM path.

When the app's manifest enables `features.assistant_view`, Slack opens one DM thread per
conversation and sends `assistant_thread_started`; the person's messages in it arrive as
`message.im` events that carry a `thread_ts`. Bolt's `AsyncAssistant` middleware takes those
before the app's own `message` listener: once one of its listeners matches it does not call
`next()`, so each message is answered exactly once, here.

- Thread started: a short greeting and a few suggested prompts.
- User message: the status "is thinking…" at once, then the same path as any DM
  (`EventHandlers.message_event`: dedupe, pasted-key refusal, model-chat threads, commands,
  the agent with its answer streamed into the thread). The one difference: a tool's progress
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

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import datetime
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant, AsyncSetStatus
from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import (
    AsyncAssistantThreadContextStore,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack_base import log
from bot.adapters.slack_blocks import SlackMessage, render_reply, truncate
from bot.adapters.slack_events import EventHandlers, _reply_in_thread
from bot.adapters.slack_post import SlackConversation
from bot.app import Cockpit
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
THINKING_STATUS = "is thinking…"
WORKING_STATUS = "is working: {step}"
MAX_STATUS_STEP = 60
MAX_REMEMBERED_THREADS = 1000
_ELAPSED = re.compile(r"^\[\d+s\]\s*")  # the deploy saga's "[12s] " prefix

SetStatus = Callable[..., Awaitable[Any]]  # Bolt's `set_status(status)` (AsyncSetStatus)


def status_line(progress: str) -> str:
    """A tool's progress line as a short thread status."""
    step = _ELAPSED.sub("", " ".join(progress.split()))
    return WORKING_STATUS.format(step=truncate(step, MAX_STATUS_STEP)) if step else THINKING_STATUS


class ThreadStatus:
    """The status line of one assistant thread during one answer. Never raises: once Slack
    refuses a status (not an assistant thread), it stops trying and `works` turns False."""

    def __init__(
        self,
        set_status: SetStatus,
        *,
        channel: str,
        thread_ts: str,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._set_status = set_status
        self._on_refused = on_refused
        self.channel = channel
        self.thread_ts = thread_ts
        self.works = True
        self.shown = False

    async def show(self, text: str) -> bool:
        if not self.works:
            return False
        try:
            await self._set_status(text)
        except Exception as exc:
            log.info("no thread status in %s (%s): progress goes in the thread", self.channel, exc)
            self.works = False
            if self._on_refused is not None:
                self._on_refused()
            return False
        self.shown = bool(text)
        return True

    def replied(self) -> None:
        self.shown = False  # Slack clears the status when the bot posts in the thread

    async def clear(self) -> None:
        if self.shown:
            await self.show("")


class AssistantConversation(SlackConversation):
    """A DM conversation in an assistant thread: progress goes to the thread's status."""

    def __init__(self, client: AsyncWebClient, *, status: ThreadStatus, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.status = status

    async def progress(self, text: str) -> None:
        if await self.status.show(status_line(text)):
            self.progress_count += 1
            return
        await super().progress(text)

    async def post(
        self, message: SlackMessage, *, thread_ts: str | None = None, broadcast: bool = False
    ) -> str | None:
        ts = await super().post(message, thread_ts=thread_ts, broadcast=broadcast)
        self.status.replied()
        return ts

    async def send(self, reply: Reply, *, expires_at: datetime | None = None) -> str | None:
        ts = await super().send(reply, expires_at=expires_at)
        await self.status.clear()  # e.g. the answer was an edit of a streamed message
        return ts


class RecentThreads:
    """The assistant threads seen lately, as (channel, thread_ts), the newest `limit`."""

    def __init__(self, limit: int = MAX_REMEMBERED_THREADS) -> None:
        self.limit = limit
        self._threads: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, channel: str, thread_ts: str) -> None:
        key = (channel, thread_ts)
        self._threads[key] = None
        self._threads.move_to_end(key)
        while len(self._threads) > self.limit:
            self._threads.popitem(last=False)

    def discard(self, channel: str, thread_ts: str) -> None:
        self._threads.pop((channel, thread_ts), None)

    def __contains__(self, key: object) -> bool:
        return key in self._threads


class MemoryThreadContextStore(AsyncAssistantThreadContextStore):
    """Assistant thread contexts in memory (the most recent MAX_REMEMBERED_THREADS)."""

    def __init__(self, limit: int = MAX_REMEMBERED_THREADS) -> None:
        self.limit = limit
        self._contexts: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, Any]) -> None:
        key = (channel_id, thread_ts)
        self._contexts[key] = dict(context)
        self._contexts.move_to_end(key)
        while len(self._contexts) > self.limit:
            self._contexts.popitem(last=False)

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        context = self._contexts.get((channel_id, thread_ts))
        if not context or not context.get("channel_id"):
            return None
        return AssistantThreadContext(context)


# The assistant thread whose message the current task is answering (see `conversation`).
_CURRENT: ContextVar[ThreadStatus | None] = ContextVar("slack_assistant_thread", default=None)


class AssistantHandlers(EventHandlers):
    def __init__(self, cockpit: Cockpit) -> None:
        super().__init__(cockpit)
        self.assistant_threads = RecentThreads()

    def register_assistant(self, app: AsyncApp) -> AsyncAssistant:
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
            self.assistant_threads.add(str(thread["channel_id"]), str(thread["thread_ts"]))
        self.spawn(
            self.greet_assistant_thread(body, event, client, say, set_suggested_prompts),
            what="assistant thread",
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
        self.assistant_threads.add(str(event.get("channel") or ""), str(event["thread_ts"]))
        self.spawn(
            self.assistant_message(body, event, client, bot_user, set_status),
            what="assistant message",
            on_error=_reply_in_thread(client, event),
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
            ctx = await self.context(
                client,
                team_id=body.get("team_id") or "",
                user_id=user,
                channel=thread.get("channel_id"),
                thread=thread.get("thread_ts"),
            )
            if not await self.first_delivery(ctx, f"slack:event:{event_id}"):
                return
        greeting = render_reply(Reply(text=GREETING), sandbox=self.sandbox)
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
        status = ThreadStatus(
            set_status,
            channel=channel,
            thread_ts=thread_ts,
            on_refused=partial(self.assistant_threads.discard, channel, thread_ts),
        )
        await status.show(THINKING_STATUS)
        token = _CURRENT.set(status)
        try:
            await self.message_event(body, event, client, bot_user)
        finally:
            _CURRENT.reset(token)
            await status.clear()  # nothing was posted (a retried event, say)

    def conversation(self, client: AsyncWebClient, **kwargs: Any) -> SlackConversation:
        """A conversation in an assistant thread reports progress as the thread's status:
        the message being answered (`assistant_message`), or an approved run whose card is in
        a thread seen lately. Everywhere else, the usual conversation."""
        status = self._thread_status(client, kwargs.get("channel"), kwargs.get("thread_ts"))
        if status is None:
            return super().conversation(client, **kwargs)
        kwargs.setdefault("streaming", self.streaming)
        return AssistantConversation(client, status=status, sandbox=self.sandbox, **kwargs)

    def _thread_status(
        self, client: AsyncWebClient, channel: str | None, thread_ts: str | None
    ) -> ThreadStatus | None:
        if not channel or not thread_ts:
            return None
        current = _CURRENT.get()
        if current is not None and (current.channel, current.thread_ts) == (channel, thread_ts):
            return current
        if (channel, thread_ts) not in self.assistant_threads:
            return None
        return ThreadStatus(
            AsyncSetStatus(client=client, channel_id=channel, thread_ts=thread_ts),
            channel=channel,
            thread_ts=thread_ts,
            on_refused=partial(self.assistant_threads.discard, channel, thread_ts),
        )
