"""How much GPU memory vLLM needs to serve a model: weights + KV cache + overhead.

Pure functions over `ModelInfo`. Memory is in GiB (2**30 bytes) as plain floats: these are
planning estimates, not money, so float precision is ample; prices elsewhere are `Decimal`.

The model vLLM follows at start-up (v1 engine): it may use `gpu_memory_utilization` × the card's
memory; it loads the weights, profiles activations, keeps room for CUDA graphs and the CUDA/NCCL
context, and gives the rest to the KV cache. A request only fits if the KV cache can hold
`context × concurrency` tokens. We mirror that per GPU:

    usable   = real memory (nvidia-smi MiB, not nominal GB) × GPU_MEMORY_UTILIZATION
    need     = weights / tp + overhead + kv_cache(context) × concurrency
    fits     = need ≤ usable
    max ctx  = the largest context whose KV cache still fits (solved per layer kind)

The KV cache is summed per layer as vLLM's KV-cache specs size it (vllm/v1/kv_cache_interface.py):
full attention K and V grow with the context; sliding-window and chunked-local layers hold at
most window + one prefill chunk (`max_num_batched_tokens`) tokens; MLA layers (DeepSeek) cache
one kv_lora_rank + rope latent per token with no separate K and V; linear-attention layers keep
a fixed state per sequence. MoE models keep every expert resident, so weights count all of them.
"""

from __future__ import annotations

from pydantic import BaseModel

from tools.catalog import ArchGeometry, ModelInfo
from tools.errors import InvalidInput

GIB = 1024**3

# vLLM's default `gpu_memory_utilization` (0.9 until ~v0.7, 0.92 since): a fraction of the
# card's *total* memory that one vLLM instance may take.
GPU_MEMORY_UTILIZATION = 0.92

# Context length used when the caller does not ask for one; capped by the model's own limit.
DEFAULT_CONTEXT = 8192

# Per GPU: CUDA context + PyTorch non-torch allocations (~0.5–1 GiB), peak activations of the
# profiling forward pass at the default max_num_batched_tokens, and CUDA-graph capture buffers.
# 2 GiB is the middle of the 1–3 GiB that 1B–32B models show in vLLM start-up logs.
OVERHEAD_GIB_PER_GPU = 2.0
# Extra per GPU under tensor parallelism: NCCL communicators and custom all-reduce buffers.
TP_OVERHEAD_GIB_PER_GPU = 0.5

# vLLM's default `max_num_batched_tokens` for the OpenAI server (EngineArgs.get_batch_defaults):
# 8192 on cards of 70 GiB or more other than the A100, else 2048. A windowed layer holds up to
# window + this many tokens (one chunked-prefill step past the window).
PREFILL_CHUNK_TOKENS = 2048
PREFILL_CHUNK_TOKENS_LARGE = 8192
LARGE_CARD_GIB = 70

# MXFP4 (gpt-oss): 4-bit values + one 8-bit scale per 32 → 4.25 bits per expert weight.
MXFP4_BYTES_PER_PARAM = 4.25 / 8
# FP8 block quantisation (DeepSeek): one fp32 scale per 128 × 128 block.
FP8_BLOCK_SCALE_BYTES = 4 / (128 * 128)

# Tensor-parallel sizes vLLM users pick; the count must divide the attention heads.
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)

# Bytes per stored element, by safetensors dtype name.
SAFETENSORS_DTYPE_BYTES: dict[str, float] = {
    "F64": 8,
    "F32": 4,
    "BF16": 2,
    "F16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "U16": 2,
    "U32": 4,
    "BOOL": 1,
}

