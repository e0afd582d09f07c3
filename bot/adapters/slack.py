"""Slack surface: a slack-bolt `AsyncApp` that turns Slack payloads into cockpit requests.

Thin by design: every listener acknowledges at once (Slack's 3-second rule), then the work runs
in a tracked background task that builds the request context and calls `Cockpit.on_message`,
`handle` or `decide`, then renders the outcome. Permissions, approvals and idempotency are the
dispatcher's.

    adapter = SlackAdapter(cockpit, mode="socket")      # SLACK_BOT_TOKEN + SLACK_APP_TOKEN
    await adapter.start_socket_mode()
    ...
    adapter = SlackAdapter(cockpit, mode="http")        # SLACK_SIGNING_SECRET + (SLACK_BOT_TOKEN
    app = bot.web.build_web_app(cockpit, slack=adapter) #   or SLACK_CLIENT_ID/SECRET for OAuth)

Composition, not inheritance: `SlackSurface` (slack_base) holds what the listeners share (the
cockpit, the tracked work, contexts, conversations); the listeners are components holding it:
`slack_commands` (slash commands, command buttons, /connect modal), `slack_approvals`
(Approve/Cancel buttons), `slack_events` (mentions, DMs, pasted keys, App Home) and
`slack_assistant` (AI assistant threads: status, suggested prompts). Rendering is in
`slack_blocks`, where answers go in `slack_post`, OAuth storage in `bot.slack_oauth`.
`SLACK_API_URL` points the Web API client at a fake in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any, Literal

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_approvals import ApprovalHandlers
from bot.adapters.slack_assistant import AssistantHandlers
from bot.adapters.slack_base import SlackSurface, person_name
from bot.adapters.slack_commands import SHORTCUT_COMMANDS, UMBRELLA_COMMAND, CommandHandlers
from bot.adapters.slack_events import EventHandlers, key_provider
from bot.adapters.slack_transport import (
    ClockedRequestVerification,
    clocked_verifier,
    new_client,
)
from bot.app import Cockpit
from bot.conversation import DRAIN_TIMEOUT_SECONDS
from bot.slack_oauth import BOT_SCOPES, CockpitInstallationStore, CockpitOAuthStateStore

log = logging.getLogger(__name__)

Mode = Literal["socket", "http"]


class SlackConfigError(Exception):
    """Slack is not configured for the requested mode; the message says what to set."""


class SlackAdapter:
    """One Bolt app bound to one `Cockpit`, in Socket Mode or HTTP mode."""

    def __init__(self, cockpit: Cockpit, *, mode: Mode) -> None:
        self.cockpit = cockpit
        self.clock = cockpit.clock
        self.surface = SlackSurface(cockpit)
        self.work = self.surface.work
        self.commands = CommandHandlers(self.surface)
        self.approvals = ApprovalHandlers(self.surface)
        self.events = EventHandlers(self.surface)
        self.assistant = AssistantHandlers(self.surface, self.events)
        settings = cockpit.settings
        self.mode = mode
        self.oauth = mode == "http" and bool(
            settings.slack_client_id and settings.slack_client_secret
        )
        _check_configuration(settings, mode=mode, oauth=self.oauth)
        self.token = None if self.oauth else settings.slack_bot_token
        self._auth: AuthorizeResult | None = None
        self._auth_lock = asyncio.Lock()
        self._socket_handler: Any = None
        # The app-wide client carries no token: Bolt gives each request a client with the token
        # that `authorize` resolved (the single bot token, or the workspace's installation).
        self.client = new_client(token=None, api_url=settings.slack_api_url, clock=self.clock)
        self.app = AsyncApp(**self._app_kwargs())
        # HTTP mode only (Socket Mode has no signing secret and no HTTP requests to verify).
        self._fast_verifier = (
            clocked_verifier(settings.slack_signing_secret, self.clock)
            if settings.slack_signing_secret
            else None
        )
        self._register()

    # -- construction ---------------------------------------------------------------------

    def _app_kwargs(self) -> dict[str, Any]:
        settings = self.cockpit.settings
        kwargs: dict[str, Any] = {
            "name": "ai-dev-cockpit",
            "client": self.client,
            "logger": logging.getLogger("slack_bolt.cockpit"),
            # Verification runs on the cockpit clock (see slack_transport), before authorize.
            "request_verification_enabled": False,
            # Every listener acks and hands its work to a background task at once, so the
            # response can go out when the listener returns; without this Bolt polls for the
            # ack in 10 ms steps, which alone breaks the 50 ms ack budget under load.
            "process_before_response": True,
            "signing_secret": settings.slack_signing_secret or "",
        }
        if self.mode == "http":
            kwargs["before_authorize"] = ClockedRequestVerification(
                settings.slack_signing_secret or "", self.clock
            )
        if not self.oauth:
            # One workspace, one token: auth.test once, then no Slack call on the request path.
            async def authorize() -> AuthorizeResult:
                return await self._authorize_single()

            kwargs["authorize"] = authorize
            return kwargs
        assert settings.slack_client_id and settings.slack_client_secret
        store = CockpitInstallationStore(
            db=self.cockpit.db,
            box=self.cockpit.services.secrets,
            client_id=settings.slack_client_id,
            clock=self.clock,
            installer_name=self._installer_name,
            run_blocking=self.cockpit.db.call,
        )
        kwargs["installation_store"] = store
        kwargs["oauth_settings"] = AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret,
            scopes=list(BOT_SCOPES),
            installation_store=store,
            installation_store_bot_only=True,
            state_store=CockpitOAuthStateStore(
                db=self.cockpit.db, clock=self.clock, run_blocking=self.cockpit.db.call
            ),
        )
        kwargs["authorize"] = AsyncInstallationStoreAuthorize(
            logger=log,
            installation_store=store,
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret,
            bot_only=True,
            cache_enabled=True,
            client=self.client,
        )
        return kwargs

    def _register(self) -> None:
        app, commands, events = self.app, self.commands, self.events
        app.command(re.compile(r"^/.+"))(commands.on_command)
        app.action(blocks.APPROVE_ACTION_ID)(self.approvals.on_approve)
        app.action(blocks.CANCEL_ACTION_ID)(self.approvals.on_cancel)
        app.action(re.compile(rf"^{blocks.ACTION_ID_PREFIX}"))(commands.on_other_action)
        app.view(blocks.CONNECT_CALLBACK_ID)(commands.on_connect_submit)
        app.event("app_mention")(events.on_mention)
        app.event("message")(events.on_message)
        app.event("app_home_opened")(events.on_home_opened)
        self.assistant.register(app)  # assistant threads; takes their messages before `message`
        if self.oauth:
            app.enable_token_revocation_listeners()

    async def _authorize_single(self) -> AuthorizeResult:
        async with self._auth_lock:
            if self._auth is None:
                resp = await self.client.auth_test(token=self.token)
                self._auth = AuthorizeResult.from_auth_test_response(
                    auth_test_response=resp, bot_token=self.token
                )
                self.surface.remember_team(self._auth.team_id, self._auth.team)
            return self._auth

    async def _installer_name(self, installation: Installation) -> str | None:
        if not installation.bot_token or not installation.user_id:
            return None
        resp = await self.client.users_info(token=installation.bot_token, user=installation.user_id)
        return person_name(resp.get("user") or {})

    # -- lifecycle ------------------------------------------------------------------------

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until the work started so far (and any it started) is done."""
        await self.work.drain(timeout)

    async def start(self) -> None:
        """Check the token once (single-workspace modes) so requests need no Slack call."""
        if not self.oauth:
            auth = await self._authorize_single()
            log.info("Slack: team %s, bot user %s", auth.team or auth.team_id, auth.bot_user_id)

    async def start_socket_mode(self) -> None:
        """Connect over Socket Mode; returns once connected (the connection then runs, and
        reconnects, in the background)."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        await self.start()
        self._socket_handler = AsyncSocketModeHandler(
            self.app, self.cockpit.settings.slack_app_token, web_client=self.client
        )
        await self._socket_handler.connect_async()
        log.info("Slack Socket Mode connected.")

    async def close(self) -> None:
        """Disconnect, let running work finish (bounded), then cancel what is left."""
        if self._socket_handler is not None:
            with contextlib.suppress(Exception):
                await self._socket_handler.close_async()
            self._socket_handler = None
        await self.work.close(DRAIN_TIMEOUT_SECONDS)

    # -- HTTP mode (routes mounted by bot.web) --------------------------------------------

    @property
    def install_path(self) -> str | None:
        flow = self.app.oauth_flow
        return flow.install_path if flow else None

    @property
    def redirect_path(self) -> str | None:
        flow = self.app.oauth_flow
        return flow.redirect_uri_path if flow else None

    async def handle_events(self, request: web.Request) -> web.Response:
        """POST /slack/events: signature check, then Bolt (acks within milliseconds).

        Slash commands take a fast path: once the signature is valid they are acknowledged
        at once (an empty 200, exactly what the listener would answer) and Bolt handles them
        right after, so a burst of commands is acknowledged before any of them is worked on."""
        bolt_req = await to_bolt_request(request)
        if self._fast_verifier is not None and _is_slash_command(bolt_req.raw_body):
            headers = {k: v[0] for k, v in bolt_req.headers.items() if v}
            if not self._fast_verifier.is_valid_request(bolt_req.raw_body, headers):
                return web.Response(status=401)
            self.work.spawn(self._dispatch_later(bolt_req), what="slash command")
            return web.Response(status=200)
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_req))

    async def _dispatch_later(self, bolt_req: Any) -> None:
        await asyncio.sleep(0)  # let pending acknowledgements go out first
        await self.app.async_dispatch(bolt_req)

    async def handle_install(self, request: web.Request) -> web.Response:
        flow = self.app.oauth_flow
        if flow is None:
            return web.Response(status=404, text="Slack OAuth is not configured.")
        bolt_req = await to_bolt_request(request)
        return await to_aiohttp_response(await flow.handle_installation(bolt_req))

    async def handle_oauth_redirect(self, request: web.Request) -> web.Response:
        flow = self.app.oauth_flow
        if flow is None:
            return web.Response(status=404, text="Slack OAuth is not configured.")
        bolt_req = await to_bolt_request(request)
        return await to_aiohttp_response(await flow.handle_callback(bolt_req))


def _is_slash_command(raw_body: str) -> bool:
    """A form-encoded slash command (interactions carry `payload=`, events are JSON)."""
    return "command=%2F" in raw_body and not raw_body.startswith(("{", "payload="))


def _check_configuration(settings: Any, *, mode: Mode, oauth: bool) -> None:
    if mode == "socket" and not settings.slack_socket_mode:
        raise SlackConfigError(
            "Slack Socket Mode needs SLACK_BOT_TOKEN (xoxb-…) and SLACK_APP_TOKEN (xapp-…)."
        )
    if mode == "http" and not settings.slack_signing_secret:
        raise SlackConfigError(
            "Slack HTTP mode needs SLACK_SIGNING_SECRET (Basic Information → App Credentials)."
        )
    if mode == "http" and not oauth and not settings.slack_bot_token:
        raise SlackConfigError(
            "Slack HTTP mode needs SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
            "SLACK_CLIENT_SECRET (installs through /slack/install)."
        )


__all__ = [
    "SHORTCUT_COMMANDS",
    "UMBRELLA_COMMAND",
    "SlackAdapter",
    "SlackConfigError",
    "key_provider",
]
