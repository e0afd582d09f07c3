"""How often a streamed answer is written. Every surface shows a streamed answer (model chat,
Claude's text) as one message that grows: the first words at once, then edits, each platform
allowing only so many per second. `Throttle` keeps the pace: at most one write per `interval`
seconds, measured from the end of the previous write, on the clock the surface gives it (the
cockpit clock on Discord, so tests control time)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class Throttle:
    def __init__(
        self,
        interval: float,
        *,
        now: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.interval = interval
        self._now = now
        self._sleep = sleep
        self.last: float | None = None  # when the previous write ended

    def ready(self) -> bool:
        """No write yet, or the previous one is at least `interval` old."""
        return self.last is None or self._now() - self.last >= self.interval

    async def wait(self) -> None:
        """Wait out the rest of the interval since the previous write (if any)."""
        if self.last is not None:
            remaining = self.last + self.interval - self._now()
            if remaining > 0:
                await self._sleep(remaining)

    def wrote(self) -> None:
        """A write just ended (or failed: the next try waits a whole interval too)."""
        self.last = self._now()
