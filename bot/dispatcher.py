"""The one gate every tool call passes: rate limit → role → idempotency → approval → run → audit.

Slash commands, the agent, the HTTP API and the scheduler all call `Dispatcher.run`; approval
clicks call `Dispatcher.approve`. Nothing else executes tools.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from bot.logs import SECRETS, log_context
from storage import activity, approvals, audit, events
from storage.models import Approval
from tools.contract import Button, ProgressSink, Reply, RequestContext, Role, Tool, ToolContext
from tools.errors import CockpitError, Forbidden, NotFound, RateLimited
from tools.metrics import TOOL_CALLS
from tools.services import Services

log = logging.getLogger(__name__)

DEFAULT_APPROVAL_TTL_SECONDS = 600
DEFAULT_RATE_LIMIT_PER_MINUTE = 30
RATE_WINDOW_SECONDS = 60.0


class RateLimiter:
    """Sliding window of calls per (organisation, user); isolated per organisation."""

    def __init__(self, services: Services, per_minute: int, per_day: int = 0) -> None:
        self._services = services
        self._clock = services.clock
        self._per_minute = per_minute
        self._per_day = per_day
        self._calls: dict[tuple[int, str], deque[float]] = defaultdict(deque)

    def check(self, ctx: RequestContext) -> None:
        if ctx.platform.value == "system":
            return
        self._check_day(ctx)
        if self._per_minute <= 0:
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

    def _check_day(self, ctx: RequestContext) -> None:
        """The daily cap per person, counted from today's audit rows (UTC day)."""
        if self._per_day <= 0:
            return
        now = self._clock.now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        with self._services.db.session() as s:
            used = activity.commands_since(s, org_id=ctx.org_id, actor=ctx.user_id, since=midnight)
        if used >= self._per_day:
            retry = (midnight + timedelta(days=1) - now).total_seconds()
            raise RateLimited(
                f"You have used today's {self._per_day} commands.",
                retry_after=retry,
                fix="The count resets at 00:00 UTC; an admin can raise "
                "COCKPIT_DAILY_LIMIT_PER_USER.",
            )


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
            args = raw_args if isinstance(raw_args, BaseModel) else tool.parse_args(raw_args or {})
            self.rate_limiter.check(ctx)
        except RateLimited as exc:
            self._audit(ctx, tool, {}, "denied", str(exc))
            return self._finish(Reply.from_error(exc))
        except CockpitError as exc:
            # Bad input changes nothing, not even the audit trail.
            return self._finish(Reply.from_error(exc))
        args_dict = args.model_dump(mode="json")
        for name in tool.secret_fields:
            SECRETS.add(str(args_dict.get(name) or ""))
        if not ctx.role.allows(tool.role):
            return self._deny(ctx, tool, args_dict)

        replay = self._replay(ctx)
        if replay is not None:
            return replay
        if tool.needs_approval:
            reply = await self._request_approval(ctx, tool, args)
        else:
            reply = await self._execute(ctx, tool, args, progress=progress, stream=stream)
        self._remember(ctx, reply)
        return reply

    async def approve(
        self, ctx: RequestContext, approval_id: int, *, progress: ProgressSink | None = None
    ) -> Reply:
        """A human clicked Approve. Runs the stored action once, as the requester."""
        now = self.services.clock.now()
        with self.services.db.session() as s:
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
            requester_ctx = RequestContext.model_validate_json(row.request_json)
            problem = self._approval_problem(ctx, row, now, approving=True)
            if problem:
                outcome, message = problem
                if outcome == "expired":
                    approvals.finish(
                        s, org_id=ctx.org_id, approval_id=approval_id, status="expired"
                    )
                self._audit_row(s, ctx, row.tool, outcome, json.loads(row.args_json), message)
                return Reply.error(message)
            claimed = approvals.claim(
                s, org_id=ctx.org_id, approval_id=approval_id, decided_by=ctx.user_id, now=now
            )
            args_json = row.args_json
        if not claimed or tool is None:
            return Reply.error(f"Approval #{approval_id} is already being handled.")
        args = tool.parse_args(json.loads(args_json))
        self._audit(
            requester_ctx,
            tool,
            args.model_dump(mode="json"),
            "approved",
            f"approved by {ctx.user_id} ({ctx.role.value})",
        )
        reply = await self._execute(
            requester_ctx, tool, args, progress=progress, approved_by=ctx.user_id
        )
        with self.services.db.session() as s:
            approvals.finish(
                s,
                org_id=ctx.org_id,
                approval_id=approval_id,
                status="executed" if reply.ok else "failed",
                result_text=reply.as_plain_text(),
            )
        return reply

    async def cancel(self, ctx: RequestContext, approval_id: int) -> Reply:
        now = self.services.clock.now()
        with self.services.db.session() as s:
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
                status="cancelled",
                decided_by=ctx.user_id,
                now=now,
            )
            tool_name, args = row.tool, json.loads(row.args_json)
        tool = self.services.registry.get(tool_name)
        if tool:
            self._audit(ctx, tool, args, "cancelled", f"cancelled by {ctx.user_id}")
        return Reply(text=f"Cancelled: nothing was done for approval #{approval_id}.")

    # -- steps ----------------------------------------------------------------------------

    def _deny(self, ctx: RequestContext, tool: Tool, args: dict[str, Any]) -> Reply:
        msg = (
            f"/{tool.command or tool.name} needs the {tool.role.value} role; you are "
            f"{_article(ctx.role.value)} {ctx.role.value}. Ask an admin of this workspace to run "
            "it or to change your role."
        )
        self._audit(ctx, tool, args, "denied", msg)
        return self._finish(Reply.error(msg, code="forbidden"))

    def _approval_problem(
        self, ctx: RequestContext, row: Approval, now: Any, *, approving: bool
    ) -> tuple[str, str] | None:
        """Why this person may not decide this approval now: (audit outcome, message)."""
        if row.status == "pending" and row.expires_at <= now:
            return "expired", (
                "This approval expired; nothing was done. Run the command again to get a new one."
            )
        if row.status != "pending":
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
        preview = Reply(text=f"/{tool.command or tool.name} {_args_text(tool, args)}".strip())
        if tool.preview is not None:
            tc = ToolContext(request=ctx, services=self.services)
            try:
                preview = await tool.preview(tc, args)
            except CockpitError as exc:
                self._audit(ctx, tool, args.model_dump(mode="json"), "failed", str(exc))
                return self._finish(Reply.from_error(exc))
        now = self.services.clock.now()
        expires = now + self.approval_ttl
        redacted = tool.redact(args.model_dump(mode="json"))
        with self.services.db.session() as s:
            row = approvals.create(
                s,
                org_id=ctx.org_id,
                workspace_id=ctx.workspace_id,
                tool=tool.name,
                args_json=json.dumps(args.model_dump(mode="json")),
                request_json=ctx.model_dump_json(),
                summary=preview.as_plain_text(),
                requester=ctx.user_id,
                expires_at=expires,
                now=now,
                approver_role=preview.approver_role.value if preview.approver_role else None,
            )
            assert row.id is not None
            approval_id = row.id
            TOOL_CALLS.labels(tool=tool.name, outcome="approval_requested").inc()
            self._audit_row(
                s, ctx, tool.name, "approval_requested", redacted, f"approval #{approval_id}"
            )
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
    ) -> Reply:
        with log_context(
            org_id=ctx.org_id,
            request_id=ctx.request_id,
            tool=tool.name,
            platform=ctx.platform.value,
        ):
            return await self._execute_logged(
                ctx, tool, args, progress=progress, approved_by=approved_by, stream=stream
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
    ) -> Reply:
        tc = ToolContext(
            request=ctx, services=self.services, approved_by=approved_by, stream=stream
        )
        if progress is not None:
            tc.progress = progress
        redacted = tool.redact(args.model_dump(mode="json"))
        if not approved_by:
            self._audit(ctx, tool, redacted, "allowed", "")
        try:
            reply = await tool.func(tc, args)
        except CockpitError as exc:
            self._audit(ctx, tool, redacted, "failed", str(exc))
            return self._finish(Reply.from_error(exc))
        except Exception:
            log.exception("tool %s failed (request %s)", tool.name, ctx.request_id)
            self._audit(ctx, tool, redacted, "failed", "internal error")
            return self._finish(
                Reply.error(
                    f"Something went wrong running /{tool.command or tool.name} "
                    f"(reference {ctx.request_id}). Nothing else was changed; the details are in "
                    "the bot's logs."
                )
            )
        self._audit(ctx, tool, redacted, "succeeded" if reply.ok else "failed", reply.text[:300])
        return self._finish(reply)

    def _finish(self, reply: Reply) -> Reply:
        if reply.footer is None and self.services.footer:
            reply.footer = self.services.footer
        return reply

    def _replay(self, ctx: RequestContext) -> Reply | None:
        if not ctx.idempotency_key:
            return None
        with self.services.db.session() as s:
            if events.claim(
                s, org_id=ctx.org_id, key=ctx.idempotency_key, now=self.services.clock.now()
            ):
                return None
            ev = events.seen(s, org_id=ctx.org_id, key=ctx.idempotency_key)
            stored = ev.result_json if ev else "{}"
        if stored and stored != "{}":
            reply = Reply.model_validate_json(stored)
            reply.footer = "(already handled: this is the earlier answer)"
            return reply
        return Reply(text="This request is already being handled.", footer="(duplicate ignored)")

    def _remember(self, ctx: RequestContext, reply: Reply) -> None:
        if not ctx.idempotency_key:
            return
        with self.services.db.session() as s:
            events.store_result(
                s, org_id=ctx.org_id, key=ctx.idempotency_key, result_json=reply.model_dump_json()
            )

    def _audit(
        self, ctx: RequestContext, tool: Tool, args: dict[str, Any], outcome: str, detail: str
    ) -> None:
        TOOL_CALLS.labels(tool=tool.name, outcome=outcome).inc()
        with self.services.db.session() as s:
            self._audit_row(s, ctx, tool.name, outcome, tool.redact(args), detail)

    def _audit_row(
        self,
        s: Any,
        ctx: RequestContext,
        tool: str,
        outcome: str,
        args: dict[str, Any],
        detail: str,
    ) -> None:
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
            detail=detail,
            request_id=ctx.request_id,
            now=self.services.clock.now(),
        )


def _args_text(tool: Tool, args: BaseModel) -> str:
    data = tool.redact(args.model_dump(mode="json", exclude_defaults=True))
    return " ".join(f"{k}={v}" for k, v in data.items())


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


__all__ = ["Dispatcher", "Forbidden", "NotFound", "RateLimiter"]
