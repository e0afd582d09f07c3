"""Simulated token rate for the sandbox: how fast a vLLM worker on a given card would stream.

A decode step of vLLM's continuous batch reads every weight once plus each running sequence's
KV cache, and does 2 × active-parameters FLOPs per token it produces (the prompt tokens of
sequences that join the batch are prefilled in the same step). So one step of a batch of B
sequences takes

    max( (weights + Σ KV of the B sequences) / bandwidth ,  2·A·(B + prefill tokens) / FLOPs )

and hands each sequence one token: per-sequence decode ≈ bandwidth ÷ bytes per token while the
batch is small, aggregate throughput rising with B until the compute term takes over. Bandwidth
and FLOPs are the data sheets' peaks (`gpu_perf_<date>.json`, each card with its source) times
the efficiency factors below; weights and KV bytes come from `tools.catalog.sizing`, the same
functions GPU fit uses. Figures from here are a simulation and every reply that shows them says
so; they are not measurements of real hardware.

`Lane` is one worker's batch. Timing goes through the injectable clock: one lane task sleeps
per step (never one sleeper per stream), so a `FakeClock` in tests advances exactly step by
step, and before each step the lane yields a few times so readers of the previous token (the
bench client in the same event loop) see it at its own time.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from tools.catalog import default_snapshot
from tools.catalog.gpus import card_memory_mib
from tools.catalog.sizing import (
    GIB,
    GPU_MEMORY_UTILIZATION,
    OVERHEAD_GIB_PER_GPU,
    kv_bytes_per_token,
    weights_bytes,
)
from tools.clock import Clock
from tools.errors import InvalidInput
from tools.runpod.sandbox.chat import ChatReply

PERF_PATH = Path(__file__).parent / "gpu_perf_2026-12-01.json"
# Share of the peak a vLLM decode step achieves: memory-bound GEMV kernels reach ~80 % of the
# data-sheet bandwidth, dense prefill GEMMs ~50 % of the tensor peak (typical published MFU).
BANDWIDTH_EFFICIENCY = 0.8
COMPUTE_EFFICIENCY = 0.5
# vLLM's default --max-num-seqs; worker-vllm's MAX_CONCURRENCY env lowers it per worker.
DEFAULT_MAX_SEQUENCES = 256
# A model the catalog does not know is simulated as a 7B-class bf16 model (Qwen2.5-7B shape).
UNKNOWN_MODEL_WEIGHTS = 15.2e9
UNKNOWN_MODEL_KV_PER_TOKEN = 57_344
UNKNOWN_MODEL_PARAMS = 7.6e9
# Yields before each step so a consumer in the same loop reads the last token first.
SETTLE_YIELDS = 16
FILLER_TOKEN = "token"


@dataclass(frozen=True)
class CardPerf:
    id: str
    bandwidth_gb_s: float
    bf16_tflops: float
    source: str
    approximate: bool = False


@lru_cache(maxsize=1)
def cards() -> dict[str, CardPerf]:
    """Data-sheet figures per GPU type id (the RunPod id, e.g. "NVIDIA L4")."""
    data = json.loads(PERF_PATH.read_text(encoding="utf-8"))
    return {
        c["id"]: CardPerf(
            id=c["id"],
            bandwidth_gb_s=float(c["bandwidth_gb_s"]),
            bf16_tflops=float(c["bf16_tflops"]),
            source=c["source"],
            approximate=bool(c.get("approximate")),
        )
        for c in data["cards"]
    }


# A card missing from the file is simulated as an L4-class card rather than refused.
FALLBACK_CARD = CardPerf("unknown", 300.0, 121.0, "fallback: L4-class figures")


@dataclass(frozen=True)
class ModelCost:
    """What one token costs a model: bytes every step reads, KV per token, FLOPs per token."""

    model_id: str
    weights_bytes: float
    kv_bytes_per_token: float
    active_params: float
    known: bool = True


def _active_params(model: Any) -> float:
    """Parameters a token passes through: all of them for a dense model; for a mixture of
    experts the shared part plus `experts_per_tok` of the experts (vLLM keeps all resident,
    so the weights term still counts every expert)."""
    total = float(model.params_total or 0)
    g = model.geometry
    if g is None or not (g.num_experts and g.num_experts_per_tok and g.moe_intermediate_size):
        return total
    expert_params = 3.0 * g.hidden_size * g.moe_intermediate_size * g.num_experts
    expert_params *= g.num_hidden_layers
    active = total - expert_params * (1 - g.num_experts_per_tok / g.num_experts)
    return max(active, total * 0.02)


@lru_cache(maxsize=256)
def model_cost(model_id: str, quant: str | None = None) -> ModelCost:
    """The catalog's sizing of `model_id` (served as stored, or as `quant`)."""
    info = default_snapshot().get(model_id)
    if info is None or info.geometry is None:
        return ModelCost(
            model_id, UNKNOWN_MODEL_WEIGHTS, UNKNOWN_MODEL_KV_PER_TOKEN, UNKNOWN_MODEL_PARAMS, False
        )
    try:
        wbytes, _ = weights_bytes(info, quant)
    except InvalidInput:  # a quantisation the catalog refuses: size it as stored
        wbytes, _ = weights_bytes(info, None)
    return ModelCost(
        model_id=info.id,
        weights_bytes=wbytes,
        kv_bytes_per_token=float(kv_bytes_per_token(info)),
        active_params=_active_params(info),
    )


