"""Deployments and their revisions, always within one organisation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from storage.models import Deployment, DeploymentRevision

ACTIVE_STATUSES = ("pending", "creating", "waiting", "healthy", "degraded", "unhealthy")
RUNNING_STATUSES = ("waiting", "healthy", "degraded", "unhealthy")


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


def find(s: Session, *, org_id: int, ref: str, include_deleted: bool = False) -> list[Deployment]:
    """Deployments matching a reference: id ("#3" or "3"), exact name, endpoint id, or a model
    name fragment. Newest first."""
    ref = ref.strip().lstrip("#")
    stmt = select(Deployment).where(Deployment.org_id == org_id)
    if not include_deleted:
        stmt = stmt.where(col(Deployment.status) != "deleted")
    if ref.isdigit():
        exact = s.exec(stmt.where(Deployment.id == int(ref))).first()
        if exact:
            return [exact]
    exact_rows = s.exec(
        stmt.where(or_(Deployment.name == ref, Deployment.provider_endpoint_id == ref))
    ).all()
    if exact_rows:
        return list(exact_rows)
    like = f"%{ref.lower()}%"
    return list(
        s.exec(
            stmt.where(
                or_(col(Deployment.model_id).ilike(like), col(Deployment.name).ilike(like))
            ).order_by(col(Deployment.id).desc())
        )
    )


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
    live = col(Deployment.status).not_in(("failed", "deleted"))
    for dep in s.exec(select(Deployment).where(live)):
        ids.update(
            x
            for x in (dep.provider_endpoint_id, dep.provider_template_id, dep.provider_pod_id)
            if x
        )
    return ids
