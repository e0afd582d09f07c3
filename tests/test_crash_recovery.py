"""A deploy killed at any step leaves nothing behind once the bot starts again: no resource at
the provider, no deployment stuck in a non-terminal state, no approval stuck in `executing`.

The kill is simulated in-process, faithfully: at the hook point the committed database and the
emulator's account are copied aside (what a SIGKILL leaves on disk), and a fresh bot boots on
that copy; whatever the dying bot does after that point (compensation included) is discarded,
because a killed process does none of it. One step is also killed for real (SIGKILL of a
console subprocess), the one the audit hit: between RunPod's create and the database write.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from bot.testing import BotHarness, running_bot
from storage import approvals, deployments, orgs
from storage.db import Database
from storage.models import Approval, BenchRun, Deployment
from tools.clock import FakeClock
from tools.runpod.client import RunPodClient
from tools.runpod.models import CreateTemplateRequest
from tools.runpod.sandbox import persist

ROOT = Path(__file__).resolve().parents[1]
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
TERMINAL = {"healthy", "stopped", "failed", "deleted"}
WAIT_SECONDS = 60
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the bot catches a BaseException it does not expect."""


@dataclass(frozen=True)
class Step:
    mode: str  # serverless | pod
    method: str  # the RunPodClient call the kill is tied to
    when: str  # before | after (the call returned, nothing recorded yet)
    nth: int = 1  # the nth call of that method
    left: int = 0  # resources at the provider when the kill lands

    @property
    def id(self) -> str:
        return f"{self.mode}-{self.when}-{self.method}" + (f"#{self.nth}" if self.nth > 1 else "")


STEPS = [
    Step("serverless", "create_template", "before"),
    Step("serverless", "create_template", "after", left=1),  # template id not recorded
    Step("serverless", "create_endpoint", "before", left=1),  # template id recorded
    Step("serverless", "create_endpoint", "after", left=2),  # endpoint (bound) not recorded
    Step("serverless", "run", "before", left=2),  # endpoint id written to the database
    Step("serverless", "list_workers", "before", nth=2, left=2),  # waiting for a healthy worker
    Step("pod", "create_pod", "before"),
    Step("pod", "create_pod", "after", left=1),  # pod exists, its id not recorded
    Step("pod", "get_pod", "before", left=1),  # pod id written to the database
    Step("pod", "get_pod", "before", nth=2, left=1),  # waiting for the pod to run
]


def snapshot(bot: BotHarness, src: Path, dst: Path) -> None:
    """What a SIGKILL leaves: committed database rows and the provider's account as it is."""
    dst.mkdir()
    with sqlite3.connect(src / "cockpit.db") as live, sqlite3.connect(dst / "cockpit.db") as copy:
        live.backup(copy)
    emulator = bot.cockpit.runpod.emulator
    persist.write_atomic(
        dst / "sandbox-state.json", persist.dump_state(emulator.state, bot.clock.now())
    )


