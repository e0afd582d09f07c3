"""`cockpit discord` and `cockpit run` with DISCORD_BOT_TOKEN: the Discord bot, alone or beside
the other surfaces, until SIGTERM/SIGINT (or the console / the other surfaces end)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

from bot.adapters.discord import DiscordAdapter
from bot.app import Cockpit

Alongside = Callable[[], Awaitable[int]]


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, non-main thread
            loop.add_signal_handler(sig, stop.set)


async def run_discord(
    cockpit: Cockpit, *, alongside: Alongside | None = None, console: bool | None = None
) -> int:
    """Connect the Discord bot, then run `alongside` (e.g. Slack) or, when stdin is a terminal
    (`console=None` decides by that), the console; otherwise wait for a stop signal. Returns 1
    when the gateway connection ends by itself (e.g. a refused token or intent)."""
    adapter = DiscordAdapter(cockpit)
    try:
        await adapter.start()
        print("Discord is connected. Stop with Ctrl-C.", file=sys.stderr)
        if alongside is not None:
            return await alongside()
        if console is None:
            console = sys.stdin.isatty()
        if console:
            from bot.adapters.console import Console, default_user

            return await Console(cockpit, user=default_user()).run()
        stop = asyncio.Event()
        _stop_on_signals(stop)
        stopper = asyncio.create_task(stop.wait())
        waiting: set[asyncio.Future[object]] = {stopper}  # type: ignore[arg-type]
        if adapter.gateway is not None:
            waiting.add(adapter.gateway)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        return 0 if stopper in done else 1
    finally:
        await adapter.close()
