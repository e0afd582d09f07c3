"""What every Discord handler shares (`DiscordSurface`): the cockpit, the tracked work, and the
request context built from a Discord user (a guild is a workspace, a DM a per-user workspace,
optional Discord-role → bot-role mapping). The handlers live in `discord_commands`,
`discord_approvals` and `discord_events`, each a component holding this surface;
`discord.DiscordAdapter` wires them to the discord.py client."""

from __future__ import annotations

import logging

import discord

from bot.adapters.discord_render import DiscordMessage, render_reply
from bot.adapters.discord_stream import Anchor, ThreadProgress, is_dm, is_thread
from bot.app import Cockpit
from bot.conversation import SurfaceWork
from tools.contract import Platform, Reply, ReplyField, RequestContext, Role

log = logging.getLogger("bot.adapters.discord")

ROLE_CACHE_SECONDS = 300.0  # guild role names fetched over HTTP are reused this long
DM_WORKSPACE_PREFIX = "dm-"


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


class DiscordSurface:
    def __init__(self, cockpit: Cockpit, client: discord.Client) -> None:
        self.cockpit = cockpit
        self.clock = cockpit.clock
        self.client = client
        self.work = SurfaceWork("discord", icon="⚠️", log=log)
        self.role_map = parse_role_map(cockpit.settings.discord_role_map)
        self._role_names: dict[int, tuple[float, dict[int, str]]] = {}

    @property
    def sandbox(self) -> bool:
        return bool(self.cockpit.services.sandbox)

    def render(self, reply: Reply) -> DiscordMessage:
        """The reply as a Discord message; an approval card shows when it expires (a Discord
        timestamp: local time, relative)."""
        if reply.approval_id is not None and reply.expires_at is not None:
            when = discord.utils.format_dt(reply.expires_at, style="R")
            reply = reply.model_copy(
                update={"fields": [*reply.fields, ReplyField(label="Expires", value=when)]}
            )
        return render_reply(reply, sandbox=self.sandbox)

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
        return await self.cockpit.context(
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

    async def interaction_context(
        self, interaction: discord.Interaction, *, idempotency_key: str | None = None
    ) -> RequestContext:
        """`context` for the person behind a slash command, a click or an autocomplete (the
        thread is the interaction's channel when that is a thread)."""
        guild = interaction.guild
        channel_id = str(interaction.channel_id) if interaction.channel_id else None
        return await self.context(
            user=interaction.user,
            guild_id=interaction.guild_id,
            guild_name=guild.name if guild is not None and guild.name else None,
            channel=channel_id,
            thread=channel_id if is_thread(interaction.channel) else None,
            idempotency_key=idempotency_key,
        )

    def interaction_progress(
        self, interaction: discord.Interaction, *, anchor: Anchor, name: str
    ) -> ThreadProgress:
        """Progress of an interaction: in place in a thread or a DM, else in a thread started
        from the message `anchor` names."""
        channel = interaction.channel
        return ThreadProgress(
            self.client,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            in_place=is_thread(channel) or is_dm(channel) or interaction.guild_id is None,
            anchor=anchor,
            name=name,
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
