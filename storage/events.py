"""Idempotency: a request key seen once is answered from the stored result afterwards."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import ProcessedEvent
from storage.redaction import scrub

EMPTY_RESULT = "{}"


def seen(s: Session, *, org_id: int, key: str) -> ProcessedEvent | None:
    return s.exec(
        select(ProcessedEvent).where(ProcessedEvent.org_id == org_id, ProcessedEvent.key == key)
    ).first()


def claim(s: Session, *, org_id: int, key: str, now: datetime) -> bool:
    """Record the key; False when another request already holds it (unique constraint).

    One statement (`INSERT … ON CONFLICT DO NOTHING RETURNING id`) on PostgreSQL and SQLite:
    no savepoint, so one round trip inside the caller's transaction."""
    dialect = s.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(ProcessedEvent)
            .values(org_id=org_id, key=key, result_json=EMPTY_RESULT, created_at=now)
            .on_conflict_do_nothing(index_elements=["org_id", "key"])
            .returning(col(ProcessedEvent.id))
        )
        return s.connection().execute(stmt).first() is not None
    try:
        with s.begin_nested():
            s.add(ProcessedEvent(org_id=org_id, key=key, created_at=now))
        return True
    except IntegrityError:
        return False


def store_result(s: Session, *, org_id: int, key: str, result_json: str) -> None:
    """Keep the answer a replayed event gets again, with key-shaped text scrubbed (one
    UPDATE; nothing when the key was never claimed)."""
    s.connection().execute(
        update(ProcessedEvent)
        .where(col(ProcessedEvent.org_id) == org_id, col(ProcessedEvent.key) == key)
        .values(result_json=scrub(result_json))
    )
