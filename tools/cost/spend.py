"""Spend for a period: RunPod billing for this organisation's resources, with the bot's own
ledger estimate filling the hours billing has not reported yet — never both for the same
(resource, hour). Pure functions over plain records so they are tested without any server."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from tools.cost.periods import Period

GroupBy = Literal["deployment", "user", "gpu", "day"]
FORECAST_WINDOW_HOURS = 6  # "current burn rate" = spend over the last 6 hours of the period


@dataclass(frozen=True)
class BillingLine:
    """One RunPod billing bucket (hourly) for one resource (serverless endpoint or pod id)."""

    resource_id: str
    start: datetime
    amount: Decimal


@dataclass(frozen=True)
class EstimateLine:
    """One ledger estimate (kind gpu) for one deployment and hour."""

    deployment_id: int
    start: datetime
    amount: Decimal


@dataclass(frozen=True)
class DeploymentInfo:
    id: int
    name: str
    user: str
    gpu: str
    resource_ids: tuple[str, ...]


@dataclass
class SpendLine:
    deployment_id: int | None
    hour: datetime
    amount: Decimal
    source: Literal["billing", "estimate"]


@dataclass
class SpendSummary:
    period: Period
    lines: list[SpendLine] = field(default_factory=list)
    agent: Decimal = Decimal(0)

    @property
    def gpu_total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def billed(self) -> Decimal:
        return sum((x.amount for x in self.lines if x.source == "billing"), Decimal(0))

    @property
    def estimated(self) -> Decimal:
        return sum((x.amount for x in self.lines if x.source == "estimate"), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.gpu_total + self.agent

    def group(
        self, by: GroupBy, deps: dict[int, DeploymentInfo]
    ) -> list[tuple[str, Decimal, bool]]:
        """(label, amount, includes estimate) sorted by amount, largest first (days: by date)."""
        totals: dict[str, Decimal] = defaultdict(Decimal)
        estimated: dict[str, bool] = defaultdict(bool)
        zone = ZoneInfo(self.period.tz)
        for line in self.lines:
            dep = deps.get(line.deployment_id) if line.deployment_id is not None else None
            if by == "deployment":
                key = f"#{dep.id} {dep.name}" if dep else "unknown resource"
            elif by == "user":
                key = dep.user if dep else "unknown"
            elif by == "gpu":
                key = dep.gpu if dep else "unknown"
            else:
                key = line.hour.astimezone(zone).date().isoformat()
            totals[key] += line.amount
            estimated[key] |= line.source == "estimate"
        items = [(k, v, estimated[k]) for k, v in totals.items()]
        if by == "day":
            return sorted(items)
        return sorted(items, key=lambda kv: kv[1], reverse=True)

    def burn_rate_per_hour(self) -> Decimal:
        window_start = max(
            self.period.start, self.period.end - timedelta(hours=FORECAST_WINDOW_HOURS)
        )
        hours = Decimal((self.period.end - window_start).total_seconds()) / Decimal(3600)
        if hours <= 0:
            return Decimal(0)
        recent = sum(
            (x.amount for x in self.lines if x.hour >= _floor_hour(window_start)), Decimal(0)
        )
        return recent / hours

    def forecast(self) -> Decimal:
        """Spend by the end of the period if the last hours' rate continues."""
        remaining = Decimal((self.period.full_end - self.period.end).total_seconds()) / Decimal(
            3600
        )
        return self.total + self.burn_rate_per_hour() * max(remaining, Decimal(0))


def merge(
    *,
    period: Period,
    deployments: Sequence[DeploymentInfo],
    billing: Iterable[BillingLine],
    estimates: Iterable[EstimateLine],
    agent_total: Decimal = Decimal(0),
) -> SpendSummary:
    """Billing wins for every (deployment, hour) it covers; estimates fill the rest. Billing for
    resources this organisation does not own is ignored (a RunPod account can be shared)."""
    owner: dict[str, int] = {}
    for dep in deployments:
        for rid in dep.resource_ids:
            owner[rid] = dep.id
    summary = SpendSummary(period=period, agent=agent_total)
    billed_hours: set[tuple[int, datetime]] = set()
    for rec in billing:
        dep_id = owner.get(rec.resource_id)
        hour = _floor_hour(rec.start)
        if dep_id is None or not period.start <= hour < period.end:
            continue
        billed_hours.add((dep_id, hour))
        summary.lines.append(SpendLine(dep_id, hour, rec.amount, "billing"))
    for est in estimates:
        hour = _floor_hour(est.start)
        if (est.deployment_id, hour) in billed_hours or not period.start <= est.start < period.end:
            continue
        summary.lines.append(SpendLine(est.deployment_id, hour, est.amount, "estimate"))
    return summary


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)
