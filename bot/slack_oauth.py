"""Multi-workspace OAuth for the Slack app, stored in the cockpit's own database.

`CockpitInstallationStore` and `CockpitOAuthStateStore` implement slack_sdk's async store
interfaces on top of `storage.slack_store` (tokens encrypted with the services' SecretBox). They
are the storage side of the Slack surface, so they live in the core (`bot/`), not with the
adapter; their synchronous database calls run on the process's storage threads
(`run_blocking`, the adapter passes `Database.call`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.logs import SECRETS
from storage import slack_store
from storage.crypto import SecretBox
from storage.db import Database
from storage.slack_store import InstallationRecord
from tools.clock import Clock

log = logging.getLogger(__name__)

# What the bot asks for at install time (kept in step with slack-manifest.yml).
BOT_SCOPES = (
    "commands",
    "chat:write",
    "im:history",
    "channels:history",
    "groups:history",
    "app_mentions:read",
    "files:write",
    "users:read",
    "assistant:write",
)
OAUTH_STATE_TTL_SECONDS = 600

InstallerNameLookup = Callable[[Installation], Awaitable[str | None]]
# Runs synchronous database work off the event loop (the adapter passes `Database.call`).
RunBlocking = Callable[..., Awaitable[Any]]


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value))


def _scopes(value: Any) -> str:
    if not value:
        return ""
    return value if isinstance(value, str) else ",".join(value)


def to_record(installation: Installation, *, client_id: str, now: datetime) -> InstallationRecord:
    return InstallationRecord(
        client_id=client_id,
        app_id=installation.app_id,
        enterprise_id=installation.enterprise_id,
        enterprise_name=installation.enterprise_name,
        enterprise_url=installation.enterprise_url,
        team_id=installation.team_id,
        team_name=installation.team_name,
        bot_token=installation.bot_token,
        bot_id=installation.bot_id,
        bot_user_id=installation.bot_user_id,
        bot_scopes=_scopes(installation.bot_scopes),
        bot_refresh_token=installation.bot_refresh_token,
        bot_token_expires_at=_as_datetime(installation.bot_token_expires_at),
        user_id=installation.user_id,
        user_token=installation.user_token,
        user_scopes=_scopes(installation.user_scopes),
        user_refresh_token=installation.user_refresh_token,
        user_token_expires_at=_as_datetime(installation.user_token_expires_at),
        incoming_webhook_url=installation.incoming_webhook_url,
        incoming_webhook_channel=installation.incoming_webhook_channel,
        incoming_webhook_channel_id=installation.incoming_webhook_channel_id,
        incoming_webhook_configuration_url=installation.incoming_webhook_configuration_url,
        is_enterprise_install=bool(installation.is_enterprise_install),
        token_type=installation.token_type,
        installed_at=now,
    )


def to_installation(record: InstallationRecord) -> Installation:
    return Installation(
        app_id=record.app_id,
        enterprise_id=record.enterprise_id,
        enterprise_name=record.enterprise_name,
        enterprise_url=record.enterprise_url,
        team_id=record.team_id,
        team_name=record.team_name,
        bot_token=record.bot_token,
        bot_id=record.bot_id,
        bot_user_id=record.bot_user_id,
        bot_scopes=record.bot_scopes,
        bot_refresh_token=record.bot_refresh_token,
        bot_token_expires_at=_epoch(record.bot_token_expires_at),
        user_id=record.user_id,
        user_token=record.user_token,
        user_scopes=record.user_scopes,
        user_refresh_token=record.user_refresh_token,
        user_token_expires_at=_epoch(record.user_token_expires_at),
        incoming_webhook_url=record.incoming_webhook_url,
        incoming_webhook_channel=record.incoming_webhook_channel,
        incoming_webhook_channel_id=record.incoming_webhook_channel_id,
        incoming_webhook_configuration_url=record.incoming_webhook_configuration_url,
        is_enterprise_install=record.is_enterprise_install,
        token_type=record.token_type,
        installed_at=record.installed_at.timestamp(),
    )


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


class CockpitInstallationStore(AsyncInstallationStore):
    """Installations in our database. Saving one makes the installer owner of a new workspace."""

    def __init__(
        self,
        *,
        db: Database,
        box: SecretBox,
        client_id: str,
        clock: Clock,
        installer_name: InstallerNameLookup | None = None,
        run_blocking: RunBlocking = asyncio.to_thread,
    ) -> None:
        self.db = db
        self.box = box
        self.client_id = client_id
        self.clock = clock
        self.installer_name = installer_name
        self._run = run_blocking
        self._logger = log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_save(self, installation: Installation) -> None:
        record = to_record(installation, client_id=self.client_id, now=self.clock.now())
        for value in (record.bot_token, record.user_token, record.bot_refresh_token):
            SECRETS.add(value)
        name = None
        if self.installer_name is not None:
            try:
                name = await self.installer_name(installation)
            except Exception:  # a display name is a nicety; the install must not fail for it
                log.warning("could not look up the installer's name", exc_info=True)

        def save() -> None:
            with self.db.session() as s:
                slack_store.save_installation(
                    s, record=record, box=self.box, now=self.clock.now(), installer_name=name
                )

        await self._run(save)
        log.info(
            "Slack app installed in team %s (enterprise %s) by %s",
            record.team_id,
            record.enterprise_id,
            record.user_id,
        )

    async def async_save_bot(self, bot: Bot) -> None:
        # Bots are saved as part of their installation (async_save); nothing extra to keep.
        return None

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        record = await self._run(
            self._find_bot, enterprise_id, team_id, bool(is_enterprise_install)
        )
        if record is None or not record.bot_token:
            return None
        SECRETS.add(record.bot_token)
        return to_installation(record).to_bot()

    def _find_bot(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise: bool
    ) -> InstallationRecord | None:
        with self.db.read_session() as s:  # every event's authorize: a read, no transaction
            return slack_store.find_bot(
                s,
                client_id=self.client_id,
                enterprise_id=enterprise_id,
                team_id=team_id,
                box=self.box,
                is_enterprise_install=is_enterprise,
            )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        def find() -> InstallationRecord | None:
            with self.db.read_session() as s:
                return slack_store.find_installation(
                    s,
                    client_id=self.client_id,
                    enterprise_id=enterprise_id,
                    team_id=team_id,
                    user_id=user_id,
                    box=self.box,
                    is_enterprise_install=bool(is_enterprise_install),
                )

        record = await self._run(find)
        if record is None:
            return None
        SECRETS.add(record.bot_token)
        SECRETS.add(record.user_token)
        return to_installation(record)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        def delete() -> None:
            with self.db.session() as s:
                slack_store.delete_bot(
                    s, client_id=self.client_id, enterprise_id=enterprise_id, team_id=team_id
                )

        await self._run(delete)

    async def async_delete_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
    ) -> None:
        def delete() -> None:
            with self.db.session() as s:
                slack_store.delete_installation(
                    s,
                    client_id=self.client_id,
                    enterprise_id=enterprise_id,
                    team_id=team_id,
                    user_id=user_id,
                )

        await self._run(delete)


class CockpitOAuthStateStore(AsyncOAuthStateStore):
    """One-time OAuth `state` values with a TTL, in our database (works across replicas)."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        ttl_seconds: int = OAUTH_STATE_TTL_SECONDS,
        run_blocking: RunBlocking = asyncio.to_thread,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self._run = run_blocking
        self._logger = log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)

        def issue() -> None:
            with self.db.session() as s:
                slack_store.issue_state(
                    s, state=state, now=self.clock.now(), ttl_seconds=self.ttl_seconds
                )

        await self._run(issue)
        return state

    async def async_consume(self, state: str) -> bool:
        def consume() -> bool:
            with self.db.session() as s:
                return slack_store.consume_state(s, state=state, now=self.clock.now())

        return await self._run(consume)