def kill_at(monkeypatch: pytest.MonkeyPatch, step: Step, on_kill: Callable[[], None]) -> None:
    original = getattr(RunPodClient, step.method)
    calls = 0

    async def wrapper(self: RunPodClient, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls != step.nth:
            return await original(self, *args, **kwargs)
        if step.when == "after":
            await original(self, *args, **kwargs)
        on_kill()
        raise Killed(step.id)

    monkeypatch.setattr(RunPodClient, step.method, wrapper)


def leftovers(bot: BotHarness) -> dict[str, Any]:
    state = bot.cockpit.runpod.emulator.state
    with bot.services.db.session() as s:
        deps = list(s.exec(select(Deployment)))
        rows = list(s.exec(select(Approval)))
    return {
        "resources": {
            "templates": sorted(t["name"] for t in state.templates.values()),
            "endpoints": sorted(e.name for e in state.endpoints.values()),
            "pods": sorted(p.name for p in state.pods.values()),
        },
        "deployments": [(d.id, d.status) for d in deps if d.status not in TERMINAL],
        "approvals": [(a.id, a.status) for a in rows if a.status in ("pending", "executing")],
        "approval_reasons": [a.result_text for a in rows if a.status == "failed"],
        "failure_reasons": [d.failure_reason for d in deps],
    }


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.id)
async def test_kill_at_each_saga_step_leaves_nothing_after_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: Step
) -> None:
    key = Fernet.generate_key().decode()
    first_dir, after_kill = tmp_path / "first", tmp_path / "after-kill"
    first_dir.mkdir()
    clock = FakeClock()
    async with running_bot(
        first_dir, clock=clock, COCKPIT_SECRET_KEY=key, COCKPIT_SANDBOX_STATE=True
    ) as bot:
        flag = " --mode pod" if step.mode == "pod" else ""
        ask = await bot.send(f"/deploy {MODEL}{flag}", user="alice")
        assert ask.approval_id is not None, ask.as_plain_text()
        kill_at(monkeypatch, step, lambda: snapshot(bot, first_dir, after_kill))
        with pytest.raises(Killed):
            await bot.approve(ask.approval_id, user="alice")
        monkeypatch.undo()
    assert after_kill.exists(), "the kill point was never reached"
    with sqlite3.connect(after_kill / "cockpit.db") as db:
        (executing,) = db.execute(
            "select count(*) from approval where status='executing'"
        ).fetchone()
    assert executing == 1  # as the kill left it
    saved = json.loads((after_kill / "sandbox-state.json").read_text())
    assert sum(len(saved[k]) for k in ("templates", "endpoints", "pods")) == step.left

    restart = FakeClock(clock.now() + timedelta(seconds=30))
    async with running_bot(
        after_kill, clock=restart, COCKPIT_SECRET_KEY=key, COCKPIT_SANDBOX_STATE=True
    ) as again:
        found = leftovers(again)
        assert found["resources"] == {"templates": [], "endpoints": [], "pods": []}, found
        assert found["deployments"] == [], found
        assert found["approvals"] == [], found
        assert found["approval_reasons"] == ["interrupted by a restart"], found
        assert all("restart" in (r or "") for r in found["failure_reasons"]), found
        reply = await again.send("/reconcile", user="alice")
        assert "No orphaned resources" in reply.as_plain_text(), reply.as_plain_text()


# --- a real SIGKILL between RunPod's create and the database write ----------------------------

KILL_AFTER_CREATE_ENDPOINT = textwrap.dedent(
    """
    import os, signal, sys
    from tools.runpod.client import RunPodClient

    original = RunPodClient.create_endpoint

    async def create_then_die(self, *args, **kwargs):
        await original(self, *args, **kwargs)  # RunPod has the endpoint now
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the database never hears of it

    RunPodClient.create_endpoint = create_then_die
    sys.argv = ["cockpit", "console", "--yes", "--user", "alice"]
    from bot.cli import main
    main()
    """
)


def console(data: Path, code: str | None = None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "COCKPIT_DATA_DIR": str(data),
        "COCKPIT_SANDBOX": "on",
        "COCKPIT_SANDBOX_READY_SECONDS": "600",
        "COCKPIT_SANDBOX_STATE": "true",
    }
    env.pop("DATABASE_URL", None)
    argv = ["-c", code] if code else ["-m", "bot.cli", "console", "--yes", "--user", "alice"]
    return subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def sandbox_names(data: Path) -> dict[str, list[str]]:
    state = json.loads((data / "sandbox-state.json").read_text())
    return {
        kind: sorted(
            r.get("name") or r.get("config", {}).get("name", "?") for r in state.get(kind) or []
        )
        for kind in ("templates", "endpoints", "pods")
    }


