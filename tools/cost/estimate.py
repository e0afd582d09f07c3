"""What a configuration will cost, before anything is spent. Decimal throughout.

Serverless: flex workers bill per second while running (plus the idle timeout after each burst)
and scale to zero; always-on workers (workersMin > 0) bill 24/7. RunPod's catalog quotes the list
price only (`price.serverless`); the active-worker discount it once published (~30 % below list,
docs until 2026-05-13) is now "available through sales inquiry", so an always-on worker is
estimated at list price × hours and says that negotiated discounts are not included. Pods bill
per hour at the secure or community rate while running."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

HOURS_PER_MONTH = Decimal(730)  # 365 × 24 / 12
SECONDS_PER_HOUR = Decimal(3600)
DEFAULT_UTILISATION = Decimal("0.25")  # share of the month a flex worker is busy
CENT = Decimal("0.01")

NO_DISCOUNTS_NOTE = "list price; discounts you negotiated are not included"

Mode = Literal["serverless", "pod"]


@dataclass(frozen=True)
class CostEstimate:
    mode: Mode
    gpu: str
    gpu_count: int
    per_second: Decimal  # while running, all GPUs
    per_hour: Decimal  # while running, all GPUs
    monthly: Decimal  # under the stated assumptions
    assumptions: list[str]
    price_source: str

    def lines(self) -> list[str]:
        return [
            f"{rate(self.per_hour)}/h while running ({per_second(self.per_second)})",
            f"≈ {money(self.monthly)}/month: " + "; ".join(self.assumptions),
        ]


def money(value: Decimal) -> str:
    """Dollars for people: cents, or more places below a cent so small rates stay visible."""
    if value != 0 and abs(value) < CENT:
        return f"${value.quantize(Decimal('0.00001'), rounding=ROUND_HALF_UP)}"
    return f"${value.quantize(CENT, rounding=ROUND_HALF_UP):,}"


def per_second(value: Decimal) -> str:
    """A per-second price to three significant digits ($0.00031/s, $0.0000667/s): RunPod
    quotes these, and an exact division by 3,600 would print 30 digits."""
    if value == 0:
        return "$0/s"
    places = max(0, 2 - value.adjusted())
    q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP).normalize()
    return f"${q:f}/s"


def rate(value: Decimal) -> str:
    """An hourly rate: tenths of a cent matter ($1.116/h), trailing zeros do not."""
    if 0 < abs(value) < Decimal("0.01"):
        return money(value)
    q = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    text = f"{q:f}".rstrip("0")
    if text.endswith("."):
        text += "00"
    elif len(text.split(".")[1]) == 1:
        text += "0"
    return f"${text}"


def serverless_estimate(
    *,
    pool: str,
    flex_per_hour: Decimal,
    gpu_count: int = 1,
    workers_min: int = 0,
    workers_max: int = 1,
    utilisation: Decimal = DEFAULT_UTILISATION,
    idle_timeout_s: int = 5,
    price_source: str = "live",
) -> CostEstimate:
    per_hour = flex_per_hour * gpu_count
    per_second = per_hour / SECONDS_PER_HOUR
    assumptions: list[str] = []
    monthly = Decimal(0)
    if workers_min > 0:
        monthly += per_hour * HOURS_PER_MONTH * workers_min
        assumptions.append(
            f"{workers_min} always-on worker(s) 24/7 at {rate(per_hour)}/h ({NO_DISCOUNTS_NOTE})"
        )
    flex_workers = max(workers_max - workers_min, 0)
    if flex_workers:
        monthly += per_hour * HOURS_PER_MONTH * utilisation * flex_workers
        assumptions.append(
            f"{flex_workers} flex worker(s) busy {utilisation * 100:.0f}% of the time, "
            f"scaling to zero {idle_timeout_s}s after the last request"
        )
    return CostEstimate(
        mode="serverless",
        gpu=pool,
        gpu_count=gpu_count,
        per_second=per_second,
        per_hour=per_hour,
        monthly=monthly,
        assumptions=assumptions,
        price_source=price_source,
    )


def pod_estimate(
    *,
    gpu: str,
    per_gpu_hour: Decimal,
    gpu_count: int = 1,
    cloud: str = "secure",
    price_source: str = "live",
) -> CostEstimate:
    per_hour = per_gpu_hour * gpu_count
    return CostEstimate(
        mode="pod",
        gpu=gpu,
        gpu_count=gpu_count,
        per_second=per_hour / SECONDS_PER_HOUR,
        per_hour=per_hour,
        monthly=per_hour * HOURS_PER_MONTH,
        assumptions=[f"running 24/7 on {cloud} cloud until stopped"],
        price_source=price_source,
    )
