"""/bench: measured speed and cost per million tokens of one of your deployments.

`/bench <deployment>` previews what it will send, for how long and what the endpoint bills
while busy (live price, hard cap checked), waits for approval, then streams a bounded load at
the deployment's OpenAI-compatible endpoint through the same RunPod client `/chat` uses, one
concurrency level after another, and stores the figures per organisation. `/bench history`
compares stored runs; `/bench-cancel <run>` (the Cancel button) stops a run at once.

Cost per 1M output tokens = billed $/s of the workers that served ÷ aggregate output tokens/s
× 10⁶ (input the same with input tokens/s): what a million tokens costs while the endpoint is
kept busy at that concurrency.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from storage import bench as bench_store
from storage.models import BenchRun, BenchStatus, Deployment, DeploymentStatus
from tools.bench.load import LevelResult, LoadRun, RequestResult
from tools.catalog.gpus import offers_from_catalog, serverless_pools
from tools.chat import CHATTABLE
from tools.contract import (
    Button,
    ProgressNote,
    Reply,
    Role,
    SideEffect,
    Table,
    ToolContext,
    ToolInput,
    arg,
    previewer,
    tool,
)
from tools.cost.estimate import money, per_second, rate
from tools.cost.guard import hard_cap_breach
from tools.deploy.lookup import load_deployment
from tools.deploy.plan import DEFAULT_IDLE_TIMEOUT_SECONDS, DEFAULT_WORKERS_MAX, pod_api_key
from tools.errors import CockpitError, Conflict, InvalidInput, NotFound
from tools.runpod.client import RunPodClient
from tools.runpod.models import WorkerStatus

DEFAULT_CONCURRENCY = "1,8,32"
MAX_CONCURRENCY = 64
MAX_LEVELS = 6
DEFAULT_REQUESTS_PER_STREAM = 4  # requests per level = 4 × concurrency, at least MIN_REQUESTS
MIN_REQUESTS = 8
MAX_REQUESTS = 512
DEFAULT_PROMPT_TOKENS = 512
MAX_PROMPT_TOKENS = 8192
DEFAULT_OUTPUT_TOKENS = 256
MAX_OUTPUT_TOKENS = 2048
DEFAULT_DURATION_SECONDS = 120
MAX_DURATION_SECONDS = 600
WARMUP_OUTPUT_TOKENS = 1
COLD_POLL_SECONDS = 1.0
# Shortest longest-wait for a scaled-to-zero endpoint's first worker: RunPod's default init
# timeout (RUNPOD_INIT_TIMEOUT, 7 min) marks a worker unhealthy before this. A deployment whose
# plan raised the timeout (a big download) is waited for that long.
COLD_START_LIMIT_SECONDS = 600
MILLION = 1_000_000
SECONDS_PER_HOUR = Decimal(3600)
PROMPT_WORD = "benchmark"
STOP_KINDS = ("throttled", "oom")  # one of these ends the level and the run
SIMULATED_NOTE = (
    "simulated: the sandbox streams at a rate derived from the card's data-sheet bandwidth "
    "and FLOPs, not a real GPU"
)


class BenchInput(ToolInput):
    deployment: str = arg(description="Number or name of the deployment", positional=True)
    concurrency: str = arg(
        DEFAULT_CONCURRENCY, description="Concurrent streams per level", max_length=60
    )
    requests: int | None = arg(None, description="Requests per level", ge=1, le=MAX_REQUESTS)
    prompt_tokens: int = arg(
        DEFAULT_PROMPT_TOKENS, description="Prompt size", ge=1, le=MAX_PROMPT_TOKENS
    )
    output_tokens: int = arg(
        DEFAULT_OUTPUT_TOKENS, description="Tokens per answer", ge=1, le=MAX_OUTPUT_TOKENS
    )
    duration: int = arg(
        DEFAULT_DURATION_SECONDS, description="Max seconds in all", ge=5, le=MAX_DURATION_SECONDS
    )
    compare_price: Decimal | None = arg(
        None, description="Hosted API $ per 1M output tokens", gt=0, le=1000
    )


def _levels(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
    except ValueError:
        raise InvalidInput(
            f"--concurrency takes numbers separated by commas, not {text[:40]!r}.",
            fix=f"For example --concurrency {DEFAULT_CONCURRENCY}.",
        ) from None
    if not values or values[0] < 1 or values[-1] > MAX_CONCURRENCY:
        raise InvalidInput(
            f"Concurrency must be between 1 and {MAX_CONCURRENCY} streams.",
            fix=f"For example --concurrency {DEFAULT_CONCURRENCY}.",
        )
    if len(values) > MAX_LEVELS:
        raise InvalidInput(
            f"At most {MAX_LEVELS} concurrency levels per run ({len(values)} given).",
            fix="Pick fewer levels, e.g. --concurrency 1,8,32.",
        )
    return values


def _requests_for(args: BenchInput, concurrency: int) -> int:
    if args.requests is not None:
        return args.requests
    return min(max(concurrency * DEFAULT_REQUESTS_PER_STREAM, MIN_REQUESTS), MAX_REQUESTS)


def _settings(dep: Deployment) -> dict[str, Any]:
    try:
        data = json.loads(dep.settings_json or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _check_servable(dep: Deployment, args: BenchInput) -> None:
    if dep.status not in CHATTABLE or not (dep.provider_endpoint_id or dep.provider_pod_id):
        raise Conflict(
            f"#{dep.id} {dep.name} is {dep.status}; there is nothing to benchmark.",
            fix=f"`/scale {dep.id} --max 1` starts a stopped deployment."
            if dep.status == DeploymentStatus.stopped
            else "Deploy it with /deploy, then /bench it.",
        )
    context = int(_settings(dep).get("context") or 0)
    if context and args.prompt_tokens + args.output_tokens > context:
        raise InvalidInput(
            f"#{dep.id} serves a {context:,}-token context; {args.prompt_tokens:,} prompt + "
            f"{args.output_tokens:,} output tokens do not fit.",
            fix="Lower --prompt-tokens or --output-tokens.",
        )


async def _check_not_running(tc: ToolContext, dep: Deployment) -> None:
    """One run per deployment at a time: two would share its workers and measure each other
    (and each would be priced against the hard cap as if it ran alone). Asked of the database:
    the other run may belong to another process (web, discord, worker)."""
    assert dep.id is not None
    busy = await tc.services.db.read(bench_store.running_on, org_id=tc.org_id, deployment_id=dep.id)
    if busy is not None:
        raise _busy(dep, busy)


async def _create_run(tc: ToolContext, dep: Deployment, **fields: Any) -> BenchRun:
    """The run's row, `running`. The database holds one running run per deployment, so two
    approvals clicked at once (in one process or two) cannot both start."""
    try:
        return await tc.services.db.run(bench_store.create, org_id=tc.org_id, **fields)
    except IntegrityError:
        assert dep.id is not None
        busy = await tc.services.db.read(
            bench_store.running_on, org_id=tc.org_id, deployment_id=dep.id
        )
        if busy is None:
            raise
        raise _busy(dep, busy) from None


def _busy(dep: Deployment, run_id: int) -> Conflict:
    return Conflict(
        f"Benchmark #{run_id} of #{dep.id} {dep.name} is still running; two at once would "
        "measure each other.",
        fix=f"Wait for it to finish, or stop it with `/bench-cancel {run_id}`.",
    )


@dataclass
class Billing:
    per_hour: Decimal  # one worker (all its GPUs) or the pod
    label: str  # GPU as shown and stored
    source: str  # "live" | "recorded at deploy"

    @property
    def per_second(self) -> Decimal:
        return self.per_hour / SECONDS_PER_HOUR


async def _billing(tc: ToolContext, dep: Deployment, client: RunPodClient | None = None) -> Billing:
    """What one serving worker (or the pod) bills, from the live catalog when it answers
    (through `client`, else the organisation's, resolved here)."""
    gpu = dep.gpu_pool or dep.gpu_type or "?"
    count = max(dep.gpu_count, 1)
    label = gpu + (f" ×{count}" if count > 1 else "")
    try:
        if client is None:
            client = await tc.services.db.call(tc.services.runpod_for, tc.org_id)
        offers = offers_from_catalog(await client.list_gpus())
    except CockpitError:
        offers = []
    if dep.mode == "serverless":
        pool = next((o for o in serverless_pools(offers) if o.id == dep.gpu_pool), None)
        if pool is not None and pool.serverless_per_hour is not None:
            return Billing(pool.serverless_per_hour * count, label, "live")
    else:
        offer = next((o for o in offers if o.id == dep.gpu_type), None)
        cloud = str(_settings(dep).get("cloud") or "SECURE").upper()
        hourly = None
        if offer is not None:
            hourly = offer.community_per_hour if cloud == "COMMUNITY" else offer.secure_per_hour
        if hourly is not None:
            return Billing(hourly * count, label, "live")
    return Billing(dep.price_per_hour, label, "recorded at deploy")


def _workers_max(dep: Deployment) -> int:
    return int(_settings(dep).get("workers_max") or DEFAULT_WORKERS_MAX) or 1


def _cold_start_limit(dep: Deployment) -> int:
    return max(COLD_START_LIMIT_SECONDS, int(_settings(dep).get("init_timeout") or 0))


def _idle_timeout(dep: Deployment) -> int:
    return int(_settings(dep).get("idle_timeout") or DEFAULT_IDLE_TIMEOUT_SECONDS)


def _at_most(dep: Deployment, billing: Billing, args: BenchInput) -> Decimal:
    """The most the run can add to the bill: every worker busy for the whole duration plus its
    idle timeout. A pod bills by the hour whether it is busy or not, so a run adds nothing."""
    if dep.mode != "serverless":
        return Decimal(0)
    seconds = Decimal(args.duration + _idle_timeout(dep))
    return billing.per_second * _workers_max(dep) * seconds


# --- /bench ----------------------------------------------------------------------------------


@tool(
    name="run_benchmark",
    command="bench",
    input_model=BenchInput,
    role=Role.member,
    side_effect=SideEffect.spend,
    needs_approval=True,
    group="deploy",
    description="Load-test a deployment: tokens/s, time to first token and $ per 1M tokens.",
    examples=("/bench 1", "/bench qwen --concurrency 1,8,32 --compare-price 0.60"),
)
async def run_benchmark(tc: ToolContext, args: BenchInput) -> Reply:
    dep = await load_deployment(tc, args.deployment)
    _check_servable(dep, args)
    await _check_not_running(tc, dep)
    levels = _levels(args.concurrency)
    # The organisation's client (its stored key), resolved once on a storage thread.
    client = await tc.services.db.call(tc.services.runpod_for, tc.org_id)
    billing = await _billing(tc, dep, client)
    clock = tc.services.clock
    assert dep.id is not None
    row = await _create_run(
        tc,
        dep,
        deployment_id=dep.id,
        deployment_name=dep.name,
        model_id=dep.model_id,
        gpu=billing.label,
        gpu_count=dep.gpu_count,
        mode=dep.mode,
        requested_by=tc.request.user_id,
        simulated=tc.services.sandbox,
        price_per_hour=billing.per_hour,
        settings_json=args.model_dump_json(),
        owner=tc.services.instance,
        created_at=clock.now(),
    )
    assert row.id is not None
    run_id = row.id
    load = LoadRun(clock=clock)
    active = tc.services.bench_runs
    active[(tc.org_id, run_id)] = ActiveRun(
        load=load, requester=tc.request.user_id, deployment_id=dep.id
    )
    try:
        outcome = await _measure(tc, client, dep, args, levels, load, run_id)
    except BaseException:
        # On a storage thread, so the row is marked even when this task is being cancelled.
        await asyncio.shield(
            tc.services.db.run(
                bench_store.finish,
                org_id=tc.org_id,
                run_id=run_id,
                now=clock.now(),
                status=BenchStatus.failed,
                stop_reason="interrupted",
            )
        )
        raise
    finally:
        active.pop((tc.org_id, run_id), None)
    return await _finish(tc, dep, args, billing, run_id, outcome)


@dataclass
class Outcome:
    levels: list[LevelResult]
    cold_start: float | None
    stop_reason: str | None
    cancelled: bool
    workers: int
    gpu_seen: str | None


def _prompt(args: BenchInput) -> list[dict[str, str]]:
    return [{"role": "user", "content": " ".join([PROMPT_WORD] * args.prompt_tokens)}]


def _stream_factory(
    tc: ToolContext, client: RunPodClient, dep: Deployment, args: BenchInput, max_tokens: int
) -> Any:
    """Streams through the client `/chat` uses, with exact usage (include_usage) and exactly
    `max_tokens` tokens per answer (vLLM's ignore_eos, as vLLM's own benchmark sends)."""
    messages = _prompt(args)
    extra = {"ignore_eos": True}
    if dep.provider_endpoint_id:
        endpoint_id = dep.provider_endpoint_id

        def serverless() -> Any:
            return client.stream_chat(
                endpoint_id, messages, model=dep.model_id, max_tokens=max_tokens, extra=extra
            )

        return serverless
    pod_id, key = dep.provider_pod_id, pod_api_key(tc.services, dep)
    assert pod_id, "_check_servable lets through only an endpoint or a pod"

    def pod() -> Any:
        return client.stream_pod_chat(
            pod_id, key, messages, model=dep.model_id, max_tokens=max_tokens, extra=extra
        )

    return pod


async def _scaled_to_zero(client: RunPodClient, dep: Deployment) -> bool:
    if not dep.provider_endpoint_id:
        return False
    try:
        health = await client.health(dep.provider_endpoint_id)
    except CockpitError:
        return False
    return health.ready_workers == 0


async def _serving(client: RunPodClient, dep: Deployment) -> tuple[int, str | None]:
    """(workers that served, their GPU type) from the endpoint's worker list after a level."""
    if not dep.provider_endpoint_id:
        return 1, dep.gpu_type
    try:
        listing = await client.list_workers(dep.provider_endpoint_id)
    except CockpitError:
        return 1, None
    busy = [w for w in listing.workers if w.status in (WorkerStatus.RUNNING, WorkerStatus.IDLE)]
    gpu = next((w.gpu_type_id for w in busy if w.gpu_type_id), None)
    return max(len(busy), 1), gpu


def _why_stopped(level: LevelResult) -> str | None:
    errors = level.errors
    c = level.concurrency
    failed = [r for r in level.requests if r.error]
    detail = failed[0].detail if failed else ""
    if errors.get("throttled"):
        return (
            f"throttled (429) at concurrency {c}: {detail} Lower --concurrency, or raise the "
            "endpoint's workers.max."
        )
    if errors.get("oom"):
        return (
            f"the worker ran out of GPU memory at concurrency {c}: {detail} Lower "
            "--concurrency or --prompt-tokens, or redeploy with a shorter --context."
        )
    attempted = [r for r in level.requests if not r.cut_off]
    if attempted and len(failed) * 2 > len(attempted):
        return f"{len(failed)} of {len(attempted)} requests failed at concurrency {c}: {detail}"
    return None


async def _measure(
    tc: ToolContext,
    client: RunPodClient,
    dep: Deployment,
    args: BenchInput,
    levels: list[int],
    load: LoadRun,
    run_id: int,
) -> Outcome:
    clock = tc.services.clock
    start = clock.monotonic()
    # The cold start is waited for (and reported) apart; --duration bounds the load itself.
    deadline = start + _cold_start_limit(dep)
    total = sum(_requests_for(args, c) for c in levels)
    await tc.progress(
        ProgressNote(
            f"Benchmark #{run_id} of #{dep.id} {dep.name}: {len(levels)} levels "
            f"({', '.join(map(str, levels))} streams), {total} requests of {args.prompt_tokens} "
            f"prompt + {args.output_tokens} output tokens, at most {args.duration}s. "
            f"Stop it with `/bench-cancel {run_id}`.",
            (cancel_button(run_id),),
        )
    )
    cold_start = None
    if await _scaled_to_zero(client, dep):
        await tc.progress("The endpoint is scaled to zero: waking a worker (cold start)…")
        warm = await load.level(
            _stream_factory(tc, client, dep, args, WARMUP_OUTPUT_TOKENS),
            concurrency=1,
            requests=1,
            deadline=deadline,
        )
        first = warm.requests[0] if warm.requests else None
        if first is not None and first.ok and first.ttft is not None:
            cold_start = first.ttft
            # Until the endpoint also reports a ready worker: the levels must not pay for a
            # worker that answered while still starting.
            while await _scaled_to_zero(client, dep) and clock.monotonic() < deadline:
                if load.cancelled:
                    break
                await clock.sleep(COLD_POLL_SECONDS)
            cold_start = max(cold_start, clock.monotonic() - first.started)
            await tc.progress(f"Cold start: {cold_start:.1f}s until a worker answered.")
        elif not load.cancelled:
            reason = first.detail if first is not None else "no answer"
            return Outcome([], None, f"the endpoint did not wake up: {reason}", False, 1, None)
    deadline = clock.monotonic() + args.duration
    results: list[LevelResult] = []
    stop_reason = None
    workers, gpu_seen = 1, None
    stream = _stream_factory(tc, client, dep, args, args.output_tokens)

    def stop_on(result: RequestResult) -> bool:
        return result.error in STOP_KINDS

    for concurrency in levels:
        if load.cancelled:
            break
        if clock.monotonic() >= deadline:
            stop_reason = f"the {args.duration}s limit (--duration) was reached"
            break
        level = await load.level(
            stream,
            concurrency=concurrency,
            requests=_requests_for(args, concurrency),
            deadline=deadline,
            stop_on=stop_on,
        )
        results.append(level)
        served, gpu = await _serving(client, dep)
        workers, gpu_seen = max(workers, served), gpu or gpu_seen
        summary = level.summary()
        await tc.progress(_level_line(summary))
        stop_reason = _why_stopped(level)
        if stop_reason:
            break
    return Outcome(results, cold_start, stop_reason, load.cancelled, workers, gpu_seen)


def _level_line(lv: dict[str, Any]) -> str:
    tps = lv.get("output_tokens_per_second") or 0.0
    ttft = lv.get("ttft_p50")
    notes = [f"{k} {v}" for k, v in lv["errors"].items()]
    if lv["cut_off"]:
        notes.append(f"{lv['cut_off']} cut off at the time limit")
    errors = ", ".join(notes)
    return (
        f"{lv['concurrency']} streams: {tps:,.0f} tokens/s, TTFT p50 "
        f"{_secs(ttft)}, {lv['succeeded']}/{lv['requests']} ok" + (f" ({errors})" if errors else "")
    )


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _per_million(per_second_usd: Decimal, tokens_per_second: float | None) -> float | None:
    if not tokens_per_second:
        return None
    return float(per_second_usd) / tokens_per_second * MILLION


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.4f}" if value < 0.1 else f"${value:,.2f}"


