"""The RunPod emulator itself: lifecycle, faults, billing, validation, auth, entry points."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet
from runpod_helpers import (
    API_KEY,
    MODEL,
    READY_SECONDS,
    Sandbox,
    chat_messages,
    endpoint_request,
    sandbox,
)

from bot.testing import running_bot
from tools.clock import FakeClock
from tools.errors import ProviderError
from tools.runpod.models import CreatePodRequest, Endpoint, PodGpuRequest
from tools.runpod.sandbox import RunPodEmulator, main, make_app
from tools.runpod.sandbox.catalog import GPUS, POOL_PRICE_PER_SECOND

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@asynccontextmanager
async def raw(sb: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the emulator, for requests the client would never send."""
    async with httpx.AsyncClient(base_url=sb.emulator.base_url, headers=AUTH) as http:
        yield http


async def warm(sb: Sandbox, endpoint: Endpoint) -> None:
    """One chat: starts a worker (cold start on the fake clock) and leaves it idle."""
    reply = await sb.client.chat_completion(endpoint.id, chat_messages(), MODEL)
    assert reply.content.startswith("[sandbox]")


ADA_24 = POOL_PRICE_PER_SECOND["ADA_24"]


# --- lifecycle -------------------------------------------------------------------------------


async def test_idle_workers_scale_to_zero_after_the_idle_timeout() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request(idle_timeout=30))
        await warm(sb, endpoint)
        assert (await sb.client.health(endpoint.id)).workers.idle == 1
        sb.clock.advance(29)
        assert (await sb.client.health(endpoint.id)).workers.idle == 1
        sb.clock.advance(1)
        health = await sb.client.health(endpoint.id)
        assert health.total_workers == 0 and health.jobs.completed == 1
        assert (await sb.client.list_workers(endpoint.id)).workers == []

        start = sb.clock.monotonic()
        await warm(sb, endpoint)  # scaled to zero: the next request cold-starts again
        assert sb.clock.monotonic() - start == READY_SECONDS


async def test_workers_min_keeps_a_worker_running_until_lowered() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request(workers_min=1))
        assert (await sb.client.list_workers(endpoint.id)).summary.initializing == 1
        sb.clock.advance(10 * 3600)
        assert (await sb.client.health(endpoint.id)).workers.idle == 1
        await sb.client.update_endpoint(endpoint.id, {"workers": {"min": 0}})
        sb.clock.advance(5)
        assert (await sb.client.health(endpoint.id)).total_workers == 0


async def test_scaling_to_max_zero_drains_the_workers_once_their_work_is_done() -> None:
    async with sandbox(job_seconds=30) as sb:
        start = sb.clock.now()
        endpoint = await sb.client.create_endpoint(
            endpoint_request(workers_min=2, workers_max=2, idle_timeout=600)
        )
        sb.clock.advance(READY_SECONDS)
        job = await sb.client.run(endpoint.id, {"n": 1})  # one of the two busy for 30 s
        health = await sb.client.health(endpoint.id)
        assert (health.workers.running, health.workers.idle) == (1, 1)

        await sb.client.update_endpoint(endpoint.id, {"workers": {"min": 0, "max": 0}})
        health = await sb.client.health(endpoint.id)  # the idle one stops at once
        assert (health.workers.running, health.workers.idle, health.total_workers) == (1, 0, 1)
        sb.clock.advance(29)
        assert (await sb.client.health(endpoint.id)).workers.running == 1
        sb.clock.advance(1)  # its job is done: no idle tail (idleTimeout is 600 s)
        health = await sb.client.health(endpoint.id)
        assert health.total_workers == 0 and health.jobs.completed == 1
        assert (await sb.client.status(endpoint.id, job.id)).status == "COMPLETED"
        assert (await sb.client.list_workers(endpoint.id)).workers == []

        queued = await sb.client.run(endpoint.id, {"n": 2})  # max 0: nothing starts
        sb.clock.advance(60)
        assert (await sb.client.status(endpoint.id, queued.id)).status == "IN_QUEUE"
        assert (await sb.client.health(endpoint.id)).total_workers == 0
        billed = await sb.client.billing_serverless(start, sb.clock.now(), "day")
        assert billed.total == ADA_24 * 30  # the busy worker's job only


