"""The model catalog: what a model is (its metadata and geometry) and the bundled catalog.

`ModelInfo` is what the Hugging Face client returns and what sizing and GPU fit consume; it is
built the same way from a live Hub answer and from the bundled catalog file, and always says
which one it came from (`source`, `snapshot_date` = the day the bundled catalog was compiled).

The bundled catalog (`catalog_<date>.json`) is not a Hub snapshot: it was compiled by hand from
public model configs and model cards, each entry with its `source` and `compiled` date, and
`approximate` where a figure (usually a parameter count) comes from a rounded model-card value.
It has no download or like counts. Submodules:

- `aliases`: friendly names ("qwen 7b", "llama") → Hugging Face ids or a short pick-list.
- `sizing`: vLLM memory estimate (weights, KV cache, overhead).
- `gpus`: GPU offers (live RunPod catalog or the dated fallback table).
- `fit`: the cheapest GPU (or tensor-parallel group) that serves a model, with a one-line why.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# Public model metadata shipped with the code (dated, labelled wherever it is used): package
# data, not local state, so it sits next to the module rather than in a data folder.
CATALOG_PATH = Path(__file__).parent / "catalog_2026-12-01.json"
TEXT_GENERATION = "text-generation"
# Pipelines vLLM serves as chat models: multimodal chat models (Gemma 3 ≥ 4B, Llama 4, Mistral
# Small 3.1+) are tagged image-text-to-text on the Hub.
IMAGE_TEXT_TO_TEXT = "image-text-to-text"
CHAT_PIPELINES = (TEXT_GENERATION, IMAGE_TEXT_TO_TEXT)

Source = Literal["hub", "snapshot"]


class ArchGeometry(BaseModel):
    """The transformer shape that decides KV-cache size, read from `config.json`.

    Layers are split the way vLLM allocates their cache: full attention (grows with the
    context), windowed (sliding-window or chunked-local attention: at most the window plus one
    prefill chunk), linear attention (a fixed state per sequence, Qwen3-Next's Gated DeltaNet)
    and MLA (DeepSeek: one latent of kv_lora_rank + rope dims per token, not K and V per head).
    """

    model_config = ConfigDict(frozen=True)

    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool = False
    intermediate_size: int | None = None
    # Attention layout (defaults: every layer full attention).
    window_layers: int = 0
    attention_window: int | None = None  # tokens, for window_layers
    linear_layers: int = 0
    linear_state_elements: int = 0  # per linear layer per sequence (conv + recurrent state)
    kv_lora_rank: int | None = None  # MLA latent width; set = every attention layer is MLA
    qk_rope_head_dim: int | None = None
    # Mixture of experts: vLLM keeps every expert resident, so weights count all of them.
    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    moe_intermediate_size: int | None = None

    @property
    def full_attention_layers(self) -> int:
        return self.num_hidden_layers - self.window_layers - self.linear_layers

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None


class ModelSummary(BaseModel):
    """One search hit."""

    id: str
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    params: int | None = None
    library: str | None = None
    pipeline_tag: str | None = None
    source: Source = "hub"
    snapshot_date: date | None = None


class ModelInfo(BaseModel):
    """Everything the cockpit needs to know about one model to size and deploy it."""

    id: str
    author: str | None = None
    sha: str | None = None
    params_total: int | None = None
    params_by_dtype: dict[str, int] = {}
    torch_dtype: str | None = None
    quantization: str | None = None
    quant_bits: int | None = None
    architecture: str | None = None
    model_type: str | None = None
    geometry: ArchGeometry | None = None
    license: str | None = None
    gated: bool = False
    gating: Literal["auto", "manual"] | None = None
    downloads: int = 0
    likes: int = 0
    library: str | None = None
    pipeline_tag: str | None = None
    source: Source = "hub"
    snapshot_date: date | None = None
    note: str | None = None
    # Bundled catalog only: where the figures came from, and whether some are approximate.
    catalog_source: str | None = None
    approximate: bool = False

    @property
    def name(self) -> str:
        """The repo name without the organisation ("Qwen2.5-7B-Instruct")."""
        return self.id.split("/", 1)[-1]

    @property
    def source_label(self) -> str:
        """Where this came from, for a reply footer."""
        if self.source == "hub":
            return "live from Hugging Face"
        label = catalog_label(self.snapshot_date)
        if self.approximate:
            label += "; some figures approximate"
        return f"{label} ({self.note})" if self.note else label


def catalog_label(compiled: date | None) -> str:
    """ "bundled catalog compiled 2026-12-01 from public model configs"."""
    when = f" compiled {compiled.isoformat()}" if compiled else ""
    return f"bundled catalog{when} from public model configs"


# --- parsing config.json and Hub records -------------------------------------------------------

_DTYPE_NAMES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


def _first(cfg: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return value
    return None


def _flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Multimodal configs keep the language model under `text_config`; prefer its values."""
    cfg = dict(config)
    text = cfg.get("text_config")
    if isinstance(text, Mapping):
        cfg.update({k: v for k, v in text.items() if v is not None})
    return cfg


def geometry_from_config(config: Mapping[str, Any]) -> ArchGeometry | None:
    """Read the sizing geometry from a `config.json` dict; None when the shape is not there.

    Defaults follow transformers: KV heads = attention heads (no GQA), head_dim = hidden / heads.
    A missing `tie_word_embeddings` counts as untied (the conservative reading for sizing).
    """
    cfg = _flatten_config(config)
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(cfg, "num_attention_heads", "n_head", "num_heads")
    vocab = cfg.get("vocab_size")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, heads, vocab)):
        return None
    kv_heads = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if kv_heads is None and cfg.get("multi_query"):
        kv_heads = 1
    head_dim = cfg.get("head_dim") or hidden // heads
    layout = _attention_layout(cfg, int(layers))
    experts = _first(cfg, "num_experts", "num_local_experts", "n_routed_experts")
    return ArchGeometry(
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=int(kv_heads or heads),
        head_dim=int(head_dim),
        hidden_size=hidden,
        vocab_size=vocab,
        max_position_embeddings=_first(cfg, "max_position_embeddings", "n_positions", "seq_length"),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        intermediate_size=_first(cfg, "intermediate_size", "ffn_dim", "n_inner"),
        kv_lora_rank=cfg.get("kv_lora_rank"),
        qk_rope_head_dim=cfg.get("qk_rope_head_dim") if cfg.get("kv_lora_rank") else None,
        num_experts=int(experts) if experts else None,
        num_experts_per_tok=_first(cfg, "num_experts_per_tok", "experts_per_token"),
        moe_intermediate_size=_first(cfg, "moe_intermediate_size")
        or (cfg.get("intermediate_size") if experts else None),
        **layout,
    )


