"""The scheduler: APScheduler's AsyncIOScheduler inside the bot's event loop, running the health,
cost, idle, reconcile and digest sweeps from `tools.monitor`.

Several processes may run it (Procfile `web`, `worker`); exactly one executes the jobs: the holder
of a lease row in the database (works on PostgreSQL and SQLite). The holder renews it every
`RENEW_SECONDS`; when it dies, another process takes over once the lease expires."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bot.dispatcher import Dispatcher
from storage import instances
from storage.db import Database, DatabaseUnavailable
from storage.models import Deployment, SchedulerLease
from tools import monitor
from tools.alerts import AlertRouter
from tools.clock import Clock
from tools.contract import Platform, RequestContext, Role
from tools.deploy.saga import recover_interrupted
from tools.metrics import SCHEDULER_LAG, SCHEDULER_RUNS
from tools.services import Services

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
LEASE_TTL_SECONDS = 30
RENEW_SECONDS = 10
RECOVER_INTERVAL_SECONDS = 60
SYSTEM_ACTOR = "system"


class Lease:
    """A row-based leader lease: acquire or renew in one UPDATE, so two processes can never
    both believe they hold it."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        owner: str | None = None,
        ttl_seconds: int = LEASE_TTL_SECONDS,
        name: str = LEASE_NAME,
    ) -> None:
        self.db = db
        self.clock = clock
        self.owner = owner or f"{uuid.uuid4().hex[:8]}"
        self.ttl = timedelta(seconds=ttl_seconds)
        self.name = name
        self.held = False

    def try_acquire(self) -> bool:
        now = self.clock.now()
        # No row yet: insert it. If someone else inserted it since our UPDATE (another process, or
        # this one: APScheduler runs the renewal job on a thread while `run_job` acquires on the
        # loop), the UPDATE decides again, so the holder never reports that it lost the lease.
        got = self._update(now) or self._insert(now) or self._update(now)
        if got and not self.held:
            log.info("scheduler lease acquired by %s", self.owner)
        self.held = got
        return got

    def _update(self, now: Any) -> bool:
        with self.db.session() as s:
            result = s.execute(
                update(SchedulerLease)
                .where(
                    col(SchedulerLease.name) == self.name,
                    (col(SchedulerLease.owner) == self.owner)
                    | (col(SchedulerLease.expires_at) < now),
                )
                .values(owner=self.owner, expires_at=now + self.ttl)
            )
            return getattr(result, "rowcount", 0) == 1

    def _insert(self, now: Any) -> bool:
        try:
            with self.db.session() as s:
                if s.get(SchedulerLease, self.name) is not None:
                    return False
                s.add(SchedulerLease(name=self.name, owner=self.owner, expires_at=now + self.ttl))
            return True
        except IntegrityError:
            return False

    def release(self) -> None:
        if not self.held:
            return
        with self.db.session() as s:
            s.execute(
                update(SchedulerLease)
                .where(
                    col(SchedulerLease.name) == self.name, col(SchedulerLease.owner) == self.owner
                )
                .values(expires_at=self.clock.now() - timedelta(seconds=1))
            )
        self.held = False


@dataclass(frozen=True)
class JobSpec:
    name: str
    seconds: int | None  # interval; None = daily at `hour`
    hour: int = 9


