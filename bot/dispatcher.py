"""The one gate every tool call passes: rate limit → role → agent gate → idempotency →
approval → run → audit.

Slash commands, the agent, the HTTP API and the scheduler all call `Dispatcher.run`; approval
clicks call `Dispatcher.approve`. Nothing else executes tools.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from bot.logs import SECRETS, log_context
from bot.options import command_line
from storage import activity, apikeys, approvals, audit, events, orgs
from storage.db import DATABASE_DOWN_TEXT, DatabaseUnavailable
from storage.models import Approval, ApprovalStatus
from storage.redaction import scrub
from tools.contract import (
    Button,
    Origin,
    Platform,
    ProgressSink,
    Reply,
    RequestContext,
    Role,
    SideEffect,
    Tool,
    ToolContext,
    article,
    permission_refusal,
)
from tools.errors import CockpitError, Forbidden, NeedsChoice, NotFound, RateLimited
from tools.metrics import TOOL_CALLS
from tools.services import Services

log = logging.getLogger(__name__)

DEFAULT_APPROVAL_TTL_SECONDS = 600
DEFAULT_RATE_LIMIT_PER_MINUTE = 30
RATE_WINDOW_SECONDS = 60.0
AUDIT_DETAIL_CHARS = 300
# What the audit trail and the replay store keep of a reply that carried a secret.
SECRET_REPLY_SUMMARY = "(a secret was shown once to the requester; it is not stored)"
SECRET_REPLAY_TEXT = (
    "This answer held a secret, shown once when it was made and not stored. "
    "Run the command again for a new one."
)


class RateLimiter:
    """Sliding window of calls per (organisation, user); isolated per organisation.

    The per-minute window lives in memory. The daily cap is counted in the database
    (`DailyCommandCount`, one row per organisation, person and UTC day), incremented in the
    unit of work that writes each counted audit row, so every process (web, worker, discord)
    sees every command and nothing recounts the audit trail. The last count this process read
    is kept only to refuse early on the loop (`check`, `peek`): a day's count only grows, so a
    refusal from it is never wrong."""

    def __init__(self, services: Services, per_minute: int, per_day: int = 0) -> None:
        self._services = services
        self._clock = services.clock
        self._per_minute = per_minute
        self._per_day = per_day
        self._calls: dict[tuple[int, str], deque[float]] = defaultdict(deque)
        # (org, actor) -> (UTC day, the count last read or written there)
        self._known: dict[tuple[int, str], tuple[date, int]] = {}

    @property
    def has_daily_cap(self) -> bool:
        return self._per_day > 0

    def check(self, ctx: RequestContext) -> None:
        """The per-minute window (counting this call) and the daily cap as last counted; no
        database work, so it may run on the event loop."""
        if ctx.platform is Platform.system:
            return
        self._raise_if_over_day(ctx, self._known_today(ctx))
        self.check_minute(ctx)

    def check_minute(self, ctx: RequestContext) -> None:
        if ctx.platform is Platform.system or self._per_minute <= 0:
            return
        now = self._clock.now().timestamp()
        window = self._calls[(ctx.org_id, ctx.user_id)]
        while window and window[0] <= now - RATE_WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self._per_minute:
            retry = RATE_WINDOW_SECONDS - (now - window[0])
            raise RateLimited(
                f"Slow down: you have used {self._per_minute} commands in the last minute.",
                retry_after=retry,
                fix=f"Try again in {int(retry) + 1} s.",
            )
        window.append(now)

    def peek(self, ctx: RequestContext) -> None:
        """Raise RateLimited when `check` would, without counting a call: lets an entry point
        refuse before doing work (matching plain words) and leave the count to the tool run."""
        self.check(ctx)
        if ctx.platform is not Platform.system and self._per_minute > 0:
            self._calls[(ctx.org_id, ctx.user_id)].pop()  # the call `check` just counted

    def check_day(self, s: Any, ctx: RequestContext, *, count_this: bool) -> bool:
        """The daily cap per person (UTC day), on a storage thread inside the command's unit of
        work. With `count_this` the command's own counted row is counted in the same statement
        (one round trip: `INSERT … ON CONFLICT DO UPDATE … RETURNING`); returns whether it was,
        so the audit row that follows is not counted twice."""
        if not self.counts(ctx):
            return False
        day = _utc_day(self._clock.now())
        if count_this:
            after = activity.count_command(s, org_id=ctx.org_id, actor=ctx.user_id, day=day)
            self._known[(ctx.org_id, ctx.user_id)] = (day, after)
            used = after - 1
        else:
            used = activity.commands_on(s, org_id=ctx.org_id, actor=ctx.user_id, day=day)
            self._known[(ctx.org_id, ctx.user_id)] = (day, used)
        self._raise_if_over_day(ctx, used)
        return count_this

    def claim_and_check(self, s: Any, ctx: RequestContext, *, key: str, now: datetime) -> bool:
        """`check_day(count_this=True)` together with the idempotency claim of `key`, in one
        statement on PostgreSQL; False (nothing counted) when the key was already claimed."""
        day = _utc_day(now)
        after = activity.claim_and_count(
            s, org_id=ctx.org_id, actor=ctx.user_id, day=day, key=key, now=now
        )
        if after is None:
            return False
        self._known[(ctx.org_id, ctx.user_id)] = (day, after)
        self._raise_if_over_day(ctx, after - 1)
        return True

    def counts(self, ctx: RequestContext) -> bool:
        return self._per_day > 0 and ctx.platform is not Platform.system

    def count(self, s: Any, ctx: RequestContext, *, by: int = 1) -> None:
        """Count (or, with `by=-1`, take back) a counted row for this person, in the unit of
        work that writes it."""
        if not self.counts(ctx):
            return
        day = _utc_day(self._clock.now())
        after = activity.count_command(s, org_id=ctx.org_id, actor=ctx.user_id, day=day, by=by)
        self._known[(ctx.org_id, ctx.user_id)] = (day, after)

    def _known_today(self, ctx: RequestContext) -> int | None:
        if self._per_day <= 0:
            return None
        kept = self._known.get((ctx.org_id, ctx.user_id))
        if kept is None or kept[0] != _utc_day(self._clock.now()):
            return None
        return kept[1]

    def _raise_if_over_day(self, ctx: RequestContext, used: int | None) -> None:
        if used is None or used < self._per_day:
            return
        now = self._clock.now()
        retry = (_midnight(now) + timedelta(days=1) - now).total_seconds()
        raise RateLimited(
            f"You have used today's {self._per_day} commands.",
            retry_after=retry,
            fix="The count resets at 00:00 UTC; an admin can raise COCKPIT_DAILY_LIMIT_PER_USER.",
        )


def _utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class Dispatcher:
    def __init__(
        self,
        services: Services,
        *,
        approval_ttl_seconds: int = DEFAULT_APPROVAL_TTL_SECONDS,
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE,
        daily_limit_per_user: int = 0,
    ) -> None:
        self.services = services
        self.approval_ttl = timedelta(seconds=approval_ttl_seconds)
        self.rate_limiter = RateLimiter(services, rate_limit_per_minute, daily_limit_per_user)

    # -- entry points ---------------------------------------------------------------------

    async def run(
        self,
        ctx: RequestContext,
        tool_name: str,
        raw_args: dict[str, Any] | BaseModel | None = None,
        *,
        progress: ProgressSink | None = None,
        stream: ProgressSink | None = None,
    ) -> Reply:
        """Validate, authorise and run (or queue for approval) one tool call."""
        tool = self.services.registry.get(tool_name)
        if tool is None:
            return Reply.error(
                f"There is no tool called {tool_name!r}. Type /help for the list.", code="not_found"
            )
        try:
            return await self._run(ctx, tool, raw_args, progress=progress, stream=stream)
        except DatabaseUnavailable:
            return self._finish(Reply.error(DATABASE_DOWN_TEXT, code="database_unavailable"))

    async def _run(
        self,
        ctx: RequestContext,
        tool: Tool,
        raw_args: dict[str, Any] | BaseModel | None,
        *,
        progress: ProgressSink | None,
        stream: ProgressSink | None,
    ) -> Reply:
        try:
            args = raw_args if isinstance(raw_args, BaseModel) else tool.parse_args(raw_args or {})
            self.rate_limiter.check(ctx)
        except RateLimited as exc:
            await self._audit(ctx, tool, {}, "denied", str(exc))
            return self._finish(Reply.from_error(exc))
        except CockpitError as exc:
            # Bad input changes nothing, not even the audit trail.
            return self._finish(Reply.from_error(exc))
        args_dict = args.model_dump(mode="json")
        refusal = permission_refusal(ctx, tool)
        needs_approval = refusal is None and self._needs_approval(ctx, tool, args)
        stop = await self._start_unit(ctx, tool, args_dict, refusal, execute=not needs_approval)
        if stop is not None:
            return stop
        if needs_approval:
            reply = await self._request_approval(ctx, tool, args)
            await self._remember(ctx, tool, reply)
            return reply
        reply = await self._execute(
            ctx, tool, args, progress=progress, stream=stream, remember=True
        )
        if reply.ok:
            # Accepted and stored (e.g. a verified `/connect` key): from now on redacted in
            # this organisation's log lines. A refused value never joins the set.
            for name in tool.secret_fields:
                SECRETS.add(str(args_dict.get(name) or ""), org_id=ctx.org_id)
        return reply

    async def _start_unit(
        self,
        ctx: RequestContext,
        tool: Tool,
        args: dict[str, Any],
        refusal: tuple[str, str] | None,
        *,
        execute: bool,
    ) -> Reply | None:
        """One unit of work before a tool runs: the daily cap, the refusal's audit row, the
        idempotency claim (or the earlier answer) and the "allowed" row. Returns the answer
        when the command stops here."""
        redacted = tool.redact(args)
        limiter = self.rate_limiter

        def unit(s: Any) -> tuple[str, Any]:
            # The daily cap is checked and this command's counted row counted in one statement
            # (only an approval request, whose row comes later, just reads the count).
            if refusal is not None:
                counted = False
                try:
                    counted = limiter.check_day(s, ctx, count_this=True)
                except RateLimited as exc:
                    self._audit_row(s, ctx, tool.name, "denied", {}, str(exc), counted=True)
                    return "denied", exc
                self._audit_row(s, ctx, tool.name, "denied", redacted, refusal[0], counted=counted)
                return "denied", None
            key = ctx.idempotency_key
            now = self.services.clock.now()
            # A redelivery is answered before anything is counted: it writes no row of its own.
            try:
                if key and execute and limiter.counts(ctx):
                    if not limiter.claim_and_check(s, ctx, key=key, now=now):
                        return "replay", _stored(s, ctx.org_id, key)
                    counted = True
                else:
                    if key and not events.claim(s, org_id=ctx.org_id, key=key, now=now):
                        return "replay", _stored(s, ctx.org_id, key)
                    counted = limiter.check_day(s, ctx, count_this=execute)
            except RateLimited as exc:
                self._audit_row(s, ctx, tool.name, "denied", {}, str(exc), counted=execute)
                if key:  # a redelivery of a refused command is refused the same way
                    events.store_result(
                        s, org_id=ctx.org_id, key=key, result_json=_refused_json(exc)
                    )
                return "denied", exc
            if execute:
                self._audit_row(s, ctx, tool.name, "allowed", redacted, "", counted=counted)
                return "allowed", None
            return "", None

        # Each statement stands alone (a refusal's row, the claim, the allowed row): no
        # transaction round trips on PostgreSQL.
        verdict, data = await self.services.db.autocommit(unit)
        if verdict:
            TOOL_CALLS.labels(tool=tool.name, outcome=verdict).inc()
        if verdict == "denied":
            if isinstance(data, RateLimited):
                return self._finish(Reply.from_error(data))
            assert refusal is not None
            return self._finish(Reply.error(refusal[1], code="forbidden"))
        if verdict == "replay":
            return _replayed(data)
        return None

    @staticmethod
    def _needs_approval(ctx: RequestContext, tool: Tool, args: BaseModel) -> bool:
        """A tool's own policy, and: anything a model chose that changes state waits for the
        person it acts for, whatever the tool's slash-command policy. Reads run freely."""
        if tool.needs_approval:
            return True
        return ctx.origin is Origin.agent and tool.effect_of(args) is not SideEffect.none

    async def approve(
        self, ctx: RequestContext, approval_id: int, *, progress: ProgressSink | None = None
    ) -> Reply:
        """A human clicked Approve. Runs the stored action once, as the requester, with the
        requester's and the approver's roles as they are now and the budget checked again."""
        now = self.services.clock.now()

        def check(s: Any) -> Reply | tuple[Tool | None, RequestContext | None, RequestContext, str]:
            row = approvals.get(s, org_id=ctx.org_id, approval_id=approval_id)
            if row is None:
                self._audit_row(
                    s,
                    ctx,
                    "approval",
                    "denied",
                    {"approval_id": approval_id},
                    "approval not found in this organisation",
                )
                return Reply.error(f"Approval #{approval_id} was not found.", code="not_found")
            tool = self.services.registry.get(row.tool)
            stored_ctx = RequestContext.model_validate_json(row.request_json)
            approver = _with_role(ctx, current_role(s, ctx, now))
            requester = _with_role(stored_ctx, current_role(s, stored_ctx, now))
            problem = (
                self._approval_problem(approver, row, now, approving=True)
                if approver is not None
                else None
            ) or _identity_problem(requester, approver, tool)
            if problem:
                outcome, message = problem
                if outcome == "expired":
                    approvals.finish(
                        s, org_id=ctx.org_id, approval_id=approval_id, status=ApprovalStatus.expired
                    )
                self._audit_row(s, ctx, row.tool, outcome, json.loads(row.args_json), message)
                return Reply.error(message)
            assert approver is not None
            return tool, requester, approver, row.args_json

        try:
            checked = await self.services.db.run(check)
        except DatabaseUnavailable:
            return self._finish(Reply.error(DATABASE_DOWN_TEXT, code="database_unavailable"))
        if isinstance(checked, Reply):
            return checked
        tool, requester, approver, args_json = checked
        assert tool is not None and requester is not None and approver is not None
        args = tool.parse_args(json.loads(args_json))
        over_cap = await self._still_within_budget(requester, approver, tool, args)
        if over_cap:
            await self._audit(ctx, tool, args.model_dump(mode="json"), "denied", over_cap)
            return Reply.error(over_cap)
        approved_detail = f"approved by {ctx.user_id} ({approver.role.value})"
        redacted = tool.redact(args.model_dump(mode="json"))

        def claim(s: Any) -> bool:
            if not approvals.claim(
                s,
                org_id=ctx.org_id,
                approval_id=approval_id,
                decided_by=ctx.user_id,
                now=now,
                owner=self.services.instance,
            ):
                return False
            self._audit_row(s, requester, tool.name, "approved", redacted, approved_detail)
            return True

        if not await self.services.db.run(claim):
            return Reply.error(f"Approval #{approval_id} is already being handled.")
        TOOL_CALLS.labels(tool=tool.name, outcome="approved").inc()
        reply = await self._execute_claimed(requester, tool, args, approval_id, approver, progress)
        return reply

    async def _execute_claimed(
        self,
        requester: RequestContext,
        tool: Tool,
        args: BaseModel,
        approval_id: int,
        approver: RequestContext,
        progress: ProgressSink | None,
    ) -> Reply:
        """Run a claimed approval; it always ends in a terminal state, even when the run is
        cancelled (shutdown, a cancelled task) or fails in a way no tool expected."""
        status, result = "failed", ""
        reason: str | None = "interrupted before it finished (cancelled)"
        try:
            reply = await self._execute(
                requester, tool, args, progress=progress, approved_by=approver.user_id
            )
            status, reason = (ApprovalStatus.executed if reply.ok else ApprovalStatus.failed), None
            result = scrub(reply.as_plain_text())
            return reply
        finally:
            await self.services.db.run(
                approvals.finish,
                org_id=requester.org_id,
                approval_id=approval_id,
                status=status,
                result_text=result,
                reason=reason,
                only_if=ApprovalStatus.executing,
            )

    async def _still_within_budget(
        self, requester: RequestContext, approver: RequestContext, tool: Tool, args: BaseModel
    ) -> str | None:
        """Re-run the tool's preview now: a hard cap set (or spend grown) since the request
        may mean only an admin can approve it now."""
        if tool.preview is None:
            return None
        tc = ToolContext(request=requester, services=self.services)
        try:
            preview = await tool.preview(tc, args)
        except CockpitError as exc:
            return f"This request cannot run any more: {exc}"
        except Exception:
            log.exception("preview of %s failed at approval", tool.name)
            return (
                f"Could not re-check /{tool.command or tool.name} before running it "
                f"(reference {approver.request_id}); nothing was done. Try again."
            )
        needed = preview.approver_role
        if needed is not None and not approver.role.allows(needed):
            return (
                f"This request now needs approval by an {needed.value} (it is over the budget's "
                "hard cap); nothing was done."
            )
        return None

    async def cancel(self, ctx: RequestContext, approval_id: int) -> Reply:
        now = self.services.clock.now()

        def cancel(s: Any) -> Reply | None:
            row = approvals.get(s, org_id=ctx.org_id, approval_id=approval_id)
            if row is None:
                return Reply.error(f"Approval #{approval_id} was not found.", code="not_found")
            problem = self._approval_problem(ctx, row, now, approving=False)
            if problem:
                return Reply.error(problem[1])
            approvals.finish(
                s,
                org_id=ctx.org_id,
                approval_id=approval_id,
                status=ApprovalStatus.cancelled,
                decided_by=ctx.user_id,
                now=now,
            )
            tool = self.services.registry.get(row.tool)
            if tool is not None:
                args = tool.redact(json.loads(row.args_json))
                self._audit_row(s, ctx, tool.name, "cancelled", args, f"cancelled by {ctx.user_id}")
                TOOL_CALLS.labels(tool=tool.name, outcome="cancelled").inc()
            return None

        try:
            refused = await self.services.db.run(cancel)
        except DatabaseUnavailable:
            return self._finish(Reply.error(DATABASE_DOWN_TEXT, code="database_unavailable"))
        if refused is not None:
            return refused
        return Reply(text=f"Cancelled: nothing was done for approval #{approval_id}.")

    # -- steps ----------------------------------------------------------------------------

    def _approval_problem(
        self, ctx: RequestContext, row: Approval, now: Any, *, approving: bool
    ) -> tuple[str, str] | None:
        """Why this person may not decide this approval now: (audit outcome, message)."""
        if row.status == ApprovalStatus.pending and row.expires_at <= now:
            return "expired", (
                "This approval expired; nothing was done. Run the command again to get a new one."
            )
        if row.status != ApprovalStatus.pending:
            return "denied", f"This request was already {row.status}; nothing more was done."
        if ctx.user_id != row.requester and not ctx.role.allows(Role.admin):
            return "denied", "Only the person who asked, or an admin, can approve or cancel this."
        if approving and row.approver_role and not ctx.role.allows(Role(row.approver_role)):
            return "denied", (
                f"This request needs approval by an {row.approver_role} (it is over the "
                "budget's hard cap); yours does not count."
            )
        return None

    async def _request_approval(self, ctx: RequestContext, tool: Tool, args: BaseModel) -> Reply:
        # The command as a person would type it ("/budget set 50 --monthly"), secrets redacted.
        given = tool.redact(args.model_dump(mode="json", exclude_defaults=True))
        command = command_line(tool, given)
        # Without a tool preview the card still says in words what a click will do.
        preview = Reply(text=f"{command}\n{tool.summary}")
        if tool.preview is not None:
            tc = ToolContext(request=ctx, services=self.services)
            try:
                preview = await tool.preview(tc, args)
            except CockpitError as exc:
                await self._audit(ctx, tool, args.model_dump(mode="json"), "failed", str(exc))
                return self._finish(_error_reply(tool, args, exc))
            except Exception:
                # The preview path catches what the run path catches (issue 14, finding 5).
                log.exception("preview of %s failed (request %s)", tool.name, ctx.request_id)
                await self._audit(
                    ctx, tool, args.model_dump(mode="json"), "failed", "internal error"
                )
                return self._finish(_internal_error(tool, ctx))
        now = self.services.clock.now()
        expires = now + self.approval_ttl
        redacted = tool.redact(args.model_dump(mode="json"))

        def create(s: Any) -> int:
            row = approvals.create(
                s,
                org_id=ctx.org_id,
                workspace_id=ctx.workspace_id,
                tool=tool.name,
                args_json=json.dumps(args.model_dump(mode="json")),
                request_json=ctx.model_dump_json(),
                summary=scrub(preview.as_plain_text()),
                requester=ctx.user_id,
                expires_at=expires,
                now=now,
                approver_role=preview.approver_role.value if preview.approver_role else None,
            )
            assert row.id is not None
            self._audit_row(
                s, ctx, tool.name, "approval_requested", redacted, f"approval #{row.id}"
            )
            return row.id

        approval_id = await self.services.db.run(create)
        TOOL_CALLS.labels(tool=tool.name, outcome="approval_requested").inc()
        minutes = int(self.approval_ttl.total_seconds() // 60)
        preview.title = preview.title or f"Approve /{tool.command or tool.name}?"
        preview.approval_id = approval_id
        preview.buttons = [
            Button(label="Approve", action="approve", value=str(approval_id), style="primary"),
            Button(label="Cancel", action="cancel", value=str(approval_id), style="danger"),
        ]
        who = (
            f"only an {preview.approver_role.value} can approve"
            if preview.approver_role
            else f"only {ctx.display_name} or an admin can approve"
        )
        note = f"Approval #{approval_id}: {who}; expires in {minutes} min."
        preview.footer = note if not self.services.footer else f"{note} · {self.services.footer}"
        return preview

    async def _execute(
        self,
        ctx: RequestContext,
        tool: Tool,
        args: BaseModel,
        *,
        progress: ProgressSink | None,
        approved_by: str | None = None,
        stream: ProgressSink | None = None,
        remember: bool = False,
    ) -> Reply:
        with log_context(
            org_id=ctx.org_id,
            request_id=ctx.request_id,
            tool=tool.name,
            platform=ctx.platform.value,
        ):
            return await self._execute_logged(
                ctx,
                tool,
                args,
                progress=progress,
                approved_by=approved_by,
                stream=stream,
                remember=remember,
            )

    async def _execute_logged(
        self,
        ctx: RequestContext,
        tool: Tool,
        args: BaseModel,
        *,
        progress: ProgressSink | None,
        approved_by: str | None,
        stream: ProgressSink | None,
        remember: bool,
    ) -> Reply:
        """Run the tool (its "allowed" row, or the approval's, is already written), then one
        unit of work: the outcome's audit row and, with `remember`, the answer a retry of this
        request gets."""
        tc = ToolContext(
            request=ctx, services=self.services, approved_by=approved_by, stream=stream
        )
        if progress is not None:
            tc.progress = progress
        redacted = tool.redact(args.model_dump(mode="json"))
        try:
            reply = await tool.func(tc, args)
        except DatabaseUnavailable as exc:
            outcome, detail = "failed", f"database unavailable ({exc.detail})"
            reply = Reply.error(DATABASE_DOWN_TEXT, code="database_unavailable")
        except CockpitError as exc:
            outcome, detail = "failed", str(exc)
            reply = _error_reply(tool, args, exc)
        except Exception:
            log.exception("tool %s failed (request %s)", tool.name, ctx.request_id)
            outcome, detail = "failed", "internal error"
            reply = _internal_error(tool, ctx)
        else:
            outcome = "succeeded" if reply.ok else "failed"
            detail = (
                SECRET_REPLY_SUMMARY
                if tool.secret_output and reply.ok
                else scrub(reply.text)[:AUDIT_DETAIL_CHARS]
            )
        reply = self._finish(reply)
        stored = self._replay_json(ctx, tool, reply) if remember else None

        def end(s: Any) -> None:
            self._audit_row(s, ctx, tool.name, outcome, redacted, detail)
            if stored is not None and ctx.idempotency_key:
                events.store_result(
                    s, org_id=ctx.org_id, key=ctx.idempotency_key, result_json=stored
                )

        TOOL_CALLS.labels(tool=tool.name, outcome=outcome).inc()
        await self.services.db.autocommit(end)  # the outcome row, then the stored answer
        return reply

    def _finish(self, reply: Reply) -> Reply:
        if reply.footer is None and self.services.footer:
            reply.footer = self.services.footer
        return reply

    @staticmethod
    def _replay_json(ctx: RequestContext, tool: Tool, reply: Reply) -> str | None:
        """What a retry of this request is answered with (a secret is never kept)."""
        if not ctx.idempotency_key:
            return None
        if tool.secret_output and reply.ok:
            reply = Reply(text=SECRET_REPLAY_TEXT, ephemeral=True)
        return reply.model_dump_json()

    async def _remember(self, ctx: RequestContext, tool: Tool, reply: Reply) -> None:
        stored = self._replay_json(ctx, tool, reply)
        if stored is None or not ctx.idempotency_key:
            return
        await self.services.db.run(
            events.store_result, org_id=ctx.org_id, key=ctx.idempotency_key, result_json=stored
        )

    async def _audit(
        self, ctx: RequestContext, tool: Tool, args: dict[str, Any], outcome: str, detail: str
    ) -> None:
        TOOL_CALLS.labels(tool=tool.name, outcome=outcome).inc()
        await self.services.db.run(
            self._audit_row, ctx, tool.name, outcome, tool.redact(args), detail
        )

    def _audit_row(
        self,
        s: Any,
        ctx: RequestContext,
        tool: str,
        outcome: str,
        args: dict[str, Any],
        detail: str,
        *,
        counted: bool = False,
    ) -> None:
        """One audit row; a row that counts against the daily cap is counted in the same unit
        of work (unless the caller's cap check already counted it: `counted`)."""
        audit.record(
            s,
            org_id=ctx.org_id,
            workspace_id=ctx.workspace_id,
            actor=ctx.user_id,
            actor_role=ctx.role.value,
            platform=ctx.platform.value,
            tool=tool,
            outcome=outcome,
            args=args,
            detail=f"via agent: {detail}" if ctx.origin is Origin.agent else detail,
            request_id=ctx.request_id,
            now=self.services.clock.now(),
        )
        if outcome in activity.COUNTED_OUTCOMES and not counted:
            self.rate_limiter.count(s, ctx)


def current_role(s: Any, ctx: RequestContext, now: Any) -> Role | None:
    """The role `ctx`'s identity has now (None when it left, or its API key was revoked or
    expired): approvals run with it, not with the role stored when the request was made."""
    if ctx.platform is Platform.system:
        return ctx.role
    if ctx.platform is Platform.api:
        key_id = ctx.user_id.removeprefix("apikey:")
        key = apikeys.get(s, org_id=ctx.org_id, key_id=int(key_id)) if key_id.isdecimal() else None
        if key is None or key.revoked_at is not None or (key.expires_at and key.expires_at <= now):
            return None
        return Role(key.role)
    member = orgs.get_member(
        s, org_id=ctx.org_id, platform=ctx.platform.value, platform_user_id=ctx.user_id
    )
    return Role(member.role) if member is not None else None


def _with_role(ctx: RequestContext, role: Role | None) -> RequestContext | None:
    return None if role is None else ctx.model_copy(update={"role": role})


def _identity_problem(
    requester: RequestContext | None, approver: RequestContext | None, tool: Tool | None
) -> tuple[str, str] | None:
    if tool is None:
        return "denied", "This request's command no longer exists; nothing was done."
    if approver is None:
        return "denied", "You are no longer a member of this organisation; nothing was done."
    if requester is None:
        return "denied", (
            "The person who asked is no longer a member of this organisation (or their API key "
            "was revoked); nothing was done."
        )
    if not requester.role.allows(tool.role):
        return "denied", (
            f"The person who asked is now {article(requester.role.value)} "
            f"{requester.role.value}; /{tool.command or tool.name} needs {tool.role.value}. "
            "Nothing was done."
        )
    return None


def _internal_error(tool: Tool, ctx: RequestContext) -> Reply:
    return Reply.error(
        f"Something went wrong running /{tool.command or tool.name} "
        f"(reference {ctx.request_id}). Nothing else was changed; the details are in "
        "the bot's logs."
    )


def _stored(s: Any, org_id: int, key: str) -> str:
    ev = events.seen(s, org_id=org_id, key=key)
    return ev.result_json if ev else events.EMPTY_RESULT


def _refused_json(exc: RateLimited) -> str:
    return Reply.from_error(exc).model_dump_json()


def _replayed(stored: str) -> Reply:
    if stored and stored != events.EMPTY_RESULT:
        reply = Reply.model_validate_json(stored)
        reply.footer = "(already handled: this is the earlier answer)"
        return reply
    return Reply(text="This request is already being handled.", footer="(duplicate ignored)")


MAX_CHOICE_BUTTONS = 5


def _error_reply(tool: Tool, args: BaseModel, exc: CockpitError) -> Reply:
    """The error as a reply; a pick-list (`NeedsChoice`) gets one command button per choice:
    this same request with the chosen value, the other arguments as given."""
    reply = Reply.from_error(exc)
    if not isinstance(exc, NeedsChoice) or exc.field not in tool.input_model.model_fields:
        return reply
    if tool.secret_fields:  # a button's command is shown to the channel: never a secret in it
        return reply
    given = args.model_dump(mode="json", exclude_defaults=True)
    for label, value in exc.options[:MAX_CHOICE_BUTTONS]:
        line = command_line(tool, {**given, exc.field: value})
        reply.buttons.append(Button(label=label, action="command", value=line))
    return reply


__all__ = ["Dispatcher", "Forbidden", "NotFound", "RateLimiter"]
