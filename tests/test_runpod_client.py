"""The RunPod client against the sandbox emulator on loopback: real HTTP, fake time."""

from __future__ import annotations

import asyncio
import logging
import traceback
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from runpod_helpers import (
    API_KEY,
    MODEL,
    READY_SECONDS,
    chat_messages,
    endpoint_request,
    sandbox,
)

from tools.clock import FakeClock
from tools.errors import ProviderError, RateLimited
from tools.runpod.client import RunPodClient, make_http_pool
from tools.runpod.models import (
    CreatePodRequest,
    CreateTemplateRequest,
    EndpointHealth,
    PodGpuRequest,
    UpdateEndpointRequest,
    WorkersRequest,
)
from tools.runpod.transport import ShardedTransport

KEY_MESSAGE = (
    "RunPod rejected the API key (401). Set a new one with `/connect runpod` or the "
    "RUNPOD_API_KEY environment variable."
)


async def gather_bounded(coros: list[Any], limit: int) -> list[Any]:
    """At most `limit` at once, as the health sweep's semaphore holds them."""
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with sem:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


def elapsed(clock: FakeClock, since: float) -> float:
    return clock.monotonic() - since


# --- catalog ---------------------------------------------------------------------------------


async def test_catalog_lists_gpus_with_pools_and_decimal_prices() -> None:
    async with sandbox() as sb:
        gpus = {g.id: g for g in await sb.client.list_gpus()}
        rtx4090 = gpus["NVIDIA GeForce RTX 4090"]
        assert (rtx4090.pool, rtx4090.memory, rtx4090.manufacturer) == ("ADA_24", 24, "NVIDIA")
        assert rtx4090.price.serverless == Decimal("1.116")  # flex $0.00031/s × 3600
        assert rtx4090.serverless_price_per_second == Decimal("0.00031")
        assert (rtx4090.price.secure, rtx4090.price.community) == (Decimal("0.44"), Decimal("0.31"))
        assert isinstance(rtx4090.price.secure, Decimal)
        assert gpus["NVIDIA H200 NVL"].pool is None
        assert gpus["NVIDIA H200 NVL"].price.serverless is None
        assert gpus["NVIDIA A100 80GB PCIe"].memory == 80

        with_stock = await sb.client.list_gpus(include_availability=True)
        assert {g.availability for g in with_stock} == {"HIGH"}
        assert with_stock[0].data_centers


async def test_concurrent_catalog_reads_on_one_account_share_one_request() -> None:
    async with sandbox() as sb:
        pool = make_http_pool()
        mine = [sb.client_with(http=pool) for _ in range(10)]  # one client per command
        theirs = sb.client_with(http=pool, api_key="another-account-key")

        def catalog_calls() -> list[str]:
            return [e.path for e in sb.emulator.exchanges if e.path == "/v2/catalog/gpus"]

        answers = await asyncio.gather(*(c.list_gpus() for c in mine), theirs.list_gpus())
        assert len(catalog_calls()) == 2  # one per account, not one per caller
        assert all(a == answers[0] for a in answers)

        await mine[0].list_gpus()  # the next read asks again: nothing is cached
        assert len(catalog_calls()) == 3

        sb.emulator.faults.inject("/rest/v2/catalog/gpus", "server_error", status=400, times=1)
        results = await asyncio.gather(*(c.list_gpus() for c in mine[:3]), return_exceptions=True)
        assert all(isinstance(r, ProviderError) for r in results)  # the one error, for all
        assert len(catalog_calls()) == 4
        assert await mine[0].list_gpus()
        await pool.aclose()