async def test_lowering_workers_max_stops_the_excess_idle_worker_at_once() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(
            endpoint_request(workers_min=2, workers_max=3, idle_timeout=600)
        )
        sb.clock.advance(READY_SECONDS)
        await sb.client.update_endpoint(endpoint.id, {"workers": {"min": 0, "max": 1}})
        workers = await sb.client.list_workers(endpoint.id)
        assert [w.status for w in workers.workers] == ["IDLE"]  # the other one is gone
        sb.clock.advance(599)
        assert (await sb.client.health(endpoint.id)).workers.idle == 1  # flex: idles out
        sb.clock.advance(1)
        assert (await sb.client.health(endpoint.id)).total_workers == 0
        await sb.client.update_endpoint(endpoint.id, {"workers": {"max": 2}})
        await warm(sb, endpoint)  # raising max again serves requests as before


async def test_queue_delay_scales_up_to_workers_max() -> None:
    async with sandbox(job_seconds=60) as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request(workers_max=2))
        first = await sb.client.run(endpoint.id, {"n": 1})
        sb.clock.advance(READY_SECONDS + 1)  # worker 1 busy with job 1 until +80 s
        await sb.client.run(endpoint.id, {"n": 2})  # would wait 59 s > queueDelay 4 s
        summary = (await sb.client.list_workers(endpoint.id)).summary
        assert (summary.running, summary.initializing) == (1, 1)
        third = await sb.client.run(endpoint.id, {"n": 3})  # workers.max reached: it queues
        assert (await sb.client.list_workers(endpoint.id)).summary.total == 2
        sb.clock.advance(60)
        assert (await sb.client.status(endpoint.id, first.id)).status == "COMPLETED"
        assert (await sb.client.status(endpoint.id, third.id)).status == "IN_PROGRESS"


async def test_a_container_change_is_a_new_release_that_rolls_out() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request(idle_timeout=60))
        await warm(sb, endpoint)
        await sb.client.update_endpoint(endpoint.id, {"env": {"MODEL_NAME": MODEL, "X": "1"}})

        workers = await sb.client.list_workers(endpoint.id)
        assert [(w.version, w.is_stale) for w in workers.workers] == [(1, True)]
        history = await sb.client.list_releases(endpoint.id)
        assert history.rollout.in_progress and history.rollout.workers_on_latest == 0
        assert [(r.version, r.worker_count) for r in history.releases] == [(2, 0), (1, 1)]

        await sb.client.run(endpoint.id, {"prompt": "new version please"})
        workers = await sb.client.list_workers(endpoint.id)
        states = sorted((w.version, w.status) for w in workers.workers)
        assert states == [(1, "IDLE"), (2, "INITIALIZING")]  # stale worker takes no new work
        sb.clock.advance(60)
        workers = await sb.client.list_workers(endpoint.id)
        assert [(w.version, w.status) for w in workers.workers] == [(2, "IDLE")]
        assert (await sb.client.list_releases(endpoint.id)).rollout.percent_on_latest == 100


async def test_a_scaling_only_patch_keeps_workers_current() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request(idle_timeout=60))
        await warm(sb, endpoint)
        await sb.client.update_endpoint(endpoint.id, {"workers": {"max": 5}})
        workers = await sb.client.list_workers(endpoint.id)
        assert [(w.version, w.is_stale) for w in workers.workers] == [(2, False)]
        same = await sb.client.update_endpoint(endpoint.id, {"workers": {"max": 5}})
        assert same.workers.max == 5
        assert (await sb.client.list_releases(endpoint.id)).endpoint_version == 2  # no-op


# --- faults ----------------------------------------------------------------------------------