async def _finish(
    tc: ToolContext,
    dep: Deployment,
    args: BenchInput,
    billing: Billing,
    run_id: int,
    outcome: Outcome,
) -> Reply:
    billed = billing.per_second * outcome.workers
    levels = []
    for level in outcome.levels:
        lv = level.summary()
        lv["cost_per_million_output"] = _per_million(billed, lv["output_tokens_per_second"])
        lv["cost_per_million_input"] = _per_million(billed, lv["input_tokens_per_second"])
        levels.append(lv)
    measured = [lv for lv in levels if lv["output_tokens_per_second"]]
    best = max(measured, key=lambda lv: lv["output_tokens_per_second"], default=None)
    status = "cancelled" if outcome.cancelled else "stopped" if outcome.stop_reason else "done"
    if not levels:
        status = "cancelled" if outcome.cancelled else "failed"
    gpu = billing.label
    if outcome.gpu_seen and outcome.gpu_seen not in gpu:
        gpu = f"{gpu} ({outcome.gpu_seen})"
    results = {
        "levels": levels,
        "billed_per_second": str(billed),
        "workers": outcome.workers,
        "price_source": billing.source,
        "cold_start_seconds": outcome.cold_start,
    }
    await tc.services.db.run(
        bench_store.finish,
        org_id=tc.org_id,
        run_id=run_id,
        now=tc.services.clock.now(),
        status=status,
        gpu=gpu,
        results_json=json.dumps(results),
        best_tokens_per_second=best["output_tokens_per_second"] if best else None,
        best_concurrency=best["concurrency"] if best else None,
        ttft_p50_seconds=levels[0]["ttft_p50"] if levels else None,
        cost_per_million_output=best["cost_per_million_output"] if best else None,
        cost_per_million_input=best["cost_per_million_input"] if best else None,
        cold_start_seconds=outcome.cold_start,
        stop_reason=outcome.stop_reason,
    )
    title = f"Benchmark #{run_id}: #{dep.id} {dep.name} on {gpu}"
    if outcome.cancelled:
        text = "Cancelled: the load stopped; the figures cover what ran before."
    elif outcome.stop_reason:
        text = f"Stopped early: {outcome.stop_reason}"
    else:
        text = (
            f"{dep.model_id}: {args.prompt_tokens}-token prompts, {args.output_tokens} tokens out."
        )
    reply = Reply(title=title, text=text, ok=bool(levels) or outcome.cancelled)
    if not levels:
        reply.error_code = None if outcome.cancelled else "error"
        return reply
    reply.table = Table(
        columns=[
            "streams",
            "tok/s all",
            "tok/s each",
            "TTFT p50",
            "TTFT p95",
            "ITL",
            "ok",
            "$/1M out",
            "$/1M in",
        ],
        rows=[
            [
                str(lv["concurrency"]),
                f"{lv['output_tokens_per_second'] or 0:,.0f}",
                f"{lv['tokens_per_second_per_request'] or 0:,.1f}",
                _secs(lv["ttft_p50"]),
                _secs(lv["ttft_p95"]),
                _secs(lv["itl_mean"]),
                f"{lv['success_rate'] * 100:.0f}%",
                _usd(lv["cost_per_million_output"]),
                _usd(lv["cost_per_million_input"]),
            ]
            for lv in levels
        ],
    )
    if outcome.cold_start is not None:
        reply.add_field(
            "Cold start", f"{outcome.cold_start:.1f}s to wake a worker (not counted in TTFT)"
        )
    reply.add_field(
        "Billed while busy",
        f"{per_second(billed)} ({rate(billed * SECONDS_PER_HOUR)}/h, {outcome.workers} "
        f"worker(s), {billing.source} price)",
    )
    if best is not None:
        reply.add_field(
            "Best",
            f"{best['output_tokens_per_second']:,.0f} tokens/s at {best['concurrency']} streams "
            f"= {_usd(best['cost_per_million_output'])} per 1M output tokens",
        )
        if args.compare_price is not None and best["cost_per_million_output"]:
            reply.add_field(
                "Hosted API",
                hosted_comparison_text(best["cost_per_million_output"], float(args.compare_price)),
            )
    cut = sum(lv["cut_off"] for lv in levels)
    if cut and not outcome.cancelled:
        reply.add_field(
            "Cut off",
            f"{cut} request(s) were still streaming at the {args.duration}s limit (--duration); "
            "their tokens count, their latency does not",
        )
    errors = {k: v for lv in levels for k, v in lv["errors"].items()}
    if errors:
        reply.add_field("Errors", ", ".join(f"{k}: {v}" for k, v in errors.items()))
    reply.image = _chart(tc, levels, title, run_id)
    if tc.services.sandbox:
        reply.footer = SIMULATED_NOTE
    return reply


