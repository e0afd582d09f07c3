"""What a vLLM server does between "container started" and "serving", simulated on the clock.

Real RunPod + vLLM (worker-vllm v2.25.2 = `vllm serve` of vLLM 0.27.1) do not serve at once:
the image is pulled, the weights are downloaded from Hugging Face, loaded onto the GPU, the
engine profiles memory and captures CUDA graphs, and only then does `/health` (and the RunPod
job loop, worker-vllm `src/main.py`) start. vLLM also refuses to start, and exits, on:

- `--quantization awq|gptq` for a checkpoint without that quantization config
  ("Cannot find the config file for awq");
- a `--max-model-len` beyond the model's `max_position_embeddings`;
- weights that do not fit `gpu_memory_utilization` × the card's *real* memory (CUDA OOM), or
  leave no room for the KV cache ("No available memory for the cache blocks");
- a KV cache that cannot hold one sequence of `max_model_len` ("To serve at least one request
  with the models's max seq len ...").

Every figure here is simulated and proportional to the real one: download time = checkpoint
bytes / `DOWNLOAD_BYTES_PER_SECOND`, load time = bytes per GPU / `LOAD_BYTES_PER_SECOND` +
`ENGINE_START_SECONDS`. Sizes come from the bundled model catalog and the sizing functions of
`tools.catalog` (the same ones the planner uses) and the cards' nvidia-smi memory from
`tools.catalog.gpus`; a model the catalog does not know is served without checks and without a
download phase, and its logs say so.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tools.catalog import ModelInfo, default_snapshot
from tools.catalog.gpus import card_memory_mib
from tools.catalog.sizing import (
    GIB,
    GPU_MEMORY_UTILIZATION,
    estimate,
    normalise_quant_or_none,
    weights_bytes,
)
from tools.errors import CockpitError

# Simulated rates (stated on every log line that uses them). 250 MB/s ≈ 2 Gbit/s: a Hugging
# Face download without hf_transfer (worker-vllm's Dockerfile sets HF_HUB_ENABLE_HF_TRANSFER=0).
DOWNLOAD_BYTES_PER_SECOND = 250e6
# Safetensors from the container disk onto the GPU, per GPU (tensor-parallel ranks load at once).
LOAD_BYTES_PER_SECOND = 2e9
# Memory profiling + torch.compile + CUDA-graph capture after the weights are on the GPU.
ENGINE_START_SECONDS = 20.0
# config.json / tokenizer fetch and argument checks before the weights download starts.
CONFIG_SECONDS = 3.0
# RunPod marks a serverless worker unhealthy when its cold start exceeds 7 minutes unless
# RUNPOD_INIT_TIMEOUT (seconds) is raised (docs.runpod.io/serverless/development/optimization).
DEFAULT_INIT_TIMEOUT_SECONDS = 7 * 60
INIT_TIMEOUT_ENV = "RUNPOD_INIT_TIMEOUT"
# After vLLM exits the container is restarted; each restart fails the same way.
CRASH_RESTART_SECONDS = 30.0
PROGRESS_STEPS = 10
TOKEN_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
VLLM_PORT = 8000
EXITED_LINE = "RuntimeError: vLLM serve exited during startup with code 1"  # worker-vllm main.py

LogLine = tuple[datetime, str, str]  # (ts, source "container" | "system", line)


@dataclass(frozen=True)
class ServeConfig:
    """What `vllm serve` is asked to do: from worker-vllm's env (serverless) or the pod args."""

    model: str
    max_model_len: int | None = None
    quantization: str | None = None
    tensor_parallel: int = 1
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
    served_name: str | None = None
    token: str | None = None  # a Hugging Face token the container can read
    argv: tuple[str, ...] = ()  # as the container logs it
    deprecated: tuple[str, ...] = ()  # warnings vLLM prints about the arguments

    @property
    def served(self) -> str:
        return self.served_name or self.model


def _number(value: Any, kind: type, default: Any) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return default


