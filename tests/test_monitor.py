"""Scheduled sweeps and alert routing on the emulator with controlled time: one alert per
incident, one resolve, budget alerts to Discord and Slack, idle stops, one scheduler owner."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fakes.fake_slack import FakeSlack

from bot.background.scheduler import BackgroundJobs, Lease
from bot.testing import BotHarness, running_bot
from storage import audit, deployments, ledger
from storage.db import Database
from storage.models import AlertDelivery
from tools.clock import FakeClock

WEBHOOK_ID = "123456789012345678"
WEBHOOK_TOKEN = "T" * 68


class FakeDiscordWebhooks:
    """Just enough of Discord's API for webhook execution: records each message it receives."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail_next = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v10/webhooks/{id}/{token}", self._execute)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _execute(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            # 404 Unknown Webhook: discord.py does not retry it itself, so our retries count
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        self.messages.append(json.loads(await request.text()))
        return web.Response(status=204)

    def titles(self) -> list[str]:
        return [e["title"] for m in self.messages for e in m.get("embeds", [])]


@pytest.fixture
async def hooks():
    fake = FakeDiscordWebhooks()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bot(tmp_path: Path, hooks: FakeDiscordWebhooks):
    async with running_bot(tmp_path, DISCORD_API_URL=f"{hooks.url}/api/v10") as harness:
        await harness.send("/whoami", user="owner")
        url = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
        added = await harness.send(f"/alerts add discord {url} --severity info", user="owner")
        assert added.ok, added.text
        yield harness


def jobs(bot: BotHarness) -> BackgroundJobs:
    return bot.cockpit.background()


async def deploy(bot: BotHarness, extra: str = "") -> int:
    ask = await bot.send(f"/deploy qwen 0.5b {extra}".strip(), user="owner")
    done = await bot.approve(ask.approval_id, user="owner")
    assert done.ok, done.as_plain_text()
    return int(done.title.split()[0].lstrip("#"))  # type: ignore[union-attr]


def dep(bot: BotHarness, dep_id: int):
    with bot.services.db.session() as s:
        return deployments.get(s, org_id=bot.ctx(user="owner").org_id, deployment_id=dep_id)


async def test_crash_gives_one_alert_and_one_resolve(bot: BotHarness, hooks) -> None:
    dep_id = await deploy(bot)
    emulator = bot.cockpit.runpod.emulator
    emulator.crash_endpoint(dep(bot, dep_id).provider_endpoint_id)
    for _ in range(10):  # ten minutes of a crashed endpoint, swept every minute
        await jobs(bot).run_job("health")
        bot.clock.advance(60)
    assert dep(bot, dep_id).health_state == "unhealthy"
    assert hooks.titles() == [f"#{dep_id} Qwen2.5-0.5B-Instruct is unhealthy"]
    emulator.recover_endpoint(dep(bot, dep_id).provider_endpoint_id)
    for _ in range(3):
        await jobs(bot).run_job("health")
        bot.clock.advance(60)
    assert dep(bot, dep_id).health_state == "healthy"
    assert hooks.titles()[1:] == [f"Resolved: #{dep_id} Qwen2.5-0.5B-Instruct is unhealthy"]
    status = (await bot.send("/alerts", user="owner")).as_plain_text()
    assert "sent" in status and "Discord webhook" in status


async def test_no_repeat_storm_after_a_restart(tmp_path: Path, hooks) -> None:
    clock = FakeClock()
    async with running_bot(tmp_path, clock=clock, DISCORD_API_URL=f"{hooks.url}/api/v10") as bot:
        await bot.send("/whoami", user="owner")
        url = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
        await bot.send(f"/alerts add discord {url}", user="owner")
        router = jobs(bot).router
        assert await router.fire(org_id=1, key="k", severity="critical", title="Down")
    async with running_bot(tmp_path, clock=clock, DISCORD_API_URL=f"{hooks.url}/api/v10") as bot:
        clock.advance(60)
        assert not await jobs(bot).router.fire(org_id=1, key="k", severity="critical", title="Down")
    assert hooks.titles() == ["Down"]