async def test_concurrent_identical_billing_reads_share_one_request() -> None:
    """A burst of /spend reports of one account over the same hour-aligned span (what
    tools.cost.billing asks) costs RunPod one request per billing route."""
    async with sandbox() as sb:
        pool = make_http_pool()
        clients = [sb.client_with(http=pool) for _ in range(8)]
        end = sb.clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start = end - timedelta(days=2)
        await asyncio.gather(
            *(c.billing_serverless(start, end, bucket_size="hour") for c in clients),
            *(c.billing_pods(start, end, bucket_size="hour") for c in clients),
        )
        paths = [e.path for e in sb.emulator.exchanges if "/billing/" in e.path]
        assert sorted(paths) == ["/v2/billing/pods", "/v2/billing/serverless"], paths
        other = await clients[0].billing_serverless(start, end - timedelta(hours=1))
        assert other is not None  # another span is another question
        assert len([e for e in sb.emulator.exchanges if "/billing/" in e.path]) == 3
        await pool.aclose()


# --- templates and endpoints -----------------------------------------------------------------


async def test_template_and_endpoint_create_get_patch_releases_delete() -> None:
    async with sandbox() as sb:
        client = sb.client
        template = await client.create_template(
            CreateTemplateRequest(
                name="cockpit-tpl-qwen",
                image="runpod/worker-v1-vllm:v2.25.2",
                env={"MODEL_NAME": MODEL},
                serverless=True,
            )
        )
        assert (await client.get_template(template.id)).env == {"MODEL_NAME": MODEL}
        assert [t.id for t in await client.list_templates(name_prefix="cockpit-")] == [template.id]

        body = endpoint_request().model_copy(update={"image": None, "template_id": template.id})
        endpoint = await client.create_endpoint(body)
        assert endpoint.name == "cockpit-test-qwen"
        assert endpoint.image == "runpod/worker-v1-vllm:v2.25.2"  # from the template
        assert endpoint.env["MODEL_NAME"] == MODEL and endpoint.env["MAX_MODEL_LEN"] == "8192"
        assert endpoint.gpu is not None and endpoint.gpu.pools == ["ADA_24"]
        assert endpoint.workers.idle_timeout == 5
        assert endpoint.request_urls["health"].endswith(f"/sls/v2/{endpoint.id}/health")
        assert (await client.get_endpoint(endpoint.id)).created_at == endpoint.created_at

        other = await client.create_endpoint({**endpoint_request("other-team").to_json()})
        assert [e.id for e in await client.list_endpoints(name_prefix="cockpit-")] == [endpoint.id]
        assert len(await client.list_endpoints()) == 2

        patched = await client.update_endpoint(
            endpoint.id,
            UpdateEndpointRequest(workers=WorkersRequest(max=4), env={"MODEL_NAME": MODEL}),
        )
        assert patched.workers.max == 4 and patched.env == {"MODEL_NAME": MODEL}
        history = await client.list_releases(endpoint.id)
        assert history.endpoint_version == 2
        assert [r.version for r in history.releases] == [2, 1]  # newest first
        changed = {d.field for d in history.releases[0].diff}
        assert changed == {"env", "workers.max"}

        await client.delete_endpoint(endpoint.id)
        with pytest.raises(ProviderError) as missing:
            await client.get_endpoint(endpoint.id)
        assert missing.value.status == 404
        assert "not found" in str(missing.value)
        await client.delete_template(template.id)
        await client.delete_endpoint(other.id)
        assert await client.list_templates() == []


