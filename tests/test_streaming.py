"""The pace of a streamed answer (bot.streaming.Throttle), on a fake clock."""

from __future__ import annotations

from bot.streaming import Throttle
from tools.clock import FakeClock


async def test_throttle_allows_one_write_per_interval_from_the_end_of_the_last() -> None:
    clock = FakeClock()
    throttle = Throttle(1.2, now=clock.monotonic, sleep=clock.sleep)
    assert throttle.ready()  # the first write is never held back
    await throttle.wait()
    throttle.wrote()
    start = clock.monotonic()
    clock.advance(0.5)
    assert not throttle.ready()
    await throttle.wait()  # sleeps out the remaining 0.7 s
    assert round(clock.monotonic() - start, 6) == 1.2 and throttle.ready()