def price_ratio_text(own: float, hosted: float) -> str:
    """Own $/1M against a hosted API's: "2.0× cheaper" or "1.5× dearer" (own > 0)."""
    return f"{hosted / own:.1f}× cheaper" if hosted >= own else f"{own / hosted:.1f}× dearer"


def hosted_comparison_text(own: float, hosted: float) -> str:
    ratio = price_ratio_text(own, hosted)
    return f"${hosted:,.2f} per 1M output tokens vs {_usd(own)} here: {ratio} here"


def _chart(tc: ToolContext, levels: list[dict[str, Any]], title: str, run_id: int) -> Any:
    out_dir = tc.services.charts_dir
    if out_dir is None:
        return None
    from tools.bench.chart import bench_png
    from tools.contract import Image

    path = Path(out_dir) / f"bench-o{tc.org_id}-r{run_id}.png"
    bench_png(levels=levels, title=title, path=path)
    alt = "; ".join(
        f"{lv['concurrency']} streams: {lv['output_tokens_per_second'] or 0:,.0f} tok/s, "
        f"TTFT p50 {_secs(lv['ttft_p50'])}"
        for lv in levels
    )
    return Image(path=str(path), title=title, alt=alt)


@previewer(run_benchmark)
async def preview_benchmark(tc: ToolContext, args: BenchInput) -> Reply:
    dep = await load_deployment(tc, args.deployment)
    _check_servable(dep, args)
    await _check_not_running(tc, dep)
    levels = _levels(args.concurrency)
    billing = await _billing(tc, dep)
    per_level = [_requests_for(args, c) for c in levels]
    total = sum(per_level)
    reply = Reply(title=f"Benchmark #{dep.id} {dep.name} ({dep.model_id})?")
    reply.add_field(
        "Sends",
        f"{len(levels)} levels of {', '.join(map(str, levels))} concurrent streams, "
        f"{'/'.join(map(str, per_level))} requests: {total} in all, each "
        f"{args.prompt_tokens} prompt + {args.output_tokens} output tokens "
        f"({total * args.prompt_tokens:,} in, {total * args.output_tokens:,} out)",
    )
    reply.add_field(
        "Time",
        f"at most {args.duration}s of load, then it stops (--duration); waking a scaled-to-zero "
        "endpoint comes first and is reported apart",
    )
    at_most = _at_most(dep, billing, args)
    if dep.mode == "serverless":
        workers = _workers_max(dep)
        reply.add_field(
            "Bills",
            f"{per_second(billing.per_second)} per busy worker on {billing.label} "
            f"({rate(billing.per_hour)}/h, {billing.source} price); at most {money(at_most)} "
            f"({workers} worker(s) × {args.duration}s + {_idle_timeout(dep)}s idle timeout; a "
            "cold start bills too)",
        )
    else:
        reply.add_field(
            "Bills",
            f"the pod bills {rate(billing.per_hour)}/h whether busy or not; the run adds nothing",
        )
    if tc.services.sandbox:
        reply.add_field("Sandbox", SIMULATED_NOTE)
    breach = await hard_cap_breach(tc, one_off=at_most, what="this benchmark")
    if breach is not None:
        reply.add_field("Budget", breach.message)
        reply.approver_role = Role.admin
    return reply


