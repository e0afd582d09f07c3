"""The shipped test harness: boot the whole bot on a temporary database and fake time, then talk
to it like a user: `reply = await bot.send("/whoami", user="alice", role="member")`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bot.app import Cockpit
from bot.settings import Settings
from tools.clock import FakeClock
from tools.contract import Platform, Registry, Reply, RequestContext, Role


class BotHarness:
    def __init__(self, cockpit: Cockpit, clock: FakeClock) -> None:
        self.cockpit = cockpit
        self.clock = clock
        self.progress: list[str] = []

    @property
    def services(self) -> Any:
        return self.cockpit.services

    def ctx(
        self,
        *,
        user: str = "alice",
        role: Role | str | None = None,
        platform: Platform = Platform.console,
        workspace: str = "local",
        channel: str | None = "console",
        thread: str | None = None,
        idempotency_key: str | None = None,
    ) -> RequestContext:
        return self.cockpit.context_for(
            platform=platform,
            workspace_id=workspace,
            workspace_name=workspace,
            user_id=user,
            display_name=user,
            role=Role(role) if role else None,
            channel=channel,
            thread=thread,
            idempotency_key=idempotency_key,
        )

    async def _progress(self, text: str) -> None:
        self.progress.append(text)

    async def send(self, text: str, **who: Any) -> Reply:
        return await self.cockpit.handle(self.ctx(**who), text, progress=self._progress)

    async def approve(self, approval_id: int | None, **who: Any) -> Reply:
        assert approval_id is not None, "the reply asked for no approval"
        return await self.cockpit.approve(self.ctx(**who), approval_id, progress=self._progress)

    async def cancel(self, approval_id: int | None, **who: Any) -> Reply:
        assert approval_id is not None
        return await self.cockpit.cancel(self.ctx(**who), approval_id)


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "COCKPIT_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cockpit.db'}",
        "COCKPIT_SECRET_KEY": Fernet.generate_key().decode(),
        "COCKPIT_SANDBOX": "on",
        "COCKPIT_SANDBOX_READY_SECONDS": 5,
        "COCKPIT_SANDBOX_STATE": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    registry: Registry | None = None,
    clock: FakeClock | None = None,
    **overrides: Any,
) -> AsyncIterator[BotHarness]:
    clock = clock or FakeClock()
    cockpit = Cockpit(test_settings(tmp_path, **overrides), clock=clock, registry=registry)
    await cockpit.start()
    try:
        yield BotHarness(cockpit, clock)
    finally:
        await cockpit.stop()
