"""Wiring: settings → database, secrets, clients, registry, dispatcher. One `Cockpit` per process;
every surface (console, Slack, Discord, HTTP API) talks to it: `on_message` for a chat message,
`handle` for a command line, `decide` for an Approve/Cancel click (outcomes in
`bot.conversation`), never to storage directly."""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, Literal, ParamSpec

from sqlalchemy.exc import IntegrityError

from bot import router
from bot.agent import offline
from bot.agent.claude import ClaudeAgent
from bot.background.presence import Presence
from bot.background.scheduler import BackgroundJobs
from bot.clients import wire_alerts, wire_clients
from bot.conversation import (
    Answered,
    Decision,
    DecisionOutcome,
    Ignored,
    MessageOutcome,
    SecretRefused,
    decision_outcome,
)
from bot.dispatcher import Dispatcher
from bot.logs import SECRETS, install_record_redaction, secret_provider
from bot.settings import Settings
from storage import approvals, conversations, deployments, events, orgs
from storage.crypto import load_secret_box
from storage.db import Database
from storage.models import Member, Workspace
from tools.clock import Clock
from tools.contract import (
    REGISTRY,
    Platform,
    ProgressSink,
    Registry,
    Reply,
    RequestContext,
    Role,
    parse_id,
)
from tools.deploy.saga import recover_interrupted
from tools.errors import CockpitError, InvalidInput, RateLimited
from tools.metrics import COMMANDS
from tools.services import Services
from tools.skills import load_skills

log = logging.getLogger(__name__)
P = ParamSpec("P")

# Built-in tools load exactly like any other tool module: importing registers them.
BUILTIN_TOOL_MODULES = (
    "tools.builtin",
    "tools.team",
    "tools.skills.command",
    "tools.catalog.tools",
    "tools.deploy.tools",
    "tools.chat",
    "tools.cost.tools",
    "tools.alerts",
    "tools.bench.tools",
)
DEFAULT_NEW_MEMBER_ROLE = Role.member
CHAT_TOOL = "chat_with_model"
# Longest message taken from any surface, checked here once for all of them. Plain words are a
# request to the agent or the limited-mode matcher: 4,000 characters is a long paragraph (and
# Discord's own ceiling), about 1k tokens of Claude input per turn.
MAX_MESSAGE_CHARS = 4_000
# Text meant for a deployed model (thread chat, `/chat <deployment> <prompt>`, so commands too)
# may carry a pasted document or code: about 4k tokens, half of the 8,192-token context a deploy
# gets by default (the other half for history and the answer), and a bound on what one message
# can make us send and store.
MAX_MODEL_CHAT_CHARS = 16_000
# Deployments offered when a surface completes a deployment reference.
CHOICE_STATUSES = (*deployments.ACTIVE_STATUSES, "stopped")


@dataclass(frozen=True)
class DeploymentChoice:
    id: int
    name: str
    model_id: str
    status: str


def _expiring(
    method: Callable[Concatenate[Cockpit, RequestContext, P], Awaitable[Reply]],
) -> Callable[Concatenate[Cockpit, RequestContext, P], Awaitable[Reply]]:
    """A reply that asks for an approval gets its expiry (`Reply.expires_at`); read once, so
    `handle` calling `converse` costs no second read."""

    @functools.wraps(method)
    async def expiring(
        self: Cockpit, ctx: RequestContext, /, *args: P.args, **kwargs: P.kwargs
    ) -> Reply:
        return await self._with_expiry(ctx, await method(self, ctx, *args, **kwargs))

    return expiring


def load_tool_modules(modules: tuple[str, ...] = BUILTIN_TOOL_MODULES) -> None:
    for name in modules:
        importlib.import_module(name)


