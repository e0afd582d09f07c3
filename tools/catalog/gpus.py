"""GPU offers: the live RunPod catalog turned into `GpuOffer`s, or the dated fallback table.

Prices are `Decimal` US dollars per GPU per hour (serverless per-second rates × 3600), as the
RunPod v2 catalog quotes them. Memory comes twice: `memory_gb` is the nominal size RunPod lists
(for labels), `memory_mib` is what `nvidia-smi` reports on that card (L4: 23,034 MiB, not
24 GiB), which is what vLLM's `gpu_memory_utilization` is a fraction of and what sizing uses.

Fallback prices and card memory live in one dated data file, `gpu_prices_<date>.json`, shared
with the sandbox emulator (`tools/runpod/sandbox/catalog.py`), each row with its source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

PRICES_PATH = Path(__file__).parent / "gpu_prices_2026-12-01.json"
SECONDS_PER_HOUR = Decimal(3600)
DEFAULT_MAX_COUNT = 8
MIB_PER_GIB = 1024
# A card whose nvidia-smi memory was not looked up is sized at nominal GB × this many MiB: the
# lowest ratio among the looked-up cards (L4 and L40S: 23,034 / 24 = 46,068 / 48 = 959.75), so
# an unknown card is never assumed to hold more than it does.
CONSERVATIVE_MIB_PER_GB = 959.75

OfferSource = Literal["live", "fallback"]


@lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """The dated fallback file (`gpu_prices_<date>.json`), loaded once."""
    data: dict[str, Any] = json.loads(PRICES_PATH.read_text(encoding="utf-8"))
    return data


FALLBACK_DATE = date.fromisoformat(str(price_table()["compiled"]))
FALLBACK_LABEL = f"fallback prices compiled {FALLBACK_DATE.isoformat()}, not live"


def card_memory_mib(gpu_id: str, memory_gb: int) -> int:
    """nvidia-smi MiB of a card: the table's figure for known ids, else a conservative
    derivation from the nominal GB."""
    for row in price_table()["gpus"]:
        if row["id"] == gpu_id and row["memory_gb"] == memory_gb:
            return int(row["memory_mib"])
    return int(memory_gb * CONSERVATIVE_MIB_PER_GB)


class GpuOffer(BaseModel):
    """One GPU type (or, for serverless fit, one pool) with its prices per GPU-hour."""

    id: str
    name: str
    pool: str | None = None
    memory_gb: int  # nominal, as RunPod lists it
    memory_mib: int = 0  # what nvidia-smi reports; 0 = derive from memory_gb
    serverless_per_hour: Decimal | None = None
    secure_per_hour: Decimal | None = None
    community_per_hour: Decimal | None = None
    max_count: int = DEFAULT_MAX_COUNT
    source: OfferSource = "live"

    def model_post_init(self, __context: Any) -> None:
        if not self.memory_mib:
            self.memory_mib = card_memory_mib(self.id, self.memory_gb)

    @property
    def memory_gib(self) -> float:
        """Real memory in GiB, for sizing."""
        return self.memory_mib / MIB_PER_GIB

    @property
    def serverless_per_second(self) -> Decimal | None:
        if self.serverless_per_hour is None:
            return None
        return self.serverless_per_hour / SECONDS_PER_HOUR


def _pool_rates() -> dict[str, Decimal | None]:
    return {
        p["pool"]: Decimal(p["flex_per_second"]) if p["flex_per_second"] else None
        for p in price_table()["serverless_pools"]
    }


# Serverless list (flex) price per GPU-second, by pool; ADA_32_PRO has no published rate.
SERVERLESS_PRICE_PER_SECOND: dict[str, Decimal | None] = _pool_rates()


def fallback_offers() -> list[GpuOffer]:
    """The dated fallback table (`source="fallback"`); say so when you quote from it."""
    offers = []
    for row in price_table()["gpus"]:
        pool = row["pool"]
        flex = SERVERLESS_PRICE_PER_SECOND.get(pool) if pool else None
        offers.append(
            GpuOffer(
                id=row["id"],
                name=row["name"],
                pool=pool,
                memory_gb=row["memory_gb"],
                memory_mib=row["memory_mib"],
                serverless_per_hour=flex * SECONDS_PER_HOUR if flex is not None else None,
                secure_per_hour=Decimal(row["secure"]) if row["secure"] else None,
                community_per_hour=Decimal(row["community"]) if row["community"] else None,
                max_count=DEFAULT_MAX_COUNT,
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

    A worker may land on any card of its pool, so the pool's memory is its smallest card (by
    nvidia-smi MiB, e.g. AMPERE_24 = an L4's 23,034 MiB), its price the highest rate quoted for
    it and its GPU limit the lowest.
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
                memory_mib=min(m.memory_mib for m in members),
                serverless_per_hour=max(prices) if prices else None,
                max_count=min(m.max_count for m in members),
                source="fallback" if all(m.source == "fallback" for m in members) else "live",
            )
        )
    return sorted(pools, key=lambda o: (o.memory_mib, o.serverless_per_hour or Decimal(0)))


__all__ = [
    "FALLBACK_DATE",
    "FALLBACK_LABEL",
    "PRICES_PATH",
    "SERVERLESS_PRICE_PER_SECOND",
    "GpuOffer",
    "card_memory_mib",
    "fallback_offers",
    "offers_from_catalog",
    "price_table",
    "serverless_pools",
]
