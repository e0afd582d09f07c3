"""Slack app installations (multi-workspace OAuth) and OAuth `state` values.

Kept apart from `storage.models` so the Slack surface owns its tables; `storage.models` imports
this module at its end so every user of the metadata (alembic, tests) sees them.

Tokens are stored encrypted (`*_encrypted`, Fernet via `storage.crypto.SecretBox`). Missing
enterprise / team ids are stored as "" rather than NULL so the unique constraint holds on both
engines (NULLs never collide in a UNIQUE index).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _secret_column() -> Column[str]:
    return Column(Text(), nullable=True)


class SlackInstallation(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("client_id", "enterprise_id", "team_id", "user_id"),
        Index("ix_slackinstallation_lookup", "client_id", "enterprise_id", "team_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    org_id: int | None = Field(default=None, foreign_key="organization.id")
    client_id: str
    app_id: str | None = None
    enterprise_id: str = ""
    enterprise_name: str | None = None
    enterprise_url: str | None = None
    team_id: str = ""
    team_name: str | None = None
    bot_token_encrypted: str | None = Field(default=None, sa_column=_secret_column())
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: str = ""
    bot_refresh_token_encrypted: str | None = Field(default=None, sa_column=_secret_column())
    bot_token_expires_at: datetime | None = None
    user_id: str
    user_token_encrypted: str | None = Field(default=None, sa_column=_secret_column())
    user_scopes: str = ""
    user_refresh_token_encrypted: str | None = Field(default=None, sa_column=_secret_column())
    user_token_expires_at: datetime | None = None
    incoming_webhook_url_encrypted: str | None = Field(default=None, sa_column=_secret_column())
    incoming_webhook_channel: str | None = None
    incoming_webhook_channel_id: str | None = None
    incoming_webhook_configuration_url: str | None = None
    is_enterprise_install: bool = False
    token_type: str | None = None
    installed_at: datetime


class SlackOAuthState(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(unique=True)
    created_at: datetime
    expires_at: datetime = Field(index=True)
