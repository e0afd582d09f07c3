"""This process among the running ones: registered at start, a heartbeat every
`HEARTBEAT_SECONDS`, removed at a clean stop (see storage.instances). Work this process has in
flight carries its id, so a process starting elsewhere leaves it alone while the heartbeat
lasts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from storage import instances
from storage.db import DatabaseUnavailable
from tools.services import Services

log = logging.getLogger(__name__)


class Presence:
    def __init__(self, services: Services, *, every: float = instances.HEARTBEAT_SECONDS) -> None:
        self.services = services
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.services
        await s.db.run(
            instances.register,
            instance=s.instance,
            host=socket.gethostname(),
            pid=os.getpid(),
            now=s.clock.now(),
        )
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="presence")

    async def _beat(self) -> None:
        # Real seconds, not the cockpit clock: the heartbeat is about this process being alive.
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.services.db.run(
                    instances.heartbeat,
                    instance=self.services.instance,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    now=self.services.clock.now(),
                )
            except DatabaseUnavailable:
                log.warning("could not record this process's heartbeat: database not answering")
            except Exception:
                log.exception("could not record this process's heartbeat")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await self.services.db.run(instances.remove, instance=self.services.instance)
        except Exception:  # stopping: the row goes stale on its own
            log.warning("could not remove this process's instance row", exc_info=True)