def from_worker_env(env: Mapping[str, Any]) -> ServeConfig:
    """worker-vllm (`src/args_builder.py`): every env var named like a `vllm serve` flag
    becomes that flag, MODEL_NAME → --model; `src/main.py` then logs the whole command line.
    HF_TOKEN matches the `--hf-token` flag, so its value lands in that logged line;
    HUGGING_FACE_HUB_TOKEN matches no flag and only reaches the process environment."""
    model = str(env.get("MODEL_NAME") or "")
    argv = ["vllm", "serve", "--host", "127.0.0.1", "--port", str(VLLM_PORT)]
    flags = (
        ("MAX_MODEL_LEN", "--max-model-len"),
        ("GPU_MEMORY_UTILIZATION", "--gpu-memory-utilization"),
        ("TENSOR_PARALLEL_SIZE", "--tensor-parallel-size"),
        ("QUANTIZATION", "--quantization"),
        ("HF_TOKEN", "--hf-token"),
        ("MODEL_NAME", "--model"),
        ("OPENAI_SERVED_MODEL_NAME_OVERRIDE", "--served-model-name"),
    )
    for key, flag in flags:
        if str(env.get(key) or "").strip():
            argv += [flag, str(env[key])]
    return ServeConfig(
        model=model,
        max_model_len=_number(env.get("MAX_MODEL_LEN"), int, None),
        quantization=(str(env.get("QUANTIZATION") or "").lower() or None),
        tensor_parallel=_number(env.get("TENSOR_PARALLEL_SIZE"), int, 1) or 1,
        gpu_memory_utilization=_number(
            env.get("GPU_MEMORY_UTILIZATION"), float, GPU_MEMORY_UTILIZATION
        ),
        served_name=env.get("OPENAI_SERVED_MODEL_NAME_OVERRIDE") or env.get("SERVED_MODEL_NAME"),
        token=next((str(env[k]) for k in TOKEN_ENVS if env.get(k)), None),
        argv=tuple(argv),
    )


def from_pod_args(args: str, env: Mapping[str, Any]) -> ServeConfig:
    """The vllm/vllm-openai image runs `vllm serve <args>`: the model is the first positional
    argument; `--model` still works but vLLM warns that it is deprecated."""
    words = shlex.split(args or "")
    if words[:2] == ["vllm", "serve"]:
        words = words[2:]
    elif words[:1] == ["serve"]:
        words = words[1:]
    values: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            name, eq, inline = word.partition("=")
            if eq:
                values[name] = inline
            elif i + 1 < len(words) and not words[i + 1].startswith("--"):
                values[name] = words[i + 1]
                i += 1
            else:
                values[name] = "true"
        else:
            positional.append(word)
        i += 1
    deprecated: tuple[str, ...] = ()
    model = positional[0] if positional else values.get("--model", "")
    if not positional and "--model" in values:
        deprecated = (
            "WARNING: With `vllm serve`, you should provide the model as a positional "
            "argument or in a config file instead of via the `--model` option. "
            "The `--model` option will be removed in a future version.",
        )
    token = next((str(env[k]) for k in TOKEN_ENVS if env.get(k)), values.get("--hf-token"))
    return ServeConfig(
        model=model,
        max_model_len=_number(values.get("--max-model-len"), int, None),
        quantization=(values.get("--quantization") or "").lower() or None,
        tensor_parallel=_number(values.get("--tensor-parallel-size"), int, 1) or 1,
        gpu_memory_utilization=_number(
            values.get("--gpu-memory-utilization"), float, GPU_MEMORY_UTILIZATION
        ),
        served_name=values.get("--served-model-name"),
        token=token,
        argv=("vllm", "serve", *shlex.split(args or "")),
        deprecated=deprecated,
    )