async def test_worker_crash_makes_the_endpoint_unhealthy_until_recovered() -> None:
    async with sandbox(max_retries=0) as sb:  # no client retries: count each failure once
        endpoint = await sb.client.create_endpoint(endpoint_request(idle_timeout=600))
        start = sb.clock.now()
        await warm(sb, endpoint)
        sb.clock.advance(10)  # billed: running/idle
        sb.emulator.faults.inject(f"/sls/v2/{endpoint.id}/openai/*", "crash", times=1)
        with pytest.raises(ProviderError) as crashed:
            await sb.client.chat_completion(endpoint.id, chat_messages(), MODEL)
        assert crashed.value.status == 500 and "crashed" in str(crashed.value)

        health = await sb.client.health(endpoint.id)
        assert health.workers.unhealthy is None  # RunPod documents only idle and running
        unhealthy = (await sb.client.list_workers(endpoint.id)).summary.unhealthy
        assert (unhealthy, health.ready_workers, health.jobs.failed) == (1, 0, 1)
        job = await sb.client.run(endpoint.id, {"prompt": "x"})
        failed = await sb.client.status(endpoint.id, job.id)
        assert failed.status == "FAILED" and "WorkerCrashed" in failed.error
        assert failed.output is None

        sb.clock.advance(3600)  # unhealthy workers are not billed
        sb.emulator.recover_endpoint(endpoint.id)
        assert (await sb.client.health(endpoint.id)).total_workers == 0
        await warm(sb, endpoint)  # a fresh worker (cold start not billed)
        sb.clock.advance(100)
        assert (await sb.client.health(endpoint.id)).workers.idle == 1

        bill = await sb.client.billing_serverless(start, sb.clock.now(), "day")
        assert bill.total == Decimal("0.00031") * (10 + 100)


async def test_latency_fault_delays_for_real_and_counts_its_hits() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        fault = sb.emulator.faults.inject("*/health", "latency", delay=0.05, times=1)
        began = time.perf_counter()
        await sb.client.health(endpoint.id)
        assert time.perf_counter() - began >= 0.05
        await sb.client.health(endpoint.id)
        assert fault.hits == 1 and not fault.armed


async def test_persistent_faults_stay_until_cleared() -> None:
    async with sandbox(max_retries=0) as sb:
        sb.emulator.faults.inject("/rest/v2/templates", "server_error", status=503)
        for _ in range(3):
            with pytest.raises(ProviderError):
                await sb.client.list_templates()
        sb.emulator.faults.clear()
        assert await sb.client.list_templates() == []


async def test_failed_create_leaves_nothing_behind() -> None:
    async with sandbox() as sb, raw(sb) as http:
        sb.emulator.faults.inject("/rest/v2/serverless", "fail_create", status=500)
        response = await http.post("/rest/v2/serverless", json=endpoint_request().to_json())
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("application/problem+json")
        assert sb.emulator.state.endpoints == {}
        listed = await http.get("/rest/v2/serverless")  # GETs are not affected
        assert listed.json() == {"endpoints": []}


# --- validation, auth and errors -------------------------------------------------------------


async def test_request_bodies_are_validated_against_the_spec() -> None:
    async with sandbox() as sb, raw(sb) as http:
        body = endpoint_request().to_json()
        bad = await http.post("/rest/v2/serverless", json={**body, "gpuIds": "ADA_24"})
        assert bad.status_code == 422
        problem = bad.json()
        assert problem["title"] == "Unprocessable Entity"
        assert problem["errors"] == ["$: additional properties 'gpuIds' not allowed"]

        both = await http.post(
            "/rest/v2/serverless", json={**body, "cpu": [{"id": "cpu5c", "vcpuCount": 4}]}
        )
        assert both.status_code == 400 and "exactly one of gpu or cpu" in both.json()["detail"]
        unpriced = await http.post(
            "/rest/v2/serverless", json={**body, "gpu": {"pools": ["ADA_32_PRO"]}}
        )
        assert unpriced.status_code == 400 and "not available" in unpriced.json()["detail"]
        cuda = {"pools": ["ADA_24"], "allowedCudaVersions": ["12.8"], "minCudaVersion": "12.4"}
        clash = await http.post("/rest/v2/serverless", json={**body, "gpu": cuda})
        assert clash.status_code == 400
        broken = await http.post("/rest/v2/templates", content=b"{not json", headers=AUTH)
        assert broken.status_code == 400
        action = await http.post("/rest/v2/pods/nope/action", json={"action": "explode"})
        assert action.status_code == 422
        unknown = await http.get("/rest/v2/clusters")
        assert unknown.status_code == 404 and unknown.json()["status"] == 404


