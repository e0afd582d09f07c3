"""The hard budget cap: a deploy that would take spend past the budget needs an admin."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from storage import ledger
from tools.contract import ToolContext
from tools.cost.accrual import budget_period
from tools.cost.billing import compute_spend
from tools.cost.estimate import HOURS_PER_MONTH, SECONDS_PER_HOUR, money


@dataclass(frozen=True)
class CapBreach:
    budget: Decimal
    period: str
    spent: Decimal
    added: Decimal
    what: str = "this deploy"

    @property
    def message(self) -> str:
        return (
            f"Over the hard cap: the {self.period} budget is {money(self.budget)}, "
            f"{money(self.spent)} is spent so far and {self.what} adds about "
            f"{money(self.added)} by the end of the period, {money(self.spent + self.added)} "
            "in all. "
            "An admin must approve it."
        )


async def hard_cap_breach(
    tc: ToolContext,
    monthly_estimate: Decimal = Decimal(0),
    *,
    one_off: Decimal | None = None,
    what: str = "this deploy",
) -> CapBreach | None:
    """The breach, if `monthly_estimate` (prorated to the rest of the period) or a `one_off`
    amount spent now (a benchmark) would take the period's spend past a hard-cap budget."""
    budget = await tc.services.db.read(ledger.get_budget, org_id=tc.org_id)
    if budget is None or not budget.hard_cap:
        return None
    period = budget_period(budget, now=tc.services.clock.now(), tz=tc.request.timezone)
    spend, _ = await compute_spend(tc.services, org_id=tc.org_id, period=period)
    hours_left = Decimal((period.full_end - period.end).total_seconds()) / SECONDS_PER_HOUR
    added = one_off if one_off is not None else monthly_estimate / HOURS_PER_MONTH * hours_left
    if spend.total + added <= budget.amount:
        return None
    return CapBreach(
        budget=budget.amount, period=budget.period, spent=spend.total, added=added, what=what
    )
