"""The agent's system prompt, rendered from `prompts/system.md.j2`.

The template has two parts separated by `CACHE_BREAK`: a stable prefix (who the bot is, the
rules, the team's name, the skills catalog) that carries the prompt-cache breakpoint, and a
volatile tail (date, caller, budget, deployments) that changes per request and so sits after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from storage import deployments as deployment_store
from storage import ledger, orgs
from tools.contract import RequestContext
from tools.services import Services
from tools.skills import Skill

# Found through the import system, so it works from a checkout, an editable install and a wheel.
PROMPTS_DIR = Path(str(resources.files("prompts")))
SYSTEM_TEMPLATE = "system.md.j2"
CACHE_BREAK = "<!-- end of the cached prefix -->"
# The newest few give Claude context for "is qwen healthy?"; list_deployments has the rest.
MAX_DEPLOYMENTS_IN_PROMPT = 6
DEFAULT_BUDGET_PERIOD = "monthly"

_env: jinja2.Environment | None = None


@dataclass(frozen=True)
class SystemPrompt:
    """The rendered prompt: `cached` (stable prefix) and `volatile` (per-request facts)."""

    cached: str
    volatile: str

    def blocks(self) -> list[dict[str, Any]]:
        """Messages API `system` blocks, the cache breakpoint on the stable prefix."""
        out: list[dict[str, Any]] = [
            {"type": "text", "text": self.cached, "cache_control": {"type": "ephemeral"}}
        ]
        if self.volatile:
            out.append({"type": "text", "text": self.volatile})
        return out

    @property
    def text(self) -> str:
        return f"{self.cached}\n\n{self.volatile}".strip()


def environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(PROMPTS_DIR),
            autoescape=False,  # Markdown for a model, not HTML; the XML catalog escapes itself
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            keep_trailing_newline=False,
        )
    return _env


def render_system_prompt(
    ctx: RequestContext, services: Services, *, skills: list[Skill]
) -> SystemPrompt:
    """Render the system prompt for one request from the database and the services clock."""
    now = services.clock.now()
    zone = _zone(ctx.timezone)
    local = now.astimezone(zone)
    with services.db.read_session() as s:  # on a storage thread (`db.call`); reads only
        org = orgs.get_organization(s, org_id=ctx.org_id)
        budget_text = _budget_status(s, ctx, now)
        rows = deployment_store.list_for(
            s, org_id=ctx.org_id, statuses=deployment_store.ACTIVE_STATUSES
        )
    values = {
        "org_name": org.name if org else ctx.workspace_name,
        "workspace_name": ctx.workspace_name or str(ctx.workspace_id),
        "platform": ctx.platform.value,
        "sandbox": services.sandbox,
        "skills": skills,
        "cache_break": CACHE_BREAK,
        "now_local": local.strftime("%A %Y-%m-%d %H:%M"),
        "today": local.date().isoformat(),
        "timezone": ctx.timezone if zone.key == ctx.timezone else "UTC",
        "display_name": ctx.display_name,
        "role": ctx.role.value,
        "budget": budget_text,
        "deployment_count": len(rows),
        "deployments": [_deployment_line(d) for d in rows[:MAX_DEPLOYMENTS_IN_PROMPT]],
    }
    text = environment().get_template(SYSTEM_TEMPLATE).render(**values)
    cached, _, volatile = text.partition(CACHE_BREAK)
    return SystemPrompt(cached=cached.strip(), volatile=volatile.strip())


def _budget_status(s: Any, ctx: RequestContext, now: datetime) -> str:
    budget = ledger.get_budget(s, org_id=ctx.org_id)
    if budget is None:
        return "none set (an admin can set one with the budget command)."
    from tools.cost.periods import resolve_period

    word = "this week" if (budget.period or DEFAULT_BUDGET_PERIOD) == "weekly" else "this month"
    period = resolve_period(word, now=now, tz=ctx.timezone)
    spent = ledger.total(s, org_id=ctx.org_id, start=period.start, end=period.full_end)
    amount = Decimal(budget.amount or 0)
    pct = f" ({spent / amount * 100:.0f}%)" if amount > 0 else ""
    extras = [f"alerts at {budget.thresholds}%"]
    if budget.hard_cap:
        extras.append("hard cap: new spend is refused over budget")
    if budget.auto_stop:
        extras.append("auto-stop on")
    return (
        f"{budget.period} ${amount:.2f}; spent ${spent:.2f}{pct} {word} "
        f"(ledger estimate); {', '.join(extras)}."
    )


def _deployment_line(d: Any) -> str:
    gpu = d.gpu_pool or d.gpu_type or "GPU ?"
    price = Decimal(d.price_per_hour or 0)
    gpus = gpu if d.gpu_count == 1 else f"{d.gpu_count}×{gpu}"
    parts = [f"#{d.id} {d.name}: {d.model_id} {d.status} {gpus}"]
    if price > 0:
        parts.append(f"${price:.2f}/h")
    if d.protected:
        parts.append("protected")
    return " ".join(parts)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


__all__ = ["CACHE_BREAK", "SystemPrompt", "render_system_prompt"]
