"""GPU offers: the live RunPod catalog turned into `GpuOffer`s, or a dated fallback table.

Prices are `Decimal` US dollars per GPU per hour (serverless per-second rates × 3600), as the
RunPod v2 catalog quotes them. Memory is the card's nominal size in GB as RunPod lists it; on
most cards that is binary (a "24 GB" RTX 4090 reports 24,564 MiB), and sizing treats it as GiB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

# When the fallback table was last checked against RunPod's docs (GPU-type table edited
# 2026-08-18). Serverless rates are the flex $/s published until 2026-05-13 × 3600; pod rates are
# approximate list prices and are volatile: live prices from `GET /v2/catalog/gpus` win.
FALLBACK_DATE = date(2026, 8, 18)
FALLBACK_LABEL = f"fallback prices of {FALLBACK_DATE.isoformat()}, not live"
SECONDS_PER_HOUR = Decimal(3600)
DEFAULT_MAX_COUNT = 8

OfferSource = Literal["live", "fallback"]


class GpuOffer(BaseModel):
    """One GPU type (or, for serverless fit, one pool) with its prices per GPU-hour."""

    id: str
    name: str
    pool: str | None = None
    memory_gb: int
    serverless_per_hour: Decimal | None = None
    secure_per_hour: Decimal | None = None
    community_per_hour: Decimal | None = None
    max_count: int = DEFAULT_MAX_COUNT
    source: OfferSource = "live"

    @property
    def serverless_per_second(self) -> Decimal | None:
        if self.serverless_per_hour is None:
            return None
        return self.serverless_per_hour / SECONDS_PER_HOUR


# Serverless pools: (pool memory = smallest card in the pool, flex $/GPU-second).
# Source: RunPod docs serverless pricing table (flex column) and GPU-types table; ADA_32_PRO
# (RTX 5090) has no published serverless rate.
SERVERLESS_POOLS: dict[str, tuple[int, Decimal | None]] = {
    "AMPERE_16": (16, Decimal("0.00016")),
    "AMPERE_24": (24, Decimal("0.00019")),
    "ADA_24": (24, Decimal("0.00031")),
    "ADA_32_PRO": (32, None),
    "AMPERE_48": (48, Decimal("0.00034")),
    "ADA_48_PRO": (48, Decimal("0.00053")),
    "AMPERE_80": (80, Decimal("0.00076")),
    "ADA_80_PRO": (80, Decimal("0.00116")),
    "BLACKWELL_96": (96, Decimal("0.00111")),
    "HOPPER_141": (141, Decimal("0.00155")),
    "BLACKWELL_180": (180, Decimal("0.00240")),
}

# (id, display name, GB, pool, secure $/h, community $/h, max GPUs per pod). Pod prices are
# approximate (RunPod list prices seen in 2026; e.g. RTX 4090 0.44/0.31 from the v2 API example).
_FALLBACK_ROWS: tuple[tuple[str, str, int, str | None, str | None, str | None, int], ...] = (
    ("NVIDIA RTX A4000", "RTX A4000", 16, "AMPERE_16", "0.25", "0.17", 8),
    ("NVIDIA RTX 2000 Ada Generation", "RTX 2000 Ada", 16, "AMPERE_16", "0.24", "0.18", 8),
    ("NVIDIA RTX A4500", "RTX A4500", 20, "AMPERE_16", "0.25", "0.19", 8),
    ("NVIDIA RTX 4000 Ada Generation", "RTX 4000 Ada", 20, "AMPERE_16", "0.26", "0.20", 8),
    ("NVIDIA RTX A5000", "RTX A5000", 24, "AMPERE_24", "0.27", "0.16", 8),
    ("NVIDIA L4", "L4", 24, "AMPERE_24", "0.43", None, 8),
    ("NVIDIA GeForce RTX 3090", "RTX 3090", 24, "AMPERE_24", "0.43", "0.22", 8),
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 24, "ADA_24", "0.44", "0.31", 8),
    ("NVIDIA GeForce RTX 5090", "RTX 5090", 32, "ADA_32_PRO", "0.89", "0.69", 8),
    ("NVIDIA A40", "A40", 48, "AMPERE_48", "0.40", None, 8),
    ("NVIDIA RTX A6000", "RTX A6000", 48, "AMPERE_48", "0.49", "0.33", 8),
    ("NVIDIA L40", "L40", 48, "ADA_48_PRO", "0.99", None, 8),
    ("NVIDIA L40S", "L40S", 48, "ADA_48_PRO", "0.86", "0.79", 8),
    ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, "ADA_48_PRO", "0.77", "0.74", 8),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, "AMPERE_80", "1.64", "1.19", 8),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, "AMPERE_80", "1.74", "1.39", 8),
    ("NVIDIA H100 PCIe", "H100 PCIe", 80, "ADA_80_PRO", "2.39", "1.99", 8),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 80, "ADA_80_PRO", "2.69", None, 8),
    ("NVIDIA H100 NVL", "H100 NVL", 94, "ADA_80_PRO", "2.79", None, 8),
    (
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "RTX PRO 6000",
        96,
        "BLACKWELL_96",
        "1.79",
        None,
        8,
    ),
    ("NVIDIA H200", "H200 SXM", 141, "HOPPER_141", "3.59", None, 8),
    ("NVIDIA B200", "B200", 180, "BLACKWELL_180", "5.98", None, 8),
)


def fallback_offers() -> list[GpuOffer]:
    """The dated fallback table (`source="fallback"`); say so when you quote from it."""
    offers = []
    for gpu_id, name, memory, pool, secure, community, max_count in _FALLBACK_ROWS:
        flex = SERVERLESS_POOLS.get(pool, (0, None))[1] if pool else None
        offers.append(
            GpuOffer(
                id=gpu_id,
                name=name,
                pool=pool,
                memory_gb=memory,
                serverless_per_hour=flex * SECONDS_PER_HOUR if flex is not None else None,
                secure_per_hour=Decimal(secure) if secure else None,
                community_per_hour=Decimal(community) if community else None,
                max_count=max_count,
                source="fallback",
            )
        )
    return offers


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))  # str() keeps 0.44 as 0.44, not its binary float expansion


def offers_from_catalog(gpu_types: Iterable[Any]) -> list[GpuOffer]:
    """Convert `GET /v2/catalog/gpus` items (dicts or objects with the same attribute names:
    id, name, pool, memory, price.{secure,community,serverless}, maxCount.{secure,community})
    into live `GpuOffer`s. The pseudo type "unknown" and cards without memory are skipped."""
    offers = []
    for item in gpu_types:
        gpu_id = _get(item, "id")
        memory = _get(item, "memory")
        if not gpu_id or gpu_id == "unknown" or not memory:
            continue
        price = _get(item, "price")
        max_count = _get(item, "maxCount") or _get(item, "max_count")
        counts = [c for c in (_get(max_count, "secure"), _get(max_count, "community")) if c]
        if isinstance(max_count, int):
            counts = [max_count]
        secure_ok = _get(item, "secure")
        community_ok = _get(item, "community")
        offers.append(
            GpuOffer(
                id=str(gpu_id),
                name=str(_get(item, "name") or gpu_id),
                pool=_get(item, "pool"),
                memory_gb=int(memory),
                serverless_per_hour=_money(_get(price, "serverless")),
                secure_per_hour=_money(_get(price, "secure")) if secure_ok is not False else None,
                community_per_hour=(
                    _money(_get(price, "community")) if community_ok is not False else None
                ),
                max_count=max(counts) if counts else DEFAULT_MAX_COUNT,
                source="live",
            )
        )
    return offers


def serverless_pools(offers: Iterable[GpuOffer]) -> list[GpuOffer]:
    """Group per-card offers into one offer per serverless pool.

    A worker may land on any card of its pool, so the pool's memory is its smallest card, its
    price the highest rate quoted for it and its GPU limit the lowest.
    """
    groups: dict[str, list[GpuOffer]] = {}
    for offer in offers:
        if offer.pool:
            groups.setdefault(offer.pool, []).append(offer)
    pools = []
    for pool, members in groups.items():
        prices = [m.serverless_per_hour for m in members if m.serverless_per_hour is not None]
        names = ", ".join(sorted({m.name for m in members}))
        pools.append(
            GpuOffer(
                id=pool,
                name=f"{pool} ({names})",
                pool=pool,
                memory_gb=min(m.memory_gb for m in members),
                serverless_per_hour=max(prices) if prices else None,
                max_count=min(m.max_count for m in members),
                source="fallback" if all(m.source == "fallback" for m in members) else "live",
            )
        )
    return sorted(pools, key=lambda o: (o.memory_gb, o.serverless_per_hour or Decimal(0)))


__all__ = [
    "FALLBACK_DATE",
    "FALLBACK_LABEL",
    "SERVERLESS_POOLS",
    "GpuOffer",
    "fallback_offers",
    "offers_from_catalog",
    "serverless_pools",
]