async def test_health_goes_from_initializing_to_ready_as_time_passes() -> None:
    async with sandbox(job_seconds=2.0) as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        health = await sb.client.health(endpoint.id)
        assert health.total_workers == 0  # created scaled to zero; /health does not wake it

        job = await sb.client.run(endpoint.id, {"prompt": "hi"})
        assert job.status == "IN_QUEUE"
        health = await sb.client.health(endpoint.id)
        starting = (await sb.client.list_workers(endpoint.id)).summary.initializing
        assert (starting, health.jobs.in_queue) == (1, 1)
        assert health.ready_workers == 0

        sb.clock.advance(READY_SECONDS - 1)
        assert (await sb.client.list_workers(endpoint.id)).summary.initializing == 1
        sb.clock.advance(1)
        health = await sb.client.health(endpoint.id)
        assert (health.workers.running, health.jobs.in_progress) == (1, 1)
        sb.clock.advance(2)
        health = await sb.client.health(endpoint.id)
        assert (health.workers.idle, health.jobs.completed) == (1, 1)
        assert health.ready_workers == 1

        status = await sb.client.status(endpoint.id, job.id)
        assert status.status == "COMPLETED" and status.output["sandbox"] is True
        assert status.delay_time == 20_000 and status.execution_time == 2_000

        workers = await sb.client.list_workers(endpoint.id)
        assert (
            workers.summary.idle == 1
            and workers.workers[0].gpu_type_id == "NVIDIA GeForce RTX 4090"
        )


async def test_runsync_waits_for_a_cold_worker_and_cancel() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        start = sb.clock.monotonic()
        result = await sb.client.runsync(endpoint.id, {"prompt": "hi"})
        assert result.status == "COMPLETED" and result.id.startswith("sync-")
        assert elapsed(sb.clock, start) == READY_SECONDS + 1.0  # cold start + job time

        await sb.client.update_endpoint(endpoint.id, {"workers": {"max": 0}})
        sb.clock.advance(60)  # the old worker idles out; max 0 means nothing picks jobs up
        queued = await sb.client.run(endpoint.id, {"prompt": "later"})
        cancelled = await sb.client.cancel(endpoint.id, queued.id)
        assert cancelled.status == "CANCELLED"
        assert (await sb.client.status(endpoint.id, queued.id)).status == "CANCELLED"


# --- chat ------------------------------------------------------------------------------------


async def test_streamed_chat_delivers_tokens_incrementally_with_usage() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        release = sb.emulator.hold_stream(after_tokens=1)
        start = sb.clock.monotonic()
        stream = sb.client.stream_chat(endpoint.id, chat_messages("hello there"), MODEL)

        first = await anext(stream)
        # The server is paused right after its first token: the client already has it.
        assert first.content == "[sandbox]"
        assert sb.emulator.tokens_streamed == 1
        assert elapsed(sb.clock, start) == READY_SECONDS  # waited for the cold worker

        release.set()
        rest = [delta async for delta in stream]
        text = first.content + "".join(d.content for d in rest)
        assert text == f"[sandbox] {MODEL}: you said 'hello there'"
        assert [d.finish_reason for d in rest if d.finish_reason] == ["stop"]
        usage = rest[-1].usage
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (5, len(text.split()))
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_chat_completion_and_models_are_marked_sandbox() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        assert await sb.client.list_models(endpoint.id) == [MODEL]
        reply = await sb.client.chat_completion(
            endpoint.id, chat_messages("one two three four"), MODEL, max_tokens=4
        )
        assert reply.content == f"[sandbox] {MODEL}: you said"
        assert reply.finish_reason == "length"
        assert reply.usage is not None and reply.usage.completion_tokens == 4

        with pytest.raises(ProviderError) as wrong:
            await sb.client.chat_completion(endpoint.id, chat_messages(), "gpt-unknown")
        assert wrong.value.status == 404 and "gpt-unknown" in str(wrong.value)


# --- retries ---------------------------------------------------------------------------------


async def test_429_is_retried_after_exactly_retry_after_seconds() -> None:
    async with sandbox() as sb:
        sb.emulator.faults.inject("/rest/v2/catalog/gpus", "rate_limit", times=2, retry_after=3)
        start = sb.clock.monotonic()
        gpus = await sb.client.list_gpus()
        assert gpus
        assert elapsed(sb.clock, start) == 6.0
        calls = [e for e in sb.emulator.exchanges if e.path == "/v2/catalog/gpus"]
        assert [e.status for e in calls] == [429, 429, 200]


