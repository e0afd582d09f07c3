"""Deploys against the strict sandbox: RunPod and vLLM as they really behave (issue 15).

The emulator downloads and loads weights on the fake clock, enforces RunPod's init timeout,
runs vLLM's start-up checks against the card's real memory and answers /health in the
documented shape only; these tests show the product plans, waits and reports accordingly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from runpod_helpers import sandbox

from bot.background.scheduler import BackgroundJobs
from bot.testing import BotHarness, running_bot
from storage import deployments
from storage.models import Deployment
from tools.catalog import resolve as catalog_resolve
from tools.catalog.gpus import GpuOffer, fallback_offers
from tools.deploy import plan as deploy_plan
from tools.runpod.models import CreateEndpointRequest, EndpointGpuRequest, WorkersRequest
from tools.runpod.models import QueueDelayScalingRequest as Scaling
from tools.runpod.sandbox import vllm
from tools.runpod.sandbox.server import REST_PREFIX

SMALL = "Qwen/Qwen2.5-0.5B-Instruct"
BF16_7B = "Qwen/Qwen2.5-7B-Instruct"
AWQ_7B = "Qwen/Qwen2.5-7B-Instruct-AWQ"
BIG = "Qwen/Qwen2.5-72B-Instruct"  # 70B class, public (no token needed)
WORKER_IMAGE = "runpod/worker-v1-vllm:v2.25.2"


@pytest.fixture
async def bot(tmp_path: Path):
    async with running_bot(tmp_path) as harness:
        yield harness


def emulator(bot: BotHarness) -> Any:
    return bot.cockpit.runpod.emulator


def row(bot: BotHarness, dep_id: int = 1) -> Deployment:
    with bot.services.db.session() as s:
        found = deployments.get(s, org_id=bot.ctx(user="alice").org_id, deployment_id=dep_id)
    assert found is not None
    return found


def nothing_left(bot: BotHarness) -> bool:
    state = emulator(bot).state
    return not (state.endpoints or state.templates or state.pods)


async def health_sweeps(bot: BotHarness, times: int) -> None:
    jobs: BackgroundJobs | None = bot.cockpit.background()
    assert jobs is not None
    for _ in range(times):
        await jobs.run_job("health")
        bot.clock.advance(60)


# --- 1. quantisation the checkpoint does not have -----------------------------------------------


async def test_awq_on_a_bf16_repo_is_refused_before_approval_with_the_awq_sibling(
    bot: BotHarness,
) -> None:
    reply = await bot.send(f"/deploy {BF16_7B} --quant awq", user="alice")
    assert not reply.ok and reply.approval_id is None  # refused before any approval
    text = reply.as_plain_text()
    assert "Cannot find the config file for awq" in text and f"/deploy {AWQ_7B}" in text
    assert "--quant awq" not in text  # the fix never suggests what vLLM would refuse
    assert nothing_left(bot)
    # the AWQ checkpoint itself plans fine, and fp8 of the bf16 repo too
    assert (await bot.send(f"/deploy {AWQ_7B} --quant awq", user="alice")).approval_id
    assert (await bot.send(f"/deploy {BF16_7B} --quant fp8", user="alice")).approval_id


async def test_the_sandbox_refuses_awq_on_a_bf16_checkpoint_as_vllm_does() -> None:
    async with sandbox(simulate_vllm=True) as sb:
        ep = await sb.client.create_endpoint(_endpoint(BF16_7B, QUANTIZATION="awq"))
        await sb.client.run(ep.id, {"openai_route": "/v1/models"})
        sb.clock.advance(60)
        listing = await sb.client.list_workers(ep.id)
        assert listing.summary.unhealthy == 1
        lines = await sb.client.worker_logs(ep.id, listing.workers[0].id)
        assert any("Cannot find the config file for awq" in x.line for x in lines)


# --- 2. the 7-minute cold-start limit ------------------------------------------------------------


async def test_a_70b_deploy_sets_the_init_timeout_downloads_with_progress_and_turns_healthy(
    bot: BotHarness,
) -> None:
    ask = await bot.send(f"/deploy {BIG}", user="alice")
    card = ask.as_plain_text()
    assert "RUNPOD_INIT_TIMEOUT=1800" in card and "raised from 7 min" in card, card
    started = bot.clock.monotonic()
    done = await bot.approve(ask.approval_id, user="alice")
    assert done.ok, done.as_plain_text()
    took = bot.clock.monotonic() - started
    assert took > vllm.DEFAULT_INIT_TIMEOUT_SECONDS  # longer than RunPod's default limit
    progress = [p for p in bot.progress if "downloading weights" in p]
    assert len(progress) >= 5 and "10%" in progress[0] and "90%" in progress[-1], bot.progress
    assert not any("crashed" in p for p in bot.progress)
    ep_id = row(bot).provider_endpoint_id
    assert ep_id is not None
    env = emulator(bot).state.endpoints[ep_id].config["env"]
    assert env["RUNPOD_INIT_TIMEOUT"] == "1800" and "HUGGING_FACE_HUB_TOKEN" not in env


async def test_without_the_init_timeout_a_70b_worker_turns_unhealthy_at_7_minutes() -> None:
    async with sandbox(simulate_vllm=True) as sb:
        body = _endpoint(BIG, pools=("BLACKWELL_180",), TENSOR_PARALLEL_SIZE="1")
        ep = await sb.client.create_endpoint(body)
        await sb.client.run(ep.id, {"openai_route": "/v1/models"})
        sb.clock.advance(6 * 60)
        assert (await sb.client.list_workers(ep.id)).summary.initializing == 1
        sb.clock.advance(61)
        listing = await sb.client.list_workers(ep.id)
        assert listing.summary.unhealthy == 1
        lines = await sb.client.worker_logs(ep.id, listing.workers[0].id)
        assert "RUNPOD_INIT_TIMEOUT" in lines[-1].line and "marked unhealthy" in lines[-1].line


# --- 3. a model that does not fit its card -------------------------------------------------------


async def test_a_model_that_does_not_fit_its_card_fails_with_vllms_reason_and_leaves_nothing(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU catalog that overstates the 16 GB cards (as a stale table might) makes the planner
    put a 15 GB bf16 model on AMPERE_16; vLLM on the real card (15,356 MiB) runs out of memory."""

    async def overstated(_tc: Any) -> tuple[list[GpuOffer], str | None]:
        offers = []
        for offer in fallback_offers():
            if offer.pool == "AMPERE_16":
                offer = offer.model_copy(update={"memory_gb": 24, "memory_mib": 23034})
            offers.append(offer)
        return offers, "stale test catalog"

    monkeypatch.setattr(catalog_resolve, "current_offers", overstated)
    ask = await bot.send(f"/deploy {BF16_7B}", user="alice")
    assert "AMPERE_16" in ask.as_plain_text()
    done = await bot.approve(ask.approval_id, user="alice")
    assert not done.ok
    assert "CUDA out of memory" in done.text and "crashed while starting" in done.text, done.text
    assert "Nothing was left running" in done.text
    assert nothing_left(bot)
    assert "CUDA out of memory" in (row(bot).failure_reason or "")


