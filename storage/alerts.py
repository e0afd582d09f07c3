"""Alerts, their routes and deliveries. Every query about one organisation takes its id; the
few that sweep every organisation (the scheduler's) say so in their name and keep each row with
its own organisation's rows."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from storage import alert_state
from storage.models import Alert, AlertDelivery, AlertRoute, AlertState, Deployment


def find(s: Session, *, org_id: int, key: str) -> Alert | None:
    """The alert with this dedup key (one row per key and organisation)."""
    return s.exec(select(Alert).where(Alert.org_id == org_id, Alert.key == key)).first()


def incidents_between(s: Session, *, org_id: int, start: datetime, end: datetime) -> list[Alert]:
    """Alerts (not info messages) whose incident began in [start, end)."""
    return list(
        s.exec(
            select(Alert).where(
                Alert.org_id == org_id,
                col(Alert.first_seen) >= start,
                col(Alert.first_seen) < end,
                col(Alert.severity) != "info",
            )
        )
    )


def firing_on_deployments_in_all_orgs(
    s: Session, *, statuses: Iterable[str]
) -> list[tuple[Alert, Deployment]]:
    """Firing alerts whose deployment (of the same organisation) has one of `statuses`."""
    return list(
        s.exec(
            select(Alert, Deployment)
            .join(Deployment, col(Deployment.id) == Alert.deployment_id)
            .where(
                Alert.state == AlertState.firing,
                col(Deployment.org_id) == col(Alert.org_id),
                col(Deployment.status).in_(list(statuses)),
            )
        )
    )


# --- routes and deliveries ---------------------------------------------------------------------


def routes_of(s: Session, *, org_id: int) -> list[AlertRoute]:
    return list(s.exec(select(AlertRoute).where(AlertRoute.org_id == org_id)))


def orgs_with_routes(s: Session) -> list[int]:
    """Organisation ids that have at least one alert route, ascending."""
    return sorted(set(s.exec(select(AlertRoute.org_id).distinct())))


def get_route(s: Session, *, org_id: int, route_id: int) -> AlertRoute | None:
    return s.exec(
        select(AlertRoute).where(AlertRoute.org_id == org_id, AlertRoute.id == route_id)
    ).first()


def delete_route(s: Session, *, org_id: int, route: AlertRoute) -> None:
    """Remove a route with its delivery history and the incident posts made through it."""
    assert route.id is not None and route.org_id == org_id
    deliveries = select(AlertDelivery).where(
        AlertDelivery.org_id == org_id, AlertDelivery.route_id == route.id
    )
    for delivery in s.exec(deliveries):
        s.delete(delivery)
    alert_state.forget_route(s, org_id=org_id, route_id=route.id)
    s.delete(route)


def recent_deliveries(
    s: Session, *, org_id: int, limit: int = 10
) -> list[tuple[AlertDelivery, Alert]]:
    """The latest deliveries with their alerts, newest first."""
    return list(
        s.exec(
            select(AlertDelivery, Alert)
            .join(Alert, col(Alert.id) == AlertDelivery.alert_id)
            .where(AlertDelivery.org_id == org_id)
            .order_by(col(AlertDelivery.id).desc())
            .limit(limit)
        )
    )
