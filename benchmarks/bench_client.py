"""/bench load generator benchmark (issue 19): the client is not the bottleneck.

The load generator of `/bench` (`tools.bench.load.LoadRun` over `RunPodClient.stream_chat`, the
same code that benchmarks a real deployment) drives 64 concurrent streams against a local
OpenAI-compatible SSE server and must sustain ≥ 5,000 tokens/s on ONE core. The server runs in a
child process (another core when there is one) and sends one SSE event per token, as vLLM does,
as fast as it can, so any shortfall is the client's. The client process is pinned to one CPU
(`os.sched_setaffinity`) and its own CPU time per token (`time.process_time`) is printed as the
overhead per token.

    .venv/bin/python benchmarks/bench_client.py [--streams 64] [--requests 256]
        [--tokens 256] [--budget 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from aiohttp import web

from tools.bench.load import LoadRun
from tools.clock import Clock
from tools.runpod.client import RunPodClient, make_http_pool

BUDGET_TOKENS_PER_SECOND = 5000.0
DEFAULT_STREAMS = 64
DEFAULT_REQUESTS = 256
DEFAULT_TOKENS = 256
MODEL = "bench/model"
API_KEY = "bench-client-key-0001"


# --- the SSE server (child process) ------------------------------------------------------------


def _frame(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    tokens = int(body.get("max_tokens") or DEFAULT_TOKENS)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    token = _frame(
        {**base, "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}]}
    )
    await response.write(
        _frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    )
    for _ in range(tokens):
        await response.write(token)
    await response.write(
        _frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    )
    usage = {"prompt_tokens": 16, "completion_tokens": tokens, "total_tokens": 16 + tokens}
    await response.write(_frame({**base, "choices": [], "usage": usage}))
    await response.write(_frame("[DONE]"))
    await response.write_eof()
    return response


async def serve() -> None:
    app = web.Application()
    app.router.add_post("/v2/{endpoint}/openai/v1/chat/completions", _chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"url": f"http://127.0.0.1:{port}/v2"}), flush=True)
    await asyncio.Event().wait()


# --- the load generator (this process, one core) ----------------------------------------------


async def drive(url: str, *, streams: int, requests: int, tokens: int) -> dict[str, float]:
    http = make_http_pool(max_connections=streams)
    client = RunPodClient(api_key=API_KEY, serverless_url=url, http=http)
    messages = [{"role": "user", "content": "benchmark " * 16}]

    def stream() -> Any:
        return client.stream_chat(
            "local", messages, model=MODEL, max_tokens=tokens, extra={"ignore_eos": True}
        )

    load = LoadRun(clock=Clock())
    try:
        await load.level(stream, concurrency=streams, requests=streams)  # warm the pool
        cpu0, wall0 = time.process_time(), time.perf_counter()
        level = await load.level(stream, concurrency=streams, requests=requests)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await http.aclose()
    summary = level.summary()
    out = summary["output_tokens"]
    return {
        "requests": summary["requests"],
        "succeeded": summary["succeeded"],
        "tokens": out,
        "wall_seconds": wall,
        "tokens_per_second": out / wall,
        "cpu_seconds": cpu,
        "cpu_us_per_token": cpu / out * 1e6 if out else 0.0,
        "cpu_share": cpu / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=DEFAULT_STREAMS)
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS)
    parser.add_argument("--budget", type=float, default=BUDGET_TOKENS_PER_SECOND)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if len(cpus) > 1:  # the server on the other cores, the client alone on the first
            os.sched_setaffinity(server.pid, set(cpus[1:]))
        os.sched_setaffinity(0, {cpus[0]})
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        figures = asyncio.run(
            drive(url, streams=args.streams, requests=args.requests, tokens=args.tokens)
        )
    finally:
        server.terminate()
        server.wait(timeout=5)
    print(
        f"load generator on 1 core (cpu {cpus[0]}), server in a child process "
        f"(cpus {cpus[1:] or cpus})"
    )
    print(
        f"  {args.streams} concurrent streams, {figures['requests']:.0f} requests × "
        f"{args.tokens} tokens, {figures['succeeded']:.0f} ok"
    )
    print(
        f"  throughput: {figures['tokens_per_second']:,.0f} tokens/s "
        f"({figures['tokens']:,.0f} tokens in {figures['wall_seconds']:.2f} s)"
    )
    print(
        f"  client overhead: {figures['cpu_us_per_token']:.1f} µs CPU per token "
        f"({figures['cpu_share'] * 100:.0f}% of its core)"
    )
    ok = figures["tokens_per_second"] >= args.budget and figures["succeeded"] == args.requests
    verdict = "OK" if ok else "UNDER BUDGET"
    print(f"budget: ≥ {args.budget:,.0f} tokens/s with {args.streams} streams: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
