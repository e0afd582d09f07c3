"""What every Slack listener shares: background work tracking, the request context built from a
Slack payload, first-delivery checks, and where answers go. The listeners themselves live in
`slack_commands`, `slack_approvals` and `slack_events`; `slack.SlackAdapter` assembles them."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack_post import SlackConversation, StreamingSupport
from bot.app import Cockpit
from storage import approvals, events
from storage.db import DATABASE_DOWN_TEXT, DatabaseUnavailable
from tools.clock import Clock
from tools.contract import Platform, Reply, RequestContext

log = logging.getLogger("bot.adapters.slack")

DRAIN_TIMEOUT_SECONDS = 10.0
INTERNAL_ERROR_TEXT = (
    ":warning: Something went wrong while handling that (reference {ref}). Nothing else was "
    "changed; the details are in the bot's logs."
)

# `(ctx, text, conversation) -> handled?` — see `SlackAdapter.thread_relay`.
ThreadRelay = Callable[[RequestContext, str, SlackConversation], Awaitable[bool]]
OnError = Callable[[str], Awaitable[Any]]
T = TypeVar("T")


class SlackBase:
    cockpit: Cockpit
    clock: Clock
    thread_relay: ThreadRelay | None

    def __init__(self, cockpit: Cockpit) -> None:
        self.cockpit = cockpit
        self.clock = cockpit.clock
        self.thread_relay = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._names: dict[str, str] = {}
        self._team_names: dict[str, str] = {}
        self._deciding: set[tuple[int, int]] = set()  # (org, approval) clicks in progress
        self.streaming = StreamingSupport()

    @property
    def sandbox(self) -> bool:
        return bool(self.cockpit.services.sandbox)

    # -- background work ------------------------------------------------------------------

    def spawn(
        self, coro: Coroutine[Any, Any, None], *, what: str, on_error: OnError | None = None
    ) -> None:
        """Run work after the ack, tracked so shutdown and tests can wait for it. A crash is
        logged with a reference; `on_error(text)` tells the person, without details."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable:
                log.warning("Slack %s: the database is not answering", what)
                if on_error is not None:
                    try:
                        await on_error(f":warning: {DATABASE_DOWN_TEXT}")
                    except Exception:
                        log.warning("could not tell the user the database is down", exc_info=True)
            except Exception:
                ref = f"slack-{uuid.uuid4().hex[:8]}"
                log.exception("Slack %s failed (reference %s)", what, ref)
                if on_error is not None:
                    try:
                        await on_error(INTERNAL_ERROR_TEXT.format(ref=ref))
                    except Exception:
                        log.warning("could not tell the user about %s", ref, exc_info=True)

        task = asyncio.get_running_loop().create_task(guarded(), name=f"slack-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until the background work started so far (and any it started) is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.wait(list(self._tasks), timeout=remaining)

    async def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def blocking(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run synchronous database work off the event loop, on the process's storage threads
        (the one bounded pool every storage call shares; first sightings that race are settled
        in `Cockpit.context_for`)."""
        return await self.cockpit.db.call(functools.partial(func, *args, **kwargs))

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
        return await self.blocking(
            self.cockpit.context_for,
            platform=Platform.slack,
            workspace_id=team_id,
            workspace_name=team_name or self._team_names.get(team_id) or team_id,
            user_id=user_id,
            display_name=name,
            channel=channel,
            thread=thread,
            idempotency_key=idempotency_key,
        )

    async def first_delivery(self, ctx: RequestContext, key: str) -> bool:
        """True the first time Slack delivers this payload; retries and replays say False."""

        def claim() -> bool:
            with self.cockpit.db.session() as s:
                return events.claim(s, org_id=ctx.org_id, key=key, now=self.clock.now())

        return await self.blocking(claim)

    # -- answers --------------------------------------------------------------------------

    def conversation(self, client: AsyncWebClient, **kwargs: Any) -> SlackConversation:
        kwargs.setdefault("streaming", self.streaming)
        return SlackConversation(client, sandbox=self.sandbox, **kwargs)

    async def approval_row(self, ctx: RequestContext, approval_id: int) -> Any:
        def get() -> Any:
            with self.cockpit.db.session() as s:
                return approvals.get(s, org_id=ctx.org_id, approval_id=approval_id)

        return await self.blocking(get)

    async def expires_at(self, ctx: RequestContext, reply: Reply) -> datetime | None:
        """When the approval a reply asks for expires (shown on the card)."""
        if reply.approval_id is None:
            return None
        row = await self.approval_row(ctx, reply.approval_id)
        return row.expires_at if row else None


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