async def test_429_asking_for_a_long_wait_raises_rate_limited_at_once() -> None:
    async with sandbox() as sb:
        sb.emulator.faults.inject("/rest/v2/serverless", "rate_limit", retry_after=900)
        start = sb.clock.monotonic()
        with pytest.raises(RateLimited) as limited:
            await sb.client.list_endpoints()
        assert limited.value.retry_after == 900
        assert elapsed(sb.clock, start) == 0
        assert "rate-limiting" in str(limited.value)


async def test_5xx_is_retried_with_exponential_backoff() -> None:
    async with sandbox() as sb:
        sb.emulator.faults.inject("/rest/v2/serverless", "server_error", times=2, status=503)
        start = sb.clock.monotonic()
        assert await sb.client.list_endpoints() == []
        # backoff 0.5 s then 1 s, each scaled by a jitter factor in [0.5, 1]
        assert 0.75 <= elapsed(sb.clock, start) <= 1.5


async def test_5xx_that_persists_becomes_a_retryable_provider_error() -> None:
    async with sandbox(max_retries=2) as sb:
        sb.emulator.faults.inject("/rest/v2/serverless", "server_error", status=502)
        with pytest.raises(ProviderError) as failed:
            await sb.client.list_endpoints()
        assert failed.value.status == 502 and failed.value.retryable
        assert "server error" in str(failed.value) and "try again" in str(failed.value)
        assert len(sb.emulator.exchanges) == 3


async def test_create_answered_500_after_creating_adopts_the_endpoint() -> None:
    async with sandbox() as sb:
        sb.emulator.faults.inject("/rest/v2/serverless", "fail_create", times=1, create_anyway=True)
        endpoint = await sb.client.create_endpoint(endpoint_request())
        assert list(sb.emulator.state.endpoints) == [endpoint.id]  # not created twice
        calls = [(e.method, e.path, e.status) for e in sb.emulator.exchanges]
        assert calls == [("POST", "/v2/serverless", 500), ("GET", "/v2/serverless", 200)]


async def test_create_answered_500_without_creating_is_retried() -> None:
    async with sandbox() as sb:
        sb.emulator.faults.inject("/rest/v2/templates", "fail_create", times=1)
        template = await sb.client.create_template(
            {"name": "cockpit-tpl", "image": "img:1", "serverless": True}
        )
        assert list(sb.emulator.state.templates) == [template.id]
        statuses = [(e.method, e.status) for e in sb.emulator.exchanges]
        assert statuses == [("POST", 500), ("GET", 200), ("POST", 201)]


async def test_create_error_stands_when_runpod_cannot_be_asked_what_happened() -> None:
    async with sandbox(max_retries=1) as sb:
        sb.emulator.faults.inject("/rest/v2/serverless", "fail_create", status=502)
        sb.emulator.faults.inject("/rest/v2/serverless", "server_error", method="GET", status=503)
        with pytest.raises(ProviderError) as failed:
            await sb.client.create_endpoint(endpoint_request())
        assert failed.value.status == 502  # the create's error, not the look-up's
        assert "check the list before retrying" in str(failed.value)
        posts = [e for e in sb.emulator.exchanges if e.method == "POST"]
        assert len(posts) == 1  # never created blind a second time


async def test_delete_retried_after_a_5xx_that_worked_counts_as_done() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        route = f"/rest/v2/serverless/{endpoint.id}"
        sb.emulator.faults.inject(
            route, "fail_create", method="DELETE", create_anyway=True, times=1
        )
        await sb.client.delete_endpoint(endpoint.id)  # 500 (but deleted), then 404: done
        assert sb.emulator.state.endpoints == {}


async def test_job_submission_is_never_resubmitted_after_a_5xx() -> None:
    async with sandbox() as sb:
        endpoint = await sb.client.create_endpoint(endpoint_request())
        sb.emulator.faults.inject(f"/sls/v2/{endpoint.id}/run", "server_error", times=1)
        with pytest.raises(ProviderError) as failed:
            await sb.client.run(endpoint.id, {"prompt": "once"})
        assert failed.value.status == 500
        runs = [e for e in sb.emulator.exchanges if e.path.endswith("/run")]
        assert len(runs) == 1