@dataclass(frozen=True)
class RateModel:
    """The step time of one worker: `card` × `gpus` (tensor parallel) serving `model`."""

    card: CardPerf
    gpus: int
    model: ModelCost
    memory_gib: float = 0.0  # per card, real (nvidia-smi) memory

    @property
    def bandwidth(self) -> float:
        """Bytes per second the decode step achieves, over all GPUs."""
        return self.card.bandwidth_gb_s * 1e9 * self.gpus * BANDWIDTH_EFFICIENCY

    @property
    def flops(self) -> float:
        return self.card.bf16_tflops * 1e12 * self.gpus * COMPUTE_EFFICIENCY

    def step_seconds(self, *, batch: int, context_tokens: int, prefill_tokens: int = 0) -> float:
        """One decode step for `batch` sequences holding `context_tokens` in all, with
        `prefill_tokens` of newly admitted prompts computed in the same step."""
        memory = self.model.weights_bytes + self.model.kv_bytes_per_token * context_tokens
        compute = 2.0 * self.model.active_params * (batch + prefill_tokens)
        return max(memory / self.bandwidth, compute / self.flops)

    def decode_tokens_per_second(self, *, batch: int = 1, context: int = 512) -> float:
        """Steady-state tokens/s of each sequence in a batch of `batch` at `context` tokens."""
        return 1.0 / self.step_seconds(batch=batch, context_tokens=batch * context)

    @property
    def kv_capacity_tokens(self) -> int | None:
        """Tokens of KV cache the worker holds after weights and overhead (None: unknown)."""
        if not self.memory_gib:
            return None
        usable = self.memory_gib * GPU_MEMORY_UTILIZATION * self.gpus
        free = (usable - OVERHEAD_GIB_PER_GPU * self.gpus) * GIB - self.model.weights_bytes
        return max(int(free / max(self.model.kv_bytes_per_token, 1.0)), 0)


def rate_for(
    *, gpu_type_id: str, gpu_count: int, memory_gb: int, model_id: str, quant: str | None
) -> RateModel:
    card = cards().get(gpu_type_id, FALLBACK_CARD)
    memory_gib = card_memory_mib(gpu_type_id, memory_gb) / 1024 if memory_gb else 0.0
    return RateModel(card, max(gpu_count, 1), model_cost(model_id, quant), memory_gib)


# --- one worker's continuous batch -------------------------------------------------------


@dataclass(eq=False)
class Sequence:
    """One request in a lane: `await next_token()` returns when its next token exists."""

    prompt_tokens: int
    limit: int
    lane: Lane
    produced: int = 0
    consumed: int = 0
    started: bool = False
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.produced

    async def next_token(self) -> None:
        while self.produced <= self.consumed:
            self._event.clear()
            await self._event.wait()
        self.consumed += 1

    def close(self) -> None:
        """Leave the batch (finished, or the client went away)."""
        self.lane.leave(self)


