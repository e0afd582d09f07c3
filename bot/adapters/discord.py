"""Discord surface: a discord.py `Client` with an `app_commands.CommandTree` generated from the
tool registry, turning interactions and messages into cockpit requests.

Thin by design: a slash command is deferred at once (Discord's 3-second rule), rebuilt into a
command line and passed to `Cockpit.handle`; the rendered Reply is the followup. Approvals are
persistent buttons (`discord_approvals`), mentions/DMs/model-chat threads are `discord_events`,
rendering is `discord_render`, streaming and progress threads `discord_stream`. Permissions,
approvals and idempotency are the dispatcher's.

    adapter = DiscordAdapter(cockpit)      # DISCORD_BOT_TOKEN
    await adapter.start()                  # log in, connect to the gateway in the background
    ...
    await adapter.close()

Commands are synced on purpose, never at start (Discord caps command creations per day):
`cockpit discord sync --guild ID` (instant, per guild, for development) or without `--guild`
(global). `DISCORD_API_URL` points discord.py's REST base (`Route.BASE`, also used by
interaction responses and webhooks) at a fake in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import discord
from discord import app_commands

from bot.adapters.discord_approvals import DYNAMIC_ITEMS, ApprovalHandlers
from bot.adapters.discord_base import DiscordConfigError, DiscordSurface, parse_role_map
from bot.adapters.discord_commands import CommandHandlers, build_commands
from bot.adapters.discord_events import EventHandlers
from bot.adapters.discord_render import alert_embed, note_embed, send_alert_embed
from bot.app import Cockpit
from bot.conversation import DRAIN_TIMEOUT_SECONDS
from bot.settings import Settings
from tools.contract import Registry

log = logging.getLogger(__name__)

API_VERSION_SUFFIX = "/api/v10"
# Messages in /chat threads need their text without a mention: the privileged Message Content
# intent (enable it in the Developer Portal → Bot). Mentions and DMs carry text without it.
MESSAGE_CONTENT_INTENT = True
MISSING_TOKEN = (
    "Discord needs DISCORD_BOT_TOKEN (Developer Portal → your application → Bot → Reset Token)."
)


def apply_api_url(url: str | None) -> None:
    """Point discord.py's REST calls at `url` (a fake in tests). `Route.BASE` is read whenever a
    request is built, so this covers the bot, interaction responses and webhooks alike."""
    if not url:
        return
    base = url.rstrip("/")
    if not re.search(r"/api/v\d+$", base):
        base += API_VERSION_SUFFIX
    discord.http.Route.BASE = base


def default_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = MESSAGE_CONTENT_INTENT
    return intents


class CockpitClient(discord.Client):
    """The discord.py client; events go to the adapter (`cockpit_adapter`)."""

    def __init__(self, adapter: DiscordAdapter | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cockpit_adapter = adapter

    async def setup_hook(self) -> None:
        # Buttons are matched by custom_id pattern, so cards posted before a restart work.
        self.add_dynamic_items(*DYNAMIC_ITEMS)

    async def on_ready(self) -> None:
        log.info("Discord: logged in as %s in %d server(s)", self.user, len(self.guilds))

    async def on_message(self, message: discord.Message) -> None:
        if self.cockpit_adapter is not None:
            await self.cockpit_adapter.on_message(message)


class DiscordAdapter:
    """One Discord bot bound to one `Cockpit`: the discord.py client, its command tree, and
    the handlers (components sharing one `DiscordSurface`)."""

    def __init__(self, cockpit: Cockpit, *, intents: discord.Intents | None = None) -> None:
        settings = cockpit.settings
        if not settings.discord_bot_token:
            raise DiscordConfigError(MISSING_TOKEN)
        self.cockpit = cockpit
        self.token = settings.discord_bot_token
        apply_api_url(settings.discord_api_url)
        self.client = CockpitClient(
            self,
            intents=intents or default_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.surface = DiscordSurface(cockpit, self.client)
        self.work = self.surface.work
        self.commands = CommandHandlers(self.surface)
        self.approvals = ApprovalHandlers(self.surface)
        self.events = EventHandlers(self.surface)
        # What the client and the persistent buttons call (`interaction.client.cockpit_adapter`).
        self.on_message = self.events.on_message
        self.on_decision = self.approvals.on_decision
        self.on_command_button = self.approvals.on_command_button
        self.tree: app_commands.CommandTree[CockpitClient] = app_commands.CommandTree(self.client)
        self.tree.on_error = self.on_tree_error  # type: ignore[method-assign]
        for command in build_commands(
            cockpit.services.registry,
            invoke=self.commands.on_command,
            complete=self.commands.on_autocomplete,
        ):
            self.tree.add_command(command)
        self._gateway: asyncio.Task[None] | None = None

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until the work started so far is done (bounded by `timeout`)."""
        await self.work.drain(timeout)

    # -- lifecycle ------------------------------------------------------------------------

    async def login(self) -> None:
        """Log in over REST (bot user and application id); no gateway connection."""
        await self.client.login(self.token)

    async def start(self) -> None:
        """Log in, then connect to the gateway in the background (it reconnects by itself)."""
        await self.login()
        self._gateway = asyncio.get_running_loop().create_task(
            self._connect(), name="discord-gateway"
        )

    @property
    def gateway(self) -> asyncio.Task[None] | None:
        return self._gateway

    async def _connect(self) -> None:
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error(
                "Discord refused the Message Content intent. Enable it in the Developer Portal "
                "(your application → Bot → Privileged Gateway Intents → Message Content), then "
                "restart."
            )
            raise

    async def close(self) -> None:
        """Let running work finish (bounded), then disconnect."""
        await self.work.close(DRAIN_TIMEOUT_SECONDS)
        await self.client.close()
        if self._gateway is not None:
            self._gateway.cancel()
            with contextlib.suppress(BaseException):
                await self._gateway
            self._gateway = None

    async def sync(self, *, guild_id: int | None = None) -> list[str]:
        """Register the commands with Discord (see `sync_tree`); the bot must be logged in."""
        return await sync_tree(self.tree, guild_id=guild_id)

    async def on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        ref = self.work.reference()
        log.error("Discord command error (reference %s)", ref, exc_info=error)
        text = f"⚠️ That did not work (reference {ref}). Nothing was changed."
        if isinstance(error, app_commands.CommandNotFound):
            text = "⚠️ This command is not part of this bot any more. Type /help for the list."
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(embed=note_embed(text), ephemeral=True)
            else:
                await interaction.response.send_message(embed=note_embed(text), ephemeral=True)


