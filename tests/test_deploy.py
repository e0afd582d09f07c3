"""The deployment lifecycle through the whole bot against the sandbox emulator, on a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.testing import BotHarness, running_bot
from storage import deployments
from storage.models import Deployment
from tools.deploy.saga import recover_interrupted
from tools.runpod.models import CreateTemplateRequest


@pytest.fixture
async def bot(tmp_path: Path):
    async with running_bot(tmp_path) as harness:
        yield harness


def emulator(bot: BotHarness):
    return bot.cockpit.runpod.emulator


def dep_row(bot: BotHarness, dep_id: int = 1) -> Deployment:
    org = bot.ctx(user="alice").org_id
    with bot.services.db.session() as s:
        row = deployments.get(s, org_id=org, deployment_id=dep_id)
    assert row is not None
    return row


async def deploy(bot: BotHarness, model: str = "Qwen/Qwen2.5-0.5B-Instruct", **who):
    who.setdefault("user", "alice")
    ask = await bot.send(f"/deploy {model}", **who)
    assert ask.approval_id is not None, ask.as_plain_text()
    return ask, await bot.approve(ask.approval_id, user=who["user"])


async def test_deploy_healthy_chat_stop_delete(bot: BotHarness) -> None:
    ask, done = await deploy(bot)
    card = ask.as_plain_text()
    assert "Price: $0.576/h" in card and "AMPERE_16" in card  # price shown before spending
    assert done.ok, done.as_plain_text()
    assert "is healthy" in (done.title or "")
    phases = " | ".join(bot.progress)
    for phase in (
        "queued #1",
        "creating template",
        "creating endpoint",
        "waiting for workers",
        "healthy after",
    ):
        assert phase in phases
    row = dep_row(bot)
    assert row.status == "healthy" and row.provider_endpoint_id and row.provider_template_id
    assert row.name.startswith("Qwen2.5-0.5B")

    status = await bot.send("/status 1", user="alice")
    assert "Workers: 1 ready" in status.as_plain_text()

    deltas: list[str] = []

    async def collect(d: str) -> None:
        deltas.append(d)

    ctx = bot.ctx(user="alice")
    chat = await bot.cockpit.handle(ctx, "/chat 1 hello model", stream=collect)
    assert chat.ok and chat.text.startswith("[sandbox]")
    assert len(deltas) > 3 and "".join(deltas) == chat.text  # streamed token by token
    assert "prompt +" in (chat.footer or "")

    stopped = await bot.send("/stop 1", user="alice")
    assert stopped.ok and dep_row(bot).status == "stopped"
    refused = await bot.send("/chat 1 still there?", user="alice")
    assert not refused.ok and "/scale 1 --max 1" in refused.text

    ask_delete = await bot.send("/delete 1", user="alice")
    deleted = await bot.approve(ask_delete.approval_id, user="alice")
    assert deleted.ok and dep_row(bot).status == "deleted"
    state = emulator(bot).state
    assert not state.endpoints and not state.templates


async def test_rollback_restores_previous_model(bot: BotHarness) -> None:
    await deploy(bot)
    ask = await bot.send("/update 1 --model qwen 1.5b", user="alice")
    assert "Update #1" in (ask.title or "")
    updated = await bot.approve(ask.approval_id, user="alice")
    assert updated.ok and "Qwen/Qwen2.5-1.5B-Instruct" in updated.text
    endpoint_id = dep_row(bot).provider_endpoint_id
    client = bot.services.runpod_for(dep_row(bot).org_id)
    assert (await client.get_endpoint(endpoint_id)).env[
        "MODEL_NAME"
    ] == "Qwen/Qwen2.5-1.5B-Instruct"
    back = await bot.send("/rollback 1", user="alice")
    assert back.ok and "revision 1" in (back.title or "")
    assert dep_row(bot).model_id == "Qwen/Qwen2.5-0.5B-Instruct"
    assert dep_row(bot).current_revision == 3
    assert (await client.get_endpoint(endpoint_id)).env[
        "MODEL_NAME"
    ] == "Qwen/Qwen2.5-0.5B-Instruct"
    releases = await client.list_releases(endpoint_id)
    assert len(releases.releases) >= 3


async def test_failed_endpoint_create_leaves_no_template(bot: BotHarness) -> None:
    emulator(bot).faults.inject("/rest/v2/serverless", "fail_create", times=1, status=422)
    _, done = await deploy(bot)
    assert not done.ok
    assert "Deploy #1 failed" in done.text and "Nothing was left running" in done.text
    state = emulator(bot).state
    assert not state.templates and not state.endpoints
    row = dep_row(bot)
    assert row.status == "failed" and row.failure_reason


async def test_worker_crash_while_starting_is_cleaned_up(bot: BotHarness) -> None:
    emulator(bot).faults.inject("/sls/v2/*/run", "crash")
    _, done = await deploy(bot)
    assert not done.ok and "crashed" in done.text
    assert not emulator(bot).state.endpoints and not emulator(bot).state.templates


async def test_same_request_twice_creates_one_endpoint(bot: BotHarness) -> None:
    first = await bot.send("/deploy qwen 0.5b", user="alice", idempotency_key="slack-evt-1")
    second = await bot.send("/deploy qwen 0.5b", user="alice", idempotency_key="slack-evt-1")
    assert first.approval_id == second.approval_id
    a, b = await asyncio.gather(
        bot.approve(first.approval_id, user="alice"), bot.approve(first.approval_id, user="alice")
    )
    assert sorted([a.ok, b.ok]) == [False, True]
    assert len(emulator(bot).state.endpoints) == 1


async def test_viewer_cannot_deploy(bot: BotHarness) -> None:
    reply = await bot.send("/deploy qwen", user="vic", role="viewer")
    assert not reply.ok and "needs the member role" in reply.text


async def test_ambiguous_and_unknown_models(bot: BotHarness) -> None:
    amb = await bot.send("/deploy deepseek", user="alice")
    assert not amb.ok and "Pick one" in amb.text
    unknown = await bot.send("/deploy acme/NoSuchModel-7B", user="alice")
    assert not unknown.ok and "not in the bundled model catalog" in unknown.text


async def test_reconcile_reports_orphans(bot: BotHarness) -> None:
    await deploy(bot)
    org = bot.ctx(user="alice").org_id
    client = bot.services.runpod_for(org)
    orphan = await client.create_template(
        CreateTemplateRequest(
            name=f"cockpit-o{org}-d999-forgotten",
            image="runpod/worker-v1-vllm:v2.25.2",
            serverless=True,
        )
    )
    reply = await bot.send("/reconcile", user="alice")
    text = reply.as_plain_text()
    assert orphan.id in text and "1 orphaned" in (reply.title or "")


async def test_interrupted_deploy_is_compensated_at_start(bot: BotHarness) -> None:
    org = bot.ctx(user="alice").org_id
    client = bot.services.runpod_for(org)
    tpl = await client.create_template(
        CreateTemplateRequest(
            name=f"cockpit-o{org}-d1-half", image="runpod/worker-v1-vllm:v2.25.2", serverless=True
        )
    )
    now = bot.clock.now()
    with bot.services.db.session() as s:
        deployments.create(
            s,
            org_id=org,
            name="half",
            model_id="Qwen/Qwen2.5-0.5B-Instruct",
            status="creating",
            provider_template_id=tpl.id,
            created_by="alice",
            created_at=now,
            updated_at=now,
        )
    assert await recover_interrupted(bot.services) == 1
    assert not emulator(bot).state.templates
    assert dep_row(bot).status == "failed"
    assert "interrupted" in (dep_row(bot).failure_reason or "")


async def test_plain_words_in_limited_mode(bot: BotHarness) -> None:
    await deploy(bot)
    spend = await bot.send("what's my spend this week", user="alice")
    assert spend.ok and (spend.title or "").startswith("Spend this week")
    assert "limited mode" in (spend.footer or "")
    # A reference is an id or an exact name (any case), never a fragment (issue 14, finding 4).
    healthy = await bot.send("is qwen2.5-0.5b-instruct healthy?", user="alice")
    assert healthy.ok and "#1" in (healthy.title or ""), healthy.as_plain_text()
    bot.clock.advance(20 * 60)
    # Limited mode guessed the tool from loose words: a state change waits for a click.
    asked = await bot.send("stop the idle ones", user="alice")
    assert asked.approval_id is not None and "/stop-idle" in asked.text
    assert dep_row(bot).status != "stopped"
    stopped = await bot.approve(asked.approval_id, user="alice")
    assert stopped.ok and "Stopped 1 idle deployment(s): #1" in stopped.text
    assert dep_row(bot).status == "stopped"


async def test_a_pick_list_offers_each_choice_as_the_same_command(bot: BotHarness) -> None:
    """'mistral' fits several models: nothing is done, and each choice is a button that runs
    the same request with that model (flags kept), so picking is one click, not retyping."""
    amb = await bot.send("/deploy mistral --context 4096", user="alice")
    assert not amb.ok and amb.error_code == "needs_choice" and "Pick one" in amb.text
    commands = {b.label: b.value for b in amb.buttons}
    assert commands["Mistral-7B-Instruct-v0.3"] == (
        "/deploy mistralai/Mistral-7B-Instruct-v0.3 --context=4096"
    ), commands
    assert all(b.action == "command" for b in amb.buttons)
    picked = await bot.send(commands["Mistral-7B-Instruct-v0.3"], user="alice")
    assert picked.approval_id is not None, picked.as_plain_text()

    estimate = await bot.send("/estimate mistral", user="alice")  # no approval: the run path
    assert {b.value for b in estimate.buttons} >= {
        "/estimate mistralai/Mistral-7B-Instruct-v0.3"
    }, estimate.buttons
