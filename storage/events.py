"""Idempotency: a request key seen once is answered from the stored result afterwards."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from storage.models import ProcessedEvent
from storage.redaction import scrub


def seen(s: Session, *, org_id: int, key: str) -> ProcessedEvent | None:
    return s.exec(
        select(ProcessedEvent).where(ProcessedEvent.org_id == org_id, ProcessedEvent.key == key)
    ).first()


def claim(s: Session, *, org_id: int, key: str, now: datetime) -> bool:
    """Record the key; False when another request already holds it (unique constraint)."""
    try:
        with s.begin_nested():
            s.add(ProcessedEvent(org_id=org_id, key=key, created_at=now))
        return True
    except IntegrityError:
        return False


def store_result(s: Session, *, org_id: int, key: str, result_json: str) -> None:
    """Keep the answer a replayed event gets again, with key-shaped text scrubbed."""
    result_json = scrub(result_json)
    ev = seen(s, org_id=org_id, key=key)
    if ev:
        ev.result_json = result_json
        s.add(ev)