@dataclass(frozen=True)
class Startup:
    """One start of the vLLM server on one placement, as offsets from the container start."""

    config: ServeConfig
    gpu_id: str
    container_seconds: float  # image pull + container boot
    download_seconds: float
    load_seconds: float
    download_bytes: float
    failure: tuple[str, ...] = ()  # vLLM's error lines when it cannot start
    fail_after: float | None = None  # seconds after the container start
    notes: tuple[str, ...] = ()
    loaded_line: str = ""

    @property
    def ready_after(self) -> float | None:
        """Seconds from the container start until vLLM serves; None when it never does."""
        if self.failure:
            return None
        return self.container_seconds + CONFIG_SECONDS + self.download_seconds + self.load_seconds

    @property
    def cold_start_seconds(self) -> float:
        return self.ready_after if self.ready_after is not None else float(self.fail_after or 0)

    def log(
        self,
        started: datetime,
        until: datetime,
        *,
        init_timeout: float | None = None,
        restart_forever: bool = True,
    ) -> list[LogLine]:
        """Log lines from `started` up to `until` (worker-vllm and vLLM's wording; the rates
        are the sandbox's). A crash repeats on every container restart."""
        lines: list[LogLine] = []

        def at(seconds: float, source: str, text: str) -> None:
            when = started + timedelta(seconds=seconds)
            if when <= until:
                lines.append((when, source, text))

        attempt_start = 0.0
        attempt = 0
        while True:
            base = attempt_start
            at(base, "system", f"sandbox: starting container on {self.gpu_id} (simulated)")
            t = base + (self.container_seconds if attempt == 0 else 1.0)
            at(t, "container", "Starting vLLM: " + " ".join(self.config.argv))
            for note in (*self.config.deprecated, *self.notes):
                at(t, "container", note)
            if self.download_bytes and attempt == 0:
                step = self.download_seconds / PROGRESS_STEPS
                total_gb = self.download_bytes / 1e9
                for i in range(1, PROGRESS_STEPS + 1):
                    pct = 100 * i // PROGRESS_STEPS
                    at(
                        t + CONFIG_SECONDS + step * i,
                        "container",
                        f"Downloading weights of {self.config.model}: {pct}% "
                        f"({total_gb * i / PROGRESS_STEPS:.1f}/{total_gb:.1f} GB, simulated "
                        f"{DOWNLOAD_BYTES_PER_SECOND / 1e6:.0f} MB/s)",
                    )
            if self.failure:
                offset = (self.fail_after or 0.0) - self.container_seconds
                fail_at = t + (offset if attempt == 0 else max(offset - self.download_seconds, 1))
                for text in self.failure:
                    at(fail_at, "container", text)
                at(fail_at, "container", EXITED_LINE)
                at(fail_at, "system", "container exited with code 1; restarting")
                attempt += 1
                attempt_start = fail_at + CRASH_RESTART_SECONDS
                if not restart_forever or started + timedelta(seconds=attempt_start) > until:
                    break
                continue
            ready = self.ready_after or 0.0
            if self.loaded_line:
                at(ready - ENGINE_START_SECONDS, "container", self.loaded_line)
            if init_timeout is not None and ready > init_timeout:
                at(
                    init_timeout,
                    "system",
                    f"worker did not become ready within {init_timeout:.0f} s "
                    f"({INIT_TIMEOUT_ENV}); marked unhealthy",
                )
                break
            at(ready, "container", "vLLM is healthy")
            break
        return lines


def _fmt_gib(value: float) -> str:
    return f"{value:.2f} GiB"


def lookup(model_id: str) -> ModelInfo | None:
    return default_snapshot().get(model_id) if model_id else None