async def test_auth_missing_invalid_and_allow_listed_keys() -> None:
    async with sandbox(valid_keys={API_KEY}) as sb, raw(sb) as http:
        missing = await http.get("/rest/v2/serverless", headers={"Authorization": ""})
        assert missing.status_code == 401 and missing.json()["detail"] == "missing bearer token"
        other = await http.get("/rest/v2/serverless", headers={"Authorization": "Bearer rpa_x"})
        assert other.status_code == 401
        endpoint = await sb.client.create_endpoint(endpoint_request())
        bare = await http.get(f"/sls/v2/{endpoint.id}/health", headers={"Authorization": API_KEY})
        assert bare.status_code == 200  # the data plane also takes the bare key
    async with sandbox() as sb, raw(sb) as http:
        refused = await http.get("/rest/v2/pods", headers={"Authorization": "Bearer invalid-1"})
        assert refused.status_code == 401
        assert (await http.get("/rest/v2/pods", headers={"Authorization": "Bearer any"})).is_success


async def test_data_plane_errors_and_job_retention() -> None:
    async with sandbox() as sb, raw(sb) as http:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        base = f"/sls/v2/{endpoint.id}"
        bad_wait = await http.post(f"{base}/runsync?wait=5", json={"input": {}})
        assert bad_wait.status_code == 400
        assert bad_wait.json() == {"error": "wait is invalid; must be between 1000 and 300000"}
        assert (await http.post(f"{base}/run", json={"no": "input"})).status_code == 400
        assert (await http.get("/sls/v2/nope/health")).status_code == 404

        job = await sb.client.run(endpoint.id, {"n": 1})
        sb.clock.advance(READY_SECONDS + 1 + 29 * 60)
        assert (await sb.client.status(endpoint.id, job.id)).status == "COMPLETED"
        sb.clock.advance(60)  # /run results are kept 30 minutes
        with pytest.raises(ProviderError) as expired:
            await sb.client.status(endpoint.id, job.id)
        assert expired.value.status == 404
        assert (await sb.client.health(endpoint.id)).jobs.completed == 1


# --- billing ---------------------------------------------------------------------------------


async def test_billing_buckets_windows_and_filters() -> None:
    async with sandbox(idle_timeout_default=5) as sb, raw(sb) as http:
        start = sb.clock.now()  # 2026-11-25 12:00 UTC
        endpoint = await sb.client.create_endpoint(endpoint_request(workers_min=1))
        sb.clock.advance(2 * 3600)  # ready at 12:00:20, runs on

        hourly = await sb.client.billing_serverless(start, sb.clock.now(), "hour")
        amounts = [r.total_amount for r in hourly.records]
        assert amounts == [Decimal("0.00031") * 3580, Decimal("0.00031") * 3600]
        assert hourly.metadata.record_count == 2
        assert hourly.total == sum(amounts)

        daily = await sb.client.billing_serverless(start, sb.clock.now(), "day")
        assert daily.metadata.query.start_time.isoformat() == "2026-11-25T00:00:00+00:00"
        assert daily.metadata.query.end_time.isoformat() == "2026-11-26T00:00:00+00:00"
        assert daily.total == hourly.total

        later = await sb.client.billing_serverless(start.replace(hour=13), sb.clock.now(), "hour")
        assert later.total == Decimal("0.00031") * 3600

        last = await http.get(
            "/rest/v2/billing/serverless", params={"lastN": 2, "bucketSize": "hour"}
        )
        body = last.json()
        assert body["metadata"]["query"]["startTime"] == "2026-11-25T13:00:00Z"
        assert body["metadata"]["uniqueServerlessCount"] == 1
        assert body["records"][0]["serverlessId"] == endpoint.id

        both = await http.get(
            "/rest/v2/billing/serverless", params={"lastN": 2, "startTime": start.isoformat()}
        )
        assert both.status_code == 400
        weird = await http.get("/rest/v2/billing/pods", params={"bucketSize": "fortnight"})
        assert weird.status_code == 422 and weird.json()["errors"]


