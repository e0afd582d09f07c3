"""What every Slack listener shares (`SlackSurface`): the cockpit, the tracked background work,
the request context built from a Slack payload, and where answers go. The listeners live in
`slack_commands`, `slack_approvals`, `slack_events` and `slack_assistant`, each a component
that holds this surface; `slack.SlackAdapter` wires them into one Bolt app."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncSetStatus
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_post import (
    AssistantConversation,
    RecentThreads,
    SetStatus,
    SlackConversation,
    StreamingSupport,
    ThreadStatus,
)
from bot.app import Cockpit
from bot.conversation import OnError, SurfaceWork
from tools.contract import Platform, RequestContext

log = logging.getLogger("bot.adapters.slack")


class SlackSurface:
    def __init__(self, cockpit: Cockpit) -> None:
        self.cockpit = cockpit
        self.clock = cockpit.clock
        self.work = SurfaceWork("slack", icon=":warning:", log=log)
        self.streaming = StreamingSupport()
        self.assistant_threads: RecentThreads[None] = RecentThreads()
        self._names: dict[str, str] = {}
        self._team_names: dict[str, str] = {}

    @property
    def sandbox(self) -> bool:
        return bool(self.cockpit.services.sandbox)

    # -- identity -------------------------------------------------------------------------

    def remember_team(self, team_id: str | None, name: str | None) -> None:
        if team_id and name:
            self._team_names[team_id] = name

    async def display_name(self, client: AsyncWebClient, user_id: str, hint: str | None) -> str:
        """The person's Slack name (from the payload, else users.info once per process)."""
        if hint:
            self._names.setdefault(user_id, hint)
        if user_id in self._names:
            return self._names[user_id]
        try:
            resp = await client.users_info(user=user_id)
            name = person_name(resp.get("user") or {}) or user_id
        except SlackApiError:
            name = user_id
        self._names[user_id] = name
        return name

    async def context(
        self,
        client: AsyncWebClient,
        *,
        team_id: str,
        user_id: str,
        team_name: str | None = None,
        user_name: str | None = None,
        channel: str | None = None,
        thread: str | None = None,
        idempotency_key: str | None = None,
    ) -> RequestContext:
        """The cockpit request context for a Slack user in a Slack workspace (both created on
        first sight: the first person of a new workspace owns its organisation)."""
        name = await self.display_name(client, user_id, user_name)
        return await self.cockpit.context(
            platform=Platform.slack,
            workspace_id=team_id,
            workspace_name=team_name or self._team_names.get(team_id) or team_id,
            user_id=user_id,
            display_name=name,
            channel=channel,
            thread=thread,
            idempotency_key=idempotency_key,
        )

    async def body_context(
        self,
        client: AsyncWebClient,
        body: dict[str, Any],
        *,
        channel: str | None,
        thread: str | None = None,
    ) -> RequestContext:
        """The context of the person behind an interactive payload (a click, a modal)."""
        user = body.get("user") or {}
        return await self.context(
            client,
            team_id=payload_team_id(body),
            team_name=(body.get("team") or {}).get("domain"),
            user_id=user["id"],
            user_name=user.get("name") or user.get("username"),
            channel=channel,
            thread=thread,
        )

    async def action_context(
        self, client: AsyncWebClient, body: dict[str, Any]
    ) -> tuple[RequestContext, str, str | None, str | None]:
        """(context, channel, card ts, thread ts) for a click on a message's button."""
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = payload_channel(body) or ""
        card_ts = container.get("message_ts") or message.get("ts")
        # A card posted inside a thread keeps its follow-ups in that thread.
        thread_ts = message.get("thread_ts") or card_ts
        ctx = await self.body_context(client, body, channel=channel, thread=thread_ts)
        return ctx, channel, card_ts, thread_ts

    # -- answers --------------------------------------------------------------------------

    def conversation(
        self, client: AsyncWebClient, *, status: ThreadStatus | None = None, **kwargs: Any
    ) -> SlackConversation:
        """Where one request's answers go. In an assistant thread (`status`: the message being
        answered, or a thread seen lately, e.g. an approval card's) progress becomes the
        thread's status instead of lines."""
        kwargs.setdefault("streaming", self.streaming)
        status = status or self._thread_status(
            client, kwargs.get("channel"), kwargs.get("thread_ts")
        )
        if status is not None:
            return AssistantConversation(client, status=status, sandbox=self.sandbox, **kwargs)
        return SlackConversation(client, sandbox=self.sandbox, **kwargs)

    def _thread_status(
        self, client: AsyncWebClient, channel: str | None, thread_ts: str | None
    ) -> ThreadStatus | None:
        if not channel or not thread_ts or (channel, thread_ts) not in self.assistant_threads:
            return None
        set_status = AsyncSetStatus(client=client, channel_id=channel, thread_ts=thread_ts)
        return self.thread_status(set_status, channel, thread_ts)

    def thread_status(self, set_status: SetStatus, channel: str, thread_ts: str) -> ThreadStatus:
        """The status line of an assistant thread; forgotten as one when Slack refuses it."""
        on_refused = partial(self.assistant_threads.discard, channel, thread_ts)
        return ThreadStatus(set_status, channel=channel, thread_ts=thread_ts, on_refused=on_refused)

    async def tell(self, conversation: SlackConversation, text: str) -> None:
        """An ephemeral note to one person (chat.postEphemeral, else the response_url)."""
        message = blocks.note(text)
        try:
            await conversation.client.chat_postEphemeral(
                channel=conversation.channel, user=conversation.user, **message.as_kwargs()
            )
        except SlackApiError:
            if conversation.respond is None:
                raise
            await conversation.respond(
                response_type="ephemeral", replace_original=False, **message.as_kwargs()
            )


def payload_team_id(body: dict[str, Any]) -> str:
    """The Slack workspace of an interactive payload (a click, a modal submission)."""
    return (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or ""


def payload_channel(body: dict[str, Any]) -> str | None:
    """The channel of a click on a message's button."""
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")


def ephemeral_reply(respond: Any) -> OnError:
    """`on_error` for work started by a command or a click: the person alone is told."""

    async def tell(text: str) -> None:
        if respond is not None:
            await respond(text=text, response_type="ephemeral", replace_original=False)

    return tell


def reply_in_thread(client: AsyncWebClient, event: dict[str, Any]) -> OnError:
    """`on_error` for work started by a message: the answer goes in its thread."""

    async def reply(text: str) -> None:
        await client.chat_postMessage(
            channel=str(event.get("channel") or ""),
            thread_ts=event.get("thread_ts") or event.get("ts"),
            text=text,
        )

    return reply


def person_name(user: dict[str, Any]) -> str | None:
    profile = user.get("profile") or {}
    for value in (
        profile.get("display_name"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if value:
            return str(value)
    return None