async def test_budget_80_percent_alerts_discord_and_slack_once(tmp_path: Path, hooks) -> None:
    async with (
        FakeSlack() as slack,
        running_bot(
            tmp_path,
            DISCORD_API_URL=f"{hooks.url}/api/v10",
            SLACK_BOT_TOKEN="xoxb-test-token",
            SLACK_API_URL=slack.api_url,
        ) as bot,
    ):
        await bot.send("/whoami", user="owner")
        url = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
        assert (await bot.send(f"/alerts add discord {url}", user="owner")).ok
        assert (await bot.send("/alerts add slack #ops", user="owner")).ok
        assert (await bot.send("/budget set 100 --monthly --thresholds 80", user="owner")).ok
        now = bot.clock.now()
        with bot.services.db.session() as s:
            ledger.add(
                s,
                org_id=1,
                kind="agent",
                start=now - timedelta(hours=1),
                end=now,
                amount=Decimal("85"),
                now=now,
            )
        await jobs(bot).run_job("cost")
        await jobs(bot).run_job("cost")
        assert hooks.titles() == ["Spend reached 80% of the monthly budget"]
        posts = slack.calls_to("chat.postMessage")
        assert len(posts) == 1 and posts[0].body["channel"] == "ops"
        assert "80% of the monthly budget" in posts[0].body["text"]


async def test_failed_delivery_is_retried_and_recorded(bot: BotHarness, hooks) -> None:
    hooks.fail_next = 3  # every one of our attempts
    router = jobs(bot).router
    await router.fire(org_id=1, key="x", severity="critical", title="Broken")
    with bot.services.db.session() as s:
        rows = list(s.exec(__import__("sqlmodel").select(AlertDelivery)))
    assert rows[-1].status == "failed" and rows[-1].attempts == 3
    listing = (await bot.send("/alerts", user="owner")).as_plain_text()
    assert "failed" in listing


async def test_idle_pod_warned_then_stopped_protected_never(bot: BotHarness, hooks) -> None:
    pod_id = await deploy(bot, "--mode pod")
    keep_id = await deploy(bot, "--mode pod --protected")
    assert dep(bot, pod_id).provider_pod_id
    bot.clock.advance(61 * 60)  # idle for longer than the 60 min default policy
    await jobs(bot).run_job("idle")
    assert any("is idle and still billing" in t for t in hooks.titles())
    assert dep(bot, pod_id).status == "healthy"  # warned, not yet stopped
    bot.clock.advance(16 * 60)
    await jobs(bot).run_job("idle")
    assert dep(bot, pod_id).status == "stopped"
    assert dep(bot, keep_id).status == "healthy"
    with bot.services.db.session() as s:
        stops = audit.query(s, org_id=1, tool="stop_deployment", actor="system")
    assert stops and stops[0].outcome == "succeeded"


async def test_stopped_pod_starts_again_and_turns_healthy_without_alerts(
    bot: BotHarness, hooks
) -> None:
    pod_id = await deploy(bot, "--mode pod --name box")
    stopped = await bot.send("/stop box", user="owner")
    assert stopped.ok and "keeps its disk" in stopped.text and dep(bot, pod_id).status == "stopped"
    started = await bot.send("/scale box --max 1", user="owner")
    assert started.ok and "Starting" in started.text and dep(bot, pod_id).status == "starting"
    early = await bot.send("/chat box hi", user="owner")
    assert not early.ok and "is starting" in early.text
    # While the pod boots, failed checks are not failures: no alert, still "starting".
    for _ in range(4):
        await jobs(bot).run_job("health")
    assert dep(bot, pod_id).status == "starting" and hooks.titles() == []
    bot.clock.advance(12)  # the pod's container is RUNNING, but vLLM is still downloading
    client = bot.services.runpod_for(dep(bot, pod_id).org_id)
    assert (await client.get_pod(dep(bot, pod_id).provider_pod_id)).status == "RUNNING"
    await jobs(bot).run_job("health")
    assert dep(bot, pod_id).status == "starting" and hooks.titles() == []
    bot.clock.advance(60)  # weights downloaded again (a stop wipes the container disk), loaded
    await jobs(bot).run_job("health")
    assert dep(bot, pod_id).status == "healthy" and hooks.titles() == []
    chat = await bot.send("/chat box hi", user="owner")
    assert chat.ok and "you said 'hi'" in chat.text