async def test_billing_lag_hides_the_most_recent_usage() -> None:
    async with sandbox(billing_lag_seconds=3600) as sb:
        start = sb.clock.now()
        await sb.client.create_endpoint(endpoint_request(workers_min=1))
        sb.clock.advance(3600)
        assert (await sb.client.billing_serverless(start, sb.clock.now(), "day")).total == 0
        sb.clock.advance(3600)
        lagged = await sb.client.billing_serverless(start, sb.clock.now(), "day")
        assert lagged.total == Decimal("0.00031") * 3580


def test_catalog_serverless_prices_are_the_flex_per_second_rates() -> None:
    for gpu in GPUS:
        if gpu.pool in POOL_PRICE_PER_SECOND:
            assert gpu.serverless_price_per_hour == POOL_PRICE_PER_SECOND[gpu.pool] * 3600
    assert POOL_PRICE_PER_SECOND["ADA_24"] * 3600 == Decimal("1.116")


# --- persistence -----------------------------------------------------------------------------


async def test_state_file_keeps_the_account_across_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "sandbox-state.json"
    async with sandbox(state_file=state_file, pod_start_seconds=10) as sb:
        clock, start = sb.clock, sb.clock.now()
        template = await sb.client.create_template(
            {"name": "cockpit-tpl", "image": "img:1", "serverless": True}
        )
        warm_ep = await sb.client.create_endpoint(endpoint_request("cockpit-warm", workers_min=1))
        flex = await sb.client.create_endpoint(endpoint_request("cockpit-flex", idle_timeout=600))
        await sb.client.update_endpoint(flex.id, {"workers": {"max": 3}})
        saved = json.loads(state_file.read_text())  # written after every mutating request
        assert [e["id"] for e in saved["endpoints"]] == [warm_ep.id, flex.id]
        pod = await sb.client.create_pod(
            CreatePodRequest(
                name="cockpit-pod", image="img:1", gpu=PodGpuRequest(id="NVIDIA GeForce RTX 4090")
            )
        )
        clock.advance(3600)
        assert (await sb.client.runsync(flex.id, {"n": 1})).status == "COMPLETED"
        serverless = await sb.client.billing_serverless(start, clock.now(), "hour")
        pods = await sb.client.billing_pods(start, clock.now(), "hour")
        # warm: ready at +20 s, runs on to now (+3621 s); flex: cold start 20 s + a 1 s job
        assert serverless.total == ADA_24 * (3601 + 1)
        pod_hour = Decimal("0.44")  # RTX 4090, secure cloud
        assert abs(pods.total - pod_hour * (3621 - 10) / 3600) < Decimal("0.00001")
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox-state.json"]  # no temp files left

    async with sandbox(state_file=state_file, clock=clock, pod_start_seconds=10) as again:
        client = again.client
        assert [t.id for t in await client.list_templates()] == [template.id]
        assert [e.id for e in await client.list_endpoints()] == [warm_ep.id, flex.id]
        assert (await client.get_endpoint(flex.id)).workers.max == 3
        assert [r.version for r in (await client.list_releases(flex.id)).releases] == [2, 1]
        assert (await client.get_pod(pod.id)).status == "RUNNING"
        # billing totals survive; workers restart cold (keep-warm ones start again)
        assert (
            await client.billing_serverless(start, clock.now(), "hour")
        ).total == serverless.total
        assert (await client.billing_pods(start, clock.now(), "hour")).total == pods.total
        assert (await client.list_workers(warm_ep.id)).summary.initializing == 1
        flex_health = await client.health(flex.id)
        assert flex_health.total_workers == 0 and flex_health.jobs.completed == 1

        again_ep = await client.create_endpoint(endpoint_request("cockpit-new"))
        assert again_ep.id not in (warm_ep.id, flex.id)  # the id generator resumed
        clock.advance(3600)
        pods_later = await client.billing_pods(start, clock.now(), "hour")
        # the pod ran on meanwhile (hourly records are rounded to 6 places each)
        assert abs(pods_later.total - pods.total - pod_hour) < Decimal("0.00001")