# --- 4. pods: RUNNING before vLLM serves, crash loops --------------------------------------------


async def test_a_pod_is_healthy_only_once_vllm_answers_through_the_proxy(bot: BotHarness) -> None:
    ask = await bot.send(f"/deploy {SMALL} --mode pod", user="alice")
    done = await bot.approve(ask.approval_id, user="alice")
    assert done.ok, done.as_plain_text()
    waiting = [p for p in bot.progress if "pod running" in p]
    assert waiting and "proxy answers 502" in waiting[0], bot.progress
    healthy = next(i for i, p in enumerate(bot.progress) if "healthy after" in p)
    assert bot.progress.index(waiting[0]) < healthy
    pod = emulator(bot).state.pods[row(bot).provider_pod_id]
    assert pod.config["args"].startswith(f"{SMALL} ")  # `vllm serve <model>`, positional
    assert "HF_TOKEN" not in pod.config["env"]  # a public model needs no token
    chat = await bot.send("/chat 1 hello pod", user="alice")
    assert chat.ok and "you said 'hello pod'" in chat.text


async def test_a_crash_looping_pod_is_reported_unhealthy_with_its_log_reason(
    bot: BotHarness,
) -> None:
    ask = await bot.send(f"/deploy {SMALL} --mode pod", user="alice")
    assert (await bot.approve(ask.approval_id, user="alice")).ok
    pod_id = row(bot).provider_pod_id
    reason = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
    emulator(bot).crash_pod(pod_id, reason)
    assert emulator(bot).state.pod_status(emulator(bot).state.pods[pod_id], bot.clock.now()) == (
        "RUNNING"  # RunPod still says RUNNING: the container keeps restarting
    )
    await health_sweeps(bot, 3)
    assert row(bot).health_state == "unhealthy"
    status = (await bot.send("/status 1", user="alice")).as_plain_text()
    assert "crash-looping" in status and "CUDA out of memory" in status, status


# --- 5. health shape ---------------------------------------------------------------------------


async def test_the_health_sweep_finds_an_unhealthy_worker_through_workers(bot: BotHarness) -> None:
    ask = await bot.send(f"/deploy {SMALL} --workers-min 1", user="alice")
    assert (await bot.approve(ask.approval_id, user="alice")).ok
    ep_id = row(bot).provider_endpoint_id
    assert ep_id is not None
    emulator(bot).crash_endpoint(ep_id)
    async with httpx.AsyncClient() as http:
        raw = await http.get(
            f"{emulator(bot).serverless_url}/{ep_id}/health",
            headers={"Authorization": "Bearer sandbox"},
        )
    assert set(raw.json()["workers"]) == {"idle", "running"}  # no "unhealthy" key at all
    await health_sweeps(bot, 3)
    assert row(bot).health_state == "unhealthy"
    status = (await bot.send("/status 1", user="alice")).as_plain_text()
    assert "1 unhealthy" in status and "crashed (injected fault)" in status, status


