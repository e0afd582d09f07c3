"""The audit trail and the activity summary: who ran what, with which outcome."""

from __future__ import annotations

from datetime import date, datetime, time

from storage import activity, audit
from tools.contract import Reply, Role, Table, ToolContext, ToolInput, arg, tool

# --- audit ----------------------------------------------------------------------------------


class AuditInput(ToolInput):
    user: str | None = arg(None, description="Only this actor")
    since: date | None = arg(None, description="From this date (YYYY-MM-DD)")
    tool: str | None = arg(None, description="Only this tool")
    limit: int = arg(20, description="How many rows", ge=1, le=200)


@tool(
    name="audit",
    input_model=AuditInput,
    role=Role.admin,
    group="team",
    description="Show the audit trail: who ran what, with which outcome.",
    examples=("/audit --user alice --since 2026-11-01",),
)
async def audit_tool(tc: ToolContext, args: AuditInput) -> Reply:
    since = (
        datetime.combine(args.since, time(0)).replace(tzinfo=tc.services.clock.now().tzinfo)
        if args.since
        else None
    )
    rows = await tc.services.db.read(
        audit.query,
        org_id=tc.org_id,
        actor=args.user.lstrip("@") if args.user else None,
        tool=args.tool,
        since=since,
        limit=args.limit,
    )
    return Reply(
        title=f"Audit trail ({len(rows)} rows, newest first)",
        table=Table(
            columns=["when (UTC)", "who", "role", "tool", "outcome", "detail"],
            rows=[
                [
                    f"{r.created_at:%m-%d %H:%M:%S}",
                    r.actor,
                    r.actor_role,
                    r.tool,
                    r.outcome,
                    r.detail[:60],
                ]
                for r in rows
            ],
        ),
    )


class ActivityInput(ToolInput):
    days: int = arg(1, description="How many days back (today counts as one)", ge=1, le=90)


@tool(
    name="activity",
    input_model=ActivityInput,
    role=Role.admin,
    group="team",
    description="Activity per person: commands, agent requests, Claude tokens and spend.",
    examples=("/activity", "/activity --days 7"),
)
async def activity_tool(tc: ToolContext, args: ActivityInput) -> Reply:
    from tools.cost.periods import resolve_period

    now = tc.services.clock.now()
    period = resolve_period(f"last {args.days} days", now=now, tz=tc.request.timezone)
    rows = await tc.services.db.read(
        activity.per_user, org_id=tc.org_id, since=period.start, until=period.full_end
    )
    if not rows:
        return Reply(text="No activity in that period.")
    return Reply(
        title=f"Activity, {period.describe()}",
        table=Table(
            columns=["who", "commands", "agent requests", "agent tokens", "agent spend"],
            rows=[
                [
                    a.user,
                    str(a.commands),
                    str(a.agent_requests),
                    f"{a.agent_tokens:,}",
                    f"${a.agent_spend:.4f}",
                ]
                for a in rows
            ],
        ),
    )