async def test_an_unreadable_state_file_is_set_aside(tmp_path: Path) -> None:
    state_file = tmp_path / "sandbox-state.json"
    for junk in ("{not json", '{"format": "something else"}'):
        state_file.write_text(junk)
        emulator = RunPodEmulator(state_file=state_file)
        await emulator.start()
        try:
            assert emulator.state.endpoints == {}
        finally:
            await emulator.stop()
        assert (tmp_path / "sandbox-state.json.corrupt").read_text() == junk
        assert json.loads(state_file.read_text())["endpoints"] == []


async def test_the_bot_finds_its_sandbox_deployments_after_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    options = {"COCKPIT_SANDBOX_STATE": True, "COCKPIT_SECRET_KEY": Fernet.generate_key().decode()}
    async with running_bot(tmp_path, clock=clock, **options) as bot:
        ask = await bot.send("/deploy Qwen/Qwen2.5-0.5B-Instruct", user="alice")
        done = await bot.approve(ask.approval_id, user="alice")
        assert done.ok, done.as_plain_text()
        endpoint_ids = list(bot.cockpit.runpod.emulator.state.endpoints)
    async with running_bot(tmp_path, clock=clock, **options) as bot:
        assert list(bot.cockpit.runpod.emulator.state.endpoints) == endpoint_ids
        status = await bot.send("/status 1", user="alice")
        assert status.ok, status.as_plain_text()
        stopped = await bot.send("/stop 1", user="alice")
        assert stopped.ok, stopped.as_plain_text()
    async with running_bot(tmp_path, clock=clock) as bot:  # tests default to no state file
        assert bot.cockpit.runpod.emulator.state_file is None


# --- entry points ----------------------------------------------------------------------------


async def test_add_endpoint_directly_validates_the_body() -> None:
    emulator = RunPodEmulator()
    endpoint_id = emulator.add_endpoint(endpoint_request().to_json())
    assert emulator.state.endpoints[endpoint_id].name == "cockpit-test-qwen"
    with pytest.raises(ValueError, match="additional properties 'oops'"):
        emulator.add_endpoint({**endpoint_request().to_json(), "oops": True})


async def test_make_app_serves_standalone_with_request_urls_from_the_host() -> None:
    server = TestServer(make_app())
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("")), headers=AUTH) as http:
            created = await http.post("/rest/v2/serverless", json=endpoint_request().to_json())
            urls = created.json()["requestUrls"]
            assert urls["health"].startswith(f"http://{server.host}:{server.port}/sls/v2/")
            health = await http.get(urls["health"])
            assert health.json()["workers"]["idle"] == 0
    finally:
        await server.close()


async def test_main_output_names_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(main(0))
    out = ""
    for _ in range(100):
        await asyncio.sleep(0.01)
        out += capsys.readouterr().out
        if "RUNPOD_SERVERLESS_URL" in out:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "simulated" in out
    api = next(line for line in out.splitlines() if "RUNPOD_API_URL=" in line).split("=", 1)[1]
    assert api.startswith("http://127.0.0.1:") and api.endswith("/rest/v2")


# --- the package imports in any order --------------------------------------------------------

SANDBOX_MODULES = ["catalog", "chat", "faults", "spec", "vllm", "throughput", "state", "persist"]


@pytest.mark.parametrize("module", [*SANDBOX_MODULES, "server"])
def test_each_sandbox_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """No import cycle through the package: a module imported first loads what it needs and
    not the server (the package's names are loaded on first use)."""
    code = (
        "import sys, importlib; "
        f"importlib.import_module('tools.runpod.sandbox.{module}'); "
        "print('tools.runpod.sandbox.server' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == str(module == "server")


def test_the_package_names_resolve_lazily() -> None:
    import tools.runpod.sandbox as package

    assert package.RunPodEmulator is RunPodEmulator
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        _ = package.NoSuchName  # type: ignore[attr-defined]
