"""`cockpit run` with Slack configured: Socket Mode and/or the HTTP server, plus the console when
someone is at the terminal. Runs until cancelled (`cockpit run` cancels it on SIGTERM/SIGINT)
or until the console exits."""

from __future__ import annotations

import asyncio
import logging
import sys

from slack_sdk.errors import SlackApiError

from bot.adapters.slack import SlackAdapter, SlackConfigError
from bot.app import Cockpit
from bot.settings import DEFAULT_WEB_PORT

log = logging.getLogger(__name__)


def startup_problem(exc: Exception) -> str:
    """What to tell the operator when Slack cannot start (no stack trace)."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if exc.response is not None else "unknown_error"
        return (
            f"Slack refused to connect ({error}). Check SLACK_BOT_TOKEN (xoxb-…) and, for "
            "Socket Mode, SLACK_APP_TOKEN (xapp-… with connections:write); see docs/slack.md."
        )
    return str(exc)


async def run_slack(cockpit: Cockpit, *, console: bool | None = None) -> int:
    """Start Slack as configured: Socket Mode when SLACK_BOT_TOKEN + SLACK_APP_TOKEN are set,
    HTTP mode (`cockpit web`'s server) when SLACK_SIGNING_SECRET + client id/secret are set.
    The console runs too when stdin is a terminal (`console=None` decides by that).
    Returns the exit code."""
    from bot.web import resolve_port, serve

    settings = cockpit.settings
    if console is None:
        console = sys.stdin.isatty()
    stop = asyncio.Event()
    socket: SlackAdapter | None = None
    web_task: asyncio.Task[None] | None = None
    running = []
    try:
        try:
            if settings.slack_socket_mode:
                socket = SlackAdapter(cockpit, mode="socket")
                await socket.start_socket_mode()
                running.append("Socket Mode")
            if settings.slack_http_mode:
                port = resolve_port(None, settings.port, DEFAULT_WEB_PORT)
                http = SlackAdapter(cockpit, mode="http")
                await http.start()
                web_task = asyncio.create_task(serve(cockpit, port=port, slack=http, stop=stop))
                running.append(f"HTTP mode on port {port}")
        except (SlackApiError, SlackConfigError) as exc:
            print(startup_problem(exc), file=sys.stderr)
            return 2
        print(f"Slack is running ({', '.join(running)}). Stop with Ctrl-C.", file=sys.stderr)
        if console:
            from bot.adapters.console import Console, default_user

            return await Console(cockpit, user=default_user()).run()
        await stop.wait()
        return 0
    finally:
        stop.set()
        if web_task is not None:
            await asyncio.gather(web_task, return_exceptions=True)
        if socket is not None:
            await socket.close()
