"""`cockpit discord` and `cockpit run` with DISCORD_BOT_TOKEN: the Discord bot, alone or beside
the other surfaces, until the gateway connection ends or the task is cancelled (the CLI cancels
it on SIGTERM/SIGINT; `finally` then lets running work finish and disconnects)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from bot.adapters.discord import DiscordAdapter
from bot.app import Cockpit

Alongside = Callable[[], Awaitable[int]]


async def run_discord(
    cockpit: Cockpit, *, alongside: Alongside | None = None, console: bool | None = None
) -> int:
    """Connect the Discord bot, then run `alongside` (e.g. Slack) or, when stdin is a terminal
    (`console=None` decides by that), the console; otherwise run until cancelled. Returns 1 when
    the gateway connection ends by itself (e.g. a refused token or intent)."""
    adapter = DiscordAdapter(cockpit)
    try:
        await adapter.start()
        # The alert router's `discord_channel` routes post through this bot's connection.
        cockpit.services.discord_client = adapter.client
        print("Discord: logged in, connecting to the gateway. Stop with Ctrl-C.", file=sys.stderr)
        if alongside is not None:
            return await alongside()
        if console is None:
            console = sys.stdin.isatty()
        if console:
            from bot.adapters.console import Console, default_user

            return await Console(cockpit, user=default_user()).run()
        if adapter.gateway is not None:
            await adapter.gateway
        return 1
    finally:
        cockpit.services.discord_client = None
        await adapter.close()
