"""A deploy plan: which model, on which GPU, at what price, with which worker settings.

Built the same way for the approval card (preview) and for the deploy itself, so the price a
person approves is the price of what gets created."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tools.catalog import ModelInfo
from tools.catalog.fit import FitReport
from tools.catalog.gpus import fallback_offers
from tools.catalog.resolve import Mode, Quant, plan_fit, resolve_model
from tools.catalog.sizing import (
    GPU_MEMORY_UTILIZATION,
    normalise_quant,
    normalise_quant_or_none,
    weights_bytes,
)
from tools.contract import ToolContext, ToolInput, arg
from tools.cost.estimate import CostEstimate, pod_estimate, serverless_estimate
from tools.errors import CockpitError, InvalidInput

if TYPE_CHECKING:
    from storage.models import Deployment
    from tools.services import Services

# worker-vllm ≥ v2.24 runs `vllm serve` configured by env (runpod-workers/worker-vllm README).
VLLM_WORKER_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
VLLM_POD_IMAGE = "vllm/vllm-openai:v0.27.1"
RESOURCE_PREFIX = "cockpit-"
MAX_NAME_LENGTH = 60
DEFAULT_IDLE_TIMEOUT_SECONDS = 60
DEFAULT_WORKERS_MAX = 1
MIN_DISK_GB = 40
DISK_HEADROOM = Decimal("1.5")
WORKER_MAX_CONCURRENCY = 30
# RunPod marks a serverless worker unhealthy when its cold start exceeds 7 minutes unless
# RUNPOD_INIT_TIMEOUT (seconds) is raised (docs.runpod.io/serverless/development/optimization);
# worker-vllm starts its job loop only once vLLM serves, so the weights download counts.
INIT_TIMEOUT_ENV = "RUNPOD_INIT_TIMEOUT"
DEFAULT_INIT_TIMEOUT_SECONDS = 7 * 60
# Planning figures for the timeout (deliberately slower than typical, so a slow host is not
# killed): image pull + load + engine start, plus the download at a slow Hugging Face rate.
COLD_START_ALLOWANCE_SECONDS = 300
PLANNING_DOWNLOAD_BYTES_PER_SECOND = 100e6
# worker-vllm (src/args_builder.py) turns any env var named like a `vllm serve` flag into that
# flag, so HF_TOKEN becomes `--hf-token <token>`, and src/main.py logs the whole command line:
# the token would be in the worker logs. HUGGING_FACE_HUB_TOKEN matches no flag; the vLLM child
# inherits it and huggingface_hub still reads it (kept "for backward compatibility").
SERVERLESS_TOKEN_ENV = "HUGGING_FACE_HUB_TOKEN"
POD_TOKEN_ENV = "HF_TOKEN"  # a pod runs `vllm serve` itself; the env is not echoed
QUANTISED_SIBLING_SUFFIXES: dict[str, tuple[str, ...]] = {
    "awq": ("-AWQ",),
    "gptq": ("-GPTQ-Int4", "-GPTQ-Int8"),
    "fp8": ("-FP8",),
}


@dataclass
class DeployPlan:
    model_id: str
    mode: str  # serverless | pod
    gpu: str  # pool id (serverless) or GPU type id (pod)
    gpu_label: str
    gpu_count: int
    context: int
    quant: str | None
    workers_min: int
    workers_max: int
    idle_timeout: int
    disk_gb: int
    price_per_hour: Decimal
    explanation: str
    price_note: str | None
    model_note: str
    estimate: CostEstimate
    init_timeout: int = DEFAULT_INIT_TIMEOUT_SECONDS
    download_gb: float = 0.0
    gated: bool = False

    def settings_json(self) -> str:
        data = asdict(self)
        data.pop("estimate")
        data["price_per_hour"] = str(self.price_per_hour)
        return json.dumps(data, sort_keys=True)

    def worker_env(self, hf_token: str | None) -> dict[str, str]:
        return worker_env(
            model_id=self.model_id,
            context=self.context,
            gpu_count=self.gpu_count,
            quant=self.quant,
            hf_token=hf_token if self.gated else None,
            init_timeout=self.init_timeout,
        )

    @property
    def cold_start_note(self) -> str:
        """For the card: how long a cold start may take and what the bot allows for it."""
        minutes = self.init_timeout // 60
        if self.mode == "pod":
            return (
                f"vLLM downloads {self.download_gb:.0f} GB and loads it before it serves; the "
                f"pod bills from when it runs, and the bot waits up to {minutes} min."
            )
        raised = (
            "the 7-min default"
            if self.init_timeout <= DEFAULT_INIT_TIMEOUT_SECONDS
            else f"raised from 7 min for a {self.download_gb:.0f} GB download"
        )
        return (
            f"up to {minutes} min allowed ({INIT_TIMEOUT_ENV}={self.init_timeout}, {raised}); "
            "starting workers are not billed"
        )


def init_timeout_for(download_bytes: float) -> int:
    """RUNPOD_INIT_TIMEOUT for a checkpoint of `download_bytes`: never below RunPod's 7-minute
    default, whole minutes, with room for a slow download."""
    seconds = COLD_START_ALLOWANCE_SECONDS + download_bytes / PLANNING_DOWNLOAD_BYTES_PER_SECOND
    return max(DEFAULT_INIT_TIMEOUT_SECONDS, math.ceil(seconds / 60) * 60)


def worker_env(
    *,
    model_id: str,
    context: int,
    gpu_count: int,
    quant: str | None,
    hf_token: str | None,
    init_timeout: int | None = None,
) -> dict[str, str]:
    """The vLLM worker's configuration (worker-vllm maps these onto `vllm serve` flags).
    `hf_token` only for gated models: public ones need none, and a token never goes where
    it is not needed. It travels as HUGGING_FACE_HUB_TOKEN, which worker-vllm does not echo."""
    env = {
        "MODEL_NAME": model_id,
        "MAX_MODEL_LEN": str(context),
        "GPU_MEMORY_UTILIZATION": str(GPU_MEMORY_UTILIZATION),
        "TENSOR_PARALLEL_SIZE": str(gpu_count),
        "MAX_CONCURRENCY": str(WORKER_MAX_CONCURRENCY),
    }
    if quant in ("awq", "gptq", "fp8"):
        env["QUANTIZATION"] = quant
    if init_timeout:
        env[INIT_TIMEOUT_ENV] = str(init_timeout)
    if hf_token:
        env[SERVERLESS_TOKEN_ENV] = hf_token
    return env


async def check_quantisation(tc: ToolContext, info: ModelInfo, quant: str | None) -> str | None:
    """The `--quant` vLLM can honour for this checkpoint, or a refusal before any approval.

    awq/gptq read the checkpoint's `quantization_config`: vLLM exits with "Cannot find the
    config file for awq" on a bf16 repo. For those the quantised sibling repo is offered when
    one exists (Qwen/Qwen2.5-7B-Instruct → Qwen/Qwen2.5-7B-Instruct-AWQ), else fp8, which vLLM
    applies on the fly to an unquantised checkpoint."""
    q = normalise_quant(quant)
    stored = normalise_quant_or_none(info.quantization)
    if q not in ("awq", "gptq") or stored == q:
        return q
    if stored:
        raise InvalidInput(
            f"{info.id} is an {stored} checkpoint; vLLM cannot serve it as {q}.",
            fix=f"Deploy it without --quant (it is served as {stored}).",
        )
    sibling = await quantised_sibling(tc, info, q)
    what = f"{info.name} is an unquantised ({info.torch_dtype or 'bf16'}) checkpoint"
    reason = (
        f"{what} with no {q.upper()} quantization config, so vLLM would exit at start "
        f'("Cannot find the config file for {q}"). Nothing was created.'
    )
    if sibling:
        fix = f"Deploy the {q.upper()} checkpoint instead: `/deploy {sibling}`; or use --quant fp8."
    else:
        fix = "Use --quant fp8 (vLLM quantises on the fly), or pick an AWQ/GPTQ checkpoint."
    raise InvalidInput(reason, fix=fix)


async def quantised_sibling(tc: ToolContext, info: ModelInfo, quant: str) -> str | None:
    """The `<repo>-AWQ` / `-GPTQ-Int4` repo of the same model, if the Hub (or the bundled
    catalog) has one quantised that way."""
    hub = await tc.services.db.call(tc.services.hub_for, tc.org_id)
    for suffix in QUANTISED_SIBLING_SUFFIXES.get(quant, ()):
        candidate = f"{info.id}{suffix}"
        try:
            found: ModelInfo = await hub.model_info(candidate)
        except CockpitError:
            continue
        if normalise_quant_or_none(found.quantization) == quant:
            return found.id
    return None


def pod_api_key(services: Services, dep: Deployment) -> str:
    """The key a pod's vLLM server requires (`VLLM_API_KEY`), so the pod's public proxy URL
    does not serve anyone who guesses it. Derived from the secret key, never stored."""
    return services.secrets.derive(f"pod-vllm-api-key:{dep.org_id}:{dep.id}")


def resource_name(org_id: int, deployment_id: int, model_id: str) -> str:
    """`cockpit-o3-d17-qwen2-5-7b-instruct`: the prefix marks resources this bot created; the
    ids keep organisations sharing one RunPod account apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.split("/")[-1].lower()).strip("-")
    return f"{RESOURCE_PREFIX}o{org_id}-d{deployment_id}-{slug}"[:MAX_NAME_LENGTH].rstrip("-")


