"""The background checks: health, cost, idle, reconcile and the digest.

Each sweep reads state, asks the provider, updates the database and raises or resolves alerts
through the router. Actions (stop, rollback) go through `act`, which the bot wires to the
dispatcher as the system actor, so every automatic change is audited like a human one."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from storage import activity, deployments, ledger, orgs
from storage import alerts as alert_store
from storage.activity import UserActivity
from storage.models import (
    Alert,
    Budget,
    Deployment,
    DeploymentStatus,
    HealthState,
)
from tools.alerts import LIVE_STATUSES, AlertRouter, alert_state_lines
from tools.cost.accrual import BudgetStatus, accrue_all, budget_period, new_threshold_alerts
from tools.cost.billing import compute_spend
from tools.cost.estimate import money
from tools.cost.periods import Period, resolve_period
from tools.deploy import diagnose
from tools.deploy.lookup import find_orphans
from tools.deploy.plan import pod_api_key
from tools.errors import CockpitError
from tools.metrics import DEPLOYMENT_HEALTH
from tools.services import Services

log = logging.getLogger(__name__)

UNHEALTHY_AFTER_FAILURES = 3
# Provider calls in flight at once: the shared HTTP pool's connections (make_http_pool). At
# 100 ms a call, 10,000 deployments take 10 s at 100 (20 s at 50).
SWEEP_CONCURRENCY = 100
SWEEP_PAGE = 500  # deployments read (and their changes written) per unit of work
PAGES_IN_FLIGHT = 2  # pages held at once: the one being checked and the next
PROBE_SLOW_SECONDS = 10.0
IDLE_GRACE = timedelta(minutes=15)
# The sweeps check the live deployments, "starting" ones too (a stopped pod started again with
# /scale; it becomes healthy once RUNNING).
MONITORED = LIVE_STATUSES
# How long a restarted pod may take to load its model before a failed check counts.
STARTING_GRACE = timedelta(minutes=20)

# act(deployment, tool_name, args, reason) -> None: run a tool as the system actor.
Act = Callable[[Deployment, str, dict[str, object], str], Awaitable[None]]


@dataclass
class SweepReport:
    checked: int = 0
    failures: int = 0
    alerts: int = 0
    actions: list[str] = field(default_factory=list)


def _health_key(dep: Deployment) -> str:
    return f"health:{dep.id}"


async def health_sweep(
    services: Services,
    router: AlertRouter,
    *,
    act: Act | None = None,
    probe: bool = False,
    auto_rollback: bool = False,
) -> SweepReport:
    """Check every live deployment (bounded concurrency, one shared HTTP pool). Deployments
    are read in pages of SWEEP_PAGE off the event loop, the next page while this one is being
    checked, and one semaphore spans the pages, so the checks never wait for a page's slowest
    one; each page's state changes are written in one batched unit of work when it is done.
    At most PAGES_IN_FLIGHT pages are held at once."""
    report = SweepReport()
    sem = asyncio.Semaphore(SWEEP_CONCURRENCY)
    clients: dict[int, Any] = {}
    in_flight: deque[asyncio.Task[None]] = deque()

    async def read(after: int) -> list[Deployment]:
        return await services.db.read(
            deployments.active_page, statuses=MONITORED, after_id=after, limit=SWEEP_PAGE
        )

    async def checked(dep: Deployment, changes: list[tuple[int, int, dict[str, Any]]]) -> None:
        async with sem:
            await _check(services, router, dep, act, probe, auto_rollback, report, changes, clients)

    async def sweep_page(page: list[Deployment]) -> None:
        for org_id in {d.org_id for d in page} - clients.keys():
            # The organisation's stored key is read on a storage thread, once per sweep.
            try:
                clients[org_id] = await services.db.call(services.runpod_for, org_id)
            except CockpitError as exc:  # no key: each of its deployments fails its check
                clients[org_id] = exc
        changes: list[tuple[int, int, dict[str, Any]]] = []
        results = await asyncio.gather(*(checked(d, changes) for d in page), return_exceptions=True)
        crashed = [r for r in results if isinstance(r, BaseException)]
        if crashed:
            log.error("%d health check(s) crashed, first: %r", len(crashed), crashed[0])
        if changes:
            await services.db.run(
                deployments.update_many, changes=changes, now=services.clock.now()
            )

    try:
        next_page = asyncio.ensure_future(read(0))
        while True:
            page = await next_page
            if not page:
                break
            assert page[-1].id is not None
            next_page = asyncio.ensure_future(read(page[-1].id))
            report.checked += len(page)
            in_flight.append(asyncio.create_task(sweep_page(page)))
            while len(in_flight) >= PAGES_IN_FLIGHT:
                await in_flight.popleft()
        while in_flight:
            await in_flight.popleft()
    finally:
        for task in in_flight:
            task.cancel()
        if not next_page.done():
            next_page.cancel()
    return report


async def _observe(
    services: Services, dep: Deployment, probe: bool, client: Any
) -> tuple[bool, str, int]:
    """(ok, what we saw, jobs seen) for one deployment."""
    if dep.provider_pod_id:
        # RUNNING is only the container: healthy is vLLM answering through the proxy.
        pod = await diagnose.pod_server(client, dep.provider_pod_id, pod_api_key(services, dep))
        return pod.serving, pod.describe(), dep.jobs_seen
    assert dep.provider_endpoint_id
    health = await client.health(dep.provider_endpoint_id)
    j = health.jobs
    jobs = j.completed + j.in_progress + j.in_queue + j.failed
    if not health.ready_workers:
        # /health documents only idle/running: unhealthy workers are seen through /workers.
        # A sweep needs the reason a worker died, not how far a download has got: that log
        # read per starting endpoint was most of a 1,000-deployment sweep (issue 17).
        view = await diagnose.serverless_workers(
            client, dep.provider_endpoint_id, progress_logs=False
        )
        if view.unhealthy and not view.ready:
            why = f": {view.detail}" if view.detail else ""
            return False, f"{view.unhealthy} unhealthy worker(s), none ready{why}", jobs
    if probe and health.ready_workers:
        started = time.monotonic()
        await client.chat_completion(
            dep.provider_endpoint_id,
            [{"role": "user", "content": "ping"}],
            model=dep.model_id,
            max_tokens=1,
        )
        latency = time.monotonic() - started
        if latency > PROBE_SLOW_SECONDS:
            return False, f"probe answered in {latency:.1f}s", jobs
    return True, f"{health.ready_workers} ready, {j.failed} failed jobs", jobs


async def _check(
    services: Services,
    router: AlertRouter,
    dep: Deployment,
    act: Act | None,
    probe: bool,
    auto_rollback: bool,
    report: SweepReport,
    changes: list[tuple[int, int, dict[str, Any]]],
    clients: dict[int, Any],
) -> None:
    client = clients[dep.org_id]
    try:
        if isinstance(client, CockpitError):
            raise client
        ok, seen, jobs = await _observe(services, dep, probe, client)
    except CockpitError as exc:
        ok, seen, jobs = False, exc.message, dep.jobs_seen
    now = services.clock.now()
    if dep.status == DeploymentStatus.starting and not ok and now - dep.updated_at < STARTING_GRACE:
        return  # still loading the model after a restart: not a failure yet
    failures = 0 if ok else dep.health_failures + 1
    state = (
        HealthState.healthy
        if ok
        else (
            HealthState.degraded if failures < UNHEALTHY_AFTER_FAILURES else HealthState.unhealthy
        )
    )
    fields: dict[str, object] = {
        "health_failures": failures,
        "health_state": state,
        "status": state,
        "last_health_at": now,
        "jobs_seen": jobs,
    }
    if jobs > dep.jobs_seen:
        fields["last_request_at"] = now  # traffic we did not relay ourselves counts as use
    assert dep.id is not None
    changes.append((dep.org_id, dep.id, fields))  # written with the page, in one batch
    DEPLOYMENT_HEALTH.labels(deployment=str(dep.id)).set(1 if ok else 0)
    if not ok:
        report.failures += 1
    if state == HealthState.unhealthy:
        sent = await router.fire(
            org_id=dep.org_id,
            key=_health_key(dep),
            severity="critical",
            title=f"#{dep.id} {dep.name} is unhealthy",
            deployment_id=dep.id,
            details=f"{dep.model_id}: {seen} ({failures} failed checks in a row).",
        )
        report.alerts += int(sent)
        if (
            auto_rollback
            and act is not None
            and dep.current_revision > 1
            and dep.status != DeploymentStatus.unhealthy
        ):
            await act(
                dep,
                "rollback_deployment",
                {"deployment": str(dep.id)},
                "new revision turned unhealthy",
            )
            report.actions.append(f"rollback #{dep.id}")
    elif ok and dep.health_state in (HealthState.unhealthy, HealthState.degraded):
        resolved = await router.resolve(
            org_id=dep.org_id,
            key=_health_key(dep),
            details=f"#{dep.id} {dep.name} is healthy again: {seen}.",
        )
        report.alerts += int(resolved)


# --- cost ---------------------------------------------------------------------------------------


async def cost_sweep(
    services: Services, router: AlertRouter, *, act: Act | None = None
) -> SweepReport:
    """Accrue the ledger, then per budget: threshold alerts (once each per period), a warning
    when the forecast overruns, and auto-stop at 100% when the organisation asked for it."""
    await accrue_all(services)
    report = SweepReport()
    budgets = await services.db.read(ledger.budgets_of_all_orgs)
    for budget in budgets:
        await _check_budget(services, router, budget, act, report)
    return report


async def _check_budget(
    services: Services, router: AlertRouter, budget: Budget, act: Act | None, report: SweepReport
) -> None:
    now = services.clock.now()
    tz = await services.db.read(orgs.timezone_of, org_id=budget.org_id)
    period = budget_period(budget, now=now, tz=tz)
    spend, _ = await compute_spend(services, org_id=budget.org_id, period=period)
    status = BudgetStatus(budget=budget, period=period, spent=spend.total)
    report.checked += 1
    for alert in await new_threshold_alerts(services, status):
        await router.deliver_existing(alert)
        report.alerts += 1
    forecast = spend.forecast()
    if forecast > budget.amount and status.percent < 100:
        sent = await router.fire(
            org_id=budget.org_id,
            key=f"budget-forecast:{period.start:%Y%m%d}",
            severity="warning",
            title=f"Forecast overruns the {budget.period} budget",
            details=f"{money(spend.total)} spent; at the current rate {money(forecast)} by the end "
            f"of the period, over {money(budget.amount)}.",
        )
        report.alerts += int(sent)
    if budget.auto_stop and status.percent >= 100 and act is not None:
        running = await services.db.read(
            deployments.list_for, org_id=budget.org_id, statuses=MONITORED
        )
        for dep in running:
            if not dep.protected:
                await act(
                    dep,
                    "stop_deployment",
                    {"deployment": str(dep.id)},
                    f"budget reached {status.percent:.0f}% with auto-stop on",
                )
                report.actions.append(f"stop #{dep.id}")


# --- idle ---------------------------------------------------------------------------------------


def bills_while_idle(dep: Deployment) -> bool:
    """Pods bill while running; serverless only with always-on (min) workers."""
    if dep.provider_pod_id:
        return True
    settings = json.loads(dep.settings_json or "{}")
    return int(settings.get("workers_min", 0)) > 0


async def idle_sweep(services: Services, router: AlertRouter, *, act: Act | None) -> SweepReport:
    """Idle beyond the organisation's policy: warn once, then stop after a grace period.
    Protected deployments are never touched."""
    now = services.clock.now()
    report = SweepReport()
    # Stopped, deleted or failed since (by /stop, /fix or anyone): their alerts are over.
    report.alerts += await router.resolve_gone()
    deps, policies = await services.db.read(_idle_candidates)
    for dep in deps:
        if dep.protected or not bills_while_idle(dep):
            continue
        report.checked += 1
        last_use = dep.last_request_at or dep.healthy_at or dep.created_at
        idle = now - last_use
        limit = timedelta(minutes=policies.get(dep.org_id, 60))
        key = f"idle:{dep.id}"
        assert dep.id is not None
        if idle < limit:
            if dep.idle_warned_at is not None:
                await _set(services, dep, idle_warned_at=None)
                await router.resolve(org_id=dep.org_id, key=key, details="In use again.")
            continue
        if dep.idle_warned_at is None:
            await _set(services, dep, idle_warned_at=now)
            report.alerts += int(
                await router.fire(
                    org_id=dep.org_id,
                    key=key,
                    severity="warning",
                    deployment_id=dep.id,
                    title=f"#{dep.id} {dep.name} is idle and still billing",
                    details=f"No requests for {int(idle.total_seconds() // 60)} min at "
                    f"{money(dep.price_per_hour)}/h. It will be stopped in "
                    f"{int(IDLE_GRACE.total_seconds() // 60)} min unless used; "
                    f"`/protect {dep.id}` keeps it running.",
                )
            )
        elif now - dep.idle_warned_at >= IDLE_GRACE and act is not None:
            await act(
                dep,
                "stop_deployment",
                {"deployment": str(dep.id)},
                f"idle for {int(idle.total_seconds() // 60)} min",
            )
            report.actions.append(f"stop #{dep.id}")
            await router.resolve(
                org_id=dep.org_id, key=key, details=f"#{dep.id} was stopped after being idle."
            )
    return report


def _idle_candidates(s: Session) -> tuple[list[Deployment], dict[int, int]]:
    return deployments.list_all_active(s, statuses=MONITORED), orgs.idle_stop_minutes_by_org(s)


async def _set(services: Services, dep: Deployment, **fields: object) -> None:
    assert dep.id is not None
    await services.db.run(
        deployments.update,
        org_id=dep.org_id,
        deployment_id=dep.id,
        now=services.clock.now(),
        **fields,
    )


# --- reconcile and digest -----------------------------------------------------------------------


async def reconcile_sweep(services: Services, router: AlertRouter) -> SweepReport:
    """Resources named by this bot that no live deployment owns (never recorded, or left by a
    failed or deleted deployment): one alert each."""
    report = SweepReport()
    org_ids = await services.db.read(deployments.org_ids_with_deployments)
    for org_id in org_ids:
        try:
            orphans = await find_orphans(services, org_id)
        except CockpitError as exc:
            log.warning("reconcile skipped for org %s: %s", org_id, exc)
            continue
        report.checked += 1
        for kind, rid, name in orphans:
            report.alerts += int(
                await router.fire(
                    org_id=org_id,
                    key=f"orphan:{rid}",
                    severity="warning",
                    title=f"Orphaned RunPod {kind} {name}",
                    details=f"{kind} {rid} carries our name prefix but no live deployment owns "
                    "it (its deployment failed, was deleted or never recorded it); it may be "
                    "billing. Delete it in the RunPod console if it is not needed.",
                )
            )
    return report


DigestFigures = tuple[list[Deployment], list[Alert], Decimal, list[UserActivity], list[str]]


def _digest_figures(s: Session, org_id: int, period: Period, now: datetime) -> DigestFigures:
    """What one organisation's digest reports, in one read."""
    return (
        deployments.list_for(s, org_id=org_id, statuses=MONITORED),
        alert_store.incidents_between(s, org_id=org_id, start=period.start, end=period.end),
        ledger.total(s, org_id=org_id, start=period.start, end=period.end, kind="agent"),
        activity.per_user(s, org_id=org_id, since=period.start, until=period.end),
        alert_state_lines(s, org_id=org_id, now=now),
    )