# --- 6. the Hugging Face token ------------------------------------------------------------------


def test_the_token_goes_only_to_gated_models_and_never_into_the_logged_command_line() -> None:
    token = "hf_SANDBOXTOKEN0123456789abcdef"
    env = deploy_plan.worker_env(
        model_id="meta-llama/Llama-3.1-8B-Instruct",
        context=8192,
        gpu_count=1,
        quant=None,
        hf_token=token,
        init_timeout=480,
    )
    assert env["HUGGING_FACE_HUB_TOKEN"] == token and "HF_TOKEN" not in env
    assert token not in " ".join(vllm.from_worker_env(env).argv)
    # what worker-vllm does with HF_TOKEN: `--hf-token <token>` in the logged command line
    echoed = vllm.from_worker_env({**env, "HF_TOKEN": token})
    assert token in " ".join(echoed.argv)
    public = deploy_plan.worker_env(
        model_id=SMALL, context=8192, gpu_count=1, quant=None, hf_token=None
    )
    assert not {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} & set(public)


# --- 7. figures and the spec --------------------------------------------------------------------


def test_simulated_cold_starts_are_proportional_to_the_checkpoint() -> None:
    def cold(model: str, gpu: str, memory: int, tp: int = 1) -> float:
        config = vllm.from_worker_env(
            {"MODEL_NAME": model, "MAX_MODEL_LEN": "8192", "TENSOR_PARALLEL_SIZE": str(tp)}
        )
        start = vllm.plan_startup(
            config, gpu_id=gpu, memory_gb=memory, gpu_count=tp, container_seconds=5.0
        )
        assert start.ready_after is not None, start.failure
        return start.ready_after

    small = cold(SMALL, "NVIDIA RTX A4000", 16)
    mid = cold("Qwen/Qwen3-8B", "NVIDIA GeForce RTX 4090", 24)
    big = cold(BIG, "NVIDIA H100 80GB HBM3", 80, tp=2)
    assert small < 60 < mid < 120 < vllm.DEFAULT_INIT_TIMEOUT_SECONDS < big
    assert deploy_plan.init_timeout_for(145.4e9) == 1800
    assert deploy_plan.init_timeout_for(1e9) == vllm.DEFAULT_INIT_TIMEOUT_SECONDS


async def test_every_rest_route_the_sandbox_serves_is_in_the_spec_and_logs_validate() -> None:
    async with sandbox(simulate_vllm=True) as sb:  # validate_responses: violations fail it
        for route in sb.emulator.make_app().router.routes():
            path = route.resource.canonical if route.resource else ""
            if path.startswith(REST_PREFIX + "/"):
                concrete = path[len(REST_PREFIX) :].replace("{", "x").replace("}", "")
                assert sb.emulator.spec.find(route.method, concrete), (route.method, path)
        ep = await sb.client.create_endpoint(_endpoint(SMALL))
        await sb.client.run(ep.id, {"openai_route": "/v1/models"})
        sb.clock.advance(60)  # 20 s container start + 4 s download + 20.5 s load (simulated)
        worker = (await sb.client.list_workers(ep.id)).workers[0]
        lines = await sb.client.worker_logs(ep.id, worker.id, tail=5)
        assert len(lines) == 5 and lines[-1].line == "vLLM is healthy"
        assert [x.line for x in await sb.client.worker_logs(ep.id, worker.id, tail=0)] == []
        logged = [e for e in sb.emulator.exchanges if e.path.endswith("/logs")]
        assert logged and all(e.content_type == "text/event-stream" for e in logged)
        assert json.loads(logged[0].response_text.splitlines()[1][len("data: ") :])["ts"]


def _endpoint(
    model: str, *, pools: tuple[str, ...] = ("AMPERE_24",), **env: str
) -> CreateEndpointRequest:
    return CreateEndpointRequest(
        name=f"cockpit-test-{model.split('/')[-1].lower()}",
        image=WORKER_IMAGE,
        env={"MODEL_NAME": model, "MAX_MODEL_LEN": "8192", **env},
        gpu=EndpointGpuRequest(pools=list(pools)),
        workers=WorkersRequest(min=0, max=1, idle_timeout=60),
        scaling=Scaling(queue_delay=4),
    )


async def test_no_capacity_on_demand_throttles_workers_and_refuses_pods() -> None:
    async with sandbox(simulate_vllm=True) as sb:
        sb.emulator.set_capacity("AMPERE_24", available=False)
        ep = await sb.client.create_endpoint(_endpoint(SMALL))
        await sb.client.run(ep.id, {"openai_route": "/v1/models"})
        sb.clock.advance(600)
        listing = await sb.client.list_workers(ep.id)
        assert listing.summary.throttled == 1 and listing.workers[0].gpu_type_id is None
        sb.emulator.set_capacity("NVIDIA L4", available=False)
        with pytest.raises(Exception, match="no longer any instances available"):
            await sb.client.create_pod(
                {
                    "name": "cockpit-x",
                    "image": "vllm/vllm-openai:v0.27.1",
                    "gpu": {"id": "NVIDIA L4"},
                }
            )
