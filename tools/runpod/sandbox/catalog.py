"""The sandbox GPU catalog: GPU types, serverless pools and prices.

GPU names, memory, pools and prices come from the same dated file as the bot's fallback table
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
# The shared dated file's rows by GPU type id.
_ROWS: dict[str, dict[str, Any]] = {row["id"]: row for row in price_table()["gpus"]}

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


def _gpu(gpu_id: str, **extra: Any) -> GpuSpec:
    """A GPU as the shared dated file lists it (name, nominal memory, serverless pool, pod
    prices); `extra` is what only the sandbox models (clouds offered, counts, manufacturer)."""
    row = _ROWS[gpu_id]
    return GpuSpec(
        gpu_id,
        row["name"],
        row["memory_gb"],
        row["pool"],
        Decimal(row["secure"]),
        Decimal(row["community"] or row["secure"]),
        **extra,
    )


GPUS: tuple[GpuSpec, ...] = (
    _gpu("NVIDIA RTX A4000"),
    _gpu("NVIDIA RTX A4500"),
    _gpu("NVIDIA RTX 4000 Ada Generation"),
    _gpu("NVIDIA RTX 2000 Ada Generation"),
    _gpu("NVIDIA RTX A5000"),
    _gpu("NVIDIA L4"),
    _gpu("NVIDIA GeForce RTX 3090"),
    _gpu("NVIDIA GeForce RTX 4090"),
    _gpu("NVIDIA GeForce RTX 5090"),
    _gpu("NVIDIA A40", community=False),
    _gpu("NVIDIA RTX A6000"),
    _gpu("NVIDIA L40"),
    _gpu("NVIDIA L40S"),
    _gpu("NVIDIA RTX 6000 Ada Generation"),
    _gpu("NVIDIA A100 80GB PCIe"),
    _gpu("NVIDIA A100-SXM4-80GB"),
    _gpu("NVIDIA H100 80GB HBM3"),
    _gpu("NVIDIA H100 PCIe"),
    _gpu("NVIDIA H100 NVL"),
    _gpu("NVIDIA H200", community=False),
    _gpu("NVIDIA H200 NVL", community=False),
    _gpu("NVIDIA RTX PRO 6000 Blackwell Server Edition"),
    _gpu("NVIDIA B200", community=False),
    _gpu("NVIDIA B300 SXM6 AC", community=False),
    _gpu("AMD Instinct MI300X OAM", community=False, manufacturer="AMD"),
    _gpu("NVIDIA A30", secure=False, max_secure=0),
    _gpu("NVIDIA GeForce RTX 4080 SUPER"),
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
