"""The bundled catalog file (schema, provenance) and vLLM sizing against hand-computed figures.

Hand-computed references use the config values recorded in the catalog, whose sources are cited
per entry (`source`); the KV rules are vLLM's KV-cache specs (vllm/v1/kv_cache_interface.py):
full attention 2 (K, V) × KV heads × head_dim × 2 bytes per layer per token; sliding-window
layers at most window + one prefill chunk (`max_num_batched_tokens`: 2048 below 70 GiB, 8192
above, EngineArgs.get_batch_defaults); MLA one (kv_lora_rank + qk_rope_head_dim) latent per
token. Card memory is nvidia-smi MiB (L4 23,034, H100 81,559, H200 143,771: Modal's table at
thundergolfer.com/blog/nvidia-gpu-memory-capacity); vLLM may use 0.92 of it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from bot.testing import running_bot
from tools.catalog import CATALOG_PATH, default_snapshot
from tools.catalog.fit import fit
from tools.catalog.gpus import PRICES_PATH, fallback_offers
from tools.catalog.sizing import GIB, GPU_MEMORY_UTILIZATION, estimate
from tools.cost.estimate import serverless_estimate
from tools.runpod.sandbox.catalog import GPUS_BY_ID, POOL_PRICE_PER_SECOND

L4 = 23_034 / 1024  # GiB, nvidia-smi
H100 = 81_559 / 1024
BLACKWELL_96 = 92_136 / 1024  # RTX PRO 6000: derived (96 × 959.75 MiB), not looked up
OVERHEAD = 2.0
UTIL = GPU_MEMORY_UTILIZATION

ENTRY_SCHEMA = {
    "type": "object",
    "required": [
        "id",
        "author",
        "gated",
        "license",
        "library_name",
        "pipeline_tag",
        "safetensors",
        "config",
        "source",
        "compiled",
        "approximate",
    ],
    "properties": {
        "id": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
        "gated": {"enum": [False, "auto", "manual"]},
        "license": {"type": "string", "minLength": 1},
        "pipeline_tag": {"enum": ["text-generation", "image-text-to-text"]},
        "safetensors": {
            "type": "object",
            "required": ["parameters", "total"],
            "properties": {"total": {"type": "integer", "minimum": 1}},
        },
        "config": {"type": "object", "required": ["architectures", "model_type"]},
        "source": {"type": "string", "minLength": 20},
        "compiled": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "approximate": {"type": "boolean"},
        "note": {"type": "string"},
    },
    "not": {"anyOf": [{"required": ["downloads"]}, {"required": ["likes"]}]},
}
CATALOG_SCHEMA = {
    "type": "object",
    "required": ["compiled", "label", "description", "models"],
    "properties": {
        "label": {"const": "bundled catalog compiled 2026-12-01 from public model configs"},
        "models": {"type": "array", "minItems": 30, "items": ENTRY_SCHEMA},
    },
}


def test_catalog_file_validates_and_every_entry_has_a_source_and_date() -> None:
    data = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    jsonschema.validate(data, CATALOG_SCHEMA)
    ids = [m["id"] for m in data["models"]]
    assert len(ids) == len(set(ids))
    assert all(m["compiled"] == "2026-12-01" for m in data["models"])
    assert "snapshot" not in data["label"]
    for model in data["models"]:
        # a rounded (model-card) figure or an unconfirmed config says why
        if model["approximate"]:
            assert model.get("note"), model["id"]
    required = {
        "Qwen/Qwen3-0.6B",
        "Qwen/Qwen3-1.7B",
        "Qwen/Qwen3-4B",
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-14B",
        "Qwen/Qwen3-32B",
        "Qwen/Qwen3-30B-A3B",
        "Qwen/Qwen3-235B-A22B",
        "Qwen/Qwen3-Coder-30B-A3B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "google/gemma-3-1b-it",
        "google/gemma-3-4b-it",
        "google/gemma-3-12b-it",
        "google/gemma-3-27b-it",
        "openai/gpt-oss-20b",
        "openai/gpt-oss-120b",
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        "microsoft/phi-4",
        "deepseek-ai/DeepSeek-V3",
        "deepseek-ai/DeepSeek-R1",
    }
    assert required <= set(ids)


def _model(model_id: str):  # type: ignore[no-untyped-def]
    info = default_snapshot().get(model_id)
    assert info is not None
    return info


def test_llama_3_1_8b_reference() -> None:
    # config.json: 32 layers, 8 KV heads of 128; Hub safetensors total 8,030,261,248 (BF16)
    est = estimate(_model("meta-llama/Llama-3.1-8B-Instruct"))
    assert est.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131_072
    assert est.weights_gib * GIB == 8_030_261_248 * 2


def test_qwen3_8b_reference() -> None:
    # config.json (Model_Config.md copy): 36 layers, 8 KV heads, head_dim 128, untied;
    # parameters from the shapes = 8,190,735,360 (card: "8.2B", "non-embedding 6.95B")
    model = _model("Qwen/Qwen3-8B")
    est = estimate(model)
    assert est.kv_bytes_per_token == 2 * 36 * 8 * 128 * 2 == 147_456
    assert model.params_total == 8_190_735_360
    assert est.weights_gib * GIB == 8_190_735_360 * 2
    # max context on an L4: (23,034 MiB × 0.92 − weights − 2 GiB) / 147,456 B ≈ 25,036
    hand = (L4 * UTIL - 8_190_735_360 * 2 / GIB - OVERHEAD) * GIB / 147_456
    assert est.max_context(L4) == pytest.approx(hand, rel=0.03)


def test_qwen3_30b_a3b_keeps_every_expert_resident() -> None:
    # config.json: 48 layers, 4 KV heads of 128, 128 experts (top-8) of 768; all experts load,
    # so weights are the total 30,532,122,624 parameters, not the 3.3B active ones
    model = _model("Qwen/Qwen3-30B-A3B")
    est = estimate(model)
    assert est.kv_bytes_per_token == 2 * 48 * 4 * 128 * 2 == 98_304
    assert model.params_total == 30_532_122_624
    assert est.weights_gib * GIB == 30_532_122_624 * 2
    assert "all 128 experts resident" in est.layout


def test_gemma_3_27b_sliding_window() -> None:
    # text_config: 62 layers, 5 local (window 1024) : 1 global → 10 full, 52 windowed layers;
    # 16 KV heads of 128 → 8,192 B per layer per token
    est = estimate(_model("google/gemma-3-27b-it"), concurrency=2)
    assert est.kv_bytes_per_token == 10 * 2 * 16 * 128 * 2 == 81_920
    assert est.kv_window_bytes_per_token_per_gpu == 52 * 8_192 == 425_984
    assert est.weights_gib * GIB == 27_426_346_304 * 2
    # 2 sequences on an H100: windowed layers hold 1024 + 8192 tokens, the rest grows
    free_per_seq = (H100 * UTIL - 27_426_346_304 * 2 / GIB - OVERHEAD) * GIB / 2
    hand = (free_per_seq - 425_984 * (1024 + 8192)) / 81_920  # ≈ 84,394 tokens
    assert est.max_context(H100) == pytest.approx(hand, rel=0.03)
    naive = free_per_seq / (62 * 8_192)  # every layer full: ≈ 21,342, 4× too pessimistic
    assert est.max_context(H100) > 3.5 * naive


def test_gpt_oss_20b_mxfp4_and_128_token_window() -> None:
    # config.json: 24 layers alternating sliding (128) / full, 8 KV heads of 64; MXFP4 experts
    # (32 × 3 × 2880 × 2880 per layer, 4.25 bits), the rest BF16; card: "21B parameters"
    est = estimate(_model("openai/gpt-oss-20b"), concurrency=16)
    per_layer = 2 * 8 * 64 * 2
    assert est.kv_bytes_per_token == 12 * per_layer == 24_576
    assert est.kv_window_bytes_per_token_per_gpu == 12 * per_layer
    assert est.attention_window == 128
    experts = 24 * 32 * 3 * 2880 * 2880
    weights = experts * 4.25 / 8 + (21_000_000_000 - experts) * 2  # ≈ 13.0 GiB
    assert est.weights_gib * GIB == pytest.approx(weights)
    assert est.dtype_label == "mxfp4 experts"
    # 16 sequences on an L4 (prefill chunk 2048 below 70 GiB)
    per_seq = (L4 * UTIL - weights / GIB - OVERHEAD) * GIB / 16
    hand = (per_seq - 24_576 * (128 + 2048)) / 24_576  # ≈ 13,442 tokens
    assert est.max_context(L4) == pytest.approx(hand, rel=0.03)


def test_deepseek_v3_mla_and_fp8_blocks() -> None:
    # config.json: 61 layers of MLA, kv_lora_rank 512 + qk_rope_head_dim 64 → one 576-wide
    # latent per token (~70 KB, against ~4 MB for 128 heads of K and V); fp8 e4m3 weights with
    # one fp32 scale per 128×128 block, embeddings and lm_head BF16; card: 671B main model
    model = _model("deepseek-ai/DeepSeek-V3")
    est = estimate(model, tensor_parallel=8)
    assert est.kv_bytes_per_token == 61 * (512 + 64) * 2 == 70_272
    embed = 2 * 129_280 * 7_168
    weights = (671_000_000_000 - embed) * (1 + 4 / (128 * 128)) + embed * 2  # ≈ 626.8 GiB
    assert est.weights_gib * GIB == pytest.approx(weights)
    # 8 × RTX PRO 6000 (BLACKWELL_96): the latent cache is replicated on every GPU
    hand = (BLACKWELL_96 * UTIL - weights / GIB / 8 - OVERHEAD - 0.5) * GIB / 70_272
    assert est.max_context(BLACKWELL_96) == pytest.approx(hand, rel=0.03)  # ≈ 29,474


def test_picks_use_the_smallest_cards_real_memory() -> None:
    # gemma-2-9b at 8k on AMPERE_24 claimed 0.2 GiB headroom on a nominal 24 GiB and fails on
    # an L4: now it goes to the RTX 4090 pool, with its real headroom
    report = fit(_model("google/gemma-2-9b-it"), fallback_offers())
    assert report.choice.offer_id == "ADA_24" and report.choice.memory_mib == 24_564
    l4 = estimate(_model("google/gemma-2-9b-it"))
    assert l4.headroom_gib(L4) < 0  # ≈ −0.8 GiB on an L4
    assert 0 < report.choice.headroom_gib < 1
    qwen = fit(_model("Qwen/Qwen3-8B"), fallback_offers())
    assert (qwen.choice.offer_id, qwen.choice.memory_mib) == ("AMPERE_24", 23_034)


def test_always_on_worker_is_list_price_times_hours() -> None:
    # /estimate llama 8b --workers-min 1: AMPERE_24 at the $0.00019/s list price × 730 h;
    # the old ~30 % "active" discount (no longer published) gave $341.64
    est = serverless_estimate(
        pool="AMPERE_24", flex_per_hour=Decimal("0.00019") * 3600, workers_min=1, workers_max=1
    )
    assert est.monthly == Decimal("499.3200")
    assert "discounts you negotiated are not included" in " ".join(est.assumptions)


def test_fallback_and_emulator_prices_come_from_one_dated_file() -> None:
    data = json.loads(PRICES_PATH.read_text(encoding="utf-8"))
    assert data["compiled"] == "2026-12-01"
    for row in data["gpus"]:
        assert row["price_source"] and row["memory_source"]
        spec = GPUS_BY_ID[row["id"]]
        assert spec.secure_price == Decimal(row["secure"])
        assert spec.community_price == Decimal(row["community"] or row["secure"])
    offers = {o.id: o for o in fallback_offers()}
    for gpu_id, spec in GPUS_BY_ID.items():
        assert offers[gpu_id].secure_per_hour == spec.secure_price
    assert POOL_PRICE_PER_SECOND["AMPERE_24"] == Decimal("0.00019")


FAMILIES = [
    ("qwen", "Qwen3-8B"),
    ("qwen 30b", "Qwen3-30B-A3B"),
    ("qwen coder", "Qwen3-Coder-30B-A3B-Instruct"),
    ("llama 70b", "Llama-3.3-70B-Instruct"),
    ("llama 4", "Llama-4-Scout-17B-16E-Instruct"),
    ("gemma 27b", "gemma-3-27b-it"),
    ("gpt-oss 20b", "gpt-oss-20b"),
    ("gpt-oss 120b", "gpt-oss-120b"),
    ("mistral small", "Mistral-Small-3.2-24B-Instruct-2506"),
    ("phi", "phi-4"),
    ("deepseek v3", "DeepSeek-V3"),
]


async def test_fit_deploy_and_models_work_offline_for_current_families(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:  # sandbox: answers from the bundled catalog
        for text, name in FAMILIES:
            fitted = await bot.send(f"/fit {text}")
            assert fitted.ok, fitted.text
            assert fitted.text.startswith(name), fitted.text
            assert "bundled catalog compiled 2026-12-01" in (fitted.footer or "")
        ask = await bot.send("/deploy gpt-oss 20b", user="alice")
        assert ask.ok and ask.approval_id, ask.as_plain_text()
        assert "openai/gpt-oss-20b" in ask.as_plain_text()
        picks = await bot.send("/fit gpt-oss")
        assert not picks.ok
        assert "gpt-oss-20b (openai/gpt-oss-20b): AMPERE_24 (24 GB) at $0.00019/s" in picks.text
        assert "gpt-oss-120b (openai/gpt-oss-120b): " in picks.text
        for query, model_id in [
            ("gemma-3", "google/gemma-3-27b-it"),
            ("scout", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
            ("gpt-oss", "openai/gpt-oss-120b"),
            ("deepseek", "deepseek-ai/DeepSeek-V3"),
        ]:
            found = await bot.send(f"/models {query} --limit 20")
            assert found.ok and found.table is not None, found.text
            assert model_id in [row[0] for row in found.table.rows]
            assert "bundled catalog compiled 2026-12-01" in (found.footer or "")
