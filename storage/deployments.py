"""Deployments and their revisions, always within one organisation."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, or_, select

from storage.models import Deployment, DeploymentRevision, DeploymentStatus

ACTIVE_STATUSES = (
    DeploymentStatus.pending,
    DeploymentStatus.creating,
    DeploymentStatus.waiting,
    DeploymentStatus.healthy,
    DeploymentStatus.degraded,
    DeploymentStatus.unhealthy,
)
RUNNING_STATUSES = (
    DeploymentStatus.waiting,
    DeploymentStatus.healthy,
    DeploymentStatus.degraded,
    DeploymentStatus.unhealthy,
)


def create(s: Session, *, org_id: int, **fields: Any) -> Deployment | None:
    """Insert a deployment; None when the organisation already used this idempotency key."""
    dep = Deployment(org_id=org_id, **fields)
    try:
        with s.begin_nested():
            s.add(dep)
            s.flush()
    except IntegrityError:
        return None
    return dep


def get(s: Session, *, org_id: int, deployment_id: int) -> Deployment | None:
    return s.exec(
        select(Deployment).where(Deployment.id == deployment_id, Deployment.org_id == org_id)
    ).first()


def by_idempotency_key(s: Session, *, org_id: int, key: str) -> Deployment | None:
    return s.exec(
        select(Deployment).where(Deployment.org_id == org_id, Deployment.idempotency_key == key)
    ).first()


# Longer than any name (40), model id or endpoint id: such a reference names nothing.
MAX_REF_CHARS = 200
SQL_ID_MAX = 2**63 - 1
SUGGESTIONS = 3
MAX_CANDIDATES = 5_000  # an organisation's deployments scanned for a name or a suggestion


def find(s: Session, *, org_id: int, ref: str, include_deleted: bool = False) -> list[Deployment]:
    """Deployments a person's reference names exactly: an id ("3" or "#3"), else a name
    (case-insensitive), else an endpoint id or a full model id. Never a fragment or a pattern:
    "2" does not mean "the one whose model has a 2 in it". Newest first; [] when nothing
    matches (see `suggest`)."""
    ref = ref.strip().removeprefix("#").strip()
    if not ref or len(ref) > MAX_REF_CHARS:
        return []
    stmt = select(Deployment).where(Deployment.org_id == org_id)
    if not include_deleted:
        stmt = stmt.where(col(Deployment.status) != DeploymentStatus.deleted)
    if ref.isascii() and ref.isdigit() and len(ref) <= len(str(SQL_ID_MAX)):
        number = int(ref)
        if 1 <= number <= SQL_ID_MAX:
            exact = s.exec(stmt.where(Deployment.id == number)).first()
            if exact:
                return [exact]
    wanted = ref.casefold()
    if ref.isascii():
        # The common case stays one indexed-size query: ASCII lower() is the same everywhere.
        stmt = stmt.where(
            or_(
                func.lower(Deployment.name) == wanted,
                Deployment.provider_endpoint_id == ref,
                func.lower(Deployment.model_id) == wanted,
            )
        )
    # Equality is decided here (casefold); SQL lower() only narrows: SQLite lowers ASCII alone,
    # PostgreSQL all of Unicode, so the engine never decides what a reference means.
    rows = _candidates(s, stmt)
    for matches in (
        [d for d in rows if d.name.casefold() == wanted],
        [d for d in rows if d.provider_endpoint_id == ref],
        [d for d in rows if d.model_id.casefold() == wanted],
    ):
        if matches:
            return matches
    return []


def suggest(
    s: Session, *, org_id: int, ref: str, include_deleted: bool = False, n: int = SUGGESTIONS
) -> list[Deployment]:
    """The deployments whose names are closest to a reference that matched nothing (difflib,
    plus names that contain it), for a "did you mean" line. Suggestions never act."""
    ref = ref.strip().removeprefix("#").strip().casefold()[:MAX_REF_CHARS]
    if not ref:
        return []
    stmt = select(Deployment).where(Deployment.org_id == org_id)
    if not include_deleted:
        stmt = stmt.where(col(Deployment.status) != DeploymentStatus.deleted)
    rows = _candidates(s, stmt)
    by_name: dict[str, Deployment] = {}
    for d in rows:
        by_name.setdefault(d.name.casefold(), d)
    close = difflib.get_close_matches(ref, list(by_name), n=n, cutoff=0.6)
    close += [k for k in by_name if ref in k and k not in close]
    return [by_name[k] for k in close[:n]]


def _candidates(s: Session, stmt: Any) -> list[Deployment]:
    return list(s.exec(stmt.order_by(col(Deployment.id).desc()).limit(MAX_CANDIDATES)))


def list_for(
    s: Session, *, org_id: int, statuses: Sequence[str] | None = None, limit: int = 200
) -> list[Deployment]:
    stmt = select(Deployment).where(Deployment.org_id == org_id)
    if statuses:
        stmt = stmt.where(col(Deployment.status).in_(list(statuses)))
    return list(s.exec(stmt.order_by(col(Deployment.id).desc()).limit(limit)))


def list_all_active(s: Session, *, statuses: Sequence[str] = RUNNING_STATUSES) -> list[Deployment]:
    """Across organisations — only for the system sweeps (health, cost, reconcile)."""
    return list(s.exec(select(Deployment).where(col(Deployment.status).in_(list(statuses)))))


def update(
    s: Session, *, org_id: int, deployment_id: int, now: datetime, **fields: Any
) -> Deployment:
    dep = get(s, org_id=org_id, deployment_id=deployment_id)
    if dep is None:
        raise LookupError(f"deployment {deployment_id} not in org {org_id}")
    for k, v in fields.items():
        setattr(dep, k, v)
    dep.updated_at = now
    s.add(dep)
    s.flush()
    return dep


def add_revision(
    s: Session,
    *,
    org_id: int,
    deployment_id: int,
    revision: int,
    model_id: str,
    settings_json: str,
    created_by: str,
    now: datetime,
    provider_release: str | None = None,
) -> DeploymentRevision:
    rev = DeploymentRevision(
        org_id=org_id,
        deployment_id=deployment_id,
        revision=revision,
        model_id=model_id,
        settings_json=settings_json,
        created_by=created_by,
        created_at=now,
        provider_release=provider_release,
    )
    s.add(rev)
    s.flush()
    return rev


def revisions(s: Session, *, org_id: int, deployment_id: int) -> list[DeploymentRevision]:
    return list(
        s.exec(
            select(DeploymentRevision)
            .where(
                DeploymentRevision.org_id == org_id,
                DeploymentRevision.deployment_id == deployment_id,
            )
            .order_by(col(DeploymentRevision.revision))
        )
    )


def known_provider_ids(s: Session) -> set[str]:
    """Provider resource ids that belong to a live deployment, in any organisation (for
    reconcile). A failed or deleted deployment owns nothing any more: whatever of it still
    exists at the provider is an orphan."""
    ids: set[str] = set()
    live = col(Deployment.status).not_in((DeploymentStatus.failed, DeploymentStatus.deleted))
    for dep in s.exec(select(Deployment).where(live)):
        ids.update(
            x
            for x in (dep.provider_endpoint_id, dep.provider_template_id, dep.provider_pod_id)
            if x
        )
    return ids


def active_page(
    s: Session, *, statuses: Sequence[str], after_id: int, limit: int
) -> list[Deployment]:
    """One page (by id) of `list_all_active`, for sweeps that must not load every deployment
    at once. Across organisations — only for the system sweeps."""
    return list(
        s.exec(
            select(Deployment)
            .where(col(Deployment.status).in_(list(statuses)), col(Deployment.id) > after_id)
            .order_by(col(Deployment.id))
            .limit(limit)
        )
    )


def update_many(
    s: Session, *, changes: Sequence[tuple[int, int, dict[str, Any]]], now: datetime
) -> None:
    """Apply (org_id, deployment_id, fields) changes in one transaction, batched: rows with
    the same set of fields go in one executemany (pipelined by psycopg), not one round trip
    each. The org id stays in every WHERE, as for `update`."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for org_id, dep_id, fields in changes:
        key = tuple(sorted(fields))
        groups.setdefault(key, []).append(
            {"b_org": org_id, "b_id": dep_id, "updated_at": now, **fields}
        )
    table = Deployment.__table__  # type: ignore[attr-defined]
    stmt = sa_update(table).where(
        table.c.org_id == bindparam("b_org"), table.c.id == bindparam("b_id")
    )
    for rows in groups.values():
        # The SET clause comes from the rows' keys (the b_ ones are the WHERE's).
        s.connection().execute(stmt, rows)


def org_ids_with_deployments(s: Session) -> list[int]:
    """Every organisation that has ever had a deployment, ascending (the reconcile sweep)."""
    return sorted(set(s.exec(select(Deployment.org_id).distinct())))