class Lane:
    """A worker's running batch. Sequences are admitted while the batch has room (max
    sequences, KV cache), the rest wait in order, as vLLM's scheduler does."""

    def __init__(self, *, clock: Clock, rate: RateModel, max_sequences: int) -> None:
        self.clock = clock
        self.rate = rate
        self.max_sequences = max(max_sequences, 1)
        self._running: list[Sequence] = []
        self._waiting: list[Sequence] = []
        self._task: asyncio.Task[None] | None = None
        self.steps = 0

    def join(self, *, prompt_tokens: int, output_tokens: int) -> Sequence:
        seq = Sequence(prompt_tokens=max(prompt_tokens, 0), limit=max(output_tokens, 1), lane=self)
        self._waiting.append(seq)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return seq

    def leave(self, seq: Sequence) -> None:
        if seq in self._running:
            self._running.remove(seq)
        if seq in self._waiting:
            self._waiting.remove(seq)

    def _reserved(self, seq: Sequence) -> int:
        return seq.prompt_tokens + seq.limit

    def _admit(self) -> None:
        capacity = self.rate.kv_capacity_tokens
        held = sum(self._reserved(s) for s in self._running)
        while self._waiting and len(self._running) < self.max_sequences:
            nxt = self._waiting[0]
            if capacity is not None and self._running and held + self._reserved(nxt) > capacity:
                break
            self._running.append(self._waiting.pop(0))
            held += self._reserved(nxt)

    async def _run(self) -> None:
        while self._running or self._waiting:
            self._admit()
            batch = list(self._running)
            prefill = sum(s.prompt_tokens for s in batch if not s.started)
            step = self.rate.step_seconds(
                batch=len(batch),
                context_tokens=sum(s.context for s in batch),
                prefill_tokens=prefill,
            )
            start = self.clock.monotonic()
            for _ in range(SETTLE_YIELDS):
                await asyncio.sleep(0)
            await self.clock.sleep(max(start + step - self.clock.monotonic(), 0.0))
            self.steps += 1
            for seq in batch:
                if seq not in self._running:
                    continue  # left during the step
                seq.started = True
                seq.produced += 1
                seq._event.set()
                if seq.produced >= seq.limit:
                    self._running.remove(seq)


class Throughput:
    """The emulator's lanes, one per worker (serverless) or pod."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lanes: dict[str, Lane] = {}

    def lane(
        self,
        key: str,
        *,
        gpu_type_id: str,
        gpu_count: int,
        memory_gb: int,
        env: dict[str, Any],
        model_id: str,
    ) -> Lane:
        """The lane of worker/pod `key` serving `model_id` (its vLLM env: QUANTIZATION,
        MAX_CONCURRENCY)."""
        found = self._lanes.get(key)
        if found is not None:
            return found
        quant = env.get("QUANTIZATION") or None
        rate = rate_for(
            gpu_type_id=gpu_type_id,
            gpu_count=gpu_count,
            memory_gb=memory_gb,
            model_id=model_id,
            quant=str(quant) if quant else None,
        )
        raw = str(env.get("MAX_CONCURRENCY") or "")
        max_sequences = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_SEQUENCES
        lane = Lane(clock=self.clock, rate=rate, max_sequences=max_sequences)
        self._lanes[key] = lane
        return lane


def wants_pacing(body: dict[str, Any], *, always: bool) -> bool:
    """Streamed requests are paced when the emulator simulates hardware, and always for a
    load test (`ignore_eos`, as vLLM's benchmark clients send)."""
    return bool(body.get("stream")) and (always or bool(body.get("ignore_eos")))


def apply_ignore_eos(reply: ChatReply, body: dict[str, Any]) -> ChatReply:
    """vLLM's `ignore_eos`: generate exactly `max_tokens` tokens (the sandbox pads its reply)."""
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    if not body.get("ignore_eos") or not isinstance(limit, int) or limit <= len(reply.tokens):
        return reply
    tokens = reply.tokens + [FILLER_TOKEN] * (limit - len(reply.tokens))
    return replace(reply, tokens=tokens, finish_reason="length")
