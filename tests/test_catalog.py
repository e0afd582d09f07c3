"""Aliases and pick-lists, and the bundled catalog they point into.

Since issue 16 family names resolve to the current generation: "qwen" is Qwen3-8B (it was
Qwen2.5-7B), a size two generations share goes to the newer one ("qwen 14b" → Qwen3-14B,
"llama 70b" → Llama 3.3), and "deepseek", "gemma", "gpt-oss" and "mistral" are pick-lists.
Qwen2.5 and the other 2024 entries stay resolvable by version or by a size only they have."""

from __future__ import annotations

from datetime import date

import pytest

from tools.catalog import (
    Snapshot,
    build_model_info,
    default_snapshot,
    geometry_from_config,
    quantization_from_config,
)
from tools.catalog.aliases import ALIASES, FAMILY_DEFAULTS, resolve_alias, tokenize


@pytest.mark.parametrize(
    ("text", "model_id"),
    [
        ("qwen", "Qwen/Qwen3-8B"),
        ("Qwen", "Qwen/Qwen3-8B"),
        ("qwen 8b", "Qwen/Qwen3-8B"),
        ("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B"),
        ("qwen 235b", "Qwen/Qwen3-235B-A22B"),
        ("qwen coder", "Qwen/Qwen3-Coder-30B-A3B-Instruct"),
        ("qwen next", "Qwen/Qwen3-Next-80B-A3B-Instruct"),
        ("qwen 2.5 14b", "Qwen/Qwen2.5-14B-Instruct"),
        ("qwen 0.5b", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("QWEN 500M", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("qwen 1.5b", "Qwen/Qwen2.5-1.5B-Instruct"),
        ("qwen 3b", "Qwen/Qwen2.5-3B-Instruct"),
        ("qwen 14B", "Qwen/Qwen3-14B"),
        ("qwen 32b", "Qwen/Qwen3-32B"),
        ("qwen 72b", "Qwen/Qwen2.5-72B-Instruct"),
        ("qwen72b", "Qwen/Qwen2.5-72B-Instruct"),
        ("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct"),
        ("Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
        ("  qwen   2.5   7b  ", "Qwen/Qwen2.5-7B-Instruct"),
        ("qwen 7b awq", "Qwen/Qwen2.5-7B-Instruct-AWQ"),
        ("qwen2.5-7b-instruct-awq", "Qwen/Qwen2.5-7B-Instruct-AWQ"),
        ("llama", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama 8b", "meta-llama/Llama-3.1-8B-Instruct"),
        ("Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama 70b", "meta-llama/Llama-3.3-70B-Instruct"),
        ("llama 3.1 70b", "meta-llama/Llama-3.1-70B-Instruct"),
        ("llama 4", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
        ("llama 1b", "meta-llama/Llama-3.2-1B-Instruct"),
        ("llama3.2 3b", "meta-llama/Llama-3.2-3B-Instruct"),
        ("mistral small", "mistralai/Mistral-Small-3.2-24B-Instruct-2506"),
        ("mistral 7b", "mistralai/Mistral-7B-Instruct-v0.3"),
        ("gpt-oss 20b", "openai/gpt-oss-20b"),
        ("gpt oss 120b", "openai/gpt-oss-120b"),
        ("deepseek v3", "deepseek-ai/DeepSeek-V3"),
        ("Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"),
        ("deepseek r1 7b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
        ("deepseek-r1-distill-qwen-14b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"),
        ("qwen r1 32b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
        ("gemma 27b", "google/gemma-3-27b-it"),
        ("gemma2 9b", "google/gemma-2-9b-it"),
        ("phi", "microsoft/phi-4"),
        ("phi 3.5", "microsoft/Phi-3.5-mini-instruct"),
        ("phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct"),
    ],
)
def test_friendly_names_resolve(text: str, model_id: str) -> None:
    result = resolve_alias(text)
    assert result.resolved, result.message
    assert result.model_id == model_id
    assert result.candidates == []


def test_family_names_alone_use_the_family_default() -> None:
    for family, model_id in FAMILY_DEFAULTS.items():
        result = resolve_alias(family)
        assert result.model_id == model_id
        assert result.reason in ("default", "alias")
    assert resolve_alias("qwen").reason == "default"


def test_full_hugging_face_ids_pass_through() -> None:
    unknown = resolve_alias("someone/My-Model_v2.1")
    assert (unknown.model_id, unknown.reason) == ("someone/My-Model_v2.1", "passthrough")
    # a known id in other case gets the catalog's spelling
    assert resolve_alias("meta-llama/llama-3.1-8b-instruct").model_id == (
        "meta-llama/Llama-3.1-8B-Instruct"
    )


def test_deepseek_alone_is_ambiguous_and_gives_a_pick_list() -> None:
    result = resolve_alias("deepseek")
    assert not result.resolved
    assert result.reason == "ambiguous"
    # V3 and R1 first, the distills as cheaper alternatives
    assert [c.model_id for c in result.candidates] == [
        "deepseek-ai/DeepSeek-V3",
        "deepseek-ai/DeepSeek-R1",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
    ]
    assert "pick one" in result.message


@pytest.mark.parametrize(
    ("family", "choices"),
    [
        ("gpt-oss", ["openai/gpt-oss-20b", "openai/gpt-oss-120b"]),
        (
            "mistral",
            ["mistralai/Mistral-Small-3.2-24B-Instruct-2506", "mistralai/Mistral-7B-Instruct-v0.3"],
        ),
        (
            "gemma",
            [
                "google/gemma-3-1b-it",
                "google/gemma-3-4b-it",
                "google/gemma-3-12b-it",
                "google/gemma-3-27b-it",
            ],
        ),
    ],
)
def test_families_with_a_wide_price_range_give_pick_lists(family: str, choices: list[str]) -> None:
    result = resolve_alias(family)
    assert result.reason == "ambiguous"
    assert [c.model_id for c in result.candidates] == choices


def test_version_without_size_lists_that_version() -> None:
    result = resolve_alias("llama 3.2")
    assert result.reason == "ambiguous"
    assert [c.label for c in result.candidates] == [
        "Llama-3.2-1B-Instruct",
        "Llama-3.2-3B-Instruct",
    ]


def test_unknown_size_offers_the_nearest_sizes_without_guessing() -> None:
    result = resolve_alias("qwen 13b")
    assert result.model_id is None
    ids = [c.model_id for c in result.candidates]
    assert 3 <= len(ids) <= 5
    assert "Qwen/Qwen3-14B" in ids and "Qwen/Qwen3-8B" in ids  # current generation
    assert "Qwen/Qwen2.5-7B-Instruct-AWQ" not in ids  # variants only when asked for
    assert "qwen 13b" in result.message


def test_misspelt_family_suggests_but_does_not_guess() -> None:
    result = resolve_alias("mixtral")
    assert result.model_id is None and result.reason == "unknown"
    assert [c.model_id for c in result.candidates] == [
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506"
    ]
    assert "Did you mean" in result.message
    nothing = resolve_alias("totally-unknown-thing")
    assert nothing.candidates == [] and "org/name" in nothing.message
    assert resolve_alias("   ").reason == "unknown"


def test_tokenizer_ignores_case_spaces_and_hyphens() -> None:
    assert tokenize("Qwen2.5-7B-Instruct") == ["qwen", "2.5", "7b", "instruct"]
    assert tokenize("qwen 2.5 7b instruct") == tokenize("QWEN-2.5-7B-INSTRUCT")
    assert tokenize("DeepSeek-R1-Distill") == ["deepseek", "r1", "distill"]
    assert tokenize("Qwen3-30B-A3B") == ["qwen", "3", "30b", "a3b"]


def test_every_alias_points_into_the_catalog() -> None:
    snapshot = default_snapshot()
    for alias in ALIASES:
        assert snapshot.canonical_id(alias.model_id) == alias.model_id
    for model_id in FAMILY_DEFAULTS.values():
        assert snapshot.get(model_id) is not None


def test_catalog_is_dated_complete_and_honestly_labelled() -> None:
    snapshot = default_snapshot()
    assert snapshot.snapshot_date == date(2026, 12, 1)
    assert len(snapshot.ids()) == 41  # 22 current models + the 19 earlier entries
    for model_id in snapshot.ids():
        info = snapshot.get(model_id)
        assert info is not None
        assert info.source == "snapshot" and info.snapshot_date == snapshot.snapshot_date
        assert info.geometry is not None and info.params_total and info.license
        assert info.library == "transformers"
        assert info.pipeline_tag in ("text-generation", "image-text-to-text")
        assert info.downloads == 0 and info.likes == 0  # none were read from the Hub
        assert info.catalog_source
    gated = {m for m in snapshot.ids() if snapshot.get(m).gated}  # type: ignore[union-attr]
    assert {
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "google/gemma-2-9b-it",
        "google/gemma-3-27b-it",
    } <= gated
    assert not gated & {"openai/gpt-oss-20b", "Qwen/Qwen3-8B", "deepseek-ai/DeepSeek-R1"}
    licences = {m: snapshot.get(m).license for m in snapshot.ids()}  # type: ignore[union-attr]
    assert licences["Qwen/Qwen2.5-72B-Instruct"] == "qwen"
    assert licences["Qwen/Qwen2.5-3B-Instruct"] == "qwen-research"
    assert licences["deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"] == "mit"
    assert licences["meta-llama/Llama-3.1-8B-Instruct"] == "llama3.1"
    assert licences["openai/gpt-oss-20b"] == "apache-2.0"
    label = snapshot.get("qwen/qwen2.5-7b-instruct", note="Hugging Face unreachable")
    assert label is not None
    assert label.source_label == (
        "bundled catalog compiled 2026-12-01 from public model configs (Hugging Face unreachable)"
    )
    assert "snapshot" not in label.source_label
    rounded = snapshot.get("openai/gpt-oss-20b")
    assert rounded is not None and rounded.approximate
    assert rounded.source_label.endswith("; some figures approximate")


def test_catalog_search_filters_and_finds_multimodal_chat_models() -> None:
    snapshot = default_snapshot()
    hits = snapshot.search("qwen", limit=50)
    assert all("qwen" in h.id.lower() for h in hits)
    assert hits[0].id == "Qwen/Qwen3-0.6B"  # file order: the current generation first
    mid = snapshot.search("qwen", min_params=5, max_params=20, gated=False, limit=50)
    assert {h.id for h in mid} == {
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-14B",
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen2.5-14B-Instruct",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
    }
    assert {h.id for h in snapshot.search("llama", gated=False)} == set()
    # image-text-to-text chat models (Gemma 3 >= 4B, Llama 4, Mistral Small 3.2) are found
    assert {h.id for h in snapshot.search("gemma-3")} == {
        "google/gemma-3-1b-it",
        "google/gemma-3-4b-it",
        "google/gemma-3-12b-it",
        "google/gemma-3-27b-it",
    }
    assert [h.id for h in snapshot.search("scout")] == ["meta-llama/Llama-4-Scout-17B-16E-Instruct"]
    assert [h.id for h in snapshot.search("mistral small")] == [
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506"
    ]
    assert [h.id for h in snapshot.search("gpt-oss")] == [
        "openai/gpt-oss-20b",
        "openai/gpt-oss-120b",
    ]
    assert snapshot.nearest("Qwen/Qwen2.5-7B-Instrct")[0] == "Qwen/Qwen2.5-7B-Instruct"


def test_config_parsing_defaults_and_quantisation() -> None:
    g = geometry_from_config(
        {
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "vocab_size": 32000,
        }
    )
    assert g is not None
    assert (g.num_key_value_heads, g.head_dim, g.tie_word_embeddings) == (32, 128, False)
    nested = geometry_from_config(
        {
            "architectures": ["LlavaForConditionalGeneration"],
            "text_config": {
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "vocab_size": 32064,
                "max_position_embeddings": 4096,
            },
        }
    )
    assert nested is not None and nested.num_key_value_heads == 8
    assert geometry_from_config({"model_type": "unknown"}) is None
    assert quantization_from_config(
        {"quantization_config": {"quant_method": "gptq", "bits": 4}}
    ) == ("gptq", 4)
    assert quantization_from_config({"quantization_config": {"quant_method": "fp8"}}) == ("fp8", 8)
    assert quantization_from_config(
        {"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}
    ) == ("bitsandbytes", 4)
    assert quantization_from_config({}) == (None, None)
    info = build_model_info(
        model_id="a/b", config={"dtype": "bfloat16"}, params_by_dtype={"bf16": 5}
    )
    assert (info.torch_dtype, info.params_total, info.params_by_dtype) == (
        "bfloat16",
        5,
        {"BF16": 5},
    )


def test_catalog_loads_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "catalog.json"
    path.write_text('{"compiled": "2026-01-02", "models": []}')
    snap = Snapshot.load(path)
    assert snap.snapshot_date == date(2026, 1, 2) and snap.ids() == []
