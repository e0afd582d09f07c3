"""A deploy plan: which model, on which GPU, at what price, with which worker settings.

Built the same way for the approval card (preview) and for the deploy itself, so the price a
person approves is the price of what gets created."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tools.catalog import ModelInfo
from tools.catalog.fit import FitReport
from tools.catalog.gpus import fallback_offers
from tools.catalog.sizing import GPU_MEMORY_UTILIZATION
from tools.catalog.tools import Mode, Quant, plan_fit, resolve_model
from tools.contract import ToolContext, ToolInput, arg
from tools.cost.estimate import CostEstimate, pod_estimate, serverless_estimate
from tools.errors import InvalidInput

if TYPE_CHECKING:
    from storage.models import Deployment
    from tools.services import Services

# worker-vllm ≥ v2.24 runs `vllm serve` configured by env (reference §3).
VLLM_WORKER_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
VLLM_POD_IMAGE = "vllm/vllm-openai:v0.27.1"
RESOURCE_PREFIX = "cockpit-"
MAX_NAME_LENGTH = 60
DEFAULT_IDLE_TIMEOUT_SECONDS = 60
DEFAULT_WORKERS_MAX = 1
MIN_DISK_GB = 40
DISK_HEADROOM = Decimal("1.5")
WORKER_MAX_CONCURRENCY = 30


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
            hf_token=hf_token,
        )


def worker_env(
    *, model_id: str, context: int, gpu_count: int, quant: str | None, hf_token: str | None
) -> dict[str, str]:
    """The vLLM worker's configuration (worker-vllm maps these onto `vllm serve` flags)."""
    env = {
        "MODEL_NAME": model_id,
        "MAX_MODEL_LEN": str(context),
        "GPU_MEMORY_UTILIZATION": str(GPU_MEMORY_UTILIZATION),
        "TENSOR_PARALLEL_SIZE": str(gpu_count),
        "MAX_CONCURRENCY": str(WORKER_MAX_CONCURRENCY),
    }
    if quant in ("awq", "gptq", "fp8"):
        env["QUANTIZATION"] = quant
    if hf_token:
        env["HF_TOKEN"] = hf_token
    return env


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
                fix=f"Use {report.choice.label} (the cheapest that fits), a shorter --context, or "
                "--quant awq/fp8.",
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
