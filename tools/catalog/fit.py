"""Pick the cheapest GPU (or tensor-parallel group of GPUs) that can serve a model.

For each offer we try 1, 2, 4, 8 GPUs (only counts that divide the attention heads, up to
`max_gpus` and the offer's limit) and keep the smallest count that fits; then the cheapest
offer wins (price per GPU-hour × GPUs). Serverless fit works per pool (a worker may land on any
card of its pool, so the pool counts as its smallest card, at the memory nvidia-smi reports
for it: AMPERE_24 is an L4's 23,034 MiB); pod fit works per GPU type.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from tools.catalog import ModelInfo
from tools.catalog.gpus import (
    FALLBACK_DATE,
    FALLBACK_LABEL,
    SECONDS_PER_HOUR,
    GpuOffer,
    OfferSource,
)
from tools.catalog.gpus import serverless_pools as _serverless_pools
from tools.catalog.sizing import (
    GPU_MEMORY_UTILIZATION,
    TENSOR_PARALLEL_SIZES,
    SizeEstimate,
    estimate,
    format_context,
    valid_tensor_parallel,
)
from tools.cost.estimate import rate
from tools.errors import InvalidInput

Mode = Literal["serverless", "pod"]
Cloud = Literal["secure", "community"]

DEFAULT_MAX_GPUS = 8
MAX_ALTERNATIVES = 3


class FitOption(BaseModel):
    """One offer at its smallest GPU count that fits (or at its largest count when none does)."""

    offer_id: str  # pool id (serverless) or GPU type id (pod)
    name: str
    pool: str | None
    memory_gb: int  # nominal, for labels
    memory_mib: int = 0  # what nvidia-smi reports on the smallest card; sizing uses this
    gpu_count: int
    fits: bool
    needed_gib_per_gpu: float
    usable_gib_per_gpu: float
    headroom_gib: float  # per GPU, after weights, overhead and the requested KV cache
    max_context: int  # tokens per sequence at the requested concurrency; 0 = weights don't fit
    price_per_hour: Decimal | None  # all GPUs together
    price_per_second: Decimal | None
    source: OfferSource

    @property
    def label(self) -> str:
        """ "AMPERE_24 (24 GB)", "2× AMPERE_80 (80 GB each)"."""
        base = self.pool if self.pool and self.offer_id == self.pool else self.name
        if self.gpu_count == 1:
            return f"{base} ({self.memory_gb} GB)"
        return f"{self.gpu_count}× {base} ({self.memory_gb} GB each)"

    def price_label(self, mode: Mode) -> str:
        if self.price_per_hour is None:
            return "price unknown"
        if mode == "serverless" and self.price_per_second is not None:
            return f"${_per_second(self.price_per_second)}/s"
        return f"{rate(self.price_per_hour)}/h"


class FitReport(BaseModel):
    model_id: str
    mode: Mode
    cloud: Cloud
    context: int
    concurrency: int
    quant: str | None
    kv_dtype: str
    estimate: SizeEstimate  # at the chosen GPU count
    choice: FitOption
    alternatives: list[FitOption]
    options: list[FitOption]  # every offer considered, fitting or not
    explanation: str
    prices: OfferSource
    prices_date: date | None = None  # set when fallback prices were used


class NoGpuFits(InvalidInput):
    """Nothing offered can hold the model at this context; `options` shows how close each got."""

    def __init__(self, message: str, *, fix: str, options: list[FitOption]) -> None:
        super().__init__(message, fix=fix)
        self.options = options


def _per_second(value: Decimal) -> str:
    # Five decimal places ($0.00031/s); `tools.cost.estimate.per_second` (used by /estimate)
    # keeps three significant digits, so the two may differ in the last digit.
    q = value.quantize(Decimal("0.00001"))
    return format(q if q > 0 else value.normalize(), "f")


def _unit_price(offer: GpuOffer, mode: Mode, cloud: Cloud) -> Decimal | None:
    if mode == "serverless":
        return offer.serverless_per_hour
    return offer.secure_per_hour if cloud == "secure" else offer.community_per_hour


def _option(
    offer: GpuOffer, count: int, est: SizeEstimate, unit: Decimal | None, utilization: float
) -> FitOption:
    memory = offer.memory_gib
    usable = est.usable_gib(memory, utilization=utilization)
    needed = est.per_gpu_gib_on(memory)
    per_hour = unit * count if unit is not None else None
    return FitOption(
        offer_id=offer.id,
        name=offer.name,
        pool=offer.pool,
        memory_gb=offer.memory_gb,
        memory_mib=offer.memory_mib,
        gpu_count=count,
        fits=est.fits(memory, utilization=utilization),
        needed_gib_per_gpu=round(needed, 3),
        usable_gib_per_gpu=round(usable, 3),
        headroom_gib=round(usable - needed, 3),
        max_context=est.max_context(memory, utilization=utilization),
        price_per_hour=per_hour,
        price_per_second=per_hour / SECONDS_PER_HOUR if per_hour is not None else None,
        source=offer.source,
    )


def _cost_key(option: FitOption) -> tuple[bool, Decimal, int, float]:
    price = option.price_per_hour
    return (
        price is None,
        price if price is not None else Decimal(0),
        option.gpu_count,
        -option.headroom_gib,
    )


def fit(
    model: ModelInfo,
    offers: Sequence[GpuOffer],
    *,
    context: int | None = None,
    concurrency: int = 1,
    quant: str | None = None,
    kv_dtype: str | None = None,
    mode: Mode = "serverless",
    max_gpus: int = DEFAULT_MAX_GPUS,
    cloud: Cloud = "secure",
    utilization: float = GPU_MEMORY_UTILIZATION,
) -> FitReport:
    """The cheapest offer that serves `model` at `context` × `concurrency`, with alternatives.

    `offers` are per-card `GpuOffer`s (live or fallback); serverless mode groups them into pools.
    Offers without a price for the mode/cloud are left out (the price is shown before spending).
    Raises `NoGpuFits` (an `InvalidInput`) naming the biggest option when nothing fits, and
    `InvalidInput` for impossible inputs.
    """
    if max_gpus < 1:
        raise InvalidInput("max_gpus must be at least 1.")
    base = estimate(model, context=context, concurrency=concurrency, quant=quant, kv_dtype=kv_dtype)
    candidates = _serverless_pools(offers) if mode == "serverless" else list(offers)
    candidates = [o for o in candidates if _unit_price(o, mode, cloud) is not None]
    if not candidates:
        raise InvalidInput(
            f"No priced GPU offers for {mode}"
            + (f" ({cloud} cloud)" if mode == "pod" else "")
            + ".",
            fix="Check the GPU catalog, or try the other mode or cloud.",
        )
    counts = [n for n in TENSOR_PARALLEL_SIZES if n <= max_gpus and valid_tensor_parallel(model, n)]
    estimates = {
        n: estimate(
            model,
            context=base.context,
            concurrency=concurrency,
            quant=quant,
            kv_dtype=kv_dtype,
            tensor_parallel=n,
        )
        for n in counts
    }
    options: list[FitOption] = []
    for offer in candidates:
        unit = _unit_price(offer, mode, cloud)
        best: FitOption | None = None
        for n in counts:
            if n > max(offer.max_count, 1):
                break
            best = _option(offer, n, estimates[n], unit, utilization)
            if best.fits:
                break
        if best is not None:
            options.append(best)

    fitting = sorted((o for o in options if o.fits), key=_cost_key)
    if not fitting:
        raise _no_fit(model, base, options)
    choice = fitting[0]
    est = estimates[choice.gpu_count]
    used_fallback = choice.source == "fallback"
    return FitReport(
        model_id=model.id,
        mode=mode,
        cloud=cloud,
        context=base.context,
        concurrency=concurrency,
        quant=base.quant,
        kv_dtype=base.kv_dtype,
        estimate=est,
        choice=choice,
        alternatives=fitting[1 : 1 + MAX_ALTERNATIVES],
        options=options,
        explanation=explain(model, est, choice, mode),
        prices=choice.source,
        prices_date=FALLBACK_DATE if used_fallback else None,
    )


def explain(model: ModelInfo, est: SizeEstimate, choice: FitOption, mode: Mode) -> str:
    """One line: what it needs and what we picked, e.g. "Qwen2.5-7B-Instruct bf16: 14.2 GiB
    weights + 0.4 GiB KV at 8k → AMPERE_24 (24 GB) at $0.00019/s"."""
    load = f" × {est.concurrency} requests" if est.concurrency > 1 else ""
    line = (
        f"{model.name} {est.dtype_label}: {est.weights_gib:.1f} GiB weights + "
        f"{est.kv_gib:.1f} GiB KV at {format_context(est.context)}{load} → "
        f"{choice.label} at {choice.price_label(mode)}"
    )
    if choice.source == "fallback":
        line += f" ({FALLBACK_LABEL})"
    return line


def _no_fit(model: ModelInfo, base: SizeEstimate, options: list[FitOption]) -> NoGpuFits:
    need = (
        f"{model.name} {base.dtype_label} needs {base.weights_gib:.1f} GiB of weights + "
        f"{base.kv_gib:.1f} GiB KV at {format_context(base.context)}"
    )
    if not options:
        return NoGpuFits(f"{need}, and no offer allows enough GPUs.", fix=_FIX, options=[])
    biggest = max(options, key=lambda o: (o.memory_mib * o.gpu_count, o.max_context))
    if biggest.max_context > 0:
        room = f"holds at most {biggest.max_context:,} tokens of context"
    else:
        room = "cannot even hold the weights"
    return NoGpuFits(
        f"{need}; nothing offered fits. The biggest option, {biggest.label}, {room}.",
        fix=_FIX,
        options=options,
    )


_FIX = (
    "Try a quantised variant (--quant fp8, or an AWQ/GPTQ checkpoint), a shorter --context, "
    "fewer concurrent requests, or allow more GPUs."
)


__all__ = [
    "DEFAULT_MAX_GPUS",
    "FitOption",
    "FitReport",
    "NoGpuFits",
    "explain",
    "fit",
]