# Bytes per weight of the linear layers when a model is (or would be) quantised; embeddings
# and lm_head stay 16-bit in AWQ/GPTQ/bitsandbytes/FP8 checkpoints and are counted apart.
QUANT_BYTES_PER_PARAM: dict[str, float] = {
    "bf16": 2,
    "fp16": 2,
    "fp8": 1,
    "int8": 1,
    "awq": 0.5,
    "gptq": 0.5,
    "int4": 0.5,
    "bitsandbytes": 0.5,
    "mxfp4": MXFP4_BYTES_PER_PARAM,
}
# Group-wise int4 (group 128) adds an fp16 scale and a 4-bit zero point per 128 weights.
INT4_GROUP_SIZE = 128
INT4_GROUP_EXTRA_BYTES = (2 + 0.5) / INT4_GROUP_SIZE
INT4_METHODS = frozenset({"awq", "gptq", "int4", "bitsandbytes"})
# Methods a checkpoint can ship in but the cockpit does not quantise to on request.
STORED_ONLY = frozenset({"mxfp4"})
UNQUANTISED = frozenset({"bf16", "fp16"})
QUANT_ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "awq_marlin": "awq",
    "gptq_marlin": "gptq",
    "bnb": "bitsandbytes",
    "4bit": "int4",
    "w4a16": "int4",
    "fp8_e4m3": "fp8",
    "8bit": "int8",
}
EMBEDDING_BYTES = 2  # embeddings / lm_head kept in 16-bit

KV_DTYPE_BYTES: dict[str, float] = {
    "auto": 2,
    "bf16": 2,
    "bfloat16": 2,
    "fp16": 2,
    "float16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
}


class SizeEstimate(BaseModel):
    """Memory needed to serve one model instance over `tensor_parallel` GPUs (GiB)."""

    model_id: str
    dtype_label: str  # "bf16", "awq int4", "fp8"...
    quant: str | None  # None = served as stored
    tensor_parallel: int
    context: int
    concurrency: int
    kv_dtype: str
    kv_bytes_per_token: int  # whole model, layers whose cache grows with the context
    kv_bytes_per_token_per_gpu: int
    kv_window_bytes_per_token_per_gpu: int = 0  # windowed layers, up to their window
    attention_window: int | None = None
    kv_fixed_bytes_per_gpu: int = 0  # linear-attention state per sequence
    weights_gib: float  # whole model
    kv_gib: float  # context × concurrency tokens, summed over GPUs
    overhead_gib: float  # summed over GPUs
    total_gib: float
    weights_gib_per_gpu: float
    kv_gib_per_gpu: float
    overhead_gib_per_gpu: float
    per_gpu_gib: float
    max_position_embeddings: int | None
    layout: str = "full attention"  # e.g. "52 of 62 layers windowed (1024)", "MLA"

    def kv_bytes_per_sequence(self, context: int, *, memory_gib: float | None = None) -> float:
        """KV cache of one sequence of `context` tokens on one GPU, as vLLM reserves it."""
        return _sequence_kv_bytes(
            context,
            full_per_token=self.kv_bytes_per_token_per_gpu,
            window_per_token=self.kv_window_bytes_per_token_per_gpu,
            window=self.attention_window,
            fixed=self.kv_fixed_bytes_per_gpu,
            chunk=prefill_chunk_tokens(memory_gib),
        )

    def per_gpu_gib_on(self, memory_gib: float) -> float:
        """Per-GPU need on a card of `memory_gib` (its prefill chunk decides windowed layers)."""
        kv = self.kv_bytes_per_sequence(self.context, memory_gib=memory_gib) * self.concurrency
        return self.weights_gib_per_gpu + self.overhead_gib_per_gpu + kv / GIB

    def usable_gib(
        self, memory_gib: float, *, utilization: float = GPU_MEMORY_UTILIZATION
    ) -> float:
        return memory_gib * utilization

    def headroom_gib(
        self, memory_gib: float, *, utilization: float = GPU_MEMORY_UTILIZATION
    ) -> float:
        """Usable memory left on each GPU after weights, overhead and the requested KV cache."""
        return self.usable_gib(memory_gib, utilization=utilization) - self.per_gpu_gib_on(
            memory_gib
        )

    def fits(self, memory_gib: float, *, utilization: float = GPU_MEMORY_UTILIZATION) -> bool:
        return self.headroom_gib(memory_gib, utilization=utilization) >= 0

    def max_context(self, memory_gib: float, *, utilization: float = GPU_MEMORY_UTILIZATION) -> int:
        """Longest context per sequence (at this concurrency) the KV cache can hold; 0 if the
        weights alone do not fit. Capped at the model's `max_position_embeddings`."""
        free = (
            self.usable_gib(memory_gib, utilization=utilization)
            - self.weights_gib_per_gpu
            - self.overhead_gib_per_gpu
        )
        if free <= 0:
            return 0
        budget = free * GIB / self.concurrency
        limit = self.max_position_embeddings or MAX_SEARCH_CONTEXT

        def fits(tokens: int) -> bool:
            return self.kv_bytes_per_sequence(tokens, memory_gib=memory_gib) <= budget

        if fits(limit):
            return limit
        if not fits(1):
            return 0
        lo, hi = 1, limit  # fits(lo), not fits(hi): the cache only grows with the context
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo


