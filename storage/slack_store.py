"""Slack installations and OAuth states, behind small functions.

Tokens go in and come out in plain text (`InstallationRecord`) and are encrypted at rest with the
caller's `SecretBox`. Saving an installation of a new workspace also creates that workspace's
organisation and makes the installer its owner. Nothing here knows about slack_sdk: the Slack
adapter converts its `Installation` objects to and from `InstallationRecord`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage import orgs
from storage.crypto import SecretBox
from storage.slack_models import SlackInstallation, SlackOAuthState

OWNER_ROLE = "owner"
DEFAULT_STATE_TTL_SECONDS = 600


class InstallationRecord(BaseModel):
    """One Slack installation with its tokens in plain text (never logged, never persisted so)."""

    client_id: str
    app_id: str | None = None
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    enterprise_url: str | None = None
    team_id: str | None = None
    team_name: str | None = None
    bot_token: str | None = None
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: str = ""
    bot_refresh_token: str | None = None
    bot_token_expires_at: datetime | None = None
    user_id: str
    user_token: str | None = None
    user_scopes: str = ""
    user_refresh_token: str | None = None
    user_token_expires_at: datetime | None = None
    incoming_webhook_url: str | None = None
    incoming_webhook_channel: str | None = None
    incoming_webhook_channel_id: str | None = None
    incoming_webhook_configuration_url: str | None = None
    is_enterprise_install: bool = False
    token_type: str | None = None
    installed_at: datetime
    org_id: int | None = None

    def __repr__(self) -> str:  # tokens stay out of reprs and tracebacks
        return (
            f"InstallationRecord(team_id={self.team_id!r}, enterprise_id={self.enterprise_id!r}, "
            f"user_id={self.user_id!r})"
        )

    __str__ = __repr__


_SECRET_FIELDS = {
    "bot_token": "bot_token_encrypted",
    "bot_refresh_token": "bot_refresh_token_encrypted",
    "user_token": "user_token_encrypted",
    "user_refresh_token": "user_refresh_token_encrypted",
    "incoming_webhook_url": "incoming_webhook_url_encrypted",
}
_PLAIN_FIELDS = (
    "app_id",
    "enterprise_name",
    "enterprise_url",
    "team_name",
    "bot_id",
    "bot_user_id",
    "bot_scopes",
    "bot_token_expires_at",
    "user_scopes",
    "user_token_expires_at",
    "incoming_webhook_channel",
    "incoming_webhook_channel_id",
    "incoming_webhook_configuration_url",
    "is_enterprise_install",
    "token_type",
    "installed_at",
)


def _key(value: str | None) -> str:
    return value or ""


def save_installation(
    s: Session,
    *,
    record: InstallationRecord,
    box: SecretBox,
    now: datetime,
    installer_name: str | None = None,
) -> SlackInstallation:
    """Insert or update the installation for (client, enterprise, team, installer).

    A workspace installation (not an org-wide Enterprise Grid one) is linked to the workspace's
    organisation, created on first sight; when that organisation has no members yet, the
    installer joins it as owner."""
    row = s.exec(
        select(SlackInstallation).where(
            SlackInstallation.client_id == record.client_id,
            SlackInstallation.enterprise_id == _key(record.enterprise_id),
            SlackInstallation.team_id == _key(record.team_id),
            SlackInstallation.user_id == record.user_id,
        )
    ).first()
    if row is None:
        row = SlackInstallation(
            client_id=record.client_id,
            enterprise_id=_key(record.enterprise_id),
            team_id=_key(record.team_id),
            user_id=record.user_id,
            installed_at=record.installed_at,
        )
    for name in _PLAIN_FIELDS:
        setattr(row, name, getattr(record, name))
    for plain, encrypted in _SECRET_FIELDS.items():
        value = getattr(record, plain)
        setattr(row, encrypted, box.encrypt(value) if value else None)
    if record.team_id and not record.is_enterprise_install:
        ws = orgs.ensure_workspace(
            s,
            platform="slack",
            external_id=record.team_id,
            name=record.team_name or record.team_id,
            now=now,
        )
        row.org_id = ws.org_id
        if orgs.count_members(s, org_id=ws.org_id) == 0:
            orgs.add_member(
                s,
                org_id=ws.org_id,
                platform="slack",
                platform_user_id=record.user_id,
                display_name=installer_name or record.user_id,
                role=OWNER_ROLE,
                now=now,
            )
    s.add(row)
    s.flush()
    return row


def _to_record(row: SlackInstallation, box: SecretBox) -> InstallationRecord:
    data = {name: getattr(row, name) for name in _PLAIN_FIELDS}
    for plain, encrypted in _SECRET_FIELDS.items():
        token = getattr(row, encrypted)
        data[plain] = box.decrypt(token) if token else None
    return InstallationRecord(
        client_id=row.client_id,
        enterprise_id=row.enterprise_id or None,
        team_id=row.team_id or None,
        user_id=row.user_id,
        org_id=row.org_id,
        **data,
    )


def _scope(client_id: str, enterprise_id: str | None, team_id: str | None, is_enterprise: bool):
    conditions = [
        SlackInstallation.client_id == client_id,
        SlackInstallation.enterprise_id == _key(enterprise_id),
    ]
    if not is_enterprise:
        # An org-wide install answers for every team of the enterprise; others need the team.
        conditions.append(SlackInstallation.team_id == _key(team_id))
    return conditions


def find_installation(
    s: Session,
    *,
    client_id: str,
    enterprise_id: str | None,
    team_id: str | None,
    box: SecretBox,
    user_id: str | None = None,
    is_enterprise_install: bool = False,
) -> InstallationRecord | None:
    """The installation of `user_id`, or the newest one of the workspace when no user is given.
    The newest bot token of the workspace always wins (a later installer refreshes it)."""
    base = _scope(client_id, enterprise_id, team_id, is_enterprise_install)
    query = select(SlackInstallation).where(*base)
    if user_id is not None:
        query = query.where(SlackInstallation.user_id == user_id)
    row = s.exec(
        query.order_by(col(SlackInstallation.installed_at).desc(), col(SlackInstallation.id).desc())
    ).first()
    if row is None:
        return None
    record = _to_record(row, box)
    if user_id is not None:
        latest = find_bot(
            s,
            client_id=client_id,
            enterprise_id=enterprise_id,
            team_id=team_id,
            box=box,
            is_enterprise_install=is_enterprise_install,
        )
        if latest is not None:
            for name in ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token"):
                setattr(record, name, getattr(latest, name))
            record.bot_token_expires_at = latest.bot_token_expires_at
    return record


def find_bot(
    s: Session,
    *,
    client_id: str,
    enterprise_id: str | None,
    team_id: str | None,
    box: SecretBox,
    is_enterprise_install: bool = False,
) -> InstallationRecord | None:
    """The newest installation of the workspace that still has a bot token."""
    row = s.exec(
        select(SlackInstallation)
        .where(
            *_scope(client_id, enterprise_id, team_id, is_enterprise_install),
            col(SlackInstallation.bot_token_encrypted).is_not(None),
        )
        .order_by(col(SlackInstallation.installed_at).desc(), col(SlackInstallation.id).desc())
    ).first()
    return _to_record(row, box) if row else None


def delete_bot(
    s: Session, *, client_id: str, enterprise_id: str | None, team_id: str | None
) -> int:
    """Forget the bot tokens of a workspace (tokens revoked / app uninstalled)."""
    rows = s.exec(
        select(SlackInstallation).where(*_scope(client_id, enterprise_id, team_id, False))
    ).all()
    for row in rows:
        row.bot_token_encrypted = None
        row.bot_refresh_token_encrypted = None
        s.add(row)
    return len(rows)


def delete_installation(
    s: Session,
    *,
    client_id: str,
    enterprise_id: str | None,
    team_id: str | None,
    user_id: str | None = None,
) -> int:
    """Forget installations. With `user_id` (that user's token was revoked) only their user
    token goes: the row may still hold the workspace's bot token. Without it (app uninstalled)
    every row of the workspace is deleted."""
    if user_id is not None:
        rows = s.exec(
            select(SlackInstallation).where(
                *_scope(client_id, enterprise_id, team_id, False),
                SlackInstallation.user_id == user_id,
            )
        ).all()
        for row in rows:
            row.user_token_encrypted = None
            row.user_refresh_token_encrypted = None
            row.user_scopes = ""
            s.add(row)
        return len(rows)
    result = s.execute(
        delete(SlackInstallation).where(*_scope(client_id, enterprise_id, team_id, False))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def issue_state(
    s: Session, *, state: str, now: datetime, ttl_seconds: int = DEFAULT_STATE_TTL_SECONDS
) -> SlackOAuthState:
    """Remember an OAuth `state` for `ttl_seconds` (and sweep the expired ones)."""
    s.execute(delete(SlackOAuthState).where(col(SlackOAuthState.expires_at) <= now))
    row = SlackOAuthState(
        state=state, created_at=now, expires_at=now + timedelta(seconds=ttl_seconds)
    )
    s.add(row)
    s.flush()
    return row


def consume_state(s: Session, *, state: str, now: datetime) -> bool:
    """True exactly once for a state that was issued and has not expired."""
    result = s.execute(
        delete(SlackOAuthState).where(
            col(SlackOAuthState.state) == state, col(SlackOAuthState.expires_at) > now
        )
    )
    return bool(getattr(result, "rowcount", 0) == 1)
