"""The sandbox GPU catalog: GPU types, serverless pools and prices.

Prices come from the same dated file as the bot's fallback table
(`tools/catalog/gpu_prices_<date>.json`, each row with its source), so the emulator and the
fallback never disagree. Serverless prices are RunPod's published flex (list) rates per
GPU-second; the catalog reports them per hour (`price.serverless` = flex $/s × 3600) as
`GET /v2/catalog/gpus` does. ADA_32_PRO has no published price, so its GPU carries a pool but
no serverless price and the sandbox refuses endpoints on it, as RunPod does for a pool that is
not available to the caller. Pod prices are approximate public figures, not quotes. Everything
here is labelled sandbox data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tools.catalog.gpus import SERVERLESS_PRICE_PER_SECOND, price_table

SECONDS_PER_HOUR = Decimal(3600)

# Flex (scale-to-zero) serverless price per GPU-second, by pool (pools with a published rate).
POOL_PRICE_PER_SECOND: dict[str, Decimal] = {
    pool: rate for pool, rate in SERVERLESS_PRICE_PER_SECOND.items() if rate is not None
}
KNOWN_POOLS = tuple(SERVERLESS_PRICE_PER_SECOND)
# Pod $/GPU-hour (secure, community) by GPU type id, from the shared dated file.
_POD_PRICES: dict[str, tuple[str, str]] = {
    row["id"]: (row["secure"], row["community"] or row["secure"]) for row in price_table()["gpus"]
}

DATA_CENTERS: tuple[tuple[str, str], ...] = (
    ("US-KS-2", "US Kansas 2"),
    ("US-TX-3", "US Texas 3"),
    ("EU-RO-1", "EU Romania 1"),
    ("EU-SE-1", "EU Sweden 1"),
)
CUDA_VERSIONS = ("12.4", "12.6", "12.8", "13.0")


@dataclass(frozen=True)
class GpuSpec:
    id: str
    name: str
    memory: int  # GB of VRAM
    pool: str | None
    secure_price: Decimal  # pod $/GPU-hour, secure cloud
    community_price: Decimal  # pod $/GPU-hour, community cloud
    secure: bool = True
    community: bool = True
    max_secure: int = 8
    max_community: int = 4
    manufacturer: str = "NVIDIA"

    @property
    def serverless_price_per_second(self) -> Decimal | None:
        return POOL_PRICE_PER_SECOND.get(self.pool) if self.pool else None

    @property
    def serverless_price_per_hour(self) -> Decimal | None:
        per_second = self.serverless_price_per_second
        return None if per_second is None else per_second * SECONDS_PER_HOUR

    def pod_price_per_hour(self, cloud: str) -> Decimal:
        return self.community_price if cloud == "COMMUNITY" else self.secure_price


def _gpu(gpu_id: str, name: str, memory: int, pool: str | None, **extra: Any) -> GpuSpec:
    secure_price, community_price = _POD_PRICES[gpu_id]
    return GpuSpec(
        gpu_id, name, memory, pool, Decimal(secure_price), Decimal(community_price), **extra
    )


GPUS: tuple[GpuSpec, ...] = (
    _gpu("NVIDIA RTX A4000", "RTX A4000", 16, "AMPERE_16"),
    _gpu("NVIDIA RTX A4500", "RTX A4500", 20, "AMPERE_16"),
    _gpu("NVIDIA RTX 4000 Ada Generation", "RTX 4000 Ada", 20, "AMPERE_16"),
    _gpu("NVIDIA RTX 2000 Ada Generation", "RTX 2000 Ada", 16, "AMPERE_16"),
    _gpu("NVIDIA RTX A5000", "RTX A5000", 24, "AMPERE_24"),
    _gpu("NVIDIA L4", "L4", 24, "AMPERE_24"),
    _gpu("NVIDIA GeForce RTX 3090", "RTX 3090", 24, "AMPERE_24"),
    _gpu("NVIDIA GeForce RTX 4090", "RTX 4090", 24, "ADA_24"),
    _gpu("NVIDIA GeForce RTX 5090", "RTX 5090", 32, "ADA_32_PRO"),
    _gpu("NVIDIA A40", "A40", 48, "AMPERE_48", community=False),
    _gpu("NVIDIA RTX A6000", "RTX A6000", 48, "AMPERE_48"),
    _gpu("NVIDIA L40", "L40", 48, "ADA_48_PRO"),
    _gpu("NVIDIA L40S", "L40S", 48, "ADA_48_PRO"),
    _gpu("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, "ADA_48_PRO"),
    _gpu("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, "AMPERE_80"),
    _gpu("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, "AMPERE_80"),
    _gpu("NVIDIA H100 80GB HBM3", "H100 SXM", 80, "ADA_80_PRO"),
    # Pod-only: RunPod's ADA_80_PRO serverless pool is the H100 SXM (issue 15).
    _gpu("NVIDIA H100 PCIe", "H100 PCIe", 80, None),
    _gpu("NVIDIA H100 NVL", "H100 NVL", 94, None),
    _gpu("NVIDIA H200", "H200 SXM", 141, "HOPPER_141", community=False),
    _gpu("NVIDIA H200 NVL", "H200 NVL", 143, None, community=False),
    _gpu(
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "RTX PRO 6000",
        96,
        "BLACKWELL_96",
    ),
    _gpu("NVIDIA B200", "B200", 180, "BLACKWELL_180", community=False),
    _gpu("NVIDIA B300 SXM6 AC", "B300", 288, None, community=False),
    _gpu(
        "AMD Instinct MI300X OAM",
        "MI300X",
        192,
        None,
        community=False,
        manufacturer="AMD",
    ),
    _gpu("NVIDIA A30", "A30", 24, None, secure=False, max_secure=0),
    _gpu("NVIDIA GeForce RTX 4080 SUPER", "RTX 4080 SUPER", 16, None),
)
GPUS_BY_ID: dict[str, GpuSpec] = {g.id: g for g in GPUS}


def pool_gpus(pool: str) -> list[GpuSpec]:
    return [g for g in GPUS if g.pool == pool]


def _number(value: Decimal) -> float:
    return float(value)


def gpu_json(gpu: GpuSpec, *, availability: bool = False) -> dict[str, Any]:
    """One GPU as `GET /v2/catalog/gpus` returns it (schema `GpuType`)."""
    price: dict[str, Any] = {
        "secure": _number(gpu.secure_price),
        "community": _number(gpu.community_price),
    }
    if gpu.serverless_price_per_hour is not None:
        price["serverless"] = _number(gpu.serverless_price_per_hour)
    body: dict[str, Any] = {
        "id": gpu.id,
        "name": gpu.name,
        "pool": gpu.pool,
        "manufacturer": gpu.manufacturer,
        "memory": gpu.memory,
        "secure": gpu.secure,
        "community": gpu.community,
        "price": price,
        "maxCount": {"secure": gpu.max_secure, "community": gpu.max_community},
    }
    if availability:
        body["availability"] = "HIGH"
        body["dataCenters"] = [
            {"id": dc_id, "name": name, "availability": "HIGH"} for dc_id, name in DATA_CENTERS
        ]
        if gpu.manufacturer == "NVIDIA":
            body["cudaVersions"] = [{"version": v, "available": True} for v in CUDA_VERSIONS]
    return body
