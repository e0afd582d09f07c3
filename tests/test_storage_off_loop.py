"""Storage off the event loop (issue 17): the storage threads, a database that does not answer,
round trips of a command's units of work, and scheduler runs that are skipped."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import event

from bot.background.scheduler import BackgroundJobs
from bot.testing import BotHarness
from storage.db import DATABASE_DOWN_TEXT, Database, DatabaseUnavailable
from storage.models import AuditEvent
from tools.metrics import SCHEDULER_RUNS


async def test_units_run_on_storage_threads_and_commit(database: Database) -> None:
    loop_thread = threading.get_ident()

    def where(s: Any) -> int:
        return threading.get_ident()

    assert await database.run(where) != loop_thread
    assert await database.read(where) != loop_thread
    assert await database.call(threading.get_ident) != loop_thread
    await database.ping()


async def test_a_database_that_does_not_answer_says_so(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'slow.db'}", answer_seconds=0.05)
    gate = threading.Event()
    try:
        try:
            await db.call(gate.wait, 5)
        except DatabaseUnavailable as exc:
            assert str(exc) == DATABASE_DOWN_TEXT
        else:
            raise AssertionError("expected DatabaseUnavailable")
    finally:
        gate.set()
        db.dispose()


async def test_a_command_while_the_database_is_down_gets_the_clear_message(
    cockpit: BotHarness, monkeypatch: Any
) -> None:
    await cockpit.send("/whoami", user="owner1")
    ctx = cockpit.ctx(user="owner1")

    async def down(*_: Any, **__: Any) -> Any:
        raise DatabaseUnavailable("test")

    monkeypatch.setattr(cockpit.cockpit.db, "_submit", down)  # every unit of work goes there
    reply = await cockpit.cockpit.handle(ctx, "/whoami")
    assert not reply.ok and "The database is not answering" in reply.text


async def test_one_command_is_few_statements_and_one_outcome_row(cockpit: BotHarness) -> None:
    await cockpit.send("/deployments", user="owner1")
    ctx = cockpit.ctx(user="owner1").model_copy(update={"idempotency_key": "slack:t-1"})
    statements: list[str] = []

    def record(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        statements.append(sql.split()[0].upper())

    engines = {cockpit.cockpit.db.engine, cockpit.cockpit.db._read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        reply = await cockpit.cockpit.handle(ctx, "/deployments")
        again = await cockpit.cockpit.handle(ctx, "/deployments")
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert reply.ok and again.footer and "already handled" in again.footer
    # claim + the daily count + allowed row, the read, outcome row + stored answer; the replay:
    # claim + read back, nothing counted (on PostgreSQL the claim and the count are one
    # statement: tests/test_storage.py)
    assert statements.count("INSERT") == 5 and statements.count("SAVEPOINT") == 0, statements
    with cockpit.services.db.session() as s:
        rows = s.query(AuditEvent).filter(AuditEvent.tool == "list_deployments").all()
    assert [r.outcome for r in rows][-2:] == ["allowed", "succeeded"]


async def test_skipped_scheduler_runs_are_counted_and_logged(caplog: Any) -> None:
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

    def count(outcome: str) -> float:
        return SCHEDULER_RUNS.labels(job="health", outcome=outcome)._value.get()

    overrun, missed = count("overrun"), count("missed")
    BackgroundJobs.on_skipped(
        SimpleNamespace(code=EVENT_JOB_MAX_INSTANCES, job_id="health", scheduled_run_time=None)
    )
    BackgroundJobs.on_skipped(
        SimpleNamespace(code=EVENT_JOB_MISSED, job_id="health", scheduled_run_time=None)
    )
    assert count("overrun") == overrun + 1 and count("missed") == missed + 1
    assert "overran its interval" in caplog.text


async def test_first_sightings_at_once_make_one_member(cockpit: BotHarness) -> None:
    from tools.contract import Platform

    ctxs = await asyncio.gather(
        *(
            cockpit.cockpit.context(
                platform=Platform.slack,
                workspace_id="TNEW",
                workspace_name="new",
                user_id="UNEW",
                display_name="new",
            )
            for _ in range(5)
        )
    )
    assert len({c.member_id for c in ctxs}) == 1 and len({c.org_id for c in ctxs}) == 1


async def test_health_sweep_spans_pages_and_runs_no_sql_on_the_loop(
    cockpit: BotHarness, monkeypatch: Any
) -> None:
    """Pages are read ahead and checked under one semaphore; every deployment of every page is
    checked and written, and nothing in the sweep runs SQL on the event loop's thread."""
    from datetime import timedelta
    from decimal import Decimal

    from storage import deployments
    from storage.db import DB_ON_LOOP
    from storage.models import Deployment
    from tools import monitor

    monkeypatch.setattr(monitor, "SWEEP_PAGE", 3)
    emulator = cockpit.cockpit.runpod.emulator
    orgs = [cockpit.ctx(user="owner1", workspace=w).org_id for w in ("T1", "T2")]
    body = {
        "name": "sweep",
        "type": "QUEUE",
        "image": "runpod/worker-v1-vllm:v2.25.2",
        "env": {"MODEL_NAME": "Qwen/Qwen2.5-0.5B-Instruct", "MAX_MODEL_LEN": "4096"},
        "gpu": {"pools": ["ADA_24"], "count": 1},
        "workers": {"min": 1, "max": 1, "idleTimeout": 5},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    }
    before = cockpit.clock.now() - timedelta(hours=1)
    with cockpit.services.db.session() as s:
        for i in range(8):
            s.add(
                Deployment(
                    org_id=orgs[i % 2],
                    name=f"d{i}",
                    model_id="Qwen/Qwen2.5-0.5B-Instruct",
                    mode="serverless",
                    gpu_pool="ADA_24",
                    gpu_count=1,
                    status="healthy",
                    price_per_hour=Decimal("0.5"),
                    created_by="t",
                    provider_endpoint_id=emulator.add_endpoint(dict(body, name=f"sweep-{i}")),
                    idempotency_key=f"sweep-{i}",
                    created_at=before,
                    updated_at=before,
                    health_state="healthy",
                )
            )
    on_loop = DB_ON_LOOP._value.get()
    await cockpit.cockpit.background().run_job("health")
    assert DB_ON_LOOP._value.get() == on_loop
    with cockpit.services.db.session() as s:
        swept = [
            d
            for org in orgs
            for d in deployments.list_for(s, org_id=org, statuses=monitor.MONITORED)
            if d.name.startswith("d")
        ]
    assert len(swept) == 8
    assert all(d.last_health_at is not None and d.last_health_at > before for d in swept)


async def test_start_up_migrates_and_recovers_without_sql_on_the_loop(tmp_path: Path) -> None:
    """Start-up (migrations, interrupted-deploy recovery) keeps the loop free: in web mode
    /healthz already answers while the schema is brought up to date."""
    from bot.app import Cockpit
    from bot.testing import test_settings
    from storage.db import DB_ON_LOOP

    before = DB_ON_LOOP._value.get()
    cockpit = Cockpit(test_settings(tmp_path))
    await cockpit.start()
    try:
        assert DB_ON_LOOP._value.get() == before
        assert await asyncio.to_thread(cockpit.db.is_current)
    finally:
        await cockpit.stop()