# Model types whose `sliding_window` applies to every layer in vLLM (Mistral v0.1, Phi-3).
_ALL_LAYERS_SLIDING = frozenset({"mistral", "mixtral", "phi3"})
_GEMMA3 = frozenset({"gemma3", "gemma3_text"})
DEFAULT_GEMMA3_PATTERN = 6  # every 6th Gemma 3 layer is global (5 local : 1 global)
DEFAULT_FULL_ATTENTION_INTERVAL = 4  # Qwen3-Next: 3 linear-attention layers : 1 full


def _attention_layout(cfg: Mapping[str, Any], layers: int) -> dict[str, Any]:
    """How many layers are windowed or linear, and the window, as vLLM builds them.

    `layer_types` (gpt-oss, newer Gemma 3 and Qwen3-Next configs) is read as is; older configs
    follow each architecture's rule in vLLM: Gemma 2 alternates (even layers local), Gemma 3
    has 5 local layers per global one, Llama 4 uses chunked local attention on its RoPE layers
    (3 of 4), Qwen3-Next has one full-attention layer per `full_attention_interval`.
    """
    model_type = str(cfg.get("model_type") or "")
    window = cfg.get("sliding_window")
    kinds = cfg.get("layer_types")
    windowed = linear = 0
    if isinstance(kinds, list) and len(kinds) == layers:
        windowed = sum(k in ("sliding_attention", "chunked_attention") for k in kinds)
        linear = sum(k == "linear_attention" for k in kinds)
        if any(k == "chunked_attention" for k in kinds):
            window = cfg.get("attention_chunk_size") or window
    elif model_type == "gemma2" and window:
        windowed = (layers + 1) // 2
    elif model_type in _GEMMA3 and window:
        pattern = int(
            cfg.get("sliding_window_pattern")
            or cfg.get("_sliding_window_pattern")
            or DEFAULT_GEMMA3_PATTERN
        )
        windowed = layers - layers // pattern
    elif model_type in ("llama4", "llama4_text") and cfg.get("attention_chunk_size"):
        window = cfg["attention_chunk_size"]
        no_rope = cfg.get("no_rope_layers")
        if isinstance(no_rope, list) and len(no_rope) == layers:
            windowed = sum(1 for flag in no_rope if flag)  # RoPE layers use chunked attention
        else:
            windowed = layers - layers // DEFAULT_FULL_ATTENTION_INTERVAL
    elif model_type == "qwen3_next":
        interval = int(cfg.get("full_attention_interval") or DEFAULT_FULL_ATTENTION_INTERVAL)
        linear = layers - layers // interval
    elif (
        model_type in _ALL_LAYERS_SLIDING and window and cfg.get("use_sliding_window") is not False
    ):
        windowed = layers
    limit = cfg.get("max_position_embeddings")
    if windowed and window and isinstance(limit, int) and window >= limit:
        windowed = 0  # a window as long as the context is full attention (Phi-3.5: 262144)
    state = 0
    if linear:
        # Gated DeltaNet state per layer (vLLM's mamba-style spec): the causal-conv state over
        # (kernel − 1) steps of the q/k/v channels plus the recurrent state per value head.
        k_heads = int(cfg.get("linear_num_key_heads") or 0)
        v_heads = int(cfg.get("linear_num_value_heads") or 0)
        k_dim = int(cfg.get("linear_key_head_dim") or 0)
        v_dim = int(cfg.get("linear_value_head_dim") or 0)
        kernel = int(cfg.get("linear_conv_kernel_dim") or 0)
        conv = max(kernel - 1, 0) * (2 * k_heads * k_dim + v_heads * v_dim)
        state = conv + v_heads * k_dim * v_dim
    return {
        "window_layers": windowed,
        "attention_window": int(window) if windowed and window else None,
        "linear_layers": linear,
        "linear_state_elements": state,
    }


