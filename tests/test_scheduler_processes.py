"""The scheduler lease across real OS processes: two `BackgroundJobs` schedulers on one database
(a SQLite file, and PostgreSQL when COCKPIT_TEST_POSTGRES_URL is set) run each tick once; when
the owner is SIGKILLed, the other takes over once the lease has expired, and not before. Plus the
race on the lease row's first INSERT, made deterministic.

Each process is tests/lease_worker.py: the real APScheduler wiring and lease with a 2 s lease,
1 s renewal and a cheap job every second that journals itself to a file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lease_worker import TICK_SECONDS

from bot.background.scheduler import Lease
from storage.db import Database
from tools.clock import FakeClock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

HELPER = Path(__file__).with_name("lease_worker.py")
ROOT = Path(__file__).resolve().parents[1]
TTL_SECONDS = 2
STARTUP_TIMEOUT = 20.0  # two interpreters importing the bot on a loaded machine
TAKEOVER_MARGIN = 3.0  # beyond the lease: the survivor's next renewal (1 s) and slack for load


class Worker:
    """One scheduler process and its journal of job runs (see tests/lease_worker.py)."""

    def __init__(self, name: str, url: str, tmp_path: Path) -> None:
        self.name = name
        self.journal = tmp_path / f"{name}.jsonl"
        self.log = tmp_path / f"{name}.log"
        self.journal.touch()
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HELPER), url, name, str(TTL_SECONDS), str(self.journal)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def events(self, kind: str) -> list[dict[str, Any]]:
        lines = self.journal.read_text(encoding="utf-8").splitlines(keepends=True)
        # A line still being written has no newline yet: leave it for the next poll.
        return [
            e for e in map(json.loads, (x for x in lines if x.endswith("\n"))) if e["event"] == kind
        ]

    def runs(self) -> list[dict[str, Any]]:
        return self.events("run")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()  # SIGKILL: no cleanup, no lease release
        self.proc.wait(timeout=10)

    def report(self) -> str:
        return (
            f"--- {self.name} (exit {self.proc.poll()}) journal:\n"
            f"{self.journal.read_text(encoding='utf-8')}"
            f"--- {self.name} log:\n{self.log.read_text(errors='replace')[-4000:]}"
        )


@pytest.fixture
def spawn(database: Database, tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(name, database.url, tmp_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    alive: list[Worker],
    everyone: list[Worker],
) -> float:
    """Poll until `condition` holds; fail early if a process that must live has exited.
    Returns the seconds waited."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        dead = [w.name for w in alive if not w.alive()]
        waited = time.monotonic() - start
        if dead or waited > timeout:
            why = f"{', '.join(dead)} exited" if dead else f"timed out after {waited:.1f}s"
            pytest.fail(f"{why} waiting for {what}\n" + "\n".join(w.report() for w in everyone))
        time.sleep(0.05)


def test_one_owner_runs_each_tick_and_the_other_takes_over_after_sigkill(
    spawn: Callable[[str], Worker],
) -> None:
    a, b = spawn("a"), spawn("b")
    both = [a, b]

    def owners() -> list[Worker]:
        return [w for w in both if w.runs()]

    # 1. Both contend from the start (racing to create the lease row). One runs the ticks; the
    #    other's lease gate refuses it at least twice meanwhile.
    def contended() -> bool:
        if len(owners()) != 1:
            return len(owners()) > 1  # both ran: stop waiting, the assertion below reports it
        owner = owners()[0]
        other = b if owner is a else a
        skips = other.events("skip")
        return len(skips) >= 2 and sum(r["tick"] >= skips[0]["tick"] for r in owner.runs()) >= 2

    wait_for(contended, STARTUP_TIMEOUT, "one owner while the other is refused", both, both)
    details = "\n".join(w.report() for w in both)
    assert len(owners()) == 1, f"both processes ran the job while both were alive\n{details}"
    owner = owners()[0]
    survivor = b if owner is a else a
    ticks = [r["tick"] for r in owner.runs()]
    assert len(ticks) == len(set(ticks)), f"a tick ran twice\n{details}"
    assert set(ticks) & {s["tick"] for s in survivor.events("skip")}, (
        f"the refused ticks should be the same occurrences the owner ran\n{details}"
    )

    # 2. SIGKILL the owner: its lease is neither renewed nor released.
    owner.kill()
    killed_at = time.time()
    last_owner_run = owner.runs()[-1]  # final now that the process is gone
    waited = wait_for(
        lambda: bool(survivor.runs()),
        TTL_SECONDS + TAKEOVER_MARGIN,
        "the survivor to take over",
        [survivor],
        both,
    )
    first = survivor.runs()[0]
    details = "\n".join(w.report() for w in both)
    # Not before the lease expired: the owner's last acquisition (at or after t0) was good for
    # the TTL, and both processes read the same wall clock.
    assert first["at"] >= last_owner_run["t0"] + TTL_SECONDS, f"took over early\n{details}"
    assert first["at"] - killed_at <= TTL_SECONDS + TAKEOVER_MARGIN, details
    assert waited <= TTL_SECONDS + TAKEOVER_MARGIN

    # 3. It keeps running the job, and no tick ever ran twice across the two processes.
    wait_for(
        lambda: len(survivor.runs()) >= 2,
        2 * TICK_SECONDS + TAKEOVER_MARGIN,
        "the survivor's next run",
        [survivor],
        both,
    )
    details = "\n".join(w.report() for w in both)
    survivor_ticks = [r["tick"] for r in survivor.runs()]
    all_ticks = ticks + survivor_ticks
    assert len(all_ticks) == len(set(all_ticks)), f"a tick ran twice\n{details}"
    assert min(survivor_ticks) > max(ticks), details
    for worker in both:
        assert "Traceback" not in worker.log.read_text(errors="replace"), details


@pytest.mark.parametrize(("first", "holds"), [("a", True), ("b", False)])
def test_losing_the_first_insert_race(database: Database, first: str, holds: bool) -> None:
    """Between our UPDATE (no row yet) and our INSERT, someone inserts the row: another process
    (we must not hold the lease), or this process's renewal job, which APScheduler runs on a
    thread while `run_job` acquires on the loop (we hold it and must say so)."""
    clock = FakeClock()
    ours, theirs = Lease(database, clock, owner="a"), Lease(database, clock, owner=first)
    insert = ours._insert

    def racing_insert(now: Any) -> bool:
        assert theirs.try_acquire()
        return insert(now)

    ours._insert = racing_insert  # type: ignore[method-assign]
    assert ours.try_acquire() is holds and ours.held is holds
    clock.advance(1)
    assert theirs.try_acquire()  # the row's holder still renews
