"""`cockpit` command line. Imports are lazy so `cockpit --help` stays fast."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from bot.app import Cockpit
    from bot.settings import Settings

ROLES = ["viewer", "member", "admin", "owner"]


def _settings() -> Settings:
    from bot.logs import setup_logging
    from bot.settings import Settings

    settings = Settings()
    level = settings.log_level
    if sys.stdin.isatty() and sys.stderr.isatty() and "COCKPIT_LOG_LEVEL" not in os.environ:
        # Someone is typing at the console: background INFO lines would land in their prompt.
        level = "WARNING"
    setup_logging(level)
    return settings


async def _with_cockpit(settings: Settings, body: Any) -> int:
    from bot.app import Cockpit

    cockpit = Cockpit(settings)
    try:
        await cockpit.start()
        return int(await body(cockpit) or 0)
    finally:
        await cockpit.stop()


EXIT_TERMINATED = 143


def _run(coro: Any) -> None:
    """Run until done or SIGTERM/SIGINT. A signal cancels the main task, so `finally` blocks
    run: in-flight deploys compensate, connections close, the scheduler lease is released."""

    async def main_task() -> int:
        import signal

        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return int(await coro or 0)
        except asyncio.CancelledError:
            click.echo("Stopping: finishing cleanup…", err=True)
            return EXIT_TERMINATED

    try:
        code = asyncio.run(main_task())
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


async def _until_cancelled() -> int:
    await asyncio.Event().wait()
    return 0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """AI Dev Cockpit: deploy and run open LLMs on RunPod from Slack, Discord or this console."""


@main.command()
def run() -> None:
    """Start everything configured: surfaces, and the sandbox cloud when there is no RunPod key."""
    settings = _settings()

    async def body(cockpit: Cockpit) -> int:
        from bot.adapters.console import Console, default_user

        cockpit.start_scheduler()
        slack = settings.slack_socket_mode or settings.slack_http_mode
        if settings.discord_enabled:
            # Discord runs beside Slack (or beside the console when someone is at the terminal).
            from bot.adapters.discord_run import run_discord

            async def with_slack() -> int:
                from bot.adapters.slack_run import run_slack

                return await run_slack(cockpit)

            return await run_discord(cockpit, alongside=with_slack if slack else None)
        if slack:
            # Slack runs; the console joins only when someone is at the terminal.
            from bot.adapters.slack_run import run_slack

            return await run_slack(cockpit)
        return await Console(cockpit, user=default_user()).run()

    _run(_with_cockpit(settings, body))


@main.command()
@click.option("--port", type=int, default=None, help="Port (default: $PORT, else 3000).")
@click.option(
    "--host",
    default=None,
    help="Address to bind (default: $COCKPIT_HOST, else 127.0.0.1; 0.0.0.0 for all).",
)
def web(port: int | None, host: str | None) -> None:
    """HTTP server: Slack HTTP mode (/slack/events, /slack/install, /slack/oauth_redirect),
    /healthz, /readyz, /metrics."""
    settings = _settings()

    async def body(cockpit: Cockpit) -> int:
        from bot.web import run_web

        return await run_web(cockpit, port=port, host=host)

    _run(_with_cockpit(settings, body))


@main.command()
def worker() -> None:
    """The scheduler only: health, cost, idle, reconcile and digest sweeps (one process owns
    them at a time through a database lease)."""
    settings = _settings()

    async def body(cockpit: Cockpit) -> int:
        cockpit.start_scheduler()
        metrics_runner = None
        if settings.worker_metrics_port:
            from bot.web import start_metrics_server

            metrics_runner = await start_metrics_server(
                host=settings.host,
                port=settings.worker_metrics_port,
                token=settings.metrics_token,
            )
        click.echo(
            "worker running: scheduled sweeps"
            + (
                f"; metrics on :{settings.worker_metrics_port}/metrics"
                if settings.worker_metrics_port
                else ""
            )
            + " (Ctrl-C or SIGTERM stops)",
            err=True,
        )
        try:
            return await _until_cancelled()
        finally:
            if metrics_runner is not None:
                await metrics_runner.cleanup()

    _run(_with_cockpit(settings, body))


@main.group(name="discord", invoke_without_command=True)
@click.pass_context
def discord_group(ctx: click.Context) -> None:
    """Discord only: the bot (DISCORD_BOT_TOKEN). `cockpit discord sync` registers its commands."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()

    async def body(cockpit: Cockpit) -> int:
        from bot.adapters.discord_run import run_discord

        return await run_discord(cockpit, console=False)

    _run(_with_cockpit(settings, body))


@discord_group.command("sync")
@click.option("--guild", type=int, default=None, help="Only this server (instant; for dev).")
def discord_sync(guild: int | None) -> None:
    """Register the slash commands with Discord: once per deploy, not at every start."""
    settings = _settings()

    async def body() -> int:
        from bot.adapters.discord import DiscordConfigError, sync_commands

        try:
            names = await sync_commands(settings, guild_id=guild)
        except DiscordConfigError as exc:
            click.echo(f"Error: {exc}", err=True)
            return 2
        where = f"server {guild}" if guild else "every server (global: may take a while to show)"
        click.echo(f"Synced {len(names)} commands to {where}: /" + ", /".join(names))
        return 0

    _run(body())


@main.command()
@click.option("--port", type=int, default=None, help="Port (default 8765).")
def sandbox(port: int | None) -> None:
    """Run the local RunPod emulator alone (REST v2 + serverless data plane)."""
    from tools.runpod.sandbox import DEFAULT_PORT
    from tools.runpod.sandbox import main as sandbox_main

    _run(sandbox_main(port or DEFAULT_PORT))


@main.command()
@click.option("--yes", is_flag=True, help="Approve every approval prompt (for scripts).")
@click.option("--user", default=None, help="Act as this user (default: the OS user).")
@click.option("--role", type=click.Choice(ROLES), default="owner", show_default=True)
def console(yes: bool, user: str | None, role: str) -> None:
    """Interactive console (reads stdin when piped)."""
    settings = _settings()

    async def body(cockpit: Cockpit) -> int:
        from bot.adapters.console import Console, default_user
        from tools.contract import Role

        return await Console(cockpit, user=user or default_user(), role=Role(role), yes=yes).run()

    _run(_with_cockpit(settings, body))


@main.command()
def doctor() -> None:
    """Check configuration and reachability; say what is real and what is sandbox."""
    settings = _settings()
    from bot.doctor import run_doctor

    _run(run_doctor(settings))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations up to the newest schema."""
    settings = _settings()
    from storage.db import Database

    database = Database(settings.effective_database_url)
    database.upgrade()
    click.echo(
        f"Database at {_safe_url(database.url)} is at revision {database.current_revision()}."
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