class Cockpit:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        install_record_redaction()
        load_tool_modules()
        self.db = Database(settings.effective_database_url)
        box, generated = load_secret_box(settings.secret_key, settings.data_dir)
        self.generated_secret_key = generated
        for value in settings.secret_values():
            SECRETS.add(value)
        self.services = Services(
            db=self.db,
            clock=self.clock,
            secrets=box,
            registry=registry or REGISTRY,
            sandbox=settings.use_sandbox,
        )
        self.dispatcher = Dispatcher(
            self.services,
            approval_ttl_seconds=settings.approval_ttl_seconds,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            daily_limit_per_user=settings.daily_limit_per_user,
        )
        self.runpod = wire_clients(settings, self.services)
        self._closers: list[Any] = [self.runpod.aclose, wire_alerts(settings, self.services)]
        self.jobs: BackgroundJobs | None = None
        # Skills load once, through the one loader (shipped skills + COCKPIT_SKILLS_DIRS).
        self.services.skills = load_skills(extra_dirs=settings.skills_dirs)
        self.agent = ClaudeAgent(
            settings=settings, services=self.services, dispatcher=self.dispatcher
        )
        self._closers.append(self.agent.aclose)
        self._deciding: set[tuple[int, int]] = set()  # (org, approval) clicks in progress

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring storage to the current schema, then start what the configuration asks for."""
        if self.generated_secret_key:
            log.warning(
                "COCKPIT_SECRET_KEY is not set: generated one into %s/secret.key. Set your own in "
                "production (and keep it: stored keys cannot be read without it).",
                self.settings.data_dir,
            )
        # Migrations are start-up work, but the loop may already serve (web mode's /healthz).
        await asyncio.to_thread(self.db.upgrade)
        await self.runpod.start()
        # Seen as alive first: recovery (here, or in another process starting) then leaves
        # this process's work alone and cleans up only what a dead process left.
        presence = Presence(self.services)
        await presence.start()
        self._closers.append(presence.close)
        recovered = await recover_interrupted(self.services)
        if recovered:
            log.warning("cleaned up %d deploy(s) interrupted by the last shutdown", recovered)
        # Start-up objects (modules, registry, metadata) live for the whole process: moving
        # them out of the collector's view roughly halves GC time on large queries.
        gc.collect()
        gc.freeze()

    def background(self) -> BackgroundJobs:
        """The scheduled sweeps (built once; `start_scheduler` runs them on a timer)."""
        if self.jobs is None:
            from tools.alerts import router_of

            self.jobs = BackgroundJobs(
                self.services, self.dispatcher, router_of(self.services), settings=self.settings
            )
        return self.jobs

    def start_scheduler(self) -> None:
        jobs = self.background()
        jobs.start()
        self._closers.append(jobs.shutdown)

    async def stop(self) -> None:
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:  # shutting down: log and continue closing the rest
                log.exception("error while closing")
        self._closers.clear()
        self.db.dispose()

    # -- identity ---------------------------------------------------------------------------

    def context_for(
        self,
        *,
        platform: Platform,
        workspace_id: str,
        workspace_name: str,
        user_id: str,
        display_name: str,
        role: Role | None = None,
        channel: str | None = None,
        thread: str | None = None,
        idempotency_key: str | None = None,
    ) -> RequestContext:
        """Resolve (platform, workspace, user) to a request context, creating the workspace's
        organisation and the member on first sight. The first member of a new organisation is its
        owner; later ones join as members. `role` forces a role (console and tests only)."""
        # Known person, no forced role change: one read (one round trip on PostgreSQL).
        with self.db.read_session() as s:
            found = orgs.find_identity(
                s, platform=platform.value, external_id=workspace_id, platform_user_id=user_id
            )
        if found is None or (role is not None and found[1].role != role.value):
            ensure = functools.partial(
                self._ensure_identity,
                platform=platform,
                workspace_id=workspace_id,
                workspace_name=workspace_name,
                user_id=user_id,
                display_name=display_name,
                role=role,
            )
            try:
                found = ensure()
            except IntegrityError:
                # Two first sightings of one workspace or person at once (storage runs on
                # several threads): the other one created the rows, so read them now.
                found = ensure()
        ws, member = found
        assert ws.id is not None
        return RequestContext(
            org_id=ws.org_id,
            workspace_id=ws.id,
            member_id=member.id,
            user_id=user_id,
            display_name=member.display_name,
            role=Role(member.role),
            platform=platform,
            workspace_name=ws.name,
            timezone=ws.timezone,
            channel=channel,
            thread=thread,
            idempotency_key=idempotency_key,
        )

    async def context(self, **kwargs: Any) -> RequestContext:
        """`context_for` on a storage thread (never on the event loop)."""
        return await self.db.call(functools.partial(self.context_for, **kwargs))

    def _ensure_identity(
        self,
        *,
        platform: Platform,
        workspace_id: str,
        workspace_name: str,
        user_id: str,
        display_name: str,
        role: Role | None,
    ) -> tuple[Workspace, Member]:
        now = self.clock.now()
        with self.db.session() as s:
            ws = orgs.ensure_workspace(
                s, platform=platform.value, external_id=workspace_id, name=workspace_name, now=now
            )
            assert ws.id is not None
            member = orgs.get_member(
                s, org_id=ws.org_id, platform=platform.value, platform_user_id=user_id
            )
            if member is None:
                first = orgs.count_members(s, org_id=ws.org_id) == 0
                member = orgs.add_member(
                    s,
                    org_id=ws.org_id,
                    platform=platform.value,
                    platform_user_id=user_id,
                    display_name=display_name,
                    role=(role or (Role.owner if first else DEFAULT_NEW_MEMBER_ROLE)).value,
                    now=now,
                )
            elif role is not None and member.role != role.value:
                member.role = role.value
                s.add(member)
            return ws, member

    # -- requests ---------------------------------------------------------------------------

    @_expiring
    async def handle(
        self,
        ctx: RequestContext,
        text: str,
        *,
        progress: ProgressSink | None = None,
        stream: ProgressSink | None = None,
    ) -> Reply:
        """One message from a person: a slash command, or plain words for the agent. A reply
        that asks for an approval carries when it expires (`Reply.expires_at`)."""
        text = text.strip()
        if not text:
            return Reply(text="Type /help to see what I can do.")
        COMMANDS.labels(
            platform=ctx.platform.value, kind="command" if router.is_command(text) else "message"
        ).inc()
        if router.is_command(text):
            too_long = self._too_long(text, MAX_MODEL_CHAT_CHARS, "Commands")
            if too_long is not None:
                return too_long
            decision = router.approval_decision(text)
            if decision is not None:
                verb, approval_id = decision
                if verb == "approve":
                    return await self.approve(ctx, approval_id, progress=progress)
                return await self.cancel(ctx, approval_id)
            try:
                call = router.parse(self.services.registry, text)
            except CockpitError as exc:
                return Reply.error(str(exc))
            return await self.dispatcher.run(
                ctx, call.tool.name, call.args, progress=progress, stream=stream
            )
        return await self.converse(ctx, text, progress=progress, on_text=stream)

    @_expiring
    async def converse(
        self,
        ctx: RequestContext,
        text: str,
        *,
        progress: ProgressSink | None = None,
        on_text: ProgressSink | None = None,
    ) -> Reply:
        """Plain words: Claude when the organisation has an Anthropic key (its own, see
        `ClaudeAgent.api_key_for`, else ANTHROPIC_API_KEY), otherwise the limited-mode matcher.
        `on_text` receives Claude's text deltas as they stream.

        An over-long message, or one from someone over the rate limit, is refused before any
        matching or model call. The limit is only looked at here: the tool a message leads to
        counts it (in the dispatcher), so one message that runs one tool still counts once."""
        refused = self._too_long(text, MAX_MESSAGE_CHARS, "Messages")
        if refused is None:
            refused = self._over_rate_limit(ctx)
        if refused is not None:
            return refused
        # The organisation's own key is a database read: on a storage thread, not the loop.
        if await self.db.call(self.agent.api_key_for, ctx.org_id):
            return await self.agent.respond(ctx, text, progress=progress, on_text=on_text)
        return await offline.respond(self.dispatcher, ctx, text, progress=progress)

    async def on_message(
        self,
        ctx: RequestContext,
        text: str,
        *,
        addressed: bool = True,
        model_chat: bool = True,
        deployment: int | Literal["look up"] | None = "look up",
        before_answer: Callable[[RequestContext], Awaitable[RequestContext]] | None = None,
        progress: ProgressSink | None = None,
        stream: ProgressSink | None = None,
    ) -> MessageOutcome:
        """One chat message, the same flow on every surface: a pasted secret key is refused
        (never stored, answered or forwarded); in a thread bound to a deployed model
        (`/chat <deployment>`) plain text goes on to that model; otherwise a message meant
        for the bot (`addressed`: a DM or a mention) is a command or words for the agent.

        `model_chat=False` keeps the message from a bound thread's model; `deployment` is the
        thread's binding when the surface already looked it up (`thread_binding`).
        `before_answer(ctx)` runs just before a command or the agent answers and may move the
        answer (a new thread: return the context for it)."""
        provider = secret_provider(text)
        if provider:
            return SecretRefused(provider=provider)
        if model_chat and text and not router.is_command(text):
            if deployment == "look up":
                deployment = await self.thread_deployment(ctx)
            if isinstance(deployment, int):
                reply = await self.chat_with_deployment(
                    ctx, deployment, text, progress=progress, stream=stream
                )
                return Answered(reply=reply, route="model")
        if not addressed:
            return Ignored()
        if before_answer is not None:
            ctx = await before_answer(ctx)
        if router.is_command(text):
            reply = await self.handle(ctx, text, progress=progress, stream=stream)
            return Answered(reply=reply, route="command")
        reply = await self.converse(ctx, text, progress=progress, on_text=stream)
        return Answered(reply=reply, route="agent")

    async def thread_deployment(self, ctx: RequestContext) -> int | None:
        """The deployment this thread chats with (bound by `/chat <deployment>`), or None."""
        if not ctx.thread:
            return None
        return await self.db.read(
            conversations.bound_deployment,
            org_id=ctx.org_id,
            platform=ctx.platform.value,
            channel=ctx.channel,
            thread=ctx.thread,
        )

    async def thread_binding(
        self, *, platform: Platform, workspace_id: str, channel: str, thread: str
    ) -> int | None:
        """`thread_deployment` for a surface workspace id, before anyone has a context: a read
        only (nobody becomes a member by merely talking in a thread)."""

        def look_up(s: Any) -> int | None:
            ws = orgs.find_workspace(s, platform=platform.value, external_id=workspace_id)
            if ws is None:
                return None
            return conversations.bound_deployment(
                s, org_id=ws.org_id, platform=platform.value, channel=channel, thread=thread
            )

        return await self.db.read(look_up)

    async def chat_with_deployment(
        self,
        ctx: RequestContext,
        deployment_id: int,
        text: str,
        *,
        progress: ProgressSink | None = None,
        stream: ProgressSink | None = None,
    ) -> Reply:
        """A message in a model-chat thread, sent on to the model as data (never parsed as a
        command, so text that starts with `--` or `/` is just text)."""
        too_long = self._too_long(text, MAX_MODEL_CHAT_CHARS, "Messages to a model")
        if too_long is not None:
            return too_long
        return await self.dispatcher.run(
            ctx,
            CHAT_TOOL,
            {"deployment": str(deployment_id), "message": [text]},
            progress=progress,
            stream=stream,
        )

    async def run_tool(self, ctx: RequestContext, tool: str, args: dict[str, Any]) -> Reply:
        """One registry tool by name, through the dispatcher (roles, approvals, audit)."""
        return await self._with_expiry(ctx, await self.dispatcher.run(ctx, tool, args))

    async def first_delivery(self, ctx: RequestContext, key: str) -> bool:
        """True the first time a surface delivers the payload named `key` (an event id, a
        trigger id); a retry or a replay, in this process or another, says False."""
        return await self.db.run(events.claim, org_id=ctx.org_id, key=key, now=self.clock.now())

    async def deployments_like(self, ctx: RequestContext, text: str) -> list[DeploymentChoice]:
        """The organisation's live (and stopped) deployments whose id, name or model contains
        `text` (autocomplete)."""
        needle = text.strip().lstrip("#").lower()

        def rows(s: Any) -> list[DeploymentChoice]:
            found = deployments.list_for(s, org_id=ctx.org_id, statuses=CHOICE_STATUSES)
            return [
                DeploymentChoice(id=d.id, name=d.name, model_id=d.model_id, status=d.status)
                for d in found
                if d.id is not None
                and (not needle or needle in f"{d.id} {d.name} {d.model_id}".lower())
            ]

        return await self.db.read(rows)

    # -- approvals --------------------------------------------------------------------------

    async def approve(
        self, ctx: RequestContext, approval_id: int, *, progress: ProgressSink | None = None
    ) -> Reply:
        return await self.dispatcher.approve(ctx, approval_id, progress=progress)

    async def cancel(self, ctx: RequestContext, approval_id: int) -> Reply:
        return await self.dispatcher.cancel(ctx, approval_id)

    async def decide(
        self,
        ctx: RequestContext,
        approval: int | str | None,
        *,
        approve: bool,
        progress: ProgressSink | None = None,
    ) -> Decision:
        """An Approve or Cancel click on a card. `approval` is the button's value (client-
        controlled text: only ASCII digits within the id column count). The dispatcher decides
        who may click and runs the action once; the `Decision` says what happened, by whom and
        when, for every surface to word the same way."""
        approval_id = parse_id(str(approval) if approval is not None else None)
        now = self.clock.now()

        def decision(outcome: DecisionOutcome, reply: Reply, **statuses: Any) -> Decision:
            return Decision(
                outcome=outcome,
                approval_id=approval_id,
                reply=reply,
                approve=approve,
                who=ctx.user_id,
                when=now,
                **statuses,
            )

        if approval_id is None:
            return decision(DecisionOutcome.invalid, Reply())
        key = (ctx.org_id, approval_id)
        if key in self._deciding:
            return decision(DecisionOutcome.busy, Reply())
        self._deciding.add(key)
        try:
            before = await self._approval_status(ctx, approval_id)
            if approve:
                reply = await self.approve(ctx, approval_id, progress=progress)
            else:
                reply = await self.cancel(ctx, approval_id)
            after = await self._approval_status(ctx, approval_id)
        finally:
            self._deciding.discard(key)
        return decision(decision_outcome(before, after), reply, status_before=before, status=after)

    async def _approval_status(self, ctx: RequestContext, approval_id: int) -> str | None:
        def status(s: Any) -> str | None:
            row = approvals.get(s, org_id=ctx.org_id, approval_id=approval_id)
            return row.status if row is not None else None

        return await self.db.read(status)

    async def _with_expiry(self, ctx: RequestContext, reply: Reply) -> Reply:
        approval_id = reply.approval_id
        if approval_id is None or reply.expires_at is not None:
            return reply

        def expires(s: Any) -> datetime | None:
            row = approvals.get(s, org_id=ctx.org_id, approval_id=approval_id)
            return row.expires_at if row is not None else None

        when = await self.db.read(expires)
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # SQLite keeps no zone; stored times are UTC
        reply.expires_at = when
        return reply

    # -- entry checks -----------------------------------------------------------------------

    def _refusal(self, exc: CockpitError) -> Reply:
        reply = Reply.from_error(exc)
        reply.footer = self.services.footer
        return reply

    def _too_long(self, text: str, limit: int, what: str) -> Reply | None:
        if len(text) <= limit:
            return None
        return self._refusal(
            InvalidInput(
                f"{what} are limited to {limit:,} characters; this one has {len(text):,}.",
                fix="Shorten it or send it in parts.",
            )
        )

    def _over_rate_limit(self, ctx: RequestContext) -> Reply | None:
        try:
            self.dispatcher.rate_limiter.peek(ctx)
        except RateLimited as exc:
            return self._refusal(exc)
        return None
