"""Ledger accrual (uptime × price) and budget checks. The scheduler's cost sweep calls these;
tests call them directly with a fake clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import Session

from storage import alerts as alert_store
from storage import deployments, ledger
from storage.models import Alert, Budget, Deployment, DeploymentStatus
from tools.cost.periods import Period, resolve_period
from tools.errors import CockpitError
from tools.runpod.models import PodStatus
from tools.services import Services

log = logging.getLogger(__name__)

BILLED_STATUSES = (
    DeploymentStatus.waiting,
    DeploymentStatus.healthy,
    DeploymentStatus.degraded,
    DeploymentStatus.unhealthy,
)
DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_ACCRUAL_GAP = timedelta(hours=6)  # after a long outage, do not invent hours of spend


async def running_units(services: Services, dep: Deployment) -> int:
    """How many billed units (workers or a pod) run now, from the provider; 0 if unknown."""
    client = await services.db.call(services.runpod_for, dep.org_id)
    try:
        if dep.provider_endpoint_id:
            health = await client.health(dep.provider_endpoint_id)
            # Running and idle-within-timeout workers bill; initializing ones do not.
            return int(health.ready_workers)
        if dep.provider_pod_id:
            pod = await client.get_pod(dep.provider_pod_id)
            return 1 if pod.status == PodStatus.RUNNING else 0
    except CockpitError as exc:
        log.warning("could not sample deployment #%s for accrual: %s", dep.id, exc)
    return 0


async def accrue_deployment(services: Services, dep: Deployment, *, now: datetime) -> Decimal:
    """Add the estimate for [last accrual, now) at the sampled number of running units."""
    assert dep.id is not None
    since = await services.db.read(ledger.last_accrued_end, org_id=dep.org_id, deployment_id=dep.id)
    start = since or dep.healthy_at or dep.created_at
    start = max(start, now - MAX_ACCRUAL_GAP)
    if start >= now:
        return Decimal(0)
    units = await running_units(services, dep)
    per_hour = dep.price_per_hour * units
    return await services.db.run(
        ledger.accrue,
        org_id=dep.org_id,
        deployment_id=dep.id,
        start=start,
        end=now,
        per_hour=per_hour,
        now=now,
        user=dep.created_by,
        gpu=dep.gpu_pool or dep.gpu_type,
    )


async def accrue_all(services: Services, *, now: datetime | None = None) -> Decimal:
    """One accrual pass over every billed deployment of every organisation."""
    now = now or services.clock.now()
    deps = await services.db.read(deployments.list_all_active, statuses=BILLED_STATUSES)
    total = Decimal(0)
    for dep in deps:
        total += await accrue_deployment(services, dep, now=now)
    return total


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    period: Period
    spent: Decimal

    @property
    def percent(self) -> Decimal:
        if self.budget.amount <= 0:
            return Decimal(0)
        return self.spent / self.budget.amount * 100

    @property
    def thresholds(self) -> list[int]:
        try:
            return sorted(int(x) for x in self.budget.thresholds.split(",") if x.strip())
        except ValueError:
            return list(DEFAULT_THRESHOLDS)

    def crossed(self) -> list[int]:
        return [t for t in self.thresholds if self.percent >= t]


def budget_period(budget: Budget, *, now: datetime, tz: str) -> Period:
    return resolve_period(
        "this week" if budget.period == "weekly" else "this month", now=now, tz=tz
    )


def budget_alert_key(status: BudgetStatus, threshold: int) -> str:
    return f"budget:{status.period.start:%Y%m%d}:{threshold}"


async def new_threshold_alerts(services: Services, status: BudgetStatus) -> list[Alert]:
    """Alert rows for thresholds crossed for the first time this period: once per threshold per
    period, whatever the number of sweeps (the unique key is the dedup state). One unit of work
    on a storage thread."""
    crossed = status.crossed()
    if not crossed:
        return []
    return await services.db.run(_record_threshold_alerts, status, crossed, services.clock.now())


def _record_threshold_alerts(
    s: Session, status: BudgetStatus, crossed: list[int], now: datetime
) -> list[Alert]:
    created: list[Alert] = []
    org_id = status.budget.org_id
    for threshold in crossed:
        key = budget_alert_key(status, threshold)
        exists = alert_store.find(s, org_id=org_id, key=key)
        if exists:
            continue
        severity = "critical" if threshold >= 100 else "warning"
        alert = Alert(
            org_id=org_id,
            key=key,
            severity=severity,
            title=f"Spend reached {threshold}% of the {status.budget.period} budget",
            details=f"${status.spent:.2f} of ${status.budget.amount:.2f} "
            f"({status.period.label}: {status.period.describe()})",
            first_seen=now,
            last_seen=now,
        )
        s.add(alert)
        s.flush()
        created.append(alert)
    return created
