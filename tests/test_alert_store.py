"""storage.alerts: every per-organisation query stays inside the organisation it is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import alerts, orgs
from storage.db import Database
from storage.models import Alert, AlertDelivery, AlertRoute, AlertState

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _org_with_alert(db: Database, external_id: str) -> tuple[int, int]:
    with db.session() as s:
        ws = orgs.ensure_workspace(s, platform="slack", external_id=external_id, name="W", now=NOW)
        route = AlertRoute(
            org_id=ws.org_id,
            kind="slack_channel",
            target_label="#ops",
            created_by="u",
            created_at=NOW,
        )
        alert = Alert(
            org_id=ws.org_id,
            key="idle:1",
            severity="warning",
            title="t",
            first_seen=NOW,
            last_seen=NOW,
        )
        s.add(route)
        s.add(alert)
        s.flush()
        assert route.id is not None and alert.id is not None
        s.add(
            AlertDelivery(
                org_id=ws.org_id,
                alert_id=alert.id,
                route_id=route.id,
                status="sent",
                created_at=NOW,
            )
        )
        return ws.org_id, route.id


def test_alert_queries_stay_within_the_organisation(database: Database) -> None:
    a, route_a = _org_with_alert(database, "TA")
    b, route_b = _org_with_alert(database, "TB")
    with database.session() as s:
        assert alerts.find(s, org_id=a, key="idle:1").org_id == a  # type: ignore[union-attr]
        assert alerts.get_route(s, org_id=a, route_id=route_b) is None
        assert [r.id for r in alerts.routes_of(s, org_id=b)] == [route_b]
        assert alerts.orgs_with_routes(s) == sorted([a, b])
        assert [d.org_id for d, _ in alerts.recent_deliveries(s, org_id=a)] == [a]
        found = alerts.incidents_between(s, org_id=a, start=NOW, end=NOW + timedelta(hours=1))
        assert [x.org_id for x in found] == [a]
        route = alerts.get_route(s, org_id=a, route_id=route_a)
        assert route is not None
        alerts.delete_route(s, org_id=a, route=route)
    with database.session() as s:
        assert alerts.routes_of(s, org_id=a) == []
        assert alerts.recent_deliveries(s, org_id=a) == []
        assert len(alerts.recent_deliveries(s, org_id=b)) == 1  # the other organisation's stay
        assert alerts.find(s, org_id=b, key="idle:1").state == AlertState.firing  # type: ignore[union-attr]