async def test_chat_with_a_pod_goes_through_its_proxy_with_the_pods_own_key(
    bot: BotHarness,
) -> None:
    pod_id = await deploy(bot, "--mode pod --name box")
    row = dep(bot, pod_id)
    emulator = bot.cockpit.runpod.emulator
    env = emulator.state.pods[row.provider_pod_id].config["env"]
    pod_key = env["VLLM_API_KEY"]
    assert len(pod_key) == 64 and pod_key != bot.services.runpod_for(row.org_id).key_hint
    streamed: list[str] = []

    async def collect(delta: str) -> None:
        streamed.append(delta)

    reply = await bot.cockpit.handle(bot.ctx(user="owner"), "/chat box hello pod", stream=collect)
    assert reply.ok and "[sandbox]" in reply.text and len(streamed) > 3
    # Anyone who finds the pod's public URL without its key is refused.
    import httpx

    url = emulator.pod_proxy_url.format(pod_id=row.provider_pod_id, port=8000)
    async with httpx.AsyncClient() as http:
        body = {"model": row.model_id, "messages": [{"role": "user", "content": "hi"}]}
        anonymous = await http.post(f"{url}/v1/chat/completions", json=body)
        assert anonymous.status_code == 401


async def test_reconcile_and_digest(bot: BotHarness, hooks) -> None:
    await deploy(bot)
    from tools.runpod.models import CreateTemplateRequest

    client = bot.services.runpod_for(1)
    await client.create_template(
        CreateTemplateRequest(
            name="cockpit-o1-d77-lost", image="runpod/worker-v1-vllm:v2.25.2", serverless=True
        )
    )
    await jobs(bot).run_job("reconcile")
    await jobs(bot).run_job("reconcile")
    assert [t for t in hooks.titles() if "Orphaned" in t] == [
        "Orphaned RunPod template cockpit-o1-d77-lost"
    ]
    bot.clock.advance(24 * 3600)
    await jobs(bot).run_job("digest")
    digest = [m for m in hooks.messages if "digest" in m["embeds"][0]["title"].lower()]
    assert len(digest) == 1 and "Spend:" in digest[0]["embeds"][0]["description"]


async def test_one_scheduler_owner_and_takeover(database: Database) -> None:
    clock = FakeClock()
    a = Lease(database, clock, owner="a", ttl_seconds=30)
    b = Lease(database, clock, owner="b", ttl_seconds=30)
    assert a.try_acquire() and not b.try_acquire()
    clock.advance(10)
    assert a.try_acquire() and not b.try_acquire()  # renewed
    clock.advance(31)  # a died: no renewal for longer than the lease
    assert b.try_acquire() and not a.try_acquire()
    b.release()
    assert a.try_acquire()


async def test_jobs_run_once_across_two_processes(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as one:
        other = BackgroundJobs(
            one.services, one.cockpit.dispatcher, jobs(one).router, settings=one.cockpit.settings
        )
        ran = [await jobs(one).run_job("health"), await other.run_job("health")]
        assert ran[0] is not None and ran[1] is None


async def test_runs_once_through_apscheduler(bot: BotHarness) -> None:
    j = jobs(bot)
    j.start()
    try:
        from datetime import datetime

        ran: list[str] = []
        original = j.run_job

        async def spy(name: str, **kw: Any) -> Any:
            ran.append(name)
            return await original(name, **kw)

        j.run_job = spy  # type: ignore[method-assign]
        j._scheduler.add_job(
            j.run_job, "date", run_date=datetime.now(), args=["health"], id="health-now"
        )
        for _ in range(50):
            if ran:
                break
            await asyncio.sleep(0.01)
        assert ran == ["health"]
    finally:
        await j.shutdown()
