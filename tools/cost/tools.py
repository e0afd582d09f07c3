"""Cost tools: /estimate, /spend, /budget."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlmodel import Session

from storage import ledger
from storage.models import Budget
from tools.contract import Image, Reply, Role, SideEffect, Table, ToolContext, ToolInput, arg, tool
from tools.cost.accrual import DEFAULT_THRESHOLDS, BudgetStatus, budget_period
from tools.cost.billing import compute_spend, deployment_infos
from tools.cost.estimate import money, per_second, rate
from tools.cost.periods import Period, resolve_period
from tools.cost.spend import DeploymentInfo, GroupBy, SpendSummary
from tools.deploy.plan import PlanInput, plan_for
from tools.errors import InvalidInput

log = logging.getLogger(__name__)


# --- estimate ---------------------------------------------------------------------------------


class EstimateInput(PlanInput):
    pass


@tool(
    name="estimate_cost",
    command="estimate",
    input_model=EstimateInput,
    group="cost",
    description="What a model would cost per hour and per month, with the assumptions.",
    examples=("/estimate qwen", "/estimate llama 8b --workers-min 1"),
)
async def estimate_cost(tc: ToolContext, args: EstimateInput) -> Reply:
    plan = await plan_for(tc, args)
    est = plan.estimate
    reply = Reply(title=f"{plan.model_id} on {plan.gpu_label}", text=plan.explanation)
    reply.add_field("While running", f"{rate(est.per_hour)}/h ({per_second(est.per_second)})")
    reply.add_field("Per month", f"≈ {money(est.monthly)}")
    reply.add_field("Assumptions", "; ".join(est.assumptions))
    if plan.price_note:
        reply.add_field("Prices", plan.price_note)
    return reply


# --- spend ------------------------------------------------------------------------------------


class SpendInput(ToolInput):
    period: str | None = arg(
        None,
        description="today, yesterday, this week, last week, this "
        "month, last month, last N days, or 2026-11-01..2026-11-15",
        positional=True,
    )
    by: GroupBy = arg("deployment", description="Group by deployment, user, gpu or day")
    chart: bool = arg(False, description="Attach a daily-spend bar chart (PNG)")


@tool(
    name="get_spend",
    command="spend",
    input_model=SpendInput,
    group="cost",
    description="What this organisation spent in a period: RunPod billing plus the bot's "
    "estimate for hours not billed yet, grouped, compared and forecast.",
    examples=("/spend", "/spend last week --by user", "/spend this month --chart"),
)
async def get_spend(tc: ToolContext, args: SpendInput) -> Reply:
    now = tc.services.clock.now()
    period = resolve_period(args.period, now=now, tz=tc.request.timezone)

    def read(s: Any) -> tuple[list[DeploymentInfo], Budget | None]:
        return deployment_infos(s, org_id=tc.org_id), ledger.get_budget(s, org_id=tc.org_id)

    infos, budget = await tc.services.db.read(read)
    deps = {info.id: info for info in infos}
    # Both periods (and the budget's) at once: their reads and billing calls overlap.
    spans = [period, period.previous()]
    if budget is not None:
        b_period = budget_period(budget, now=now, tz=tc.request.timezone)
        spans.append(b_period)
    results = await asyncio.gather(
        *(compute_spend(tc.services, org_id=tc.org_id, period=span, infos=infos) for span in spans)
    )
    (summary, note), (prev, _) = results[0], results[1]
    reply = Reply(title=f"Spend {period.label}: {money(summary.total)}", text=period.describe())
    reply.add_field(
        "GPU",
        f"{money(summary.gpu_total)} ({money(summary.billed)} billed by RunPod"
        f", {money(summary.estimated)} estimate for hours not billed yet)",
    )
    reply.add_field("Agent (Claude)", money(summary.agent))
    reply.add_field(
        "Previous period",
        f"{money(prev.total)} over the same span" + _change(summary.total, prev.total),
    )
    if period.is_partial:
        reply.add_field(
            "Forecast",
            f"{money(summary.forecast())} by the end of {period.label} at the "
            f"current rate of {rate(summary.burn_rate_per_hour())}/h",
        )
    if budget is not None:
        b_spend = results[2][0]
        status = BudgetStatus(budget=budget, period=b_period, spent=b_spend.total)
        reply.add_field(
            "Budget", f"{status.percent:.0f}% of {money(budget.amount)} {budget.period}"
        )
    groups = summary.group(args.by, deps)
    if groups:
        reply.table = Table(
            columns=[args.by, "spend", "source"],
            rows=[
                [label, money(amount), "incl. estimate" if est else "billed"]
                for label, amount, est in groups
            ],
        )
    else:
        reply.text += "\nNothing spent in this period."
    if args.chart or args.by == "day":
        reply.image = _chart(tc, summary, deps, period)
    if note:
        reply.footer = note
    return reply


def _days(period: Period) -> list[str]:
    """Every local date the period touches, so quiet days show as empty bars."""
    zone = ZoneInfo(period.tz)
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    count = max((last - first).days + 1, 1)
    return [(first + timedelta(days=i)).isoformat() for i in range(min(count, 366))]


def _change(now_total: Decimal, prev_total: Decimal) -> str:
    if prev_total == 0:
        return ""
    pct = (now_total - prev_total) / prev_total * 100
    return f" ({'+' if pct >= 0 else ''}{pct:.0f}%)"


def _chart(tc: ToolContext, summary: SpendSummary, deps: dict, period: Period) -> Image | None:
    out_dir = tc.services.charts_dir
    if out_dir is None:
        return None
    from tools.cost.chart import daily_spend_png

    spent = {d: a for d, a, _ in summary.group("day", deps)}
    days = [(d, spent.get(d, Decimal(0)), False) for d in _days(period)]
    path = Path(out_dir) / f"spend-o{tc.org_id}-{tc.services.clock.now():%Y%m%dT%H%M%S}.png"
    daily_spend_png(
        days=[(d, a) for d, a, _ in days], title=f"Daily spend, {period.label}", path=path
    )
    return Image(
        path=str(path),
        title=f"Daily spend {period.label}",
        alt=", ".join(f"{d}: {money(a)}" for d, a, _ in days) or "no spend",
    )


# --- budget -----------------------------------------------------------------------------------


class BudgetInput(ToolInput):
    action: Literal["show", "set", "clear"] = arg(
        "show", description="show, set or clear", positional=True
    )
    amount: Decimal | None = arg(
        None, description="Budget in dollars (for set)", positional=True, gt=0, le=10_000_000
    )
    weekly: bool = arg(False, description="A weekly budget (default monthly)")
    monthly: bool = arg(False, description="A monthly budget")
    hard_cap: bool = arg(False, description="Deploys that would exceed it need an admin")
    auto_stop: bool = arg(False, description="At 100%, scale non-protected deployments to zero")
    thresholds: str = arg("50,80,100", description="Alert at these percentages")


@tool(
    name="budget",
    input_model=BudgetInput,
    role=Role.viewer,
    side_effect=SideEffect.admin,
    effect=lambda a: SideEffect.none if a.action == "show" else SideEffect.admin,
    group="cost",
    description="Show the budget, or set one (admins): weekly or monthly, alert thresholds, "
    "optional hard cap and auto-stop.",
    examples=("/budget", "/budget set 500 --monthly --hard-cap", "/budget clear"),
)
async def budget_tool(tc: ToolContext, args: BudgetInput) -> Reply:
    if args.action != "show" and not tc.request.role.allows(Role.admin):
        raise InvalidInput(
            f"Changing the budget needs the admin role; you are {tc.request.role.value}."
        )
    now = tc.services.clock.now()
    if args.action == "set":
        return await _set_budget(tc, args)
    if args.action == "clear":
        await tc.services.db.run(_clear_budget, tc.org_id)
        return Reply(text="Budget removed: no thresholds, cap or auto-stop apply.")
    budget = await tc.services.db.read(ledger.get_budget, org_id=tc.org_id)
    if budget is None:
        return Reply(text="No budget set. An admin can set one: `/budget set 500 --monthly`.")
    period = budget_period(budget, now=now, tz=tc.request.timezone)
    spend, note = await compute_spend(tc.services, org_id=tc.org_id, period=period)
    status = BudgetStatus(budget=budget, period=period, spent=spend.total)
    reply = Reply(
        title=f"{budget.period.capitalize()} budget {money(budget.amount)}: "
        f"{status.percent:.0f}% used"
    )
    reply.add_field("Spent", f"{money(spend.total)} ({period.describe()})")
    reply.add_field("Forecast", money(spend.forecast()))
    reply.add_field("Alerts at", ", ".join(f"{t}%" for t in status.thresholds))
    reply.add_field("Hard cap", "on: deploys beyond it need an admin" if budget.hard_cap else "off")
    reply.add_field(
        "Auto-stop",
        "on: at 100% non-protected deployments scale to zero" if budget.auto_stop else "off",
    )
    reply.footer = note
    return reply


def _clear_budget(s: Session, org_id: int) -> None:
    row = ledger.get_budget(s, org_id=org_id)
    if row is not None:
        s.delete(row)


async def _set_budget(tc: ToolContext, args: BudgetInput) -> Reply:
    if args.amount is None:
        raise InvalidInput("Give an amount.", fix="For example: /budget set 500 --monthly")
    if args.weekly and args.monthly:
        raise InvalidInput("Choose --weekly or --monthly, not both.")
    try:
        marks = sorted({int(x) for x in args.thresholds.split(",") if x.strip()})
    except ValueError:
        raise InvalidInput("Thresholds are whole percentages, e.g. 50,80,100.") from None
    if not marks or any(m <= 0 or m > 1000 for m in marks):
        marks = list(DEFAULT_THRESHOLDS)
    budget = await tc.services.db.run(
        ledger.set_budget,
        org_id=tc.org_id,
        period="weekly" if args.weekly else "monthly",
        amount=args.amount,
        thresholds=",".join(str(m) for m in marks),
        hard_cap=args.hard_cap,
        auto_stop=args.auto_stop,
        actor=tc.request.user_id,
        now=tc.services.clock.now(),
    )
    extras = [x for x, on in (("hard cap", budget.hard_cap), ("auto-stop", budget.auto_stop)) if on]
    return Reply(
        text=f"Budget set: {money(budget.amount)} {budget.period}, alerts at "
        f"{budget.thresholds.replace(',', '%, ')}%"
        + (f", {' and '.join(extras)}" if extras else "")
        + "."
    )
