"""The sandbox GPU catalog: GPU types, serverless pools and prices.

Serverless prices are RunPod's published flex rates per GPU-second (reference §5.2, docs
snippet published 2025-06 .. 2026-05, BLACKWELL_96 added 2026-06-08); the catalog reports them
per hour (`price.serverless` = flex $/s × 3600) as `GET /v2/catalog/gpus` does. ADA_32_PRO has
no published price, so its GPU carries a pool but no serverless price and the sandbox refuses
endpoints on it, as RunPod does for a pool that is not available to the caller.

Pod prices are sandbox approximations of public list prices around 2026 (reference §5.3, partly
third-party figures); they are not quotes. Everything here is labelled sandbox data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

SECONDS_PER_HOUR = Decimal(3600)

# Flex (scale-to-zero) serverless price per GPU-second, by pool.
POOL_PRICE_PER_SECOND: dict[str, Decimal] = {
    "AMPERE_16": Decimal("0.00016"),
    "AMPERE_24": Decimal("0.00019"),
    "ADA_24": Decimal("0.00031"),
    "AMPERE_48": Decimal("0.00034"),
    "ADA_48_PRO": Decimal("0.00053"),
    "AMPERE_80": Decimal("0.00076"),
    "ADA_80_PRO": Decimal("0.00116"),
    "BLACKWELL_96": Decimal("0.00111"),
    "HOPPER_141": Decimal("0.00155"),
    "BLACKWELL_180": Decimal("0.00240"),
}
KNOWN_POOLS = (*POOL_PRICE_PER_SECOND, "ADA_32_PRO")

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


def _gpu(
    gpu_id: str,
    name: str,
    memory: int,
    pool: str | None,
    secure_price: str,
    community_price: str,
    **extra: Any,
) -> GpuSpec:
    return GpuSpec(
        gpu_id, name, memory, pool, Decimal(secure_price), Decimal(community_price), **extra
    )


GPUS: tuple[GpuSpec, ...] = (
    _gpu("NVIDIA RTX A4000", "RTX A4000", 16, "AMPERE_16", "0.25", "0.17"),
    _gpu("NVIDIA RTX A4500", "RTX A4500", 20, "AMPERE_16", "0.27", "0.19"),
    _gpu("NVIDIA RTX 4000 Ada Generation", "RTX 4000 Ada", 20, "AMPERE_16", "0.26", "0.20"),
    _gpu("NVIDIA RTX 2000 Ada Generation", "RTX 2000 Ada", 16, "AMPERE_16", "0.24", "0.14"),
    _gpu("NVIDIA RTX A5000", "RTX A5000", 24, "AMPERE_24", "0.27", "0.16"),
    _gpu("NVIDIA L4", "L4", 24, "AMPERE_24", "0.43", "0.33"),
    _gpu("NVIDIA GeForce RTX 3090", "RTX 3090", 24, "AMPERE_24", "0.46", "0.22"),
    _gpu("NVIDIA GeForce RTX 4090", "RTX 4090", 24, "ADA_24", "0.44", "0.31"),
    _gpu("NVIDIA GeForce RTX 5090", "RTX 5090", 32, "ADA_32_PRO", "0.94", "0.69"),
    _gpu("NVIDIA A40", "A40", 48, "AMPERE_48", "0.44", "0.35", community=False),
    _gpu("NVIDIA RTX A6000", "RTX A6000", 48, "AMPERE_48", "0.49", "0.33"),
    _gpu("NVIDIA L40", "L40", 48, "ADA_48_PRO", "0.99", "0.69"),
    _gpu("NVIDIA L40S", "L40S", 48, "ADA_48_PRO", "0.86", "0.79"),
    _gpu("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, "ADA_48_PRO", "0.77", "0.74"),
    _gpu("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, "AMPERE_80", "1.64", "1.19"),
    _gpu("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, "AMPERE_80", "1.74", "1.39"),
    _gpu("NVIDIA H100 80GB HBM3", "H100 SXM", 80, "ADA_80_PRO", "2.69", "2.39"),
    _gpu("NVIDIA H100 PCIe", "H100 PCIe", 80, "ADA_80_PRO", "2.39", "1.99"),
    _gpu("NVIDIA H100 NVL", "H100 NVL", 94, "ADA_80_PRO", "2.59", "2.39"),
    _gpu("NVIDIA H200", "H200 SXM", 141, "HOPPER_141", "3.59", "3.59", community=False),
    _gpu("NVIDIA H200 NVL", "H200 NVL", 143, None, "3.39", "3.39", community=False),
    _gpu(
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "RTX PRO 6000",
        96,
        "BLACKWELL_96",
        "1.84",
        "1.69",
    ),
    _gpu("NVIDIA B200", "B200", 180, "BLACKWELL_180", "5.98", "5.98", community=False),
    _gpu("NVIDIA B300 SXM6 AC", "B300", 288, None, "6.99", "6.99", community=False),
    _gpu(
        "AMD Instinct MI300X OAM",
        "MI300X",
        192,
        None,
        "2.49",
        "2.49",
        community=False,
        manufacturer="AMD",
    ),
    _gpu("NVIDIA A30", "A30", 24, None, "0.22", "0.22", secure=False, max_secure=0),
    _gpu("NVIDIA GeForce RTX 4080 SUPER", "RTX 4080 SUPER", 16, None, "0.28", "0.24"),
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