def plan_startup(
    config: ServeConfig,
    *,
    gpu_id: str,
    memory_gb: int,
    gpu_count: int,
    container_seconds: float,
    weights_cached: bool = False,
) -> Startup:
    """How this start goes: its phases' durations and, when vLLM refuses, why and when."""

    def make(
        download: float = 0.0,
        load: float = 0.0,
        nbytes: float = 0.0,
        *,
        failure: tuple[str, ...] = (),
        fail_after: float | None = None,
        notes: tuple[str, ...] = (),
        loaded_line: str = "",
    ) -> Startup:
        return Startup(
            config=config,
            gpu_id=gpu_id,
            container_seconds=container_seconds,
            download_seconds=download,
            load_seconds=load,
            download_bytes=nbytes,
            failure=failure,
            fail_after=fail_after,
            notes=notes,
            loaded_line=loaded_line,
        )

    info = lookup(config.model)
    if info is None:
        note = (
            f"sandbox: {config.model or 'no model'} is not in the bundled catalog; its download "
            "and vLLM's start-up checks are not simulated"
        )
        return make(notes=(note,))
    early = container_seconds + CONFIG_SECONDS
    if info.gated and not config.token:
        return make(
            failure=(
                f"huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated "
                f"repo for url https://huggingface.co/{info.id}/resolve/main/config.json. "
                "Access to model is restricted. You must have access to it and be authenticated "
                "to access it. Please log in.",
            ),
            fail_after=early,
        )
    tp = max(config.tensor_parallel, 1)
    stored = normalise_quant_or_none(info.quantization)
    wanted = config.quantization
    if wanted in ("awq", "gptq") and stored != wanted:
        if stored:
            text = (
                f"ValueError: Quantization method specified in the model config ({stored}) does "
                f"not match the quantization method specified in the `quantization` argument "
                f"({wanted})."
            )
        else:
            text = f"ValueError: Cannot find the config file for {wanted}"
        return make(failure=(text,), fail_after=early)
    limit = info.geometry.max_position_embeddings if info.geometry else None
    context = config.max_model_len or limit or 8192
    if limit and context > limit:
        text = (
            f"ValueError: User-specified max_model_len ({context}) is greater than the derived "
            f"max_model_len (max_position_embeddings={limit} or model_max_length=None in model's "
            "config.json). To allow overriding this maximum, set the env var "
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."
        )
        return make(failure=(text,), fail_after=early)
    quant = None if (wanted in (None, stored) or wanted in ("awq", "gptq")) else wanted
    try:
        stored_bytes, _ = weights_bytes(info, None)
        est = estimate(info, context=context, quant=quant, tensor_parallel=tp)
    except CockpitError as exc:
        return make(failure=(f"ValueError: {exc.message}",), fail_after=early)
    download = 0.0 if weights_cached else stored_bytes / DOWNLOAD_BYTES_PER_SECOND
    per_gpu_bytes = est.weights_gib_per_gpu * GIB
    load = per_gpu_bytes / LOAD_BYTES_PER_SECOND + ENGINE_START_SECONDS
    memory_gib = card_memory_mib(gpu_id, memory_gb) / 1024
    budget = config.gpu_memory_utilization * memory_gib
    weights = est.weights_gib_per_gpu
    overhead = est.overhead_gib_per_gpu
    kv_needed = est.kv_gib_per_gpu
    loading_at = early + download + per_gpu_bytes / LOAD_BYTES_PER_SECOND
    phases = (download, load, stored_bytes)
    if gpu_count < tp:
        text = (
            f"ValueError: The number of required GPUs exceeds the total number of available "
            f"GPUs in the placement group (tensor_parallel_size={tp}, GPUs={gpu_count})."
        )
        return make(*phases, failure=(text,), fail_after=early)
    if weights > budget:
        free_mib = max(memory_gib - weights, 0) * 1024
        text = (
            f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
            f"{_fmt_gib(weights - budget)}. GPU 0 has a total capacity of {_fmt_gib(memory_gib)} "
            f"of which {free_mib:.2f} MiB is free. The model's weights need "
            f"{_fmt_gib(weights)} per GPU."
        )
        return make(*phases, failure=(text,), fail_after=loading_at)
    loaded = f"Loading model weights took {_fmt_gib(weights)}"
    available = budget - weights - overhead
    if available <= 0:
        text = (
            "ValueError: No available memory for the cache blocks. Try increasing "
            "`gpu_memory_utilization` when initializing the engine."
        )
        return make(*phases, failure=(loaded, text), fail_after=loading_at + 5)
    if kv_needed > available:
        per_token = kv_needed / context if context else 0
        fits = int(available / per_token) // 16 * 16 if per_token else 0
        text = (
            f"ValueError: To serve at least one request with the models's max seq len "
            f"({context}), ({_fmt_gib(kv_needed)} KV cache is needed, which is larger than the "
            f"available KV cache memory ({_fmt_gib(available)}). Based on the available memory, "
            f"the estimated maximum model length is {fits}. Try increasing "
            "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
        )
        return make(*phases, failure=(loaded, text), fail_after=loading_at + 5)
    concurrency = available / kv_needed if kv_needed else 0.0
    loaded += (
        f"; available KV cache memory: {_fmt_gib(available)}; maximum concurrency for "
        f"{context} tokens per request: {concurrency:.2f}x"
    )
    return make(*phases, loaded_line=loaded)


__all__ = [
    "DEFAULT_INIT_TIMEOUT_SECONDS",
    "DOWNLOAD_BYTES_PER_SECOND",
    "ENGINE_START_SECONDS",
    "INIT_TIMEOUT_ENV",
    "LOAD_BYTES_PER_SECOND",
    "ServeConfig",
    "Startup",
    "from_pod_args",
    "from_worker_env",
    "plan_startup",
]
