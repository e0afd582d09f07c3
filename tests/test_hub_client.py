"""HubClient against the loopback fake Hub: search, cache, gated and unknown models, 429
retries, the snapshot fallback and the circuit breaker (time on a FakeClock, no real sleeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.fake_hub import FakeHub, closed_endpoint, running_fake_hub

from tools.clients.huggingface import (
    BREAKER_COOLDOWN_SECONDS,
    BREAKER_FAILURE_THRESHOLD,
    DEFAULT_CACHE_TTL_SECONDS,
    MAX_ATTEMPTS,
    CircuitBreaker,
    GatedModelError,
    HubClient,
    MemoryHubCache,
    ModelNotFound,
)
from tools.clock import FakeClock
from tools.errors import InvalidInput, NotFound, ProviderError, RateLimited

MakeClient = Callable[..., HubClient]
QWEN = "Qwen/Qwen2.5-7B-Instruct"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
GOOD_TOKEN = "hf_test_token"


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    async with running_fake_hub() as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(hub: FakeHub, clock: FakeClock, tmp_path: Path) -> MakeClient:
    def make(**kwargs: Any) -> HubClient:
        kwargs.setdefault("endpoint", hub.url)
        kwargs.setdefault("token", None)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("download_dir", tmp_path / "hf")
        return HubClient(**kwargs)

    return make


# --- search -------------------------------------------------------------------------------


async def test_search_sorted_by_downloads_with_filters(
    make_client: MakeClient, hub: FakeHub
) -> None:
    # The bundled catalog the fake serves has no download counts (issue 16: none were read
    # from the Hub), so give a few models some to check the live ordering.
    for rank, model_id in enumerate((QWEN, "Qwen/Qwen3-8B", "Qwen/Qwen2.5-14B-Instruct")):
        hub.models[model_id]["downloads"] = 3_000_000 - rank * 1_000_000
    client = make_client()
    hits = await client.search_models("qwen", limit=5)
    assert len(hits) == 5
    assert hits[0].id == QWEN
    assert [h.downloads for h in hits] == sorted((h.downloads for h in hits), reverse=True)
    assert all(h.source == "hub" and "qwen" in h.id.lower() for h in hits)
    request = hub.requests[-1]
    assert request.path == "/api/models"
    assert request.param("search") == ["qwen"]
    gemma = await client.search_models("gemma-3", limit=10)
    assert {h.id for h in gemma} >= {"google/gemma-3-27b-it", "google/gemma-3-1b-it"}
    assert request.param("sort") == ["downloads"]
    # one request per chat pipeline: text-generation and image-text-to-text (Gemma 3, Llama 4)
    assert [r.param("pipeline_tag") for r in hub.requests[-2:]] == [
        ["text-generation"],
        ["image-text-to-text"],
    ]
    assert "safetensors" in request.param("expand")

    mid = await client.search_models("qwen", min_params=5, max_params=20, gated=False)
    assert {h.id for h in mid} == {
        QWEN,
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-14B",
        "Qwen/Qwen2.5-14B-Instruct",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
    }
    assert all(5e9 <= (h.params or 0) <= 20e9 and not h.gated for h in mid)
    assert hub.requests[-1].param("num_parameters") == ["min:5B,max:20B"]
    assert hub.requests[-1].param("gated") == ["false"]

    gated = await client.search_models("llama", gated=True, library="transformers")
    assert gated and all(h.gated for h in gated)
    assert hub.requests[-1].param("filter") == ["transformers"]
    assert await client.search_models("no-such-model-anywhere") == []
    small = await client.search_models(None, limit=3, max_params=0.6)
    assert [h.id for h in small] == ["Qwen/Qwen3-0.6B", "Qwen/Qwen2.5-0.5B-Instruct"]
    assert hub.requests[-1].param("num_parameters") == ["max:600M"]


async def test_search_rejects_bad_arguments(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(InvalidInput):
        await client.search_models("qwen", limit=0)
    with pytest.raises(InvalidInput, match="larger than"):
        await client.search_models("qwen", min_params=70, max_params=7)


# --- cache --------------------------------------------------------------------------------


async def test_second_calls_are_served_from_the_cache(
    make_client: MakeClient, hub: FakeHub, clock: FakeClock
) -> None:
    cache = MemoryHubCache(clock)
    client = make_client(cache=cache)
    first = await client.model_info(QWEN)
    calls = len(hub.requests)
    assert calls == 3  # model info + HEAD and GET of config.json
    again = await client.model_info(QWEN)
    assert again == first
    assert len(hub.requests) == calls
    await client.search_models("qwen", limit=3)
    await client.search_models("qwen", limit=3)
    # one request per chat pipeline (text-generation, image-text-to-text), then cached
    assert hub.count("/api/models", method="GET") - hub.count("/api/models/") == 2
    # another client sharing the cache (another organisation) does not ask either
    await make_client(cache=cache).model_info(QWEN)
    assert hub.count(f"/api/models/{QWEN}") == 1
    # after the TTL the Hub is asked again
    clock.advance(DEFAULT_CACHE_TTL_SECONDS + 1)
    await client.model_info(QWEN)
    assert hub.count(f"/api/models/{QWEN}") == 2


async def test_memory_cache_expires_and_copies(clock: FakeClock) -> None:
    cache = MemoryHubCache(clock)
    await cache.put("k", {"a": [1]}, ttl_seconds=10)
    value = await cache.get("k")
    assert value == {"a": [1]}
    value["a"].append(2)  # type: ignore[index]
    assert await cache.get("k") == {"a": [1]}
    clock.advance(10)
    assert await cache.get("k") is None


# --- gated and unknown models -------------------------------------------------------------


async def test_gated_model_without_token_says_how_to_add_one(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client = make_client()
    with pytest.raises(GatedModelError) as caught:
        await client.model_info(LLAMA)
    text = str(caught.value)
    assert "gated" in text
    assert f"Accept the licence on huggingface.co/{LLAMA}" in text
    assert "`/connect huggingface` or HF_TOKEN" in text
    assert isinstance(caught.value, ProviderError) and caught.value.service == "huggingface"
    assert hub.count(f"/{LLAMA}/resolve/") == 0  # known gated: config.json is not even tried


async def test_gated_model_with_a_token_lacking_access_gets_the_hubs_403(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client = make_client(token="hf_no_access")
    with pytest.raises(GatedModelError) as caught:
        await client.model_info(LLAMA)
    assert caught.value.status == 403
    assert "token has no access" in str(caught.value)
    assert hub.count(f"/{LLAMA}/resolve/main/config.json", method="HEAD") == 1


async def test_gated_model_with_access_reads_config_json(
    make_client: MakeClient, hub: FakeHub
) -> None:
    info = await make_client(token=GOOD_TOKEN).model_info(LLAMA)
    assert info.gated and info.gating == "manual" and info.license == "llama3.1"
    assert info.geometry is not None and info.geometry.max_position_embeddings == 131072
    assert info.source == "hub"
    assert all(r.token == GOOD_TOKEN for r in hub.requests)


async def test_gated_metadata_without_access_check_comes_from_the_snapshot(
    make_client: MakeClient,
) -> None:
    info = await make_client().model_info(LLAMA, check_access=False)
    assert info.source == "snapshot" and info.geometry is not None
    assert "gated" in (info.note or "")


async def test_unknown_model_is_not_found_with_nearest_matches(make_client: MakeClient) -> None:
    with pytest.raises(ModelNotFound) as caught:
        await make_client().model_info("Qwen/Qwen2.5-7B-Instrct")
    assert isinstance(caught.value, NotFound)
    assert caught.value.suggestions[0] == QWEN
    assert "Hugging Face has no model 'Qwen/Qwen2.5-7B-Instrct'" in str(caught.value)
    assert f"Did you mean {QWEN}" in str(caught.value)


async def test_nearest_matches_also_come_from_a_live_search(
    make_client: MakeClient, hub: FakeHub
) -> None:
    record = hub.snapshot.record(QWEN)
    assert record is not None
    hub.add_model({**record, "id": "acme/Zephyrine-13B-Chat", "author": "acme"})
    with pytest.raises(ModelNotFound) as caught:
        await make_client().model_info("acme/Zephyrin-13B-Chat")
    assert caught.value.suggestions == ["acme/Zephyrine-13B-Chat"]


async def test_invalid_ids_are_rejected_before_any_request(
    make_client: MakeClient, hub: FakeHub
) -> None:
    client = make_client()
    for bad in ("qwen", "", "a/b/c", "org/na me"):
        with pytest.raises(InvalidInput, match="org/name"):
            await client.model_info(bad)
    assert hub.requests == []
    info = await client.model_info(f"https://huggingface.co/{QWEN}")
    assert info.id == QWEN


# --- rate limits --------------------------------------------------------------------------


async def test_429_is_retried_honouring_retry_after(
    make_client: MakeClient, hub: FakeHub, clock: FakeClock
) -> None:
    hub.rate_limit(2, retry_after=3)
    info = await make_client().model_info(QWEN)
    assert info.source == "hub"
    assert hub.count(f"/api/models/{QWEN}") == 3
    assert clock.monotonic() == pytest.approx(6.0)  # waited 3 s twice, on the fake clock


async def test_lasting_429_gives_a_clear_rate_limit_message(
    make_client: MakeClient, hub: FakeHub
) -> None:
    hub.rate_limit(100, retry_after=5)
    with pytest.raises(RateLimited) as caught:
        await make_client().search_models("qwen")
    assert caught.value.retry_after == 5
    assert "rate-limiting" in str(caught.value) and "Try again in 5 s" in str(caught.value)
    assert "HF_TOKEN" in str(caught.value)  # a token raises the limit
    assert hub.count("/api/models") == MAX_ATTEMPTS


async def test_long_retry_after_is_reported_not_waited_for(
    make_client: MakeClient, hub: FakeHub, clock: FakeClock
) -> None:
    hub.rate_limit(1, retry_after=120)
    with pytest.raises(RateLimited) as caught:
        await make_client(token=GOOD_TOKEN).model_info(QWEN)
    assert caught.value.retry_after == 120
    assert "HF_TOKEN" not in str(caught.value)
    assert hub.count("/api/models") == 1 and clock.monotonic() == 0


# --- Hub down: snapshot and circuit breaker -----------------------------------------------


async def test_hub_down_answers_from_the_snapshot_labelled(
    make_client: MakeClient, hub: FakeHub
) -> None:
    hub.down = True
    client = make_client()
    info = await client.model_info("Qwen/Qwen2.5-14B-Instruct")
    assert info.source == "snapshot"
    assert str(info.snapshot_date) == "2026-12-01"
    assert info.source_label == (
        "bundled catalog compiled 2026-12-01 from public model configs (Hugging Face unreachable)"
    )
    assert info.params_total == 14_770_033_664
    hits = await client.search_models("mistral")
    assert [h.id for h in hits] == [
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        "mistralai/Mistral-7B-Instruct-v0.3",
    ]
    assert all(h.source == "snapshot" and h.snapshot_date for h in hits)
    with pytest.raises(ProviderError) as caught:
        await client.model_info("acme/not-in-the-snapshot")
    assert caught.value.retryable and "not in the bundled model catalog" in str(caught.value)


async def test_transient_5xx_is_retried_then_succeeds(
    make_client: MakeClient, hub: FakeHub
) -> None:
    hub.fail(1, status=502)
    info = await make_client().model_info(QWEN)
    assert info.source == "hub"
    assert hub.count(f"/api/models/{QWEN}") == 2


async def test_connection_refused_answers_from_the_snapshot(clock: FakeClock) -> None:
    client = HubClient(endpoint=closed_endpoint(), token=None, clock=clock)
    info = await client.model_info(QWEN)
    assert info.source == "snapshot" and info.note == "Hugging Face unreachable"
    assert clock.monotonic() > 0  # backed off (on the fake clock) before giving up
    assert client.breaker.failures == MAX_ATTEMPTS


async def test_breaker_opens_after_repeated_failures_and_closes_after_cool_down(
    make_client: MakeClient, hub: FakeHub, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(clock)
    client = make_client(breaker=breaker)
    hub.down = True
    await client.model_info(QWEN)  # 3 failed attempts
    assert breaker.state == "closed" and breaker.failures == 3
    await client.model_info("Qwen/Qwen2.5-3B-Instruct")  # 2 more: threshold reached
    assert breaker.failures == BREAKER_FAILURE_THRESHOLD
    assert breaker.state == "open"
    sent = len(hub.requests)
    assert sent == BREAKER_FAILURE_THRESHOLD

    # while open: no request reaches the Hub, answers come from the snapshot, labelled
    paused = await client.model_info("Qwen/Qwen2.5-1.5B-Instruct")
    assert paused.source == "snapshot"
    assert paused.note == "Hugging Face paused after repeated failures"
    assert (await client.search_models("phi"))[0].source == "snapshot"
    assert len(hub.requests) == sent

    # the Hub recovers; after the cool-down one trial goes out and closes the breaker
    hub.down = False
    clock.advance(BREAKER_COOLDOWN_SECONDS - 1)
    assert breaker.state == "open"
    assert (await client.model_info("Qwen/Qwen2.5-1.5B-Instruct")).source == "snapshot"
    clock.advance(1)
    assert breaker.state == "half_open"
    info = await client.model_info("Qwen/Qwen2.5-1.5B-Instruct")
    assert info.source == "hub"
    assert breaker.state == "closed" and breaker.failures == 0


async def test_failed_trial_reopens_the_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock, failure_threshold=2, cooldown_seconds=30)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.advance(30)
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()
    assert breaker.state == "open" and breaker.retry_in() == pytest.approx(30)
    clock.advance(timedelta(seconds=30).total_seconds())
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


# --- offline (sandbox) mode ---------------------------------------------------------------


async def test_offline_mode_uses_only_the_snapshot(make_client: MakeClient, hub: FakeHub) -> None:
    client = make_client(offline=True)
    info = await client.model_info("mistralai/Mistral-7B-Instruct-v0.3")
    assert info.source == "snapshot" and info.note == "offline mode"
    hits = await client.search_models("deepseek", max_params=10)
    assert [h.id for h in hits] == [
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    ]
    with pytest.raises(ModelNotFound) as caught:
        await client.model_info("Qwen/Qwen2.5-7B-Instrct")
    assert caught.value.suggestions[0] == QWEN
    with pytest.raises(GatedModelError):
        await client.model_info(LLAMA)  # still gated: the real worker would need a token
    assert hub.requests == []
