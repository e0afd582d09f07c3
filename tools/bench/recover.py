"""At start: `/bench` runs a killed process left `running` become `failed`.

A run marks its own row when it ends, is cancelled or its task is cancelled; a SIGKILL (or a
crash) runs none of that, and nothing else would ever finish the row."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col

from storage.instances import not_owned_by
from storage.models import BenchRun, BenchStatus
from tools.services import Services

INTERRUPTED_REASON = "interrupted by a restart"


def _fail_running(
    s: Session, *, now: datetime, before: datetime | None, spare: Collection[str]
) -> int:
    # Across organisations, like approvals.fail_interrupted: runs whose process is gone.
    stmt: Any = update(BenchRun).where(
        col(BenchRun.status) == BenchStatus.running, not_owned_by(BenchRun, spare)
    )
    if before is not None:
        stmt = stmt.where(col(BenchRun.created_at) <= before)
    result = s.execute(
        stmt.values(
            status=BenchStatus.failed, stop_reason=INTERRUPTED_REASON, finished_at=now
        ).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def fail_interrupted_runs(
    services: Services, *, before: datetime | None = None, spare: Collection[str] = ()
) -> int:
    """Mark every run still `running` (started before `before`, when given) whose process is
    not among `spare` (the live instances) failed, "interrupted by a restart". Returns how
    many."""
    return await services.db.run(
        _fail_running, now=services.clock.now(), before=before, spare=spare
    )