async def test_unreachable_runpod_is_retried_then_reported() -> None:
    clock = FakeClock()
    client = RunPodClient(
        api_key=API_KEY, api_url="http://127.0.0.1:9/v2", clock=clock, max_retries=2
    )
    try:
        with pytest.raises(ProviderError) as failed:
            await client.list_endpoints()
    finally:
        await client.aclose()
    assert "Could not reach RunPod (127.0.0.1:9)" in str(failed.value)
    assert failed.value.retryable
    assert 0.75 <= clock.monotonic() <= 1.5


# --- errors and secrets ----------------------------------------------------------------------


async def test_401_says_the_key_was_rejected_and_never_shows_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # includes httpx/httpcore request traces
    async with sandbox() as sb:
        sb.emulator.faults.inject("/rest/v2/catalog/gpus", "rate_limit", times=1, retry_after=1)
        assert await sb.client.list_gpus()  # a retry, logged
        rejected_key = "invalid" + API_KEY  # the sandbox refuses keys starting with "invalid"
        stranger = sb.client_with(api_key=rejected_key)
        with pytest.raises(ProviderError) as rejected:
            await stranger.list_endpoints()
        await stranger.aclose()
        error = rejected.value
        assert str(error) == KEY_MESSAGE
        assert error.status == 401 and not error.retryable
        rendered = [
            str(error),
            repr(error),
            "".join(traceback.format_exception(error)),
            repr(sb.client),
            repr(stranger),
            caplog.text,
        ]
        assert all(API_KEY not in text for text in rendered)
        assert "retry 1/4" in caplog.text
        assert repr(sb.client).endswith("key='…zz9q')")


async def test_problem_json_422_lists_the_validation_errors() -> None:
    async with sandbox() as sb:
        body = {**endpoint_request().to_json(), "bogus": 1}
        with pytest.raises(ProviderError) as invalid:
            await sb.client.create_endpoint(body)
        assert invalid.value.status == 422
        assert "additional properties 'bogus' not allowed" in str(invalid.value)
        assert "bug in the request Cockpit sent" in str(invalid.value)


async def test_400_cross_field_rule_is_a_clear_refusal() -> None:
    async with sandbox() as sb:
        with pytest.raises(ProviderError) as refused:
            await sb.client.create_endpoint(endpoint_request(pools=("NOT_A_POOL",)))
        assert refused.value.status == 400
        assert "unknown serverless GPU pool 'NOT_A_POOL'" in str(refused.value)
        assert "create the serverless endpoint 'cockpit-test-qwen'" in str(refused.value)


async def test_one_shared_pool_serves_clients_with_different_keys() -> None:
    pool = make_http_pool(max_connections=10)
    async with sandbox(http=pool, valid_keys={API_KEY}) as sb:
        stranger = sb.client_with(api_key="rpa_someone_elses_key_1234", http=pool)
        assert await sb.client.list_endpoints() == []
        with pytest.raises(ProviderError) as rejected:
            await stranger.list_endpoints()
        assert rejected.value.status == 401
        await stranger.aclose()  # does not close the shared pool
        assert await sb.client.list_endpoints() == []
    assert not pool.is_closed
    await pool.aclose()


