"""vLLM memory sizing and GPU fit, on real model metadata served by the fake Hugging Face Hub.

Published figures: parameter counts are the Hub's `safetensors.total`; geometry is each repo's
config.json; KV bytes per token (bf16) = 2 × layers × KV heads × head_dim × 2, counting only the
layers whose cache grows with the context (Gemma 2's 21 sliding-window layers hold at most
4096 + one prefill chunk of tokens, as vLLM allocates them; see tests/test_catalog_data.py).
Card memory is what nvidia-smi reports (L4 23,034 MiB), not the nominal 24 GB: issue 16 found
the old 24-GiB reading overstated max context on the 24/48 GB pools by 25–35 %.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakes.fake_hub import FakeHub, running_fake_hub

from tools.catalog import ModelInfo
from tools.catalog.fit import NoGpuFits, fit
from tools.catalog.gpus import (
    FALLBACK_DATE,
    GpuOffer,
    fallback_offers,
    offers_from_catalog,
    serverless_pools,
)
from tools.catalog.sizing import (
    DEFAULT_CONTEXT,
    GIB,
    GPU_MEMORY_UTILIZATION,
    OVERHEAD_GIB_PER_GPU,
    estimate,
)
from tools.clients.huggingface import HubClient
from tools.clock import FakeClock
from tools.errors import InvalidInput

KIB = 1024

# id: (params, layers, attention heads, KV heads, head_dim, bf16 KV bytes per token)
PUBLISHED = {
    "Qwen/Qwen2.5-0.5B-Instruct": (494_032_768, 24, 14, 2, 64, 12 * KIB),
    "Qwen/Qwen2.5-1.5B-Instruct": (1_543_714_304, 28, 12, 2, 128, 28 * KIB),
    "Qwen/Qwen2.5-3B-Instruct": (3_085_938_688, 36, 16, 2, 128, 36 * KIB),
    "Qwen/Qwen2.5-7B-Instruct": (7_615_616_512, 28, 28, 4, 128, 56 * KIB),
    "Qwen/Qwen2.5-14B-Instruct": (14_770_033_664, 48, 40, 8, 128, 192 * KIB),
    "Qwen/Qwen2.5-32B-Instruct": (32_763_876_352, 64, 40, 8, 128, 256 * KIB),
    "Qwen/Qwen2.5-72B-Instruct": (72_706_203_648, 80, 64, 8, 128, 320 * KIB),
    "meta-llama/Llama-3.1-8B-Instruct": (8_030_261_248, 32, 32, 8, 128, 128 * KIB),
    "meta-llama/Llama-3.1-70B-Instruct": (70_553_706_496, 80, 64, 8, 128, 320 * KIB),
    "meta-llama/Llama-3.2-1B-Instruct": (1_235_814_400, 16, 32, 8, 64, 32 * KIB),
    "mistralai/Mistral-7B-Instruct-v0.3": (7_248_023_552, 32, 32, 8, 128, 128 * KIB),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": (7_615_616_512, 28, 28, 4, 128, 56 * KIB),
    # 21 full-attention layers grow with the context (was 336 KiB counting all 42 layers)
    "google/gemma-2-9b-it": (9_241_705_984, 42, 16, 8, 256, 168 * KIB),
    "microsoft/Phi-3.5-mini-instruct": (3_821_079_552, 32, 32, 32, 96, 384 * KIB),
}
TOKEN = "hf_test_token"  # the fake grants it access to gated (Llama, Gemma) repos


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    async with running_fake_hub() as fake:
        yield fake


@pytest.fixture
def client(hub: FakeHub, tmp_path: Path) -> HubClient:
    return HubClient(endpoint=hub.url, token=TOKEN, clock=FakeClock(), download_dir=tmp_path)


async def _model(client: HubClient, model_id: str) -> ModelInfo:
    info = await client.model_info(model_id)
    assert info.source == "hub"
    return info


@pytest.mark.parametrize("model_id", sorted(PUBLISHED))
async def test_parameter_counts_and_geometry_come_from_the_hub(
    client: HubClient, hub: FakeHub, model_id: str
) -> None:
    params, layers, heads, kv_heads, head_dim, _ = PUBLISHED[model_id]
    info = await _model(client, model_id)
    assert info.params_total == params
    assert info.params_by_dtype == {"BF16": params}
    assert info.torch_dtype == "bfloat16"
    g = info.geometry
    assert g is not None
    assert (g.num_hidden_layers, g.num_attention_heads) == (layers, heads)
    assert (g.num_key_value_heads, g.head_dim) == (kv_heads, head_dim)
    # geometry came from config.json, fetched the way hf_hub_download does it
    assert hub.count(f"/{model_id}/resolve/main/config.json", method="HEAD") == 1


@pytest.mark.parametrize("model_id", sorted(PUBLISHED))
async def test_bf16_weights_within_two_percent_of_params_times_two_bytes(
    client: HubClient, model_id: str
) -> None:
    params, *_ = PUBLISHED[model_id]
    est = estimate(await _model(client, model_id))
    expected = params * 2 / GIB
    assert est.dtype_label == "bf16"
    assert abs(est.weights_gib - expected) / expected < 0.02


@pytest.mark.parametrize("model_id", sorted(PUBLISHED))
async def test_kv_bytes_per_token_match_published(client: HubClient, model_id: str) -> None:
    *_, kv_per_token = PUBLISHED[model_id]
    est = estimate(await _model(client, model_id))
    assert est.kv_bytes_per_token == kv_per_token
    if est.attention_window is None:  # all layers full attention
        assert est.kv_gib == pytest.approx(kv_per_token * est.context / GIB)


async def test_reference_table_figures(client: HubClient) -> None:
    """Against the planning table: BF16 weights and KV at the full 32k context."""
    qwen7 = await _model(client, "Qwen/Qwen2.5-7B-Instruct")
    assert estimate(qwen7).weights_gib == pytest.approx(14.19, abs=0.01)
    assert estimate(qwen7, context=32768).kv_gib == pytest.approx(1.75, abs=0.01)
    qwen72 = await _model(client, "Qwen/Qwen2.5-72B-Instruct")
    assert estimate(qwen72).weights_gib == pytest.approx(135.4, abs=0.05)
    assert estimate(qwen72, context=32768).kv_gib == pytest.approx(10.0, abs=0.01)
    llama8 = await _model(client, "meta-llama/Llama-3.1-8B-Instruct")
    assert estimate(llama8).weights_gib == pytest.approx(14.96, abs=0.01)
    assert estimate(llama8, context=131072).kv_gib == pytest.approx(16.0, abs=0.01)


async def test_default_context_is_the_smaller_of_8k_and_the_model_limit(
    client: HubClient,
) -> None:
    qwen = await _model(client, "Qwen/Qwen2.5-7B-Instruct")
    assert estimate(qwen).context == DEFAULT_CONTEXT == 8192
    tiny_limit = qwen.model_copy(
        update={"geometry": qwen.geometry.model_copy(update={"max_position_embeddings": 4096})}  # type: ignore[union-attr]
    )
    assert estimate(tiny_limit).context == 4096
    with pytest.raises(InvalidInput, match="at most 32,768 tokens"):
        estimate(qwen, context=65536)
    with pytest.raises(InvalidInput):
        estimate(qwen, concurrency=0)


async def test_concurrency_and_fp8_kv_scale_the_cache(client: HubClient) -> None:
    llama = await _model(client, "meta-llama/Llama-3.1-8B-Instruct")
    one = estimate(llama)
    four = estimate(llama, concurrency=4)
    assert four.kv_gib == pytest.approx(4 * one.kv_gib)
    fp8 = estimate(llama, kv_dtype="fp8")
    assert fp8.kv_bytes_per_token == one.kv_bytes_per_token // 2
    assert four.total_gib == pytest.approx(four.weights_gib + four.kv_gib + OVERHEAD_GIB_PER_GPU)


async def test_7b_bf16_goes_on_a_24_gb_card_at_default_context(client: HubClient) -> None:
    qwen = await _model(client, "Qwen/Qwen2.5-7B-Instruct")
    report = fit(qwen, fallback_offers())
    assert report.choice.memory_gb == 24
    assert report.choice.gpu_count == 1
    assert report.choice.offer_id == "AMPERE_24"  # cheapest 24 GB pool
    assert not estimate(qwen).fits(16)
    assert report.explanation.startswith(
        "Qwen2.5-7B-Instruct bf16: 14.2 GiB weights + 0.4 GiB KV at 8k → AMPERE_24 (24 GB) "
        "at $0.00019/s"
    )
    assert f"fallback prices compiled {FALLBACK_DATE}" in report.explanation
    assert report.prices == "fallback" and report.prices_date == FALLBACK_DATE
    assert report.alternatives and all(a.fits for a in report.alternatives)
    prices = [o.price_per_hour for o in [report.choice, *report.alternatives]]
    assert prices == sorted(prices)  # type: ignore[type-var]


async def test_72b_bf16_does_not_fit_one_80_gb_card(client: HubClient) -> None:
    qwen72 = await _model(client, "Qwen/Qwen2.5-72B-Instruct")
    assert not estimate(qwen72).fits(80)
    eighty = [o for o in fallback_offers() if o.memory_gb == 80]
    report = fit(qwen72, eighty)
    assert report.choice.gpu_count == 2
    assert qwen72.geometry is not None
    assert qwen72.geometry.num_attention_heads % report.choice.gpu_count == 0
    assert report.estimate.tensor_parallel == 2
    assert "2× AMPERE_80 (80 GB each)" in report.explanation
    overall = fit(qwen72, fallback_offers())
    assert overall.choice.gpu_count > 1


async def test_awq_7b_fits_a_16_gb_card(client: HubClient) -> None:
    awq = await _model(client, "Qwen/Qwen2.5-7B-Instruct-AWQ")
    assert (awq.quantization, awq.quant_bits, awq.torch_dtype) == ("awq", 4, "float16")
    est = estimate(awq)
    assert est.dtype_label == "awq int4"
    # packed int4 body (~3.3 GB) + 16-bit embeddings and lm_head (~2.2 GB) ≈ 5.6 GB
    assert est.weights_gib == pytest.approx(5.57e9 / GIB, rel=0.02)
    assert est.fits(16)
    sixteen = [o for o in fallback_offers() if o.pool == "AMPERE_16"]
    assert fit(awq, sixteen).choice.memory_gb == 16
    with pytest.raises(InvalidInput, match="already quantised"):
        estimate(awq, quant="fp8")


async def test_int4_estimate_keeps_embeddings_at_16_bit(client: HubClient) -> None:
    qwen = await _model(client, "Qwen/Qwen2.5-7B-Instruct")
    awq = await _model(client, "Qwen/Qwen2.5-7B-Instruct-AWQ")
    g = qwen.geometry
    assert g is not None and not g.tie_word_embeddings
    embeddings_gib = 2 * g.vocab_size * g.hidden_size * 2 / GIB  # untied: embed + lm_head
    body_gib = (qwen.params_total - 2 * g.vocab_size * g.hidden_size) * 0.5 / GIB  # type: ignore[operator]
    est = estimate(qwen, quant="awq")
    assert est.weights_gib > embeddings_gib + body_gib  # + group-128 scales and zeros
    assert est.weights_gib == pytest.approx(estimate(awq).weights_gib, rel=0.03)
    # tied embeddings are counted once
    small = await _model(client, "Qwen/Qwen2.5-0.5B-Instruct")
    sg = small.geometry
    assert sg is not None and sg.tie_word_embeddings
    tied = sg.vocab_size * sg.hidden_size
    expected = ((small.params_total or 0) - tied) * (0.5 + 2.5 / 128) + tied * 2
    assert estimate(small, quant="gptq").weights_gib == pytest.approx(expected / GIB)
    fp8 = estimate(qwen, quant="fp8")
    assert fp8.weights_gib == pytest.approx(
        ((qwen.params_total or 0) + 2 * g.vocab_size * g.hidden_size) / GIB
    )


async def test_max_context_follows_real_card_memory(client: HubClient) -> None:
    llama = await _model(client, "meta-llama/Llama-3.1-8B-Instruct")
    est = estimate(llama)
    l4_gib = 23_034 / 1024  # nvidia-smi total on an L4, the smallest AMPERE_24 card
    free = l4_gib * GPU_MEMORY_UTILIZATION - est.weights_gib - OVERHEAD_GIB_PER_GPU
    assert est.max_context(l4_gib) == int(free * GIB // (128 * KIB))
    # Hand-computed: 23,034 MiB × 0.92 = 20.695 GiB − 14.958 GiB weights − 2 GiB overhead
    # = 3.737 GiB / 128 KiB per token ≈ 30,613 tokens (the old 24-GiB reading said ~41,900).
    assert est.max_context(l4_gib) == pytest.approx(30_613, rel=0.03)
    assert est.max_context(16) == 0  # the weights alone do not fit
    assert est.max_context(80) == 131072  # capped by the model's own limit
    report = fit(llama, fallback_offers())
    assert report.choice.offer_id == "AMPERE_24"
    assert report.choice.memory_mib == 23_034
    assert report.choice.max_context == est.max_context(l4_gib)
    assert report.choice.headroom_gib == pytest.approx(
        l4_gib * GPU_MEMORY_UTILIZATION - est.per_gpu_gib_on(l4_gib), abs=0.001
    )


async def test_llama_8b_at_40k_skips_the_l4_pool(client: HubClient) -> None:
    """Issue 16: `/fit llama 8b --context 40000` picked AMPERE_24 and failed on an L4."""
    llama = await _model(client, "meta-llama/Llama-3.1-8B-Instruct")
    report = fit(llama, fallback_offers(), context=40_000)
    assert report.choice.offer_id == "ADA_24"  # RTX 4090: 24,564 MiB holds ~41,870 tokens
    assert report.choice.gpu_count == 1
    one = estimate(llama, context=40_000)
    assert not one.fits(23_034 / 1024) and one.max_context(23_034 / 1024) < 40_000
    l4 = next(o for o in report.options if o.offer_id == "AMPERE_24")
    assert l4.gpu_count == 2  # one L4 is not enough; two cost more than one 4090


async def test_tensor_parallel_counts_divide_the_attention_heads(client: HubClient) -> None:
    qwen = await _model(client, "Qwen/Qwen2.5-7B-Instruct")  # 28 heads: 1, 2, 4 but not 8
    with pytest.raises(InvalidInput, match="28 attention heads"):
        estimate(qwen, tensor_parallel=8)
    sixteen = [o for o in fallback_offers() if o.pool == "AMPERE_16"]
    report = fit(qwen, sixteen, context=32768, concurrency=12)
    assert report.choice.gpu_count in (2, 4)
    assert all(28 % o.gpu_count == 0 for o in report.options)
    qwen72 = await _model(client, "Qwen/Qwen2.5-72B-Instruct")
    on_24 = fit(qwen72, [o for o in fallback_offers() if o.pool == "AMPERE_24"])
    assert on_24.choice.gpu_count == 8 and 64 % 8 == 0
    # KV heads split across GPUs: 8 KV heads over 2 GPUs → half the cache per GPU
    assert on_24.estimate.kv_bytes_per_token_per_gpu == 320 * KIB // 8


async def test_nothing_fits_names_the_biggest_option_and_suggests_quantisation(
    client: HubClient,
) -> None:
    llama70 = await _model(client, "meta-llama/Llama-3.1-70B-Instruct")
    small = [o for o in fallback_offers() if o.memory_gb <= 24]
    with pytest.raises(NoGpuFits) as caught:
        fit(llama70, small, max_gpus=2)
    text = str(caught.value)
    assert "Llama-3.1-70B-Instruct bf16 needs 131.4 GiB" in text
    assert "biggest option, 2× ADA_24 (24 GB each)" in text  # 24,564 MiB > an L4's 23,034
    assert "--quant fp8" in text and "--context" in text
    assert isinstance(caught.value, InvalidInput)
    # fp8 weights fit one 80 GB card at 8k context
    report = fit(llama70, fallback_offers(), quant="fp8", max_gpus=1)
    assert report.choice.memory_gb >= 80 and report.estimate.dtype_label == "fp8"


async def test_live_catalog_items_as_dicts_or_objects(client: HubClient) -> None:
    example = {  # GET /v2/catalog/gpus example from the RunPod OpenAPI spec
        "id": "NVIDIA GeForce RTX 4090",
        "name": "RTX 4090",
        "pool": "ADA_24",
        "manufacturer": "NVIDIA",
        "memory": 24,
        "secure": True,
        "community": True,
        "price": {"secure": 0.44, "community": 0.31, "serverless": 1.1},
        "maxCount": {"secure": 8, "community": 4},
    }
    as_object = SimpleNamespace(
        id="NVIDIA A100 80GB PCIe",
        name="A100 PCIe",
        pool="AMPERE_80",
        manufacturer="NVIDIA",
        memory=80,
        secure=True,
        community=False,
        price=SimpleNamespace(
            secure=Decimal("1.64"), community=Decimal("1.19"), serverless=Decimal("2.74")
        ),
        maxCount=SimpleNamespace(secure=8, community=0),
    )
    unknown: dict[str, object] = {
        "id": "unknown",
        "name": "?",
        "pool": None,
        "memory": 0,
        "price": {},
    }
    offers = offers_from_catalog([example, as_object, unknown])
    assert [o.id for o in offers] == ["NVIDIA GeForce RTX 4090", "NVIDIA A100 80GB PCIe"]
    rtx, a100 = offers
    assert rtx.secure_per_hour == Decimal("0.44") and rtx.serverless_per_hour == Decimal("1.1")
    assert rtx.max_count == 8 and rtx.source == "live"
    assert a100.community_per_hour is None  # not offered on community cloud
    qwen = await _model(client, "Qwen/Qwen2.5-7B-Instruct")
    report = fit(qwen, offers)
    assert report.choice.offer_id == "ADA_24"
    assert report.explanation.endswith("→ ADA_24 (24 GB) at $0.00031/s")
    assert report.prices == "live" and report.prices_date is None
    pod = fit(qwen, offers, mode="pod")
    assert pod.choice.name == "RTX 4090"
    assert pod.choice.price_per_hour == Decimal("0.44")
    assert pod.explanation.endswith("→ RTX 4090 (24 GB) at $0.44/h")
    community = fit(qwen, offers, mode="pod", cloud="community")
    assert community.choice.price_per_hour == Decimal("0.31")


def test_serverless_pool_memory_is_its_smallest_card() -> None:
    pools = {p.id: p for p in serverless_pools(fallback_offers())}
    assert pools["AMPERE_16"].memory_gb == 16  # A4000 16 GB although the A4500 has 20
    # real memory of the smallest card: L4 (Modal's nvidia-smi table), RTX 4090, A40/L40/L40S,
    # A100 80GB, H100 80GB, H200
    assert {p: pools[p].memory_mib for p in pools} | {} == {
        "AMPERE_16": 15_356,  # 16 × 959.75 (derived: A4000 not looked up)
        "AMPERE_24": 23_034,
        "ADA_24": 24_564,
        "ADA_32_PRO": 30_712,
        "AMPERE_48": 46_068,
        "ADA_48_PRO": 46_068,
        "AMPERE_80": 81_920,
        "ADA_80_PRO": 81_559,
        "BLACKWELL_96": 92_136,
        "HOPPER_141": 143_771,
        "BLACKWELL_180": 172_755,
    }
    assert pools["ADA_80_PRO"].memory_gb == 80  # H100 NVL (94 GB) shares the pool
    assert pools["AMPERE_24"].serverless_per_second == Decimal("0.00019")
    assert pools["ADA_32_PRO"].serverless_per_hour is None  # no published rate
    assert all(p.source == "fallback" for p in pools.values())


def test_fallback_table_is_dated_and_labelled() -> None:
    offers = fallback_offers()
    assert offers and all(o.source == "fallback" for o in offers)
    h100 = next(o for o in offers if o.id == "NVIDIA H100 80GB HBM3")
    assert (h100.pool, h100.memory_gb) == ("ADA_80_PRO", 80)
    assert h100.serverless_per_hour == Decimal("0.00116") * 3600
    assert isinstance(offers[0], GpuOffer)
    assert FALLBACK_DATE.year == 2026
