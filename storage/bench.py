"""`/bench` runs: one row per run, always read and written within one organisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from storage.models import BenchRun, BenchStatus

HISTORY_LIMIT = 20


def create(s: Session, *, org_id: int, **fields: Any) -> BenchRun:
    row = BenchRun(org_id=org_id, **fields)
    s.add(row)
    s.flush()
    return row


def running_on(s: Session, *, org_id: int, deployment_id: int) -> int | None:
    """The run going on this deployment now (started by any process), if one is."""
    return s.exec(
        select(BenchRun.id).where(
            col(BenchRun.org_id) == org_id,
            col(BenchRun.deployment_id) == deployment_id,
            col(BenchRun.status) == BenchStatus.running,
        )
    ).first()


def get(s: Session, *, org_id: int, run_id: int) -> BenchRun | None:
    row = s.get(BenchRun, run_id)
    return row if row is not None and row.org_id == org_id else None


def finish(s: Session, *, org_id: int, run_id: int, now: datetime, **fields: Any) -> BenchRun:
    row = get(s, org_id=org_id, run_id=run_id)
    if row is None:
        raise LookupError(f"bench run {run_id} not found in organisation {org_id}")
    for name, value in fields.items():
        setattr(row, name, value)
    row.finished_at = now
    s.add(row)
    return row


def history(
    s: Session, *, org_id: int, ref: str | None = None, limit: int = HISTORY_LIMIT
) -> list[BenchRun]:
    """Finished runs, newest first; `ref` matches a deployment number, or a deployment name
    or model id containing it (case-insensitive)."""
    query = select(BenchRun).where(
        BenchRun.org_id == org_id, col(BenchRun.status).in_(("done", "stopped", "cancelled"))
    )
    if ref:
        text = ref.strip().removeprefix("#")
        like = f"%{text.lower()}%"
        clauses: list[Any] = [
            col(BenchRun.deployment_name).ilike(like),
            col(BenchRun.model_id).ilike(like),
            col(BenchRun.gpu).ilike(like),
        ]
        if text.isascii() and text.isdigit() and len(text) < 18:
            clauses.append(col(BenchRun.deployment_id) == int(text))
        query = query.where(or_(*clauses))
    query = query.order_by(col(BenchRun.created_at).desc(), col(BenchRun.id).desc()).limit(limit)
    return list(s.exec(query).all())
