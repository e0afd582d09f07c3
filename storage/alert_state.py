"""What people did to alerts: acknowledgements, silences, and where each incident's message was
posted (so resolves and repeats reply to it and state changes edit it). Every query takes the
organisation id; an id from a button or a command is only ever looked up within it."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import Alert, AlertAck, AlertPost, AlertSilence, AlertState


def get_alert(s: Session, *, org_id: int, alert_id: int) -> Alert | None:
    return s.exec(select(Alert).where(Alert.org_id == org_id, Alert.id == alert_id)).first()


def open_alerts(s: Session, *, org_id: int, limit: int = 20) -> list[Alert]:
    """Firing alerts, newest first (not info messages such as the digest, which never
    resolve)."""
    return list(
        s.exec(
            select(Alert)
            .where(
                Alert.org_id == org_id,
                Alert.state == AlertState.firing,
                Alert.severity != "info",
            )
            .order_by(col(Alert.last_seen).desc())
            .limit(limit)
        )
    )


# --- acknowledgements ---------------------------------------------------------------------------


def ack_of(s: Session, *, org_id: int, alert: Alert) -> AlertAck | None:
    """The acknowledgement of the alert's current incident, if any."""
    return s.exec(
        select(AlertAck).where(
            AlertAck.org_id == org_id,
            AlertAck.alert_id == alert.id,
            AlertAck.incident_at == alert.first_seen,
        )
    ).first()


def acknowledge(
    s: Session, *, org_id: int, alert: Alert, user_id: str, user_name: str, now: datetime
) -> tuple[AlertAck, bool]:
    """Acknowledge the alert's current incident (the first acknowledgement stands): that
    acknowledgement, and whether this call made it."""
    existing = ack_of(s, org_id=org_id, alert=alert)
    if existing is not None:
        return existing, False
    assert alert.id is not None
    ack = AlertAck(
        org_id=org_id,
        alert_id=alert.id,
        incident_at=alert.first_seen,
        user_id=user_id,
        user_name=user_name,
        created_at=now,
    )
    s.add(ack)
    s.flush()
    return ack, True


# --- silences -----------------------------------------------------------------------------------


def active_silence(s: Session, *, org_id: int, key: str, now: datetime) -> AlertSilence | None:
    """The silence on exactly this key that is in force at `now` (the one ending last)."""
    return s.exec(
        select(AlertSilence)
        .where(
            AlertSilence.org_id == org_id,
            AlertSilence.key == key,
            col(AlertSilence.ended_at).is_(None),
            col(AlertSilence.created_at) <= now,
            col(AlertSilence.ends_at) > now,
        )
        .order_by(col(AlertSilence.ends_at).desc())
    ).first()


def silence(
    s: Session,
    *,
    org_id: int,
    key: str,
    title: str,
    user_id: str,
    user_name: str,
    now: datetime,
    ends_at: datetime,
) -> AlertSilence:
    row = AlertSilence(
        org_id=org_id,
        key=key,
        title=title,
        user_id=user_id,
        user_name=user_name,
        created_at=now,
        ends_at=ends_at,
    )
    s.add(row)
    s.flush()
    return row


def active_silences(s: Session, *, org_id: int, now: datetime) -> list[AlertSilence]:
    return list(
        s.exec(
            select(AlertSilence)
            .where(
                AlertSilence.org_id == org_id,
                col(AlertSilence.ended_at).is_(None),
                col(AlertSilence.ends_at) > now,
            )
            .order_by(col(AlertSilence.ends_at))
        )
    )


def end_silence(
    s: Session, *, org_id: int, silence_id: int, user_id: str, now: datetime
) -> AlertSilence | None:
    """End a silence early; None when this organisation has no such silence in force."""
    row = s.exec(
        select(AlertSilence).where(AlertSilence.org_id == org_id, AlertSilence.id == silence_id)
    ).first()
    if row is None or row.ended_at is not None or row.ends_at <= now:
        return None
    row.ended_at, row.ended_by = now, user_id
    s.add(row)
    return row


# --- posted messages ----------------------------------------------------------------------------


def posts_of(s: Session, *, org_id: int, alert: Alert) -> list[AlertPost]:
    """The first message of the alert's current incident on each route."""
    return list(
        s.exec(
            select(AlertPost)
            .where(
                AlertPost.org_id == org_id,
                AlertPost.alert_id == alert.id,
                AlertPost.incident_at == alert.first_seen,
            )
            .order_by(col(AlertPost.id))
        )
    )


def record_post(
    s: Session,
    *,
    org_id: int,
    alert_id: int,
    route_id: int,
    incident_at: datetime,
    channel: str,
    ref: str,
    now: datetime,
) -> None:
    s.add(
        AlertPost(
            org_id=org_id,
            alert_id=alert_id,
            route_id=route_id,
            incident_at=incident_at,
            channel=channel,
            ref=ref,
            created_at=now,
        )
    )


def forget_route(s: Session, *, org_id: int, route_id: int) -> None:
    """A route is removed: its posts go with it."""
    for post in s.exec(
        select(AlertPost).where(AlertPost.org_id == org_id, AlertPost.route_id == route_id)
    ):
        s.delete(post)
