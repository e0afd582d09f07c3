"""One scheduler process for tests/test_scheduler_processes.py.

Runs the real `BackgroundJobs` wiring (APScheduler in an asyncio loop, the lease-renewal job, the
`run_job` lease gate) against a database URL, with the sweeps replaced by one cheap job, `tick`,
every `TICK_SECONDS`. Each attempt is appended as a JSON line to `--out`:

    {"event": "ready", "at": ...}                    the scheduler is started
    {"event": "run", "tick": n, "t0": ..., "at": ...}  this process held the lease and ran tick n
    {"event": "skip", "tick": n, "t0": ..., "at": ...} the lease gate said no for tick n

`tick` is the job's scheduled fire time floored to whole seconds (so both processes share one
numbering, one occurrence per second each); `t0` is the wall time before the lease check, `at`
after the run. Usage: python tests/lease_worker.py URL OWNER TTL_SECONDS OUT_FILE
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from bot.background import scheduler
from bot.background.scheduler import BackgroundJobs, JobSpec, Lease
from storage.db import Database
from tools.clock import Clock
from tools.monitor import SweepReport

TICK_SECONDS = 1  # APScheduler's misfire_grace_time must be a whole number of seconds
RENEW_SECONDS = 1


class Journal:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, event: str, **fields: Any) -> None:
        self._file.write(json.dumps({"event": event, **fields}) + "\n")
        self._file.flush()


class TickJobs(BackgroundJobs):
    """`BackgroundJobs` with one job that only records itself; lease and scheduling untouched."""

    def __init__(self, lease: Lease, journal: Journal) -> None:
        settings = SimpleNamespace(
            health_interval_seconds=0,
            cost_interval_seconds=0,
            idle_interval_seconds=0,
            reconcile_interval_seconds=0,
            digest_hour_utc=9,
        )
        services: Any = SimpleNamespace(db=lease.db, clock=lease.clock)
        dispatcher: Any = None
        router: Any = None
        super().__init__(services, dispatcher, router, settings=settings, lease=lease)
        self.specs = [JobSpec("tick", TICK_SECONDS)]
        self.journal = journal
        self._t0 = 0.0
        self._tick = 0

    def _scheduled_tick(self, name: str) -> int:
        # The executor creates the run's task after APScheduler has moved the job's
        # next_run_time on by one interval, so this is the occurrence being run.
        job = self._scheduler.get_job(name)
        scheduled = job.next_run_time - timedelta(seconds=TICK_SECONDS)
        return math.floor(scheduled.timestamp())

    def job(self, name: str) -> Any:
        async def record() -> SweepReport:
            self.journal.write("run", tick=self._tick, t0=self._t0, at=time.time())
            return SweepReport(checked=1)

        return record

    async def run_job(self, name: str, *, scheduled_at: Any = None) -> SweepReport | None:
        # One instance at a time (max_instances=1), so these attributes belong to this run.
        self._t0 = time.time()
        self._tick = self._scheduled_tick(name)
        report = await super().run_job(name, scheduled_at=scheduled_at)
        if report is None:
            self.journal.write("skip", tick=self._tick, t0=self._t0, at=time.time())
        return report


async def main(url: str, owner: str, ttl: int, out: str) -> None:
    scheduler.RENEW_SECONDS = RENEW_SECONDS  # read by BackgroundJobs.start()
    journal = Journal(out)
    jobs = TickJobs(Lease(Database(url), Clock(), owner=owner, ttl_seconds=ttl), journal)
    jobs.start()
    journal.write("ready", at=time.time())
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
