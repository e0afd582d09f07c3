"""Slack surface: a slack-bolt `AsyncApp` that turns Slack payloads into cockpit requests.

Thin by design: every listener acknowledges at once (Slack's 3-second rule), then the work runs
in a tracked background task that builds the request context and calls `Cockpit.handle`,
`converse`, `approve` or `cancel`. Permissions, approvals and idempotency are the dispatcher's.

Transports:
- Socket Mode (`SLACK_BOT_TOKEN` + `SLACK_APP_TOKEN`): `await adapter.start_socket_mode()`.
- HTTP mode (`SLACK_SIGNING_SECRET`, served by `cockpit web`): single workspace with
  `SLACK_BOT_TOKEN`, or multi-workspace OAuth with `SLACK_CLIENT_ID`/`SLACK_CLIENT_SECRET`
  (installations in our database, tokens encrypted).
`SLACK_API_URL` points the Web API client at a fake in tests.

Hook for streamed model chat: set `adapter.thread_relay` to an async callable
`(ctx, text, conversation) -> bool`. Mentions and DMs are offered to it first (with the
`SlackConversation` that owns the thread); when it returns True it has answered (e.g. streamed a
deployed model's reply into the thread) and the agent is not called.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot import router
from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_oauth import BOT_SCOPES, CockpitInstallationStore, CockpitOAuthStateStore
from bot.adapters.slack_post import SlackConversation
from bot.adapters.slack_transport import ClockedRequestVerification, new_client
from bot.app import Cockpit
from bot.logs import SECRET_PATTERNS, SECRETS
from storage import approvals, events
from tools.contract import Platform, Reply, RequestContext

log = logging.getLogger(__name__)

UMBRELLA_COMMAND = "cockpit"
# Slash commands in slack-manifest.yml besides /cockpit; each maps to the registry command of
# the same name, exactly like `/cockpit <name> ...`.
SHORTCUT_COMMANDS = (
    "deploy",
    "models",
    "fit",
    "spend",
    "budget",
    "status",
    "stop",
    "rollback",
    "chat",
    "alerts",
    "invite",
    "connect",
)
CONNECT_COMMAND = "connect"
CONNECT_TOOL = "connect_provider"
HOME_TOOLS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("list_deployments", {}, "Deployments"),
    ("get_spend", {"period": "this_week"}, "Spend this week"),
)
IGNORED_MESSAGE_SUBTYPES = frozenset(
    {"bot_message", "message_changed", "message_deleted", "channel_join", "channel_leave"}
)
DRAIN_TIMEOUT_SECONDS = 10.0
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_KEY_PROVIDERS = (
    ("rpa_", "RunPod"),
    ("sk-ant-", "Anthropic"),
    ("hf_", "Hugging Face"),
    ("xox", "Slack"),
    ("xapp-", "Slack"),
)

KEY_IN_CHANNEL_WARNING = (
    ":rotating_light: That message looks like it contains a {provider} secret key, pasted in a "
    "channel. Treat it as leaked: rotate (revoke) it at {provider} now, then connect the new key "
    "privately with `/connect <provider>` (a private form). I did not store or repeat it; "
    "delete your message too."
)
KEY_IN_DM_NOTE = (
    ":lock: That looks like a {provider} secret key. I did not store it from a chat message: use "
    "`/connect <provider>` to store a key in a private form (encrypted, shown only as …last4)."
)
CONNECT_UNAVAILABLE = (
    "Connecting provider keys isn't available yet in this build, so nothing was stored. "
    "Ask an admin to set the key in the bot's environment instead."
)

ThreadRelay = Callable[[RequestContext, str, SlackConversation], Awaitable[bool]]
Mode = Literal["socket", "http"]


class SlackConfigError(Exception):
    """Slack is not configured for the requested mode; the message says what to set."""


def key_provider(text: str) -> str | None:
    """The provider whose secret key `text` appears to contain, or None."""
    for pattern in SECRET_PATTERNS:
        m = pattern.search(text)
        if m:
            found = m.group(0)
            for prefix, provider in _KEY_PROVIDERS:
                if found.startswith(prefix):
                    return provider
            return "provider"
    return None


class SlackAdapter:
    """One Bolt app bound to one `Cockpit`."""

    def __init__(self, cockpit: Cockpit, *, mode: Mode) -> None:
        settings = cockpit.settings
        self.cockpit = cockpit
        self.mode = mode
        self.clock = cockpit.clock
        self.thread_relay: ThreadRelay | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._names: dict[str, str] = {}
        self._deciding: set[tuple[int, int]] = set()
        self._auth: AuthorizeResult | None = None
        self._auth_lock = asyncio.Lock()
        self._socket_handler: Any = None

        self.oauth = mode == "http" and bool(
            settings.slack_client_id and settings.slack_client_secret
        )
        if mode == "socket" and not settings.slack_socket_mode:
            raise SlackConfigError(
                "Slack Socket Mode needs SLACK_BOT_TOKEN (xoxb-…) and SLACK_APP_TOKEN (xapp-…)."
            )
        if mode == "http" and not settings.slack_signing_secret:
            raise SlackConfigError(
                "Slack HTTP mode needs SLACK_SIGNING_SECRET (Basic Information → App Credentials)."
            )
        if mode == "http" and not self.oauth and not settings.slack_bot_token:
            raise SlackConfigError(
                "Slack HTTP mode needs SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET (installs through /slack/install)."
            )
        self.token = None if self.oauth else settings.slack_bot_token
        # The app-wide client carries no token: Bolt gives each request a client with the token
        # that `authorize` resolved (the single bot token, or the workspace's installation).
        self.client = new_client(token=None, api_url=settings.slack_api_url, clock=self.clock)
        self.app = AsyncApp(**self._app_kwargs())
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
            "signing_secret": settings.slack_signing_secret or "",
        }
        if self.mode == "http":
            kwargs["before_authorize"] = ClockedRequestVerification(
                settings.slack_signing_secret or "", self.clock
            )
        if self.oauth:
            assert settings.slack_client_id and settings.slack_client_secret
            store = CockpitInstallationStore(
                db=self.cockpit.db,
                box=self.cockpit.services.secrets,
                client_id=settings.slack_client_id,
                clock=self.clock,
                installer_name=self._installer_name,
            )
            kwargs["installation_store"] = store
            kwargs["oauth_settings"] = AsyncOAuthSettings(
                client_id=settings.slack_client_id,
                client_secret=settings.slack_client_secret,
                scopes=list(BOT_SCOPES),
                installation_store=store,
                installation_store_bot_only=True,
                state_store=CockpitOAuthStateStore(db=self.cockpit.db, clock=self.clock),
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
        else:
            # One workspace, one token: auth.test once, then no Slack call on the request path.
            async def authorize() -> AuthorizeResult:
                return await self._authorize_single()

            kwargs["authorize"] = authorize
        return kwargs

    def _register(self) -> None:
        app = self.app
        app.command(re.compile(r"^/.+"))(self._on_command)
        app.action(blocks.APPROVE_ACTION_ID)(self._on_approve)
        app.action(blocks.CANCEL_ACTION_ID)(self._on_cancel)
        app.action(re.compile(rf"^{blocks.ACTION_ID_PREFIX}"))(self._on_other_action)
        app.view(blocks.CONNECT_CALLBACK_ID)(self._on_connect_submit)
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        app.event("app_home_opened")(self._on_home_opened)
        if self.oauth:
            app.enable_token_revocation_listeners()

    async def _authorize_single(self) -> AuthorizeResult:
        async with self._auth_lock:
            if self._auth is None:
                resp = await self.client.auth_test(token=self.token)
                self._auth = AuthorizeResult.from_auth_test_response(
                    auth_test_response=resp, bot_token=self.token
                )
            return self._auth

    async def _installer_name(self, installation: Installation) -> str | None:
        if not installation.bot_token or not installation.user_id:
            return None
        resp = await self.client.users_info(token=installation.bot_token, user=installation.user_id)
        return _person_name(resp.get("user") or {})

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def sandbox(self) -> bool:
        return bool(self.cockpit.services.sandbox)

    async def start(self) -> None:
        """Check the token once (single-workspace modes) so requests need no Slack call."""
        if not self.oauth:
            auth = await self._authorize_single()
            log.info("Slack: connected to team %s as bot user %s", auth.team, auth.bot_user_id)

    async def start_socket_mode(self) -> None:
        """Connect over Socket Mode (returns once connected; the connection runs in the
        background and reconnects by itself)."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        await self.start()
        self._socket_handler = AsyncSocketModeHandler(
            self.app, self.cockpit.settings.slack_app_token, web_client=self.client
        )
        await self._socket_handler.connect_async()
        log.info("Slack Socket Mode connected.")

    async def close(self) -> None:
        if self._socket_handler is not None:
            with contextlib.suppress(Exception):
                await self._socket_handler.close_async()
            self._socket_handler = None
        await self.drain(timeout=DRAIN_TIMEOUT_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until the background work started so far (and any it started) is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.wait(list(self._tasks), timeout=remaining)

    def spawn(self, coro: Coroutine[Any, Any, None], *, what: str) -> None:
        """Run work after the ack, tracked so shutdown and tests can wait for it."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Slack %s failed", what)

        task = asyncio.get_running_loop().create_task(guarded(), name=f"slack-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- HTTP mode ------------------------------------------------------------------------

    @property
    def install_path(self) -> str | None:
        flow = self.app.oauth_flow
        return flow.install_path if flow else None

    @property
    def redirect_path(self) -> str | None:
        flow = self.app.oauth_flow
        return flow.redirect_uri_path if flow else None

    async def handle_events(self, request: web.Request) -> web.Response:
        """POST /slack/events: signature check, then Bolt (acks within milliseconds)."""
        bolt_req = await to_bolt_request(request)
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_req))

    async def handle_install(self, request: web.Request) -> web.Response:
        flow = self.app.oauth_flow
        if flow is None:
            return web.Response(status=404, text="Slack OAuth is not configured.")
        return await to_aiohttp_response(
            await flow.handle_installation(await to_bolt_request(request))
        )

    async def handle_oauth_redirect(self, request: web.Request) -> web.Response:
        flow = self.app.oauth_flow
        if flow is None:
            return web.Response(status=404, text="Slack OAuth is not configured.")
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

    # -- identity -------------------------------------------------------------------------

    async def _display_name(self, client: AsyncWebClient, user_id: str, hint: str | None) -> str:
        if hint:
            self._names.setdefault(user_id, hint)
        if user_id in self._names:
            return self._names[user_id]
        try:
            resp = await client.users_info(user=user_id)
            name = _person_name(resp.get("user") or {}) or user_id
        except SlackApiError:
            name = user_id
        self._names[user_id] = name
        return name

    async def _context(
        self,
        client: AsyncWebClient,
        *,
        team_id: str,
        team_name: str | None,
        user_id: str,
        user_name: str | None = None,
        channel: str | None = None,
        thread: str | None = None,
        idempotency_key: str | None = None,
    ) -> RequestContext:
        name = await self._display_name(client, user_id, user_name)
        return self.cockpit.context_for(
            platform=Platform.slack,
            workspace_id=team_id,
            workspace_name=team_name or self._team_name(team_id),
            user_id=user_id,
            display_name=name,
            channel=channel,
            thread=thread,
            idempotency_key=idempotency_key,
        )

    def _team_name(self, team_id: str) -> str:
        if self._auth is not None and self._auth.team_id == team_id and self._auth.team:
            return str(self._auth.team)
        return team_id

    def _first_delivery(self, ctx: RequestContext, key: str) -> bool:
        """True the first time Slack delivers this payload (retries and replays say False)."""
        with self.cockpit.db.session() as s:
            return events.claim(s, org_id=ctx.org_id, key=key, now=self.clock.now())

    def _conversation(self, client: AsyncWebClient, **kwargs: Any) -> SlackConversation:
        return SlackConversation(client, sandbox=self.sandbox, **kwargs)

    def _expires_at(self, ctx: RequestContext, reply: Reply) -> Any:
        if reply.approval_id is None:
            return None
        with self.cockpit.db.session() as s:
            row = approvals.get(s, org_id=ctx.org_id, approval_id=reply.approval_id)
            return row.expires_at if row else None

    # -- slash commands -------------------------------------------------------------------

    async def _on_command(
        self, ack: Any, command: dict[str, Any], respond: Any, client: AsyncWebClient
    ) -> None:
        await ack()
        self.spawn(self._run_command(command, respond, client), what="command")

    async def _run_command(
        self, command: dict[str, Any], respond: Any, client: AsyncWebClient
    ) -> None:
        name = str(command.get("command") or "").lstrip("/").lower()
        line = f"/{name} {(command.get('text') or '').strip()}".strip()
        trigger = command.get("trigger_id") or ""
        ctx = await self._context(
            client,
            team_id=command["team_id"],
            team_name=command.get("team_domain"),
            user_id=command["user_id"],
            user_name=command.get("user_name"),
            channel=command.get("channel_id"),
            idempotency_key=f"slack:{trigger}" if trigger else None,
        )
        if trigger and not self._first_delivery(ctx, f"slack:delivery:{trigger}"):
            return
        sub, rest = router.split_command(line)
        if sub == CONNECT_COMMAND:
            await self._open_connect(ctx, client, respond, trigger_id=trigger, provider=rest)
            return
        conversation = self._conversation(
            client,
            channel=command["channel_id"],
            user=command["user_id"],
            respond=respond,
            label=line,
            private_errors=True,
            broadcast_final=True,
        )
        reply = await self.cockpit.handle(ctx, line, progress=conversation.progress)
        await conversation.send(reply, expires_at=self._expires_at(ctx, reply))

    # -- approval buttons -----------------------------------------------------------------

    async def _on_approve(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        self.spawn(self._decide(body, action, respond, client, approve=True), what="approve")

    async def _on_cancel(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        self.spawn(self._decide(body, action, respond, client, approve=False), what="cancel")

    async def _decide(
        self,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Any,
        client: AsyncWebClient,
        *,
        approve: bool,
    ) -> None:
        user = body.get("user") or {}
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        card_ts = container.get("message_ts") or message.get("ts")
        ctx = await self._context(
            client,
            team_id=(body.get("team") or {}).get("id") or user.get("team_id") or "",
            team_name=(body.get("team") or {}).get("domain"),
            user_id=user["id"],
            user_name=user.get("name") or user.get("username"),
            channel=channel,
            thread=message.get("thread_ts") or card_ts,
        )
        conversation = self._conversation(
            client,
            channel=channel,
            user=user["id"],
            thread_ts=message.get("thread_ts") or card_ts,
            respond=respond,
            label="approval",
            broadcast_final=True,
        )
        try:
            approval_id = int(action.get("value") or "")
        except ValueError:
            await self._tell(conversation, "That button does not carry an approval id.")
            return
        key = (ctx.org_id, approval_id)
        if key in self._deciding:
            await self._tell(conversation, f"Approval #{approval_id} is already being handled.")
            return
        self._deciding.add(key)
        try:
            before = self._approval_status(ctx, approval_id)
            if approve:
                reply = await self.cockpit.approve(ctx, approval_id, progress=conversation.progress)
            else:
                reply = await self.cockpit.cancel(ctx, approval_id)
            after = self._approval_status(ctx, approval_id)
        finally:
            self._deciding.discard(key)
        decided_now = before == "pending" and after not in (None, "pending")
        if not decided_now:
            # Refused (not the requester nor an admin), already decided, or unknown: the card
            # stays as it is and only the clicker hears why.
            await self._tell(conversation, reply.text or "Nothing was done.")
            return
        who = f"<@{ctx.user_id}>"
        when = blocks.slack_date(self.clock.now(), label="{time}")
        if after == "cancelled":
            decision = f":no_entry_sign: Cancelled by {who} at {when}; nothing was done."
        elif after == "expired":
            decision = ":hourglass: Expired; nothing was done. Run the command again."
        else:
            outcome = "done" if after == "executed" else "it failed, see the thread"
            decision = f":white_check_mark: Approved by {who} at {when}; {outcome}."
        await self._update_card(client, respond, channel, card_ts, message, decision)
        if after == "expired":
            await self._tell(conversation, reply.text)
        elif approve:
            await conversation.send(reply)

    def _approval_status(self, ctx: RequestContext, approval_id: int) -> str | None:
        with self.cockpit.db.session() as s:
            row = approvals.get(s, org_id=ctx.org_id, approval_id=approval_id)
            return row.status if row else None

    async def _update_card(
        self,
        client: AsyncWebClient,
        respond: Any,
        channel: str,
        ts: str | None,
        message: dict[str, Any],
        decision: str,
    ) -> None:
        new_blocks = blocks.decided_blocks(list(message.get("blocks") or []), decision)
        text = blocks.truncate(f"{message.get('text') or ''}\n{decision}", blocks.MAX_FALLBACK_TEXT)
        if ts and channel:
            try:
                await client.chat_update(channel=channel, ts=ts, text=text, blocks=new_blocks)
                return
            except SlackApiError:
                log.info("chat.update of the approval card failed; using response_url")
        if respond is not None:
            await respond(text=text, blocks=new_blocks, replace_original=True)

    async def _tell(self, conversation: SlackConversation, text: str) -> None:
        """An ephemeral note to the clicker (chat.postEphemeral, else the response_url)."""
        message = blocks.SlackMessage(
            text=blocks.truncate(text, blocks.MAX_FALLBACK_TEXT),
            blocks=[
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": blocks.truncate(blocks.mrkdwn(text), blocks.MAX_SECTION_TEXT),
                    },
                }
            ],
        )
        try:
            await conversation.client.chat_postEphemeral(
                channel=conversation.channel, user=conversation.user, **message.as_kwargs()
            )
        except SlackApiError:
            if conversation.respond is None:
                raise
            await conversation.respond(
                response_type="ephemeral", replace_original=False, **message.as_kwargs()
            )

    async def _on_other_action(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        if action.get("action_id") == blocks.COMMAND_ACTION_ID:
            fake_command = {
                "command": "/" + UMBRELLA_COMMAND,
                "text": str(action.get("value") or "").lstrip("/"),
                "team_id": (body.get("team") or {}).get("id") or "",
                "team_domain": (body.get("team") or {}).get("domain"),
                "user_id": body["user"]["id"],
                "user_name": body["user"].get("name") or body["user"].get("username"),
                "channel_id": (body.get("channel") or {}).get("id")
                or (body.get("container") or {}).get("channel_id"),
                "trigger_id": body.get("trigger_id"),
            }
            self.spawn(self._run_command(fake_command, respond, client), what="button command")

    # -- /connect modal -------------------------------------------------------------------

    async def _open_connect(
        self,
        ctx: RequestContext,
        client: AsyncWebClient,
        respond: Any,
        *,
        trigger_id: str,
        provider: str,
    ) -> None:
        if self.cockpit.services.registry.get(CONNECT_TOOL) is None:
            await respond(text=CONNECT_UNAVAILABLE, response_type="ephemeral")
            return
        # Only the first word names the provider; anything after it (a key typed inline) is
        # deliberately dropped, never echoed.
        name = (provider.split() or [""])[0].lower() or None
        view = blocks.connect_modal(provider=name, metadata={"channel": ctx.channel})
        await client.views_open(trigger_id=trigger_id, view=view)

    async def _on_connect_submit(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any
    ) -> None:
        values = (view.get("state") or {}).get("values") or {}
        key_input = (values.get(blocks.CONNECT_KEY_BLOCK) or {}).get(blocks.CONNECT_KEY_ACTION)
        key = str((key_input or {}).get("value") or "").strip()
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            metadata = {}
        provider = metadata.get("provider")
        if not provider:
            chosen = (values.get(blocks.CONNECT_PROVIDER_BLOCK) or {}).get(
                blocks.CONNECT_PROVIDER_ACTION
            ) or {}
            provider = (chosen.get("selected_option") or {}).get("value")
        if not key:
            await ack(response_action="errors", errors={blocks.CONNECT_KEY_BLOCK: "Paste the key."})
            return
        SECRETS.add(key)
        await ack()
        self.spawn(
            self._connect(body, client, provider=provider or "", key=key, metadata=metadata),
            what="connect",
        )

    async def _connect(
        self,
        body: dict[str, Any],
        client: AsyncWebClient,
        *,
        provider: str,
        key: str,
        metadata: dict[str, Any],
    ) -> None:
        user = body.get("user") or {}
        channel = metadata.get("channel") or user["id"]
        ctx = await self._context(
            client,
            team_id=(body.get("team") or {}).get("id") or user.get("team_id") or "",
            team_name=(body.get("team") or {}).get("domain"),
            user_id=user["id"],
            user_name=user.get("name") or user.get("username"),
            channel=channel,
        )
        if self.cockpit.services.registry.get(CONNECT_TOOL) is None:
            reply = Reply(text=CONNECT_UNAVAILABLE, ok=False)
        else:
            reply = await self.cockpit.dispatcher.run(
                ctx, CONNECT_TOOL, {"provider": provider, "key": key}
            )
        message = blocks.render_reply(reply, sandbox=self.sandbox)
        try:
            await client.chat_postEphemeral(channel=channel, user=user["id"], **message.as_kwargs())
        except SlackApiError:  # not in that channel: tell them in the app's DM instead
            await client.chat_postMessage(channel=user["id"], **message.as_kwargs())

    # -- mentions and DMs -----------------------------------------------------------------

    async def _on_mention(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, client: Any
    ) -> None:
        bot_user = getattr(context, "bot_user_id", None)
        self.spawn(self._on_message_event(body, event, client, bot_user), what="mention")

    async def _on_message(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, client: Any
    ) -> None:
        if _from_a_bot(event):
            return
        if event.get("channel_type") == "im":
            bot_user = getattr(context, "bot_user_id", None)
            self.spawn(self._on_message_event(body, event, client, bot_user), what="dm")
        elif key_provider(str(event.get("text") or "")):
            # Only reaches us where the app also subscribes to channel messages: warn, never
            # answer (mentions arrive separately as app_mention).
            self.spawn(self._on_message_event(body, event, client, None), what="key warning")

    async def _on_message_event(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        client: AsyncWebClient,
        bot_user: str | None,
    ) -> None:
        if _from_a_bot(event) or not event.get("user"):
            return
        raw = str(event.get("text") or "")
        channel = str(event.get("channel") or "")
        is_dm = event.get("channel_type") == "im"
        thread_ts = event.get("thread_ts") or event.get("ts")
        ctx = await self._context(
            client,
            team_id=body.get("team_id") or event.get("team") or "",
            team_name=None,
            user_id=event["user"],
            channel=channel,
            thread=thread_ts,
        )
        event_id = body.get("event_id")
        if event_id and not self._first_delivery(ctx, f"slack:event:{event_id}"):
            return  # a retry (X-Slack-Retry-Num) or replay of an event already handled
        provider = key_provider(raw)
        if provider:
            await self._refuse_key(ctx, client, event, provider=provider, is_dm=is_dm)
            return
        if event.get("type") == "message" and not is_dm:
            return
        text = _strip_mentions(raw, bot_user)
        conversation = self._conversation(
            client, channel=channel, user=event["user"], thread_ts=thread_ts, label=text
        )
        if self.thread_relay is not None and await self.thread_relay(ctx, text, conversation):
            return
        if router.is_command(text):
            reply = await self.cockpit.handle(ctx, text, progress=conversation.progress)
        else:
            reply = await self.cockpit.converse(ctx, text, progress=conversation.progress)
        await conversation.send(reply, expires_at=self._expires_at(ctx, reply))

    async def _refuse_key(
        self,
        ctx: RequestContext,
        client: AsyncWebClient,
        event: dict[str, Any],
        *,
        provider: str,
        is_dm: bool,
    ) -> None:
        """A secret pasted into chat: never stored, never echoed, never given to the agent."""
        channel, user, ts = event["channel"], event["user"], event.get("ts")
        if is_dm:
            await client.chat_postMessage(
                channel=channel,
                thread_ts=event.get("thread_ts") or ts,
                text=KEY_IN_DM_NOTE.format(provider=provider),
            )
            return
        # app_mention and message.channels can both deliver the same message: warn once.
        if not self._first_delivery(ctx, f"slack:keywarn:{channel}:{ts}"):
            return
        log.warning("a %s key was pasted in Slack channel %s; warned the sender", provider, channel)
        await client.chat_postEphemeral(
            channel=channel, user=user, text=KEY_IN_CHANNEL_WARNING.format(provider=provider)
        )

    # -- App Home -------------------------------------------------------------------------

    async def _on_home_opened(
        self, body: dict[str, Any], event: dict[str, Any], client: Any
    ) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        self.spawn(self._publish_home(body, event, client), what="home")

    async def _publish_home(
        self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        ctx = await self._context(
            client, team_id=body.get("team_id") or "", team_name=None, user_id=event["user"]
        )
        dispatcher = self.cockpit.dispatcher
        parts: list[tuple[str, Reply]] = [("Who you are", await dispatcher.run(ctx, "whoami", {}))]
        for tool_name, args, heading in HOME_TOOLS:
            if self.cockpit.services.registry.get(tool_name) is None:
                continue  # not part of this build: skip the section
            reply = await dispatcher.run(ctx, tool_name, dict(args))
            if reply.ok:
                parts.append((heading, reply))
        await client.views_publish(
            user_id=event["user"], view=blocks.home_view(parts, sandbox=self.sandbox)
        )


def _from_a_bot(event: dict[str, Any]) -> bool:
    return bool(event.get("bot_id")) or event.get("subtype") in IGNORED_MESSAGE_SUBTYPES


def _strip_mentions(text: str, bot_user: str | None) -> str:
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", " ", text)
    # A leading mention is how people address the bot; drop it even if we do not know our id.
    text = re.sub(rf"^\s*{_MENTION.pattern}", " ", text)
    return " ".join(text.split())


def _person_name(user: dict[str, Any]) -> str | None:
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


__all__ = [
    "SHORTCUT_COMMANDS",
    "SlackAdapter",
    "SlackConfigError",
    "key_provider",
]
