"""Shared set-up for the RunPod client, sandbox and contract tests.

`sandbox()` starts the emulator on loopback (port 0) with a FakeClock shared by the client, so
tests move time instead of sleeping; the emulator validates its responses against the spec and
the context manager fails the test if any response broke it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tools.clock import FakeClock
from tools.runpod.client import RunPodClient
from tools.runpod.models import (
    CreateEndpointRequest,
    EndpointGpuRequest,
    QueueDelayScalingRequest,
    WorkersRequest,
)
from tools.runpod.sandbox import RunPodEmulator

# Looks like a RunPod key; tests assert it never leaks into errors, logs or reprs.
API_KEY = "rpa_SANDBOXTESTKEY0123456789ABCDEFGHIJ_zz9q"
MODEL = "Qwen/Qwen3-8B"
READY_SECONDS = 20.0


@dataclass
class Sandbox:
    emulator: RunPodEmulator
    client: RunPodClient
    clock: FakeClock

    def client_with(self, **options: Any) -> RunPodClient:
        """Another client on the same emulator (e.g. another key, or a shared pool)."""
        values: dict[str, Any] = {
            "api_key": API_KEY,
            "api_url": self.emulator.api_url,
            "serverless_url": self.emulator.serverless_url,
            "clock": self.clock,
        }
        values.update(options)
        return RunPodClient(**values)


@asynccontextmanager
async def sandbox(
    *, max_retries: int = 4, http: httpx.AsyncClient | None = None, **options: Any
) -> AsyncIterator[Sandbox]:
    """A running emulator plus a client bound to it, both on one FakeClock."""
    clock = FakeClock()
    settings: dict[str, Any] = {
        "clock": clock,
        "worker_ready_seconds": READY_SECONDS,
        "validate_responses": True,
        "record_exchanges": True,
        # Flat cold starts (worker_ready_seconds) for the scaling and billing arithmetic here;
        # vLLM's download, load and start-up checks are tested in test_vllm_realism.py.
        "simulate_vllm": False,
    }
    settings.update(options)
    emulator = RunPodEmulator(**settings)
    await emulator.start()
    client = RunPodClient(
        api_key=API_KEY,
        api_url=emulator.api_url,
        serverless_url=emulator.serverless_url,
        clock=clock,
        max_retries=max_retries,
        http=http,
    )
    try:
        yield Sandbox(emulator, client, clock)
    finally:
        await client.aclose()
        await emulator.stop()
    assert emulator.response_violations == [], emulator.response_violations


def endpoint_request(
    name: str = "cockpit-test-qwen",
    *,
    pools: tuple[str, ...] = ("ADA_24",),
    gpu_count: int = 1,
    workers_min: int = 0,
    workers_max: int = 2,
    idle_timeout: int = 5,
) -> CreateEndpointRequest:
    """The body the deploy tool sends for a vLLM worker endpoint."""
    return CreateEndpointRequest(
        name=name,
        image="runpod/worker-v1-vllm:v2.25.2",
        env={"MODEL_NAME": MODEL, "MAX_MODEL_LEN": "8192"},
        gpu=EndpointGpuRequest(pools=list(pools), count=gpu_count),
        workers=WorkersRequest(min=workers_min, max=workers_max, idle_timeout=idle_timeout),
        scaling=QueueDelayScalingRequest(queue_delay=4),
    )


def chat_messages(text: str = "hello sandbox") -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": text},
    ]