# Upper bound of the max-context search for a model without max_position_embeddings.
MAX_SEARCH_CONTEXT = 10_485_760


def _sequence_kv_bytes(
    context: int,
    *,
    full_per_token: int,
    window_per_token: int,
    window: int | None,
    fixed: int,
    chunk: int,
) -> int:
    """One sequence's KV cache on one GPU: full-attention layers grow with the context,
    windowed layers stop at window + one prefill chunk, linear-attention state is fixed."""
    windowed = window_per_token * min(context, window + chunk) if window_per_token and window else 0
    return full_per_token * context + windowed + fixed


def prefill_chunk_tokens(memory_gib: float | None) -> int:
    """vLLM's default prefill chunk on a card of this size (unknown card: the larger one, so
    windowed layers are never under-counted)."""
    if memory_gib is None or memory_gib >= LARGE_CARD_GIB:
        return PREFILL_CHUNK_TOKENS_LARGE
    return PREFILL_CHUNK_TOKENS


def normalise_quant(quant: str | None) -> str | None:
    """`normalise_quant_or_none`, refusing a method the sizing cannot price."""
    q = normalise_quant_or_none(quant)
    if q is not None and q not in QUANT_BYTES_PER_PARAM:
        known = ", ".join(sorted(QUANT_BYTES_PER_PARAM))
        raise InvalidInput(f"Unknown quantisation '{quant}'.", fix=f"Use one of: {known}.")
    return q


def _kv_bytes(kv_dtype: str | None) -> tuple[str, float]:
    label = (kv_dtype or "auto").strip().lower()
    if label not in KV_DTYPE_BYTES:
        known = ", ".join(sorted(KV_DTYPE_BYTES))
        raise InvalidInput(f"Unknown KV-cache dtype '{kv_dtype}'.", fix=f"Use one of: {known}.")
    return label, KV_DTYPE_BYTES[label]


def _embedding_params(model: ModelInfo) -> int:
    g = model.geometry
    if g is None:
        return 0
    return g.vocab_size * g.hidden_size * (1 if g.tie_word_embeddings else 2)


def _stored_weight_bytes(model: ModelInfo) -> float:
    """Bytes of the checkpoint as vLLM holds it. Float32 checkpoints are served in 16-bit
    (vLLM's `--dtype auto` downcasts fp32), so F32 counts as 2 bytes."""
    if model.params_by_dtype:
        total = 0.0
        for dtype, count in model.params_by_dtype.items():
            size = SAFETENSORS_DTYPE_BYTES.get(dtype.upper(), 2)
            total += count * (2 if dtype.upper() == "F32" else size)
        return total
    if model.params_total:
        return model.params_total * 2.0
    raise InvalidInput(
        f"{model.id} has no parameter count on Hugging Face, so its size cannot be estimated.",
        fix="Pick a model that ships safetensors weights.",
    )


