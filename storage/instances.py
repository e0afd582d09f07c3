"""Running bot processes (`ProcessInstance`): registered at start, a heartbeat every few
seconds, removed at a clean stop. What a process leaves in flight carries its id (`owner`),
and only work whose owner is gone is ever cleaned up by another process (or by a restart).

Across organisations: a process serves them all."""

from __future__ import annotations

import os
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, true, update
from sqlmodel import Session, col, select

from storage.models import ProcessInstance

# A process says it is alive this often; one silent for STALE_AFTER is taken for dead (a
# crash on another host leaves no other sign). Nine missed beats: a database hiccup of a minute
# does not make a live process look dead.
HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=90)
# Rows of processes gone this long are deleted (crashed processes never remove their own).
FORGET_AFTER = timedelta(days=1)


def register(s: Session, *, instance: str, host: str, pid: int, now: datetime) -> None:
    s.add(ProcessInstance(id=instance, host=host, pid=pid, started_at=now, heartbeat_at=now))


def heartbeat(s: Session, *, instance: str, host: str, pid: int, now: datetime) -> None:
    """This process is alive; its row comes back if something removed it meanwhile."""
    result = s.execute(
        update(ProcessInstance).where(col(ProcessInstance.id) == instance).values(heartbeat_at=now)
    )
    if not getattr(result, "rowcount", 0):
        register(s, instance=instance, host=host, pid=pid, now=now)


def forget_gone(s: Session, *, now: datetime) -> int:
    """Delete the rows of processes silent for FORGET_AFTER; returns how many."""
    result = s.execute(
        delete(ProcessInstance).where(col(ProcessInstance.heartbeat_at) < now - FORGET_AFTER)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def remove(s: Session, *, instance: str) -> None:
    s.execute(delete(ProcessInstance).where(col(ProcessInstance.id) == instance))


def live(s: Session, *, me: str, host: str, pid: int, now: datetime) -> set[str]:
    """The instances whose work must be left alone: this one, and every other whose heartbeat
    is recent, unless it ran on this host in a process that no longer exists (a restart on the
    same machine need not wait for its heartbeat to go stale)."""
    alive = {me}
    rows = s.exec(
        select(ProcessInstance).where(col(ProcessInstance.heartbeat_at) > now - STALE_AFTER)
    ).all()
    for row in rows:
        if row.host == host and not _pid_running(row.pid, mine=pid):
            continue
        alive.add(row.id)
    return alive


def not_owned_by(model: Any, spare: Collection[str]) -> Any:
    """The WHERE clause for `model` rows whose owner is none of `spare` (or unknown: rows from
    before owners were recorded)."""
    owner = col(model.owner)
    if not spare:
        return true()
    return or_(owner.is_(None), owner.not_in(list(spare)))


def _pid_running(pid: int, *, mine: int) -> bool:
    if pid == mine:  # an earlier incarnation that had this pid: this process replaced it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
