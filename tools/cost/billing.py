"""One organisation's spend for a period, read from the database and RunPod: RunPod billing for
its resources merged (by `tools.cost.spend.merge`) with the bot's own ledger estimate for the
hours billing has not reported. Used by `/spend`, `/budget`, the hard-cap guard and the
scheduler's budget sweep and digest."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from storage import ledger
from storage.models import Deployment
from tools.cost.periods import Period
from tools.cost.spend import BillingLine, DeploymentInfo, EstimateLine, SpendSummary, merge
from tools.errors import CockpitError
from tools.services import Services

log = logging.getLogger(__name__)

# The most deployments a spend report names (newest first), as before.
MAX_SPEND_DEPLOYMENTS = 10_000


async def compute_spend(
    services: Services,
    *,
    org_id: int,
    period: Period,
    infos: list[DeploymentInfo] | None = None,
) -> tuple[SpendSummary, str | None]:
    """Billing (this organisation's resources only) merged with the ledger for the hours billing
    lacks. Returns the summary and a note when billing could not be read. `infos` (from
    `deployment_infos`) saves reading the deployments again when one report needs several
    periods. The storage part is one read off the event loop."""

    def read(s: Any) -> tuple[list[DeploymentInfo], list[EstimateLine], Decimal]:
        deps = infos if infos is not None else deployment_infos(s, org_id=org_id)
        estimates = [
            EstimateLine(e.deployment_id, e.period_start, e.amount)
            for e in ledger.entries(
                s, org_id=org_id, start=period.start, end=period.end, kind="gpu"
            )
            if e.deployment_id is not None
        ]
        agent = ledger.total(s, org_id=org_id, start=period.start, end=period.end, kind="agent")
        return deps, estimates, agent

    deps, estimates, agent = await services.db.read(read)
    billing, note = await billing_lines(services, org_id, period, any(i.resource_ids for i in deps))
    return merge(
        period=period, deployments=deps, billing=billing, estimates=estimates, agent_total=agent
    ), note


def deployment_infos(s: Any, *, org_id: int) -> list[DeploymentInfo]:
    """What a spend report needs of the organisation's deployments: plain column tuples, not
    ORM objects (10,000 Deployment instances cost ~100 ms of CPU)."""
    columns: tuple[Any, ...] = (
        Deployment.id,
        Deployment.name,
        Deployment.created_by,
        Deployment.gpu_pool,
        Deployment.gpu_type,
        Deployment.provider_endpoint_id,
        Deployment.provider_pod_id,
    )
    rows = s.connection().execute(
        sa.select(*columns)
        .where(col(Deployment.org_id) == org_id)
        .order_by(col(Deployment.id).desc())
        .limit(MAX_SPEND_DEPLOYMENTS)
    )
    return [
        DeploymentInfo(dep_id, name, by, pool or gpu or "?", tuple(x for x in (endpoint, pod) if x))
        for dep_id, name, by, pool, gpu, endpoint, pod in rows
    ]


async def billing_lines(
    services: Services, org_id: int, period: Period, any_resources: bool
) -> tuple[list[BillingLine], str | None]:
    if not any_resources or period.end <= period.start:
        return [], None
    try:
        client = await services.db.call(services.runpod_for, org_id)
        # RunPod snaps endTime up to the end of its bucket (OpenAPI, /v2/billing/*: "Snapped up
        # to the end of the bucketSize bucket it lands in"), so asking up to the end of this
        # hour is the same window; reports made in the same hour then ask the same question and
        # concurrent ones share one request (RunPodConnection._coalesced).
        end = _end_of_hour(period.end)
        sls = await client.billing_serverless(period.start, end, bucket_size="hour")
        pods = await client.billing_pods(period.start, end, bucket_size="hour")
    except CockpitError as exc:
        log.warning("billing unavailable for org %s: %s", org_id, exc)
        return [], f"RunPod billing unavailable ({exc.message}); figures are estimates"
    lines = [BillingLine(r.serverless_id, r.start_time, r.total_amount) for r in sls.records]
    lines += [BillingLine(r.pod_id, r.start_time, r.total_amount) for r in pods.records]
    return lines, None


def _end_of_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)