def weights_bytes(model: ModelInfo, quant: str | None = None) -> tuple[float, str]:
    """(bytes, label) for the weights served as stored (`quant=None`) or quantised to `quant`.

    Stored checkpoints (bf16, fp8, AWQ, GPTQ...) are sized exactly from the Hub's per-dtype
    parameter counts (packed int4 weights are I32 there). A requested quantisation of an
    unquantised model is computed: linear layers at the quantised width (+ group scales for
    int4), embeddings and lm_head at 16-bit, counted once when tied.
    """
    q = normalise_quant(quant)
    stored = normalise_quant_or_none(model.quantization)
    if stored:
        same = q is None or q == stored or (q in INT4_METHODS and stored in INT4_METHODS)
        if not same:
            raise InvalidInput(
                f"{model.id} is already quantised ({stored}); it cannot be served as {q}.",
                fix="Serve it as it is, or pick the unquantised model.",
            )
        if stored == "mxfp4":
            return _mxfp4_bytes(model), "mxfp4 experts"
        bits = f" int{model.quant_bits}" if model.quant_bits and model.quant_bits < 8 else ""
        if len(model.params_by_dtype) > 1 or stored not in QUANT_BYTES_PER_PARAM:
            return _stored_weight_bytes(model), f"{stored}{bits}"
        # No per-dtype split (bundled catalog): size from the method, embeddings at 16-bit.
        return _quantised_bytes(model, stored), f"{stored}{bits}"
    if q is None or q in UNQUANTISED:
        label = q or _dtype_label(model.torch_dtype)
        return _stored_weight_bytes(model), label
    if q in STORED_ONLY:
        raise InvalidInput(
            f"{q} is a checkpoint format; the cockpit cannot quantise {model.name} to it.",
            fix="Pick an mxfp4 checkpoint, or use --quant fp8 or awq.",
        )
    label = f"{q} int4" if q in INT4_METHODS and q != "int4" else q
    return _quantised_bytes(model, q), label


def _quantised_bytes(model: ModelInfo, q: str) -> float:
    """Linear layers at the quantised width (+ group scales for int4, block scales for fp8),
    embeddings and lm_head at 16-bit, counted once when tied."""
    if model.params_total is None or model.geometry is None:
        raise InvalidInput(
            f"{model.id} lacks the parameter count or config.json needed to estimate {q}.",
        )
    embed = _embedding_params(model)
    body = max(model.params_total - embed, 0)
    extra = INT4_GROUP_EXTRA_BYTES if q in INT4_METHODS else 0.0
    if q == "fp8" and model.quantization:
        extra = FP8_BLOCK_SCALE_BYTES
    return body * (QUANT_BYTES_PER_PARAM[q] + extra) + embed * EMBEDDING_BYTES


def _mxfp4_bytes(model: ModelInfo) -> float:
    """gpt-oss: the MoE expert weights are MXFP4, everything else (attention, router,
    embeddings, lm_head) stays 16-bit, per its quantization_config."""
    g = model.geometry
    if model.params_total is None or g is None or not g.num_experts:
        raise InvalidInput(f"{model.id} lacks the expert shapes needed to size its mxfp4 weights.")
    moe = g.moe_intermediate_size or g.intermediate_size or 0
    experts = g.num_hidden_layers * g.num_experts * 3 * g.hidden_size * moe
    rest = max(model.params_total - experts, 0)
    return experts * MXFP4_BYTES_PER_PARAM + rest * EMBEDDING_BYTES


def normalise_quant_or_none(method: str | None) -> str | None:
    """A quantisation method's canonical name ("awq_marlin" → "awq"), unchecked."""
    if method is None:
        return None
    m = method.strip().lower()
    return QUANT_ALIASES.get(m, m)


def _dtype_label(torch_dtype: str | None) -> str:
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "bf16"}.get(torch_dtype or "", "bf16")