# --- /bench-cancel -----------------------------------------------------------------------


@dataclass
class ActiveRun:
    load: LoadRun
    requester: str
    deployment_id: int


class CancelInput(ToolInput):
    run: str = arg(description="Benchmark run number", positional=True, max_length=24)


@tool(
    name="cancel_benchmark",
    command="bench-cancel",
    aliases=("bench cancel",),
    input_model=CancelInput,
    role=Role.member,
    group="deploy",
    agent=False,
    description="Stop a running /bench at once.",
    examples=("/bench-cancel 4",),
)
async def cancel_benchmark(tc: ToolContext, args: CancelInput) -> Reply:
    from tools.contract import parse_id

    run_id = parse_id(args.run)
    active = tc.services.bench_runs
    found = active.get((tc.org_id, run_id)) if run_id is not None else None
    if found is None:
        raise NotFound(
            f"No benchmark #{args.run} is running here.", fix="`/bench history` lists past runs."
        )
    if found.requester != tc.request.user_id and not tc.request.role.allows(Role.admin):
        raise Conflict(
            "Only the person who started the benchmark, or an admin, can stop it.",
            fix="Ask them, or an admin.",
        )
    found.load.cancel()
    return Reply(text=f"Benchmark #{run_id}: stopping the load now.")


def cancel_button(run_id: int) -> Button:
    """The Cancel button of a running benchmark (a command button: it runs /bench-cancel)."""
    return Button(label="Cancel", action="command", value=f"/bench-cancel {run_id}", style="danger")


