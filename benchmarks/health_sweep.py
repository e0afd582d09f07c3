"""Health sweep benchmark: 1,000 deployments, 100 ms provider latency, < 3 s wall.

The RunPod emulator runs in a child process (so the CPU and memory figures are the bot's side
only) with 1,000 serverless endpoints created directly in its state and a 100 ms latency fault
on every `/health`. The sweep calls `RunPodClient.health` for each endpoint with bounded
concurrency (asyncio.Semaphore) through ONE shared httpx connection pool, spread over several
per-organisation clients (different keys, same pool) as the scheduler does.

Three sweeps run back to back: a cold pool (connections opened during the sweep), a warm pool
(the steady state of a periodic sweep), and a warm one under tracemalloc for the heap peak.

    .venv/bin/python benchmarks/health_sweep.py [--endpoints 1000] [--latency 0.1]
        [--concurrency 100] [--orgs 10] [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

from tools.runpod.client import RunPodClient, make_http_pool
from tools.runpod.models import EndpointHealth
from tools.runpod.sandbox import RunPodEmulator

BUDGET_SECONDS = 3.0
DEFAULT_ENDPOINTS = 1000
DEFAULT_LATENCY = 0.1
DEFAULT_CONCURRENCY = 100
DEFAULT_ORGS = 10


def endpoint_body(index: int) -> dict[str, Any]:
    return {
        "name": f"cockpit-bench-{index:04d}",
        "type": "QUEUE",
        "image": "runpod/worker-v1-vllm:v2.25.2",
        "env": {"MODEL_NAME": "Qwen/Qwen3-8B"},
        "gpu": {"pools": ["ADA_24"], "count": 1},
        "workers": {"min": 0, "max": 2, "idleTimeout": 5},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    }


async def start_provider(endpoints: int, latency: float) -> tuple[RunPodEmulator, list[str]]:
    emulator = RunPodEmulator()
    await emulator.start()
    ids = [emulator.add_endpoint(endpoint_body(i)) for i in range(endpoints)]
    emulator.faults.inject("*/health", "latency", delay=latency)
    return emulator, ids


async def serve(endpoints: int, latency: float) -> None:
    """Child-process mode: run the provider and announce it on stdout as one JSON line."""
    emulator, ids = await start_provider(endpoints, latency)
    announce = {"serverless_url": emulator.serverless_url, "api_url": emulator.api_url, "ids": ids}
    print(json.dumps(announce), flush=True)
    await asyncio.Event().wait()


@dataclass
class Sweep:
    label: str
    wall: float
    cpu: float
    healthy: int
    heap_peak: int | None = None


async def sweep(
    clients: list[RunPodClient], ids: list[str], concurrency: int, label: str, trace: bool
) -> Sweep:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, endpoint_id: str) -> EndpointHealth:
        async with gate:
            return await clients[index % len(clients)].health(endpoint_id)

    if trace:
        tracemalloc.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(one(i, e) for i, e in enumerate(ids)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    healthy = sum(isinstance(r, EndpointHealth) for r in results)
    return Sweep(label, wall, cpu, healthy, peak)


async def run(args: argparse.Namespace) -> list[Sweep]:
    child: subprocess.Popen[str] | None = None
    emulator: RunPodEmulator | None = None
    if args.in_process:
        emulator, ids = await start_provider(args.endpoints, args.latency)
        serverless_url, api_url = emulator.serverless_url, emulator.api_url
    else:
        command = [sys.executable, __file__, "--serve", f"--endpoints={args.endpoints}"]
        command.append(f"--latency={args.latency}")
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        announced = json.loads(line)
        serverless_url, api_url, ids = (
            announced["serverless_url"],
            announced["api_url"],
            announced["ids"],
        )
    pool = make_http_pool(max_connections=args.concurrency)
    clients = [
        RunPodClient(
            api_key=f"rpa_benchmark_org{n:02d}_key_0000000000",
            api_url=api_url,
            serverless_url=serverless_url,
            http=pool,
        )
        for n in range(args.orgs)
    ]
    try:
        return [
            await sweep(clients, ids, args.concurrency, "cold pool", trace=False),
            await sweep(clients, ids, args.concurrency, "warm pool", trace=False),
            await sweep(clients, ids, args.concurrency, "warm pool, traced", trace=True),
        ]
    finally:
        await pool.aclose()
        if emulator is not None:
            await emulator.stop()
        if child is not None:
            child.terminate()
            child.wait(timeout=10)


def report(args: argparse.Namespace, sweeps: list[Sweep]) -> bool:
    where = "in-process" if args.in_process else "child process"
    print(
        f"health sweep: {args.endpoints} endpoints, {args.latency * 1000:.0f} ms latency, "
        f"concurrency {args.concurrency}, {args.orgs} clients on one pool, provider {where}"
    )
    ok = True
    for s in sweeps:
        within = s.wall < BUDGET_SECONDS and s.healthy == args.endpoints
        ok = ok and (within or s.heap_peak is not None)
        heap = f"  heap peak {s.heap_peak / 2**20:.1f} MiB" if s.heap_peak is not None else ""
        print(
            f"  {s.label:<18} wall {s.wall:.3f} s  cpu {s.cpu:.3f} s  "
            f"healthy {s.healthy}/{args.endpoints}{heap}"
        )
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS (whole sweep process) {max_rss_mib:.1f} MiB")
    print(f"  budget < {BUDGET_SECONDS:.0f} s wall: {'OK' if ok else 'OVER BUDGET'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoints", type=int, default=DEFAULT_ENDPOINTS)
    parser.add_argument("--latency", type=float, default=DEFAULT_LATENCY)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--orgs", type=int, default=DEFAULT_ORGS)
    parser.add_argument("--in-process", action="store_true", help="run the emulator in-process")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.endpoints, args.latency))
        return
    ok = report(args, asyncio.run(run(args)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