def _kv_heads_per_gpu(g: ArchGeometry, tensor_parallel: int) -> int:
    """Each GPU holds kv_heads / tp heads, and at least one (vLLM replicates KV heads when
    tp > kv_heads)."""
    if tensor_parallel == 1:
        return g.num_key_value_heads
    return max(1, g.num_key_value_heads // tensor_parallel)


def _attention_bytes_per_token_per_layer(
    g: ArchGeometry, nbytes: float, tensor_parallel: int
) -> float:
    if g.is_mla:
        # MLAAttentionSpec: one latent (kv_lora_rank + qk_rope_head_dim) per token, no separate
        # K and V, replicated on every tensor-parallel rank.
        return (g.kv_lora_rank or 0) * nbytes + (g.qk_rope_head_dim or 0) * nbytes
    return 2 * _kv_heads_per_gpu(g, tensor_parallel) * g.head_dim * nbytes


def kv_bytes_per_token(
    model: ModelInfo, kv_dtype: str | None = None, *, tensor_parallel: int = 1
) -> int:
    """Bytes per token of the layers whose cache grows with the context (full attention and
    MLA): 2 (K and V) × layers × KV heads × head_dim × bytes, or for MLA layers ×
    (kv_lora_rank + rope dims) × bytes. Windowed and linear-attention layers are apart."""
    g = _require_geometry(model)
    _, nbytes = _kv_bytes(kv_dtype)
    per_layer = _attention_bytes_per_token_per_layer(g, nbytes, tensor_parallel)
    return int(g.full_attention_layers * per_layer)


def kv_window_bytes_per_token(
    model: ModelInfo, kv_dtype: str | None = None, *, tensor_parallel: int = 1
) -> int:
    """Bytes per token of the sliding-window / chunked-local layers (held up to their window)."""
    g = _require_geometry(model)
    _, nbytes = _kv_bytes(kv_dtype)
    return int(g.window_layers * _attention_bytes_per_token_per_layer(g, nbytes, tensor_parallel))


def linear_state_bytes(model: ModelInfo, *, tensor_parallel: int = 1) -> int:
    """Fixed per-sequence state of the linear-attention layers (16-bit, split across GPUs)."""
    g = _require_geometry(model)
    return int(g.linear_layers * g.linear_state_elements * EMBEDDING_BYTES / tensor_parallel)


def _layout(g: ArchGeometry) -> str:
    parts = []
    if g.is_mla:
        parts.append(f"MLA latent cache ({g.kv_lora_rank}+{g.qk_rope_head_dim})")
    if g.window_layers:
        parts.append(
            f"{g.window_layers} of {g.num_hidden_layers} layers windowed ({g.attention_window})"
        )
    if g.linear_layers:
        parts.append(f"{g.linear_layers} of {g.num_hidden_layers} layers linear attention")
    if g.num_experts:
        parts.append(f"MoE, all {g.num_experts} experts resident")
    return "; ".join(parts) or "full attention"


def _require_geometry(model: ModelInfo) -> ArchGeometry:
    if model.geometry is None:
        raise InvalidInput(
            f"{model.id} has no readable config.json (layers, heads), so its KV cache "
            "cannot be sized.",
            fix="Pick a transformers model with a config.json.",
        )
    return model.geometry


def valid_tensor_parallel(model: ModelInfo, tp: int) -> bool:
    """vLLM splits attention heads across GPUs, so the count must divide them."""
    g = _require_geometry(model)
    return tp >= 1 and g.num_attention_heads % tp == 0


def default_context(model: ModelInfo) -> int:
    g = _require_geometry(model)
    limit = g.max_position_embeddings
    return min(limit, DEFAULT_CONTEXT) if limit else DEFAULT_CONTEXT


def estimate(
    model: ModelInfo,
    *,
    context: int | None = None,
    concurrency: int = 1,
    quant: str | None = None,
    kv_dtype: str | None = None,
    tensor_parallel: int = 1,
) -> SizeEstimate:
    """Memory to serve `model` with `concurrency` sequences of `context` tokens each.

    `context` defaults to min(max_position_embeddings, DEFAULT_CONTEXT); `quant` None serves the
    checkpoint as stored ("fp8", "awq", ... estimate a quantised variant); `kv_dtype` "fp8" halves
    the KV cache. Raises `InvalidInput` for impossible requests (context beyond the model's
    limit, a tensor-parallel size that does not divide the attention heads...).
    """
    g = _require_geometry(model)
    if context is None:
        context = default_context(model)
    if context < 1:
        raise InvalidInput("The context length must be at least 1 token.")
    if g.max_position_embeddings and context > g.max_position_embeddings:
        raise InvalidInput(
            f"{model.name} supports at most {g.max_position_embeddings:,} tokens of context "
            f"(asked {context:,}).",
            fix=f"Use --context {g.max_position_embeddings} or less.",
        )
    if concurrency < 1:
        raise InvalidInput("Concurrency must be at least 1.")
    if not valid_tensor_parallel(model, tensor_parallel):
        raise InvalidInput(
            f"{model.name} has {g.num_attention_heads} attention heads; "
            f"{tensor_parallel} GPUs cannot split them evenly.",
            fix="Use a GPU count that divides the number of heads (1, 2, 4 or 8).",
        )
    kv_label, _ = _kv_bytes(kv_dtype)
    wbytes, label = weights_bytes(model, quant)
    kv_tok = kv_bytes_per_token(model, kv_dtype)
    kv_tok_gpu = kv_bytes_per_token(model, kv_dtype, tensor_parallel=tensor_parallel)
    window_gpu = kv_window_bytes_per_token(model, kv_dtype, tensor_parallel=tensor_parallel)
    fixed_gpu = linear_state_bytes(model, tensor_parallel=tensor_parallel)
    weights_gib = wbytes / GIB
    overhead_pg = OVERHEAD_GIB_PER_GPU + (TP_OVERHEAD_GIB_PER_GPU if tensor_parallel > 1 else 0.0)
    # On an unknown card, so the larger prefill chunk (`fits` re-sizes it per card).
    per_sequence = _sequence_kv_bytes(
        context,
        full_per_token=kv_tok_gpu,
        window_per_token=window_gpu,
        window=g.attention_window,
        fixed=fixed_gpu,
        chunk=prefill_chunk_tokens(None),
    )
    kv_gib_pg = per_sequence * concurrency / GIB
    per_gpu = weights_gib / tensor_parallel + overhead_pg + kv_gib_pg
    # Summed over GPUs: equals kv_tok × tokens unless KV heads are replicated (tp > kv_heads).
    kv_gib = kv_gib_pg * tensor_parallel
    return SizeEstimate(
        model_id=model.id,
        dtype_label=label,
        quant=normalise_quant(quant),
        tensor_parallel=tensor_parallel,
        context=context,
        concurrency=concurrency,
        kv_dtype=kv_label,
        kv_bytes_per_token=kv_tok,
        kv_bytes_per_token_per_gpu=kv_tok_gpu,
        kv_window_bytes_per_token_per_gpu=window_gpu,
        attention_window=g.attention_window,
        kv_fixed_bytes_per_gpu=fixed_gpu,
        weights_gib=weights_gib,
        kv_gib=kv_gib,
        overhead_gib=overhead_pg * tensor_parallel,
        total_gib=weights_gib + kv_gib + overhead_pg * tensor_parallel,
        weights_gib_per_gpu=weights_gib / tensor_parallel,
        kv_gib_per_gpu=kv_gib_pg,
        overhead_gib_per_gpu=overhead_pg,
        per_gpu_gib=per_gpu,
        max_position_embeddings=g.max_position_embeddings,
        layout=_layout(g),
    )


def format_context(tokens: int) -> str:
    """8192 → "8k", 131072 → "128k", 5000 → "5000"."""
    if tokens >= 1024 and tokens % 1024 == 0:
        return f"{tokens // 1024}k"
    return str(tokens)


__all__ = [
    "DEFAULT_CONTEXT",
    "GIB",
    "GPU_MEMORY_UTILIZATION",
    "OVERHEAD_GIB_PER_GPU",
    "TENSOR_PARALLEL_SIZES",
    "TP_OVERHEAD_GIB_PER_GPU",
    "SizeEstimate",
    "default_context",
    "estimate",
    "format_context",
    "kv_bytes_per_token",
    "kv_window_bytes_per_token",
    "linear_state_bytes",
    "prefill_chunk_tokens",
    "valid_tensor_parallel",
    "weights_bytes",
]
