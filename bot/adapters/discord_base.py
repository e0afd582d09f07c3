"""What every Discord handler shares: the request context built from a Discord user (a guild is
a workspace, a DM a per-user workspace, optional Discord-role → bot-role mapping), tracking of
running work for shutdown and tests, and the adapter's database thread. The handlers live in
`discord_commands`, `discord_approvals` and `discord_events`; `discord.DiscordAdapter`
assembles them."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar

import discord
from sqlmodel import select

from bot.adapters.discord_render import DiscordMessage, render_reply
from bot.app import Cockpit
from storage import approvals, conversations
from storage.models import Workspace
from tools.clock import Clock
from tools.contract import Platform, Reply, ReplyField, RequestContext, Role

log = logging.getLogger("bot.adapters.discord")

DRAIN_TIMEOUT_SECONDS = 10.0
ROLE_CACHE_SECONDS = 300.0  # guild role names fetched over HTTP are reused this long
DM_WORKSPACE_PREFIX = "dm-"
INTERNAL_ERROR_TEXT = (
    "⚠️ Something went wrong while handling that (reference {ref}). Nothing else was changed; "
    "the details are in the bot's logs."
)

T = TypeVar("T")


class DiscordConfigError(Exception):
    """Discord is not configured correctly; the message says what to set."""


def parse_role_map(raw: str | None) -> dict[str, Role]:
    """`COCKPIT_DISCORD_ROLE_MAP` ("Admins=admin,Ops=member"; a role id works as a key too) as
    {lower-cased role name or id: bot role}."""
    mapping: dict[str, Role] = {}
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        name, sep, role = entry.rpartition("=")
        role = role.strip().lower()
        if not sep or not name.strip() or role not in Role.__members__:
            raise DiscordConfigError(
                f"COCKPIT_DISCORD_ROLE_MAP entry {entry.strip()!r} is not `Discord role=bot role` "
                f"with a bot role among {', '.join(Role.__members__)} "
                '(e.g. "Admins=admin,Ops=member").'
            )
        mapping[name.strip().lower()] = Role(role)
    return mapping


class DiscordBase:
    cockpit: Cockpit
    clock: Clock
    client: discord.Client

    def __init__(self, cockpit: Cockpit) -> None:
        self.cockpit = cockpit
        self.clock = cockpit.clock
        self.role_map = parse_role_map(cockpit.settings.discord_role_map)
        self._role_names: dict[int, tuple[float, dict[int, str]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deciding: set[tuple[int, int]] = set()  # (org, approval) clicks in progress

    @property
    def sandbox(self) -> bool:
        return bool(self.cockpit.services.sandbox)

    def render(self, reply: Reply) -> DiscordMessage:
        return render_reply(reply, sandbox=self.sandbox)

    # -- running work ---------------------------------------------------------------------

    def track(self) -> None:
        """Count the current task (one interaction or message) as running work, so shutdown
        and tests can wait for it (`drain`)."""
        task = asyncio.current_task()
        if task is not None and task not in self._tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until the work started so far is done (bounded by `timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        current = asyncio.current_task()
        while True:
            pending = [t for t in self._tasks if t is not current and not t.done()]
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                return
            await asyncio.wait(pending, timeout=remaining)

    async def cancel_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def blocking(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run synchronous database work off the event loop, on the process's storage threads
        (the one bounded pool every storage call shares; first sightings that race are settled
        in `Cockpit.context_for`)."""
        return await self.cockpit.db.call(functools.partial(func, *args, **kwargs))

    @staticmethod
    def error_reference() -> str:
        return f"discord-{uuid.uuid4().hex[:8]}"

    # -- identity -------------------------------------------------------------------------

    async def context(
        self,
        *,
        user: discord.abc.User,
        guild_id: int | None,
        guild_name: str | None = None,
        channel: str | None = None,
        thread: str | None = None,
        idempotency_key: str | None = None,
    ) -> RequestContext:
        """The cockpit request context for a Discord user: the guild is the workspace (a DM is
        the person's own workspace); both are created on first sight. With
        COCKPIT_DISCORD_ROLE_MAP set, the person's highest mapped Discord role sets their role."""
        role = await self.mapped_role(user, guild_id)
        if guild_id is not None:
            workspace_id = str(guild_id)
            workspace_name = guild_name or f"Discord server {guild_id}"
        else:
            workspace_id = f"{DM_WORKSPACE_PREFIX}{user.id}"
            workspace_name = f"{user.display_name} (Discord DM)"
        return await self.blocking(
            self.cockpit.context_for,
            platform=Platform.discord,
            workspace_id=workspace_id,
            workspace_name=workspace_name,
            user_id=str(user.id),
            display_name=user.display_name,
            role=role,
            channel=channel,
            thread=thread,
            idempotency_key=idempotency_key,
        )

    async def mapped_role(self, user: discord.abc.User, guild_id: int | None) -> Role | None:
        """The highest bot role that the person's Discord roles map to, or None (no mapping
        configured, a DM, or no mapped role: the stored role stands)."""
        if not self.role_map or guild_id is None:
            return None
        role_ids = [int(r) for r in getattr(user, "_roles", ()) or ()]
        if not role_ids:
            return None
        found = [self.role_map[str(rid)] for rid in role_ids if str(rid) in self.role_map]
        if any(not key.isdigit() for key in self.role_map):
            names = await self.role_names(guild_id, role_ids)
            found += [
                self.role_map[names[rid].lower()]
                for rid in role_ids
                if rid in names and names[rid].lower() in self.role_map
            ]
        return max(found, key=lambda r: r.rank) if found else None

    async def role_names(self, guild_id: int, role_ids: list[int]) -> dict[int, str]:
        """Names of the guild's roles: from the gateway cache, else `GET /guilds/{id}/roles`
        (cached for ROLE_CACHE_SECONDS)."""
        guild = self.client.get_guild(guild_id)
        names: dict[int, str] = {}
        if guild is not None:
            for rid in role_ids:
                role = guild.get_role(rid)
                if role is not None:
                    names[rid] = role.name
        if all(rid in names for rid in role_ids):
            return names
        now = self.clock.monotonic()
        cached = self._role_names.get(guild_id)
        if cached is None or now - cached[0] > ROLE_CACHE_SECONDS:
            try:
                data = await self.client.http.get_roles(guild_id)
            except discord.HTTPException:
                log.warning("could not read the roles of Discord guild %s", guild_id)
                return names
            cached = (now, {int(r["id"]): str(r["name"]) for r in data})
            self._role_names[guild_id] = cached
        return {**cached[1], **names}

    # -- approvals ------------------------------------------------------------------------

    async def approval_status(self, ctx: RequestContext, approval_id: int) -> str | None:
        row = await self._approval(ctx.org_id, approval_id)
        return row.status if row is not None else None

    async def with_expiry(self, ctx: RequestContext, reply: Reply) -> Reply:
        """An approval card shows when it expires (a Discord timestamp: local time, relative)."""
        if reply.approval_id is None:
            return reply
        row = await self._approval(ctx.org_id, reply.approval_id)
        if row is None or row.expires_at is None:
            return reply
        expires = row.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        when = discord.utils.format_dt(expires, style="R")
        return reply.model_copy(
            update={"fields": [*reply.fields, ReplyField(label="Expires", value=when)]}
        )

    async def _approval(self, org_id: int, approval_id: int) -> Any:
        def get() -> Any:
            with self.cockpit.db.session() as s:
                return approvals.get(s, org_id=org_id, approval_id=approval_id)

        return await self.blocking(get)

    # -- model-chat threads ---------------------------------------------------------------

    async def bound_deployment(self, *, guild_id: int, thread_id: int) -> int | None:
        """The deployment a guild thread chats with (`/chat <deployment>` bound it), or None.
        Read-only: nobody becomes a member by merely talking in a channel."""

        def look_up() -> int | None:
            with self.cockpit.db.session() as s:
                # The workspace is only looked up here (orgs.ensure_workspace would create it).
                ws = s.exec(
                    select(Workspace).where(
                        Workspace.platform == Platform.discord.value,
                        Workspace.external_id == str(guild_id),
                    )
                ).first()
                if ws is None:
                    return None
                return conversations.bound_deployment(
                    s,
                    org_id=ws.org_id,
                    platform=Platform.discord.value,
                    channel=str(thread_id),
                    thread=str(thread_id),
                )

        return await self.blocking(look_up)