async def test_sharded_pool_spreads_requests_and_frees_every_slot() -> None:
    transport = ShardedTransport(max_connections=30)
    async with (
        httpx.AsyncClient(transport=transport) as pool,
        sandbox(http=pool) as sb,
    ):
        assert transport.in_flight == (0, 0, 0)  # three pools of 10 connections
        endpoints = [
            await sb.client.create_endpoint(endpoint_request(f"cockpit-{n}")) for n in range(30)
        ]
        sb.emulator.faults.inject("*/health", "latency", delay=0.02)
        # as the health sweep asks: one `health` per endpoint, 30 at a time
        results = await gather_bounded([sb.client.health(e.id) for e in endpoints], 30)
        assert all(isinstance(r, EndpointHealth) for r in results)
        assert transport.in_flight == (0, 0, 0)

        release = sb.emulator.hold_stream(after_tokens=1)
        stream = sb.client.stream_chat(endpoints[0].id, chat_messages(), MODEL)
        await anext(stream)
        assert sum(transport.in_flight) == 1  # the open stream holds its connection
        release.set()
        assert [d async for d in stream]
        assert transport.in_flight == (0, 0, 0)


# --- pods and billing ------------------------------------------------------------------------


async def test_pods_create_list_actions_and_delete() -> None:
    async with sandbox(pod_start_seconds=10) as sb:
        pod = await sb.client.create_pod(
            CreatePodRequest(
                name="cockpit-pod-a",
                image="runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
                gpu=PodGpuRequest(id="NVIDIA GeForce RTX 4090", count=2),
            )
        )
        assert pod.status == "PROVISIONING" and pod.cost == Decimal("0.88")
        sb.clock.advance(10)
        assert (await sb.client.get_pod(pod.id)).status == "RUNNING"
        assert [p.id for p in await sb.client.list_pods(name_prefix="cockpit-pod")] == [pod.id]
        stopped = await sb.client.pod_action(pod.id, "stop")
        assert stopped is not None and stopped.status == "EXITED" and stopped.cost == 0
        with pytest.raises(ProviderError) as conflict:
            await sb.client.pod_action(pod.id, "restart")
        assert conflict.value.status == 409
        assert await sb.client.pod_action(pod.id, "terminate") is None
        assert await sb.client.list_pods() == []


async def test_billing_totals_match_accrued_seconds_times_price() -> None:
    async with sandbox() as sb:
        start = sb.clock.now()
        warm = await sb.client.create_endpoint(
            endpoint_request("cockpit-warm", gpu_count=2, workers_min=1, workers_max=2)
        )
        idle = await sb.client.create_endpoint(endpoint_request("cockpit-idle"))
        sb.clock.advance(3 * 3600 + READY_SECONDS)  # warm worker: ready at +20 s, billed since
        await sb.client.update_endpoint(warm.id, {"workers": {"min": 0}})  # then 5 s idle tail
        sb.clock.advance(600)
        end = sb.clock.now() + timedelta(hours=1)

        report = await sb.client.billing_serverless(start, end, "hour")
        billed_seconds = 3 * 3600 + 5
        expected = Decimal("0.00031") * 2 * billed_seconds  # ADA_24 flex $/s × GPUs × seconds
        assert report.total.quantize(Decimal("0.01")) == expected.quantize(Decimal("0.01"))
        assert abs(report.total - expected) < Decimal("0.00001")
        assert {r.serverless_id for r in report.records} == {warm.id}  # idle one never ran
        assert len(report.records) == 4  # 12:00, 13:00, 14:00, 15:00 buckets
        assert report.records[0].total_amount == Decimal("0.00031") * 2 * (3600 - 20)

        only = await sb.client.billing_serverless(start, end, "day", serverless_id=idle.id)
        assert only.records == [] and only.total == 0

        pod = await sb.client.create_pod(
            {"name": "cockpit-pod", "image": "img", "gpu": {"id": "NVIDIA GeForce RTX 4090"}}
        )
        sb.clock.advance(10 + 2 * 3600)  # 10 s provisioning (not billed), then two hours
        await sb.client.pod_action(pod.id, "stop")
        pods = await sb.client.billing_pods(start, sb.clock.now(), "day", pod_id=pod.id)
        assert pods.total == Decimal("0.88")  # 2 h × $0.44
        assert [r.pod_id for r in pods.records] == [pod.id]
