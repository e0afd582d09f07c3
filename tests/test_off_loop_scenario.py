"""A day's work through the whole bot runs no SQL on the event loop (issue 17): deploy, approve,
healthy, /status, /chat, /stop, an alert delivered to a Discord webhook, /spend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.testing import BotHarness, running_bot
from storage.db import DB_ON_LOOP, on_loop_sites
from tools.contract import Platform, Reply

WEBHOOK = "https://discord.com/api/webhooks/123456789012345678/" + "T" * 68


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Discord's webhook execution, recording each message."""
    received: list[dict[str, Any]] = []

    async def execute(request: web.Request) -> web.Response:
        received.append(json.loads(await request.text()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v10/webhooks/{id}/{token}", execute)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()


async def test_a_days_work_runs_no_sql_on_the_event_loop(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    async with running_bot(tmp_path, DISCORD_API_URL=f"{url}/api/v10") as bot:
        await _scenario(bot, received)


async def _scenario(bot: BotHarness, received: list[dict[str, Any]]) -> None:
    cockpit = bot.cockpit
    phases: list[str] = []

    async def progress(text: str) -> None:
        phases.append(text)

    async def owner() -> Any:
        # the harness's ctx() resolves the person on the calling thread; the adapters do it
        # off the loop, as here
        return await cockpit.context(
            platform=Platform.console,
            workspace_id="local",
            workspace_name="local",
            user_id="owner",
            display_name="owner",
            channel="console",
        )

    async def send(text: str) -> Reply:
        return await cockpit.handle(await owner(), text, progress=progress)

    before = DB_ON_LOOP._value.get()
    sites_before = set(on_loop_sites())

    added = await send(f"/alerts add discord {WEBHOOK} --severity info")
    assert added.ok, added.text
    ask = await send("/deploy Qwen/Qwen2.5-0.5B-Instruct")
    assert ask.approval_id is not None, ask.as_plain_text()
    done = await cockpit.approve(await owner(), ask.approval_id, progress=progress)
    assert done.ok and "is healthy" in (done.title or ""), done.as_plain_text()
    assert any("healthy after" in p for p in phases)

    status = await send("/status 1")
    assert "Workers: 1 ready" in status.as_plain_text()
    chat = await send("/chat 1 hello model")
    assert chat.ok and chat.text.startswith("[sandbox]")

    emulator = cockpit.runpod.emulator
    endpoint = next(iter(emulator.state.endpoints))
    emulator.crash_endpoint(endpoint)
    for _ in range(10):  # ten minutes of a crashed endpoint, swept every minute
        await cockpit.background().run_job("health")
        bot.clock.advance(60)
    titles = [e["title"] for m in received for e in m.get("embeds", [])]
    assert titles == ["#1 Qwen2.5-0.5B-Instruct is unhealthy"], titles
    emulator.recover_endpoint(endpoint)
    await cockpit.background().run_job("health")
    assert [e["title"] for m in received for e in m.get("embeds", [])][1:] == [
        "Resolved: #1 Qwen2.5-0.5B-Instruct is unhealthy"
    ]

    stopped = await send("/stop 1")
    assert stopped.ok, stopped.as_plain_text()
    spend = await send("/spend this week")
    assert spend.ok, spend.as_plain_text()

    new_sites = sorted(set(on_loop_sites()) - sites_before)
    assert DB_ON_LOOP._value.get() == before, "\n".join(new_sites)