def quantization_from_config(config: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """(method, weight bits) from `quantization_config`: ("awq", 4), ("fp8", 8), (None, None)..."""
    qc = _flatten_config(config).get("quantization_config")
    if not isinstance(qc, Mapping):
        return None, None
    method = str(qc.get("quant_method") or "").lower() or None
    bits = _first(qc, "bits", "w_bit", "weight_bits", "num_bits")
    if bits is None:
        if qc.get("load_in_4bit"):
            bits = 4
        elif qc.get("load_in_8bit") or method == "fp8":
            bits = 8
        else:  # compressed-tensors keeps bits per weight group
            groups = qc.get("config_groups")
            if isinstance(groups, Mapping):
                for group in groups.values():
                    weights = group.get("weights") if isinstance(group, Mapping) else None
                    if isinstance(weights, Mapping) and weights.get("num_bits"):
                        bits = weights["num_bits"]
                        break
    return method, int(bits) if bits else None


def torch_dtype_from_config(config: Mapping[str, Any]) -> str | None:
    cfg = _flatten_config(config)
    raw = _first(cfg, "torch_dtype", "dtype")
    if raw is None:
        return None
    return _DTYPE_NAMES.get(str(raw).lower().removeprefix("torch."), str(raw))


def build_model_info(
    *,
    model_id: str,
    config: Mapping[str, Any] | None,
    params_by_dtype: Mapping[str, int] | None,
    params_total: int | None = None,
    license: str | None = None,
    gated: bool | str | None = False,
    downloads: int | None = 0,
    likes: int | None = 0,
    library: str | None = None,
    pipeline_tag: str | None = None,
    sha: str | None = None,
    source: Source = "hub",
    snapshot_date: date | None = None,
    note: str | None = None,
    catalog_source: str | None = None,
    approximate: bool = False,
) -> ModelInfo:
    """One constructor for live and snapshot data, so both read config.json the same way."""
    cfg: Mapping[str, Any] = config or {}
    by_dtype = {str(k).upper(): int(v) for k, v in (params_by_dtype or {}).items()}
    method, bits = quantization_from_config(cfg)
    architectures = _flatten_config(cfg).get("architectures") or []
    gating = gated if gated in ("auto", "manual") else None
    return ModelInfo(
        id=model_id,
        author=model_id.split("/", 1)[0] if "/" in model_id else None,
        sha=sha,
        params_total=params_total if params_total is not None else (sum(by_dtype.values()) or None),
        params_by_dtype=by_dtype,
        torch_dtype=torch_dtype_from_config(cfg),
        quantization=method,
        quant_bits=bits,
        architecture=architectures[0] if architectures else None,
        model_type=_flatten_config(cfg).get("model_type"),
        geometry=geometry_from_config(cfg) if cfg else None,
        license=license,
        gated=bool(gated),
        gating=gating,  # type: ignore[arg-type]
        downloads=downloads or 0,
        likes=likes or 0,
        library=library,
        pipeline_tag=pipeline_tag,
        source=source,
        snapshot_date=snapshot_date,
        note=note,
        catalog_source=catalog_source,
        approximate=approximate,
    )


# --- the bundled catalog -----------------------------------------------------------------------


class Snapshot:
    """The bundled catalog shipped with the code; answers when the Hub cannot.

    Records use the Hub's own field names (`safetensors`, `gated`, `config` = config.json keys),
    so the fake Hub in tests serves exactly this data, plus `source` and `compiled` per entry.
    `snapshot_date` is the day the catalog was compiled (the class keeps its older name).
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        compiled = data.get("compiled") or data["snapshot_date"]
        self.snapshot_date: date = date.fromisoformat(str(compiled))
        self._records: dict[str, dict[str, Any]] = {m["id"]: dict(m) for m in data["models"]}
        self._by_lower = {mid.lower(): mid for mid in self._records}

    @classmethod
    def load(cls, path: Path | str | None = None) -> Snapshot:
        if path is None:
            return default_snapshot()
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def ids(self) -> list[str]:
        return list(self._records)

    def canonical_id(self, model_id: str) -> str | None:
        """The snapshot's spelling of an id, matched without regard to case."""
        return self._by_lower.get(model_id.strip().lower())

    def record(self, model_id: str) -> dict[str, Any] | None:
        """The raw Hub-shaped record (used by the fake Hub)."""
        canonical = self.canonical_id(model_id)
        return json.loads(json.dumps(self._records[canonical])) if canonical else None

    def records(self) -> list[dict[str, Any]]:
        return [r for mid in self._records if (r := self.record(mid)) is not None]

    def get(self, model_id: str, *, note: str | None = None) -> ModelInfo | None:
        rec = self.record(model_id)
        if rec is None:
            return None
        st = rec.get("safetensors") or {}
        return build_model_info(
            model_id=rec["id"],
            config=rec.get("config"),
            params_by_dtype=st.get("parameters"),
            params_total=st.get("total"),
            license=rec.get("license"),
            gated=rec.get("gated", False),
            downloads=rec.get("downloads"),
            likes=rec.get("likes"),
            library=rec.get("library_name"),
            pipeline_tag=rec.get("pipeline_tag"),
            source="snapshot",
            snapshot_date=self.snapshot_date,
            note=note,
            catalog_source=rec.get("source"),
            approximate=bool(rec.get("approximate")),
        )

    def summary(self, model_id: str) -> ModelSummary | None:
        rec = self.record(model_id)
        if rec is None:
            return None
        return ModelSummary(
            id=rec["id"],
            downloads=rec.get("downloads") or 0,
            likes=rec.get("likes") or 0,
            gated=bool(rec.get("gated")),
            params=(rec.get("safetensors") or {}).get("total"),
            library=rec.get("library_name"),
            pipeline_tag=rec.get("pipeline_tag"),
            source="snapshot",
            snapshot_date=self.snapshot_date,
        )

    def search(
        self,
        query: str | None = None,
        *,
        limit: int = 10,
        gated: bool | None = None,
        min_params: float | None = None,
        max_params: float | None = None,
        library: str | None = None,
    ) -> list[ModelSummary]:
        """Same filters as the Hub search; every word of `query` must appear in the id. The
        catalog has no download counts, so hits keep the file's order (current models first)."""
        words = (query or "").lower().split()
        hits = []
        for mid in self._records:
            s = self.summary(mid)
            if s is None or not all(w in mid.lower() for w in words):
                continue
            if s.pipeline_tag not in (None, *CHAT_PIPELINES):
                continue
            if not matches_filters(s, gated=gated, min_params=min_params, max_params=max_params):
                continue
            if library and s.library and s.library != library:
                continue
            hits.append(s)
        return hits[:limit]

    def nearest(self, text: str, *, n: int = 3, extra: Iterable[str] = ()) -> list[str]:
        """Ids that look like `text` (for "did you mean"), from the snapshot plus `extra`."""
        return nearest_ids(text, [*self._records, *extra], n=n)


def nearest_ids(text: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """Closest ids by spelling, comparing both full ids and bare repo names, case-insensitively."""
    wanted = text.strip().lower()
    wanted_name = wanted.split("/", 1)[-1]
    scored: dict[str, float] = {}
    for cand in candidates:
        low = cand.lower()
        score = max(
            difflib.SequenceMatcher(None, wanted, low).ratio(),
            difflib.SequenceMatcher(None, wanted_name, low.split("/", 1)[-1]).ratio(),
        )
        if score >= 0.6 and score > scored.get(cand, 0.0):
            scored[cand] = score
    return [c for c, _ in sorted(scored.items(), key=lambda kv: kv[1], reverse=True)[:n]]


def matches_filters(
    summary: ModelSummary,
    *,
    gated: bool | None,
    min_params: float | None,
    max_params: float | None,
) -> bool:
    """Search filters applied locally (sizes in billions); unknown sizes pass size filters."""
    if gated is not None and summary.gated != gated:
        return False
    if summary.params is not None:
        billions = summary.params / 1e9
        if min_params is not None and billions < min_params:
            return False
        if max_params is not None and billions > max_params:
            return False
    return True


@lru_cache(maxsize=1)
def default_snapshot() -> Snapshot:
    """The catalog shipped in `tools/catalog/catalog_<date>.json` (loaded once)."""
    return Snapshot(json.loads(CATALOG_PATH.read_text(encoding="utf-8")))


__all__ = [
    "CATALOG_PATH",
    "CHAT_PIPELINES",
    "ArchGeometry",
    "ModelInfo",
    "ModelSummary",
    "Snapshot",
    "build_model_info",
    "catalog_label",
    "default_snapshot",
    "geometry_from_config",
    "nearest_ids",
    "quantization_from_config",
]