async def build_plan(
    tc: ToolContext,
    *,
    model: str,
    gpu: str | None = None,
    context: int | None = None,
    quant: str | None = None,
    mode: str = "serverless",
    workers_min: int = 0,
    workers_max: int = DEFAULT_WORKERS_MAX,
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT_SECONDS,
    check_access: bool = False,
) -> tuple[DeployPlan, ModelInfo]:
    if workers_min > workers_max:
        raise InvalidInput("--workers-min cannot be more than --workers-max.")
    info = await resolve_model(tc, model, check_access=check_access)
    quant = await check_quantisation(tc, info, quant)
    report, note = await plan_fit(tc, info, context=context, quant=quant, mode=mode)
    choice = _pick_option(report, gpu)
    price = choice.price_per_hour or Decimal(0)
    per_gpu = price / choice.gpu_count
    if mode == "serverless":
        est = serverless_estimate(
            pool=choice.offer_id,
            flex_per_hour=per_gpu,
            gpu_count=choice.gpu_count,
            workers_min=workers_min,
            workers_max=workers_max,
            idle_timeout_s=idle_timeout,
            price_source=report.prices,
        )
    else:
        est = pod_estimate(
            gpu=choice.offer_id,
            per_gpu_hour=per_gpu,
            gpu_count=choice.gpu_count,
            price_source=report.prices,
        )
    weights_gb = Decimal(str(report.estimate.weights_gib))
    disk = max(MIN_DISK_GB, int(weights_gb * DISK_HEADROOM) + 20)
    download, _ = weights_bytes(info, None)
    plan = DeployPlan(
        model_id=info.id,
        mode=mode,
        gpu=choice.offer_id,
        gpu_label=choice.label,
        gpu_count=choice.gpu_count,
        context=report.context,
        quant=report.quant,
        workers_min=workers_min,
        workers_max=workers_max,
        idle_timeout=idle_timeout,
        disk_gb=disk,
        price_per_hour=price,
        explanation=report.explanation
        if choice is report.choice
        else f"{choice.label} as you asked; the cheapest that fits: {report.explanation}",
        price_note=note,
        model_note=info.source_label,
        estimate=est,
        init_timeout=init_timeout_for(download),
        download_gb=round(download / 1e9, 1),
        gated=info.gated,
    )
    return plan, info


