"""`cockpit web`: the HTTP server (aiohttp).

Routes: Slack HTTP mode (`POST /slack/events`, `GET /slack/install`, `GET /slack/oauth_redirect`)
when Slack is configured, `/healthz` (the process is alive), `/readyz` (the database answers and
its schema is current; 503 with the reason otherwise) and `/metrics` (Prometheus text format;
`Authorization: Bearer $COCKPIT_METRICS_TOKEN` required when that is set).
Port: `--port`, else `$PORT`, else 3000. Host: `--host`, else `$COCKPIT_HOST`, else 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from bot.adapters.http_api import add_api_routes
from storage.db import DatabaseUnavailable

if TYPE_CHECKING:
    from bot.adapters.slack import SlackAdapter
    from bot.app import Cockpit
    from bot.settings import Settings

log = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
SLACK_INSTALL_PATH = "/slack/install"
SLACK_REDIRECT_PATH = "/slack/oauth_redirect"
READY_CHECK_TIMEOUT_SECONDS = 5.0

COCKPIT_KEY: web.AppKey[Cockpit] = web.AppKey("cockpit")
SLACK_KEY: web.AppKey[SlackAdapter | None] = web.AppKey("slack")
METRICS_TOKEN_KEY: web.AppKey[str | None] = web.AppKey("metrics_token")


def resolve_port(option: int | None, env_port: int | None, default: int) -> int:
    """`--port` wins, then `$PORT`, then the default."""
    if option:
        return option
    if env_port:
        return env_port
    return default


def resolve_host(option: str | None, settings: Settings) -> str:
    """`--host` wins, then `$COCKPIT_HOST` (default 127.0.0.1)."""
    return option or settings.host


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _not_answering() -> web.Response:
    return _not_ready(
        f"the database is not answering (no answer within {READY_CHECK_TIMEOUT_SECONDS:.0f} s)"
    )


async def readyz(request: web.Request) -> web.Response:
    cockpit = request.app[COCKPIT_KEY]

    def check() -> tuple[str | None, str | None]:
        return cockpit.db.current_revision(), cockpit.db.head_revision()

    try:
        # On the storage threads, as every storage call: when they are all stuck on a slow
        # database, this says so instead of answering "ready".
        current, head = await asyncio.wait_for(
            cockpit.db.call(check), timeout=READY_CHECK_TIMEOUT_SECONDS
        )
    except DatabaseUnavailable as exc:
        if exc.__cause__ is not None:  # refused, or a driver error: reachable it is not
            log.warning("readiness check failed", exc_info=True)
            return _not_ready(f"the database is unreachable ({type(exc.__cause__).__name__})")
        return _not_answering()
    except TimeoutError:
        return _not_answering()
    except Exception as exc:  # any driver error means "not ready"; the details go to the log
        log.warning("readiness check failed", exc_info=True)
        return _not_ready(f"the database is unreachable ({type(exc).__name__})")
    if current != head:
        return _not_ready(
            f"database migrations are not current (at {current or 'none'}, code expects "
            f"{head}); run `cockpit db upgrade`"
        )
    # The Slack adapter verified its token before the server started listening (it refuses
    # to start otherwise), so being here means the surface is connected.
    slack = "connected (HTTP mode)" if request.app[SLACK_KEY] is not None else "not configured"
    return web.json_response({"status": "ready", "revision": current, "surfaces": {"slack": slack}})


def _not_ready(reason: str) -> web.Response:
    return web.json_response({"status": "unavailable", "reason": reason}, status=503)


def _bearer_ok(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken says nothing about how much of the token was right
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    token = request.app.get(METRICS_TOKEN_KEY)
    if token and not _bearer_ok(request, token):
        return web.json_response(
            {"error": "metrics need Authorization: Bearer <COCKPIT_METRICS_TOKEN>"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _slack_not_configured(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "error": "Slack HTTP mode is not configured: set SLACK_SIGNING_SECRET and either "
            "SLACK_BOT_TOKEN or SLACK_CLIENT_ID + SLACK_CLIENT_SECRET."
        },
        status=404,
    )


def build_web_app(cockpit: Cockpit, *, slack: SlackAdapter | None = None) -> web.Application:
    """The aiohttp application; `slack` is the HTTP-mode adapter, or None without Slack."""
    app = web.Application()
    app[COCKPIT_KEY] = cockpit
    app[SLACK_KEY] = slack
    app[METRICS_TOKEN_KEY] = cockpit.settings.metrics_token
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_api_routes(app, cockpit)
    if slack is not None:
        app.router.add_post(SLACK_EVENTS_PATH, slack.handle_events)
        app.router.add_get(slack.install_path or SLACK_INSTALL_PATH, slack.handle_install)
        app.router.add_get(slack.redirect_path or SLACK_REDIRECT_PATH, slack.handle_oauth_redirect)
    else:
        app.router.add_post(SLACK_EVENTS_PATH, _slack_not_configured)
        app.router.add_get(SLACK_INSTALL_PATH, _slack_not_configured)
        app.router.add_get(SLACK_REDIRECT_PATH, _slack_not_configured)
    return app


def metrics_app(*, token: str | None) -> web.Application:
    """Just `/metrics` (the worker's server), behind the same optional bearer token."""
    app = web.Application()
    app[METRICS_TOKEN_KEY] = token
    app.router.add_get("/metrics", metrics)
    return app


async def start_metrics_server(*, host: str, port: int, token: str | None) -> web.AppRunner:
    """Serve `metrics_app` on host:port; the caller cleans the returned runner up."""
    runner = web.AppRunner(metrics_app(token=token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def slack_for_web(cockpit: Cockpit) -> SlackAdapter | None:
    """The Slack HTTP-mode adapter when a signing secret is configured, else None."""
    settings = cockpit.settings
    if not settings.slack_signing_secret:
        return None
    from bot.adapters.slack import SlackAdapter

    return SlackAdapter(cockpit, mode="http")


async def serve(
    cockpit: Cockpit,
    *,
    port: int,
    host: str | None = None,
    slack: SlackAdapter | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or the task is cancelled). `host` defaults to the settings'
    (`COCKPIT_HOST`, loopback unless set)."""
    host = resolve_host(host, cockpit.settings)
    if slack is not None:
        await slack.start()
    runner = web.AppRunner(build_web_app(cockpit, slack=slack), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info(
        "cockpit web listening on http://%s:%s (Slack HTTP mode: %s)",
        host,
        port,
        "on" if slack else "off",
    )
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        if slack is not None:
            await slack.close()


async def run_web(cockpit: Cockpit, *, port: int | None = None, host: str | None = None) -> int:
    """`cockpit web`: serve until cancelled. Returns the exit code."""
    from slack_sdk.errors import SlackApiError

    from bot.adapters.slack import SlackConfigError
    from bot.settings import DEFAULT_WEB_PORT

    settings = cockpit.settings
    try:
        slack = slack_for_web(cockpit)
    except SlackConfigError as exc:
        log.error("%s", exc)
        return 2
    if slack is None:
        log.warning(
            "SLACK_SIGNING_SECRET is not set: serving health checks only, no Slack HTTP mode."
        )
    # Runs until cancelled: `cockpit web` cancels the task on SIGTERM/SIGINT (bot.cli._run),
    # and `serve` closes the server and the Slack adapter on the way out.
    try:
        await serve(
            cockpit,
            port=resolve_port(port, settings.port, DEFAULT_WEB_PORT),
            host=host,  # `serve` resolves it (`--host`, else COCKPIT_HOST)
            slack=slack,
        )
    except SlackApiError as exc:
        from bot.adapters.slack_run import startup_problem

        log.error("%s", startup_problem(exc))
        return 2
    return 0