def db_rows(data: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with sqlite3.connect(data / "cockpit.db") as db:
        deps = db.execute(
            "select id, status, provider_template_id, provider_endpoint_id, failure_reason "
            "from deployment"
        ).fetchall()
        rows = db.execute("select id, status, result_text from approval").fetchall()
    return deps, rows


def test_sigkill_between_create_endpoint_and_the_database_write(tmp_path: Path) -> None:
    proc = console(tmp_path, KILL_AFTER_CREATE_ENDPOINT)
    proc.communicate(f"/deploy {MODEL}\n", timeout=WAIT_SECONDS)
    assert proc.returncode == -signal.SIGKILL
    names = sandbox_names(tmp_path)
    assert len(names["templates"]) == 1 and len(names["endpoints"]) == 1, names
    deps, rows = db_rows(tmp_path)
    assert [(d[1], d[3]) for d in deps] == [("creating", None)]  # endpoint id never written
    assert [r[1] for r in rows] == ["executing"]

    again = console(tmp_path)
    out, _ = again.communicate("/reconcile\n", timeout=WAIT_SECONDS)
    assert again.returncode == 0
    assert sandbox_names(tmp_path) == {"templates": [], "endpoints": [], "pods": []}
    deps, rows = db_rows(tmp_path)
    assert [d[1] for d in deps] == ["failed"] and "restart" in (deps[0][4] or "")
    assert [(r[1], r[2]) for r in rows] == [("failed", "interrupted by a restart")]
    assert "No orphaned resources" in out, out


# --- reconcile: a failed deployment's resources that still exist are orphans ------------------


async def test_reconcile_reports_resources_of_a_failed_deployment(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        org = bot.ctx(user="alice").org_id
        client = bot.services.runpod_for(org)
        tpl = await client.create_template(
            CreateTemplateRequest(
                name=f"cockpit-o{org}-d1-qwen2-5-0-5b-instruct",
                image="runpod/worker-v1-vllm:v2.25.2",
                serverless=True,
            )
        )
        now = bot.clock.now()
        with bot.services.db.session() as s:
            deployments.create(
                s,
                org_id=org,
                name="gone",
                model_id=MODEL,
                status="failed",
                failure_reason="cleanup failed",
                provider_template_id=tpl.id,
                created_by="alice",
                created_at=now,
                updated_at=now,
            )
        reply = await bot.send("/reconcile", user="alice")
        assert "1 orphaned" in (reply.title or ""), reply.as_plain_text()
        assert tpl.id in reply.as_plain_text()


def test_known_provider_ids_leaves_out_failed_and_deleted(database: Database) -> None:
    with database.session() as s:
        org_id = orgs.ensure_workspace(
            s, platform="slack", external_id="T1", name="acme", now=NOW
        ).org_id
        for status, ep in (
            ("healthy", "ep-live"),
            ("stopped", "ep-stopped"),
            ("creating", "ep-creating"),
            ("failed", "ep-failed"),
            ("deleted", "ep-deleted"),
        ):
            deployments.create(
                s,
                org_id=org_id,
                name=status,
                model_id=MODEL,
                status=status,
                provider_endpoint_id=ep,
                created_by="a",
                created_at=NOW,
                updated_at=NOW,
            )
    with database.session() as s:
        assert deployments.known_provider_ids(s) == {"ep-live", "ep-stopped", "ep-creating"}


# --- approvals end in a terminal state with a reason -----------------------------------------


def test_interrupted_approvals_fail_with_a_reason(database: Database) -> None:
    with database.session() as s:
        org_id = orgs.ensure_workspace(
            s, platform="slack", external_id="T1", name="acme", now=NOW
        ).org_id
        ids: list[int] = []
        for _ in range(3):
            a = approvals.create(
                s,
                org_id=org_id,
                workspace_id=None,
                tool="deploy_model",
                args_json="{}",
                request_json="{}",
                summary="x",
                requester="alice",
                expires_at=NOW + timedelta(hours=1),
                now=NOW,
            )
            assert a.id is not None
            ids.append(a.id)
        assert approvals.claim(s, org_id=org_id, approval_id=ids[0], decided_by="alice", now=NOW)
        assert approvals.claim(s, org_id=org_id, approval_id=ids[1], decided_by="alice", now=NOW)
        approvals.finish(s, org_id=org_id, approval_id=ids[1], status="executed", result_text="ok")
    with database.session() as s:
        assert approvals.fail_interrupted(s, now=NOW) == 1
    with database.session() as s:
        got = {i: approvals.get(s, org_id=org_id, approval_id=i) for i in ids}
        first, second, third = (got[i] for i in ids)
        assert first is not None and second is not None and third is not None
        assert (first.status, first.result_text) == ("failed", "interrupted by a restart")
        assert second.status == "executed" and third.status == "pending"
        # The cancel path: finish with a reason, only while the row is still executing.
        approvals.claim(s, org_id=org_id, approval_id=ids[2], decided_by="alice", now=NOW)
        for i in (ids[1], ids[2]):
            approvals.finish(
                s,
                org_id=org_id,
                approval_id=i,
                status="failed",
                reason="cancelled while running",
                only_if="executing",
            )
    with database.session() as s:
        second = approvals.get(s, org_id=org_id, approval_id=ids[1])
        third = approvals.get(s, org_id=org_id, approval_id=ids[2])
        assert second is not None and third is not None
        assert (third.status, third.result_text) == ("failed", "cancelled while running")
        assert (second.status, second.result_text) == ("executed", "ok")


# --- the emulator refuses to delete a template in use, as RunPod does -------------------------


async def test_sandbox_refuses_to_delete_a_template_in_use(tmp_path: Path) -> None:
    """RunPod's spec: DELETE /templates/{id} answers 400 "Template is in use by a pod or
    serverless endpoint"; the state survives a reload (persisted), and deleting the user first
    frees the template."""
    from runpod_helpers import endpoint_request, sandbox

    from tools.errors import CockpitError

    state_file = tmp_path / "sandbox-state.json"
    async with sandbox(state_file=state_file) as sb:
        c = sb.client
        ep_tpl = await c.create_template(
            CreateTemplateRequest(name="cockpit-bound-ep", image="img", serverless=True)
        )
        pod_tpl = await c.create_template({"name": "cockpit-bound-pod", "image": "img"})
        body = endpoint_request("cockpit-bound-ep").model_dump(by_alias=True, exclude_none=True)
        body.pop("image", None)
        body.pop("env", None)
        ep = await c.create_endpoint({**body, "templateId": ep_tpl.id})
        pod = await c.create_pod(
            {"name": "cockpit-pod", "templateId": pod_tpl.id, "gpu": {"id": "NVIDIA L4"}}
        )
    async with sandbox(state_file=state_file) as sb:
        c = sb.client
        for tpl_id in (ep_tpl.id, pod_tpl.id):
            with pytest.raises(CockpitError) as refused:
                await c.delete_template(tpl_id)
            assert getattr(refused.value, "status", None) == 400
            assert "in use" in refused.value.message or "bound" in refused.value.message
        await c.delete_endpoint(ep.id)
        await c.delete_pod(pod.id)
        await c.delete_template(ep_tpl.id)
        await c.delete_template(pod_tpl.id)
        assert not sb.emulator.state.templates


# --- a cancel while the approved deploy runs --------------------------------------------------


async def test_cancel_during_an_approved_deploy_ends_the_approval(tmp_path: Path) -> None:
    """The saga compensates a cancel itself; the approval's end comes from the try/finally
    around the run in Dispatcher.approve."""
    import asyncio

    async with running_bot(tmp_path) as bot:
        ask = await bot.send(f"/deploy {MODEL}", user="alice")
        original = RunPodClient.list_workers  # what the saga polls while it waits

        async def cancelled(self: RunPodClient, *args: Any, **kwargs: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # as a shutdown or a dropped request cancels the handler
            await asyncio.sleep(0)
            return await original(self, *args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(RunPodClient, "list_workers", cancelled)
            with pytest.raises(asyncio.CancelledError):
                await bot.approve(ask.approval_id, user="alice")
        found = leftovers(bot)
        assert found["resources"] == {"templates": [], "endpoints": [], "pods": []}, found
        assert found["deployments"] == [], found  # the saga compensated
        assert found["approvals"] == [], found
        with bot.services.db.session() as s:
            row = approvals.get(
                s, org_id=bot.ctx(user="alice").org_id, approval_id=ask.approval_id or 0
            )
        assert row is not None and row.status == "failed" and row.result_text, row


# --- several processes: one starting never cuts short another's live work -------------------


async def test_a_starting_process_leaves_a_live_processs_work_alone(tmp_path: Path) -> None:
    """web, worker and discord share one database. A process that starts (or the minute's
    `recover` job) cleans up only work whose process is gone: another host's process with a
    recent heartbeat keeps its deploy, approval and benchmark; once its heartbeat is stale they
    are cleaned up; a process on this host that no longer exists is gone at once."""
    from storage import bench as bench_store
    from storage import instances
    from tools.deploy.saga import INTERRUPTED_REASON, recover_interrupted

    async with running_bot(tmp_path) as bot:
        owner = bot.ctx(user="alice")
        now = bot.clock.now()
        with bot.services.db.session() as s:
            instances.register(s, instance="web-elsewhere", host="web-1", pid=4242, now=now)
            instances.register(
                s, instance="gone-here", host=socket.gethostname(), pid=dead_pid(), now=now
            )

        def in_flight(owner_id: str, name: str) -> int:
            with bot.services.db.session() as s:
                dep = deployments.create(
                    s,
                    org_id=owner.org_id,
                    name=name,
                    model_id=MODEL,
                    status="creating",
                    price_per_hour=0,
                    created_by="alice",
                    idempotency_key=name,
                    owner=owner_id,
                    created_at=now,
                    updated_at=now,
                )
                assert dep is not None and dep.id is not None
                run = bench_store.create(
                    s,
                    org_id=owner.org_id,
                    deployment_id=dep.id,
                    deployment_name=name,
                    model_id=MODEL,
                    gpu="ADA_24",
                    requested_by="alice",
                    owner=owner_id,
                    created_at=now,
                )
                return dep.id if run.id else 0

        live_dep = in_flight("web-elsewhere", "live")
        dead_dep = in_flight("gone-here", "dead")

        def state(dep_id: int) -> tuple[str, str | None, str]:
            with bot.services.db.session() as s:
                dep = deployments.get(s, org_id=owner.org_id, deployment_id=dep_id)
                runs = s.exec(select(BenchRun).where(BenchRun.deployment_id == dep_id)).all()
            assert dep is not None and len(runs) == 1
            return dep.status, dep.failure_reason, runs[0].status

        assert await recover_interrupted(bot.services) == 1  # as at a start
        assert state(live_dep) == ("creating", None, "running")
        assert state(dead_dep) == ("failed", INTERRUPTED_REASON, "failed")

        bot.clock.advance(instances.STALE_AFTER.total_seconds() + 1)  # web-1 stopped beating
        report = await bot.cockpit.background().run_job("recover")
        assert report is not None and report.checked == 1
        assert state(live_dep)[0::2] == ("failed", "failed")


def dead_pid() -> int:
    """A pid no process has now (a child that has exited and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_instance_rows_come_back_after_removal_and_are_forgotten_after_a_day(
    tmp_path: Path,
) -> None:
    from sqlmodel import select as sql_select

    from storage import instances
    from storage.models import ProcessInstance

    async with running_bot(tmp_path) as bot:
        me = bot.services.instance

        def ids() -> set[str]:
            with bot.services.db.session() as s:
                return {r.id for r in s.exec(sql_select(ProcessInstance)).all()}

        assert me in ids()  # registered at start
        with bot.services.db.session() as s:
            instances.remove(s, instance=me)
            instances.register(s, instance="old", host="h", pid=1, now=bot.clock.now())
        with bot.services.db.session() as s:  # the next beat puts the row back
            instances.heartbeat(s, instance=me, host="h", pid=2, now=bot.clock.now())
        assert ids() == {me, "old"}
        bot.clock.advance(instances.FORGET_AFTER.total_seconds() + 60)
        with bot.services.db.session() as s:
            instances.heartbeat(s, instance=me, host="h", pid=2, now=bot.clock.now())
        await bot.cockpit.background().run_job("recover")
        assert ids() == {me}  # a process silent for a day is forgotten; a live one stays