MAX_WORKERS = 10


class PlanInput(ToolInput):
    """What /deploy and /estimate both take: the model and how to run it."""

    model: str = arg(description="Alias (qwen, llama 8b) or Hugging Face id", positional=True)
    gpu: str | None = arg(None, description="Force a pool or GPU type, e.g. ADA_24 or H100")
    context: int | None = arg(
        None, description="Max context length in tokens", ge=256, le=1_048_576
    )
    quant: Quant | None = arg(None, description="awq, gptq, fp8 or bf16")
    mode: Mode = arg("serverless", description="serverless (scales to zero) or pod")
    workers_max: int = arg(DEFAULT_WORKERS_MAX, description="Most workers", ge=1, le=MAX_WORKERS)
    workers_min: int = arg(0, description="Always-on workers (billed 24/7)", ge=0, le=MAX_WORKERS)
    idle_timeout: int = arg(
        DEFAULT_IDLE_TIMEOUT_SECONDS,
        description="Seconds idle before a worker stops",
        ge=5,
        le=3600,
    )


async def plan_for(tc: ToolContext, args: PlanInput, *, check_access: bool = False) -> DeployPlan:
    plan, _ = await build_plan(
        tc,
        model=args.model,
        gpu=args.gpu,
        context=args.context,
        quant=args.quant,
        mode=args.mode,
        workers_min=args.workers_min,
        workers_max=args.workers_max,
        idle_timeout=args.idle_timeout,
        check_access=check_access,
    )
    return plan


def _pick_option(report: FitReport, gpu: str | None) -> Any:
    if gpu is None:
        return report.choice
    wanted = _pool_for_card_name(gpu, report.mode) or gpu.strip().lower()
    for option in report.options:
        names = {option.offer_id.lower(), option.name.lower(), (option.pool or "").lower()}
        if wanted in names and option.fits:
            return option
    for option in report.options:
        if wanted in {option.offer_id.lower(), option.name.lower(), (option.pool or "").lower()}:
            raise InvalidInput(
                f"{report.model_id} does not fit on {option.label} at {report.context} tokens.",
                fix=f"Use {report.choice.label} (the cheapest that fits), a shorter --context, "
                "--quant fp8, or an AWQ/GPTQ checkpoint of the model.",
            )
    known = ", ".join(sorted({o.offer_id for o in report.options}))
    raise InvalidInput(f"Unknown GPU {gpu!r}.", fix=f"Choose one of: {known}.")


def _pool_for_card_name(gpu: str, mode: str) -> str | None:
    """People say "H100" or "4090"; serverless offers are pools. Map a card name to its pool."""
    if mode != "serverless":
        return None
    wanted = gpu.strip().lower().replace("nvidia", "").replace("geforce", "").strip()
    for offer in fallback_offers():
        names = (offer.name.lower(), offer.id.lower())
        if offer.pool and any(
            wanted == n or wanted in n.split() or n.endswith(wanted) for n in names
        ):
            return offer.pool.lower()
    return None


def plan_from_settings(settings_json: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(settings_json or "{}")
    return data