# --- /bench history --------------------------------------------------------------------------


class HistoryInput(ToolInput):
    ref: str | None = arg(None, description="Deployment, model or GPU", positional=True)
    compare_price: Decimal | None = arg(None, description="Hosted API $/1M", gt=0, le=1000)


@tool(
    name="bench_history",
    command="benchmarks",
    aliases=("bench history",),
    input_model=HistoryInput,
    group="deploy",
    description="Past /bench results (tokens/s, $ per 1M tokens); new runs: /bench <deployment>.",
    examples=("/bench history", "/benchmarks qwen --compare-price 0.60"),
)
async def bench_history(tc: ToolContext, args: HistoryInput) -> Reply:
    runs = await tc.services.db.read(bench_store.history, org_id=tc.org_id, ref=args.ref)
    if not runs:
        what = f" matching {args.ref!r}" if args.ref else ""
        return Reply(text=f"No benchmark runs{what} yet. Run one with `/bench <deployment>`.")
    columns = [
        "run",
        "date",
        "deployment",
        "model",
        "GPU",
        "best tok/s",
        "TTFT p50 (1st level)",
        "$/1M out",
        "$/1M in",
    ]
    if args.compare_price is not None:
        columns.append(f"vs ${args.compare_price}")
    rows = []
    for run in runs:
        row = [
            f"#{run.id}" + (" (sim)" if run.simulated else ""),
            f"{run.created_at:%Y-%m-%d}",
            f"#{run.deployment_id} {run.deployment_name}",
            run.model_id,
            run.gpu,
            _best(run),
            _secs(run.ttft_p50_seconds),
            _usd(run.cost_per_million_output),
            _usd(run.cost_per_million_input),
        ]
        if args.compare_price is not None:
            own = run.cost_per_million_output
            row.append(price_ratio_text(own, float(args.compare_price)) if own else "—")
        rows.append(row)
    reply = Reply(title="Benchmarks", table=Table(columns=columns, rows=rows))
    if any(r.simulated for r in runs):
        reply.footer = "(sim) = " + SIMULATED_NOTE
    return reply


def _best(run: BenchRun) -> str:
    if run.best_tokens_per_second is None:
        return "—"
    return f"{run.best_tokens_per_second:,.0f} @ {run.best_concurrency}"