class BackgroundJobs:
    """The sweeps, callable directly (tests) or through APScheduler (`start`)."""

    def __init__(
        self,
        services: Services,
        dispatcher: Dispatcher,
        router: AlertRouter,
        *,
        settings: Any,
        lease: Lease | None = None,
    ) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self.router = router
        self.settings = settings
        self.lease = lease or Lease(services.db, services.clock)
        self._scheduler: Any = None
        self.specs = [
            JobSpec("health", settings.health_interval_seconds),
            JobSpec("cost", settings.cost_interval_seconds),
            JobSpec("idle", settings.idle_interval_seconds),
            JobSpec("reconcile", settings.reconcile_interval_seconds),
            # Work a process on another host left when it died (its heartbeat went stale).
            JobSpec("recover", RECOVER_INTERVAL_SECONDS),
            JobSpec("digest", None, hour=settings.digest_hour_utc),
        ]

    # -- actions as the system actor -----------------------------------------------------------

    async def act(self, dep: Deployment, tool: str, args: dict[str, object], reason: str) -> None:
        ctx = RequestContext(
            org_id=dep.org_id,
            workspace_id=dep.workspace_id or 0,
            user_id=SYSTEM_ACTOR,
            display_name=f"system ({reason})",
            role=Role.owner,
            platform=Platform.system,
        )
        reply = await self.dispatcher.run(ctx, tool, args)
        log.info("system %s on #%s (%s): %s", tool, dep.id, reason, reply.text[:200])

    # -- the jobs ------------------------------------------------------------------------------

    async def recover(self) -> monitor.SweepReport:
        """Clean up what a dead process left in flight (the start-up recovery, again: a process
        on another host that died shows only as a heartbeat going stale)."""
        cleaned = await recover_interrupted(self.services)
        await self.services.db.run(instances.forget_gone, now=self.services.clock.now())
        actions = [f"cleaned up {cleaned} interrupted deploy(s)"] if cleaned else []
        return monitor.SweepReport(checked=cleaned, actions=actions)

    def job(self, name: str) -> Callable[[], Awaitable[monitor.SweepReport]]:
        s, r = self.services, self.router
        jobs: dict[str, Callable[[], Awaitable[monitor.SweepReport]]] = {
            "health": lambda: monitor.health_sweep(
                s,
                r,
                act=self.act,
                probe=self.settings.health_probe,
                auto_rollback=self.settings.auto_rollback,
            ),
            "cost": lambda: monitor.cost_sweep(s, r, act=self.act),
            "idle": lambda: monitor.idle_sweep(s, r, act=self.act),
            "reconcile": lambda: monitor.reconcile_sweep(s, r),
            "digest": lambda: monitor.digest(s, r),
            "recover": lambda: self.recover(),
        }
        return jobs[name]

    async def run_job(self, name: str, *, scheduled_at: Any = None) -> monitor.SweepReport | None:
        """Run one sweep if this process holds the lease; record metrics; never raise."""
        try:
            held = await self.services.db.call(self.lease.try_acquire)
        except DatabaseUnavailable:
            log.warning("scheduler job %s skipped: the database is not answering", name)
            SCHEDULER_RUNS.labels(job=name, outcome="database_unavailable").inc()
            return None
        if not held:
            return None
        if scheduled_at is not None:
            SCHEDULER_LAG.labels(job=name).set(
                max((self.services.clock.now() - scheduled_at).total_seconds(), 0)
            )
        try:
            report = await self.job(name)()
        except Exception:
            log.exception("scheduler job %s failed", name)
            SCHEDULER_RUNS.labels(job=name, outcome="error").inc()
            return None
        SCHEDULER_RUNS.labels(job=name, outcome="ok").inc()
        log.info(
            "job %s: checked %s, alerts %s, actions %s",
            name,
            report.checked,
            report.alerts,
            report.actions,
        )
        return report

    # -- APScheduler -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start inside the running loop (AsyncIOScheduler needs it). Misfires coalesce into one
        run and a run never overlaps itself; a sweep that overran its interval (the next run
        found it still running) or started too late is logged and counted in
        `cockpit_scheduler_job_runs_total{outcome="overrun"|"missed"}`, never skipped in
        silence."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1}
        )
        scheduler.add_job(
            self.lease.try_acquire,
            "interval",
            seconds=RENEW_SECONDS,
            id="lease",
            misfire_grace_time=RENEW_SECONDS,
        )
        for spec in self.specs:
            if spec.seconds is None:
                scheduler.add_job(
                    self.run_job,
                    "cron",
                    hour=spec.hour,
                    args=[spec.name],
                    id=spec.name,
                    misfire_grace_time=3600,
                )
            elif spec.seconds > 0:
                scheduler.add_job(
                    self.run_job,
                    "interval",
                    seconds=spec.seconds,
                    args=[spec.name],
                    id=spec.name,
                    misfire_grace_time=spec.seconds,
                )
        scheduler.add_listener(self.on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "scheduler started (%s)",
            ", ".join(
                f"{s.name} every {s.seconds}s" if s.seconds else f"{s.name} daily {s.hour}:00 UTC"
                for s in self.specs
            ),
        )

    @staticmethod
    def on_skipped(event: Any) -> None:
        """APScheduler skipped a run: the previous one was still going (overrun) or the
        loop was too busy to start it within its grace time (missed)."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        outcome = "overrun" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
        SCHEDULER_RUNS.labels(job=event.job_id, outcome=outcome).inc()
        log.warning(
            "scheduler job %s %s: the run due at %s was skipped",
            event.job_id,
            "overran its interval (still running)" if outcome == "overrun" else "missed its start",
            getattr(event, "scheduled_run_time", None),
        )

    async def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        await self.services.db.call(self.lease.release)  # on a storage thread, as acquiring