async def sync_tree(
    tree: app_commands.CommandTree[Any], *, guild_id: int | None = None
) -> list[str]:
    """Register the tree's commands: per guild (instant; for development) when `guild_id` is
    given, else globally. Do this once per deploy, not at every start: Discord allows 200
    command creations per day per guild."""
    if guild_id is not None:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        synced = await tree.sync(guild=guild)
    else:
        synced = await tree.sync()
    return [c.name for c in synced]


async def sync_commands(
    settings: Settings, *, guild_id: int | None = None, registry: Registry | None = None
) -> list[str]:
    """`cockpit discord sync`: log in with DISCORD_BOT_TOKEN and register the commands
    generated from the registry. Needs no database and no gateway connection."""
    from bot.app import load_tool_modules
    from tools.contract import REGISTRY

    if not settings.discord_bot_token:
        raise DiscordConfigError(MISSING_TOKEN)
    parse_role_map(settings.discord_role_map)  # a bad map fails here, not at first use
    apply_api_url(settings.discord_api_url)
    load_tool_modules()

    async def never(*_: Any) -> None:
        raise RuntimeError("commands built for syncing are not run")

    async def no_choices(*_: Any) -> list[app_commands.Choice[str]]:
        return []

    client = CockpitClient(None, intents=discord.Intents.default())  # no gateway: any will do
    tree: app_commands.CommandTree[CockpitClient] = app_commands.CommandTree(client)
    for command in build_commands(registry or REGISTRY, invoke=never, complete=no_choices):
        tree.add_command(command)
    async with client:
        try:
            await client.login(settings.discord_bot_token)
            return await sync_tree(tree, guild_id=guild_id)
        except discord.LoginFailure:
            raise DiscordConfigError(
                "Discord rejected DISCORD_BOT_TOKEN (401). Copy it again from the Developer "
                "Portal (your application → Bot → Reset Token)."
            ) from None
        except discord.HTTPException as exc:
            raise DiscordConfigError(
                f"Discord refused the command sync ({exc.status}): {exc.text or exc}. With "
                "--guild, check the server id and that the bot was invited with the "
                "applications.commands scope."
            ) from None


__all__ = [
    "CockpitClient",
    "DiscordAdapter",
    "DiscordConfigError",
    "alert_embed",
    "apply_api_url",
    "send_alert_embed",
    "sync_commands",
    "sync_tree",
]