async def digest(services: Services, router: AlertRouter) -> SweepReport:
    """Yesterday in one message per organisation that has alert routes."""
    report = SweepReport()
    now = services.clock.now()
    org_ids = await services.db.read(alert_store.orgs_with_routes)
    for org_id in org_ids:
        tz = await services.db.read(orgs.timezone_of, org_id=org_id)
        period = resolve_period("yesterday", now=now, tz=tz)
        spend, _ = await compute_spend(services, org_id=org_id, period=period)
        live, incidents, agent, people, alert_lines = await services.db.read(
            _digest_figures, org_id, period, now
        )
        lines = [
            f"Spend: {money(spend.total)} (GPU {money(spend.gpu_total)}, agent {money(agent)})",
            f"Running deployments: {len(live)}"
            + (": " + ", ".join(f"#{d.id} {d.name}" for d in live[:10]) if live else ""),
            "Most active: "
            + (
                ", ".join(
                    f"{p.user} ({p.commands} commands, {p.agent_requests} agent requests)"
                    for p in people[:3]
                )
                or "nobody"
            ),
            f"Incidents: {len(incidents)}"
            + ("".join(f"\n• {a.title}" for a in incidents[:10]) if incidents else ""),
            *(alert_lines or ["Open alerts: none"]),
        ]
        start_local = period.start.astimezone(period.start.tzinfo)
        report.alerts += int(
            await router.fire(
                org_id=org_id,
                key=f"digest:{start_local:%Y%m%d}",
                severity="info",
                title=f"Daily digest for {period.describe().split(' – ')[0]}",
                details="\n".join(lines),
            )
        )
        report.checked += 1
    return report
