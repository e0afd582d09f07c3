"""/bench against the sandbox emulator on a fake clock: the simulated hardware rate, the figures
and their consistency, cold start, Cancel, history across GPUs, limits and the hard cap."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.testing import BotHarness, running_bot
from storage import bench as bench_store
from storage import ledger
from storage.models import BenchRun
from tools.runpod.sandbox import throughput
from tools.runpod.sandbox.faults import FaultKind

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
SMALL = "--prompt-tokens 64 --output-tokens 32"


@pytest.fixture
async def bot(tmp_path: Path):
    async with running_bot(tmp_path) as harness:
        yield harness


def emulator(bot: BotHarness):
    return bot.cockpit.runpod.emulator


async def deploy(bot: BotHarness, extra: str = "", user: str = "alice") -> None:
    ask = await bot.send(f"/deploy {MODEL} {extra}".strip(), user=user)
    assert ask.approval_id is not None, ask.as_plain_text()
    done = await bot.approve(ask.approval_id, user=user)
    assert done.ok, done.as_plain_text()


async def bench(bot: BotHarness, line: str, user: str = "alice"):
    ask = await bot.send(f"/bench {line}", user=user)
    assert ask.approval_id is not None, ask.as_plain_text()
    return ask, await bot.approve(ask.approval_id, user=user)


def runs(bot: BotHarness) -> list[BenchRun]:
    org = bot.ctx(user="alice").org_id
    with bot.services.db.session() as s:
        return bench_store.history(s, org_id=org)


def levels(run: BenchRun) -> list[dict]:
    return json.loads(run.results_json)["levels"]


async def test_preview_then_figures_are_consistent(bot: BotHarness) -> None:
    await deploy(bot)
    streamed_before = emulator(bot).tokens_streamed
    ask, done = await bench(bot, f"1 --concurrency 1,4 --requests 8 {SMALL}")
    card = ask.as_plain_text()
    # The card says what it sends, for how long and what it bills, before anything runs.
    assert "16 in all" in card and "64 prompt + 32 output tokens" in card
    assert "at most 120s of load" in card and "per busy worker on AMPERE_16" in card
    assert "live price" in card and "simulated" in card
    assert done.ok, done.as_plain_text()
    assert "Benchmark #1" in (done.title or "") and done.table is not None
    assert done.image is not None and Path(done.image.path).exists()
    assert "simulated" in (done.footer or "")
    progress = " | ".join(bot.progress)
    assert "/bench-cancel 1" in progress and "4 streams:" in progress

    (run,) = runs(bot)
    results = json.loads(run.results_json)
    billed = float(results["billed_per_second"])
    assert billed == pytest.approx(float(run.price_per_hour) / 3600)
    total_out = 0
    for lv in results["levels"]:
        assert lv["succeeded"] == lv["requests"] == 8 and lv["success_rate"] == 1.0
        # Token counts are the usage the server reported: 32 per answer, 64 per prompt.
        assert lv["output_tokens"] == 8 * 32 and lv["input_tokens"] == 8 * 64
        assert lv["output_tokens_per_second"] == pytest.approx(
            lv["output_tokens"] / lv["wall_seconds"]
        )
        # Cost per 1M tokens = billed $/s ÷ aggregate tokens/s × 10⁶, within 1 %.
        expected = billed / lv["output_tokens_per_second"] * 1e6
        assert lv["cost_per_million_output"] == pytest.approx(expected, rel=0.01)
        expected_in = billed / lv["input_tokens_per_second"] * 1e6
        assert lv["cost_per_million_input"] == pytest.approx(expected_in, rel=0.01)
        assert lv["ttft_p50"] <= lv["ttft_p95"]
        total_out += lv["output_tokens"]
    assert emulator(bot).tokens_streamed - streamed_before == total_out  # the server's own count

    # One stream decodes at the simulated card's rate: bandwidth ÷ (weights + KV) bytes.
    rate = throughput.rate_for(
        gpu_type_id="NVIDIA RTX A4000", gpu_count=1, memory_gb=16, model_id=MODEL, quant=None
    )
    single = results["levels"][0]
    assert single["tokens_per_second_per_request"] == pytest.approx(
        rate.decode_tokens_per_second(batch=1, context=64 + 16), rel=0.05
    )
    # More streams: more tokens/s in all, fewer for each.
    four = results["levels"][1]
    assert four["output_tokens_per_second"] > 3 * single["output_tokens_per_second"]
    assert four["tokens_per_second_per_request"] <= single["tokens_per_second_per_request"]
    assert run.best_concurrency == 4 and run.cost_per_million_output == pytest.approx(
        four["cost_per_million_output"]
    )


async def test_scaled_to_zero_reports_cold_start_apart_from_ttft(bot: BotHarness) -> None:
    await deploy(bot)
    bot.clock.advance(600)  # past the idle timeout: the endpoint has no worker
    client = bot.services.runpod_for(bot.ctx(user="alice").org_id)
    endpoint = emulator(bot).state.endpoints
    (endpoint_id,) = list(endpoint)
    assert (await client.health(endpoint_id)).ready_workers == 0
    _, done = await bench(bot, f"1 --concurrency 1 --requests 4 {SMALL}")
    assert done.ok, done.as_plain_text()
    text = done.as_plain_text()
    assert "Cold start:" in text and "to wake a worker (not counted in TTFT)" in text
    (worker,) = emulator(bot).state.endpoints[endpoint_id].workers
    boot = (worker.ready_at - worker.created_at).total_seconds()
    (run,) = runs(bot)
    assert run.cold_start_seconds == pytest.approx(boot, abs=1.5)
    assert levels(run)[0]["ttft_p95"] < 0.5  # the warm worker answers at once


async def test_cancel_stops_the_load_within_a_second(bot: BotHarness) -> None:
    await deploy(bot)
    task = asyncio.ensure_future(
        bench(bot, "1 --concurrency 8 --requests 512 --output-tokens 2048 --duration 600")
    )
    for _ in range(2000):
        await asyncio.sleep(0.005)
        if emulator(bot).tokens_streamed > 200:
            break
    assert emulator(bot).tokens_streamed > 200 and not task.done()
    run_id = int(re.search(r"Benchmark #(\d+)", " ".join(bot.progress)).group(1))
    loop = asyncio.get_running_loop()
    clicked = loop.time()
    stopped = await bot.send(f"/bench-cancel {run_id}", user="alice")
    assert stopped.ok, stopped.as_plain_text()
    _, done = await asyncio.wait_for(task, timeout=1.0)
    assert loop.time() - clicked < 1.0
    assert "Cancelled" in done.text
    after = emulator(bot).tokens_streamed
    await asyncio.sleep(0.1)
    assert emulator(bot).tokens_streamed - after <= 8  # at most the tokens already in flight
    (run,) = runs(bot)
    assert run.status == "cancelled"
    assert levels(run)[0]["output_tokens"] < 512 * 2048
    gone = await bot.send(f"/bench-cancel {run_id}", user="alice")
    assert not gone.ok and "No benchmark" in gone.text


async def test_history_compares_gpus_and_the_faster_one_wins(bot: BotHarness) -> None:
    await deploy(bot, "--gpu AMPERE_16 --name small-card")
    await deploy(bot, "--gpu AMPERE_80 --name big-card")
    for dep in (1, 2):
        _, done = await bench(bot, f"{dep} --concurrency 1,8 --requests 8 {SMALL}")
        assert done.ok, done.as_plain_text()
    by_name = {r.deployment_name: r for r in runs(bot)}
    small, big = by_name["small-card"], by_name["big-card"]
    assert "AMPERE_16" in small.gpu and "AMPERE_80" in big.gpu
    assert big.best_tokens_per_second > 2 * small.best_tokens_per_second
    assert big.ttft_p50_seconds < small.ttft_p50_seconds

    history = await bot.send("/bench history --compare-price 0.60", user="alice")
    assert history.ok and history.table is not None
    text = history.as_plain_text()
    assert "small-card" in text and "big-card" in text and "vs $0.60" in text
    rows = {row[2]: row for row in history.table.rows}
    assert set(rows) == {"#1 small-card", "#2 big-card"}
    only = await bot.send("/benchmarks big", user="alice")
    assert [r[2] for r in only.table.rows] == ["#2 big-card"]
    # Another organisation sees none of it, and cannot bench these deployments.
    other = await bot.send("/bench history", user="zed", workspace="elsewhere")
    assert other.ok and other.table is None and "No benchmark runs" in other.text
    refused = await bot.send("/bench 1", user="zed", workspace="elsewhere")
    assert not refused.ok and refused.approval_id is None and "No deployment" in refused.text


async def test_hard_cap_refuses_a_bench_that_would_exceed_it(bot: BotHarness) -> None:
    await deploy(bot, user="owner")
    assert (await bot.send("/budget set 5 --monthly --hard-cap", user="owner")).ok
    org = bot.ctx(user="owner").org_id
    now = bot.clock.now()
    with bot.services.db.session() as s:
        ledger.add(
            s,
            org_id=org,
            kind="agent",
            start=now - timedelta(hours=1),
            end=now,
            amount=Decimal("4.99"),
            now=now,
        )
    ask = await bot.send("/bench 1 --duration 600", user="mia", role="member")
    card = ask.as_plain_text()
    assert "Over the hard cap" in card and "this benchmark adds" in card
    assert "only an admin can approve" in (ask.footer or "")
    own = await bot.approve(ask.approval_id, user="mia", role="member")
    assert not own.ok and "needs approval by an admin" in own.text
    assert runs(bot) == []  # nothing was sent


async def test_limits_and_bad_input_are_clear(bot: BotHarness) -> None:
    await deploy(bot)
    too_many = await bot.send("/bench 1 --concurrency 1,500", user="alice")
    assert not too_many.ok and "between 1 and 64" in too_many.text
    levels_bad = await bot.send("/bench 1 --concurrency one", user="alice")
    assert not levels_bad.ok and "numbers separated by commas" in levels_bad.text
    long_run = await bot.send("/bench 1 --duration 5000", user="alice")
    assert not long_run.ok and "duration" in long_run.text
    viewer = await bot.send("/bench 1", user="vic", role="viewer")
    assert not viewer.ok and "member" in viewer.text
    huge = await bot.send("/bench 1 --prompt-tokens 8000 --output-tokens 2000", user="alice")
    assert not huge.ok and "context" in huge.text


async def test_throttling_stops_the_run_early_and_says_why(bot: BotHarness) -> None:
    await deploy(bot)
    emulator(bot).faults.inject(
        "*/openai/v1/chat/completions", FaultKind.RATE_LIMIT, retry_after=120
    )
    _, done = await bench(bot, f"1 --concurrency 2,4 --requests 4 {SMALL}")
    text = done.as_plain_text()
    assert "Stopped early: throttled (429) at concurrency 2" in text
    assert "Lower --concurrency" in text
    (run,) = runs(bot)
    assert run.status == "stopped" and len(levels(run)) == 1
    assert levels(run)[0]["errors"] == {"throttled": 1} or "throttled" in levels(run)[0]["errors"]


def test_faster_card_streams_faster_in_the_rate_model() -> None:
    slow = throughput.rate_for(
        gpu_type_id="NVIDIA L4", gpu_count=1, memory_gb=24, model_id="Qwen/Qwen3-8B", quant=None
    )
    fast = throughput.rate_for(
        gpu_type_id="NVIDIA H100 80GB HBM3",
        gpu_count=1,
        memory_gb=80,
        model_id="Qwen/Qwen3-8B",
        quant=None,
    )
    # Single stream: memory-bound, so the ratio is the bandwidth ratio.
    ratio = fast.decode_tokens_per_second() / slow.decode_tokens_per_second()
    assert ratio == pytest.approx(3350 / 300, rel=0.01)
    # Aggregate rises with concurrency, then flattens once compute-bound.
    agg = [b * slow.decode_tokens_per_second(batch=b) for b in (1, 8, 64, 256)]
    assert agg[0] < agg[1] < agg[2] <= agg[3] * 1.01
    assert agg[3] <= slow.flops / (2 * slow.model.active_params) * 1.001
    card = throughput.cards()["NVIDIA L4"]
    assert card.source.startswith("https://")


@pytest.mark.parametrize("model", ["Qwen/Qwen3-30B-A3B"])
def test_moe_decodes_at_active_not_total_params(model: str) -> None:
    cost = throughput.model_cost(model)
    assert cost.active_params < 0.2 * cost.weights_bytes  # ~3B active of ~30B (bf16 bytes)


async def test_unknown_gpu_and_model_fall_back_labelled(tmp_path: Path) -> None:
    cost = throughput.model_cost("someone/unknown-model")
    assert not cost.known and cost.weights_bytes == throughput.UNKNOWN_MODEL_WEIGHTS
    rate = throughput.rate_for(
        gpu_type_id="NVIDIA Imaginary", gpu_count=1, memory_gb=0, model_id=MODEL, quant=None
    )
    assert rate.card is throughput.FALLBACK_CARD and rate.kv_capacity_tokens is None


async def test_progress_carries_a_cancel_button_slack_and_discord_render(bot: BotHarness) -> None:
    from bot.adapters.discord_approvals import reply_view
    from bot.adapters.slack_blocks import COMMAND_ACTION_ID, progress_line
    from tools.contract import ProgressNote, Reply

    await deploy(bot)
    await bench(bot, f"1 --concurrency 1 --requests 2 {SMALL}")
    (note,) = [p for p in bot.progress if isinstance(p, ProgressNote)]
    (button,) = note.buttons
    assert button.label == "Cancel" and button.value == "/bench-cancel 1"
    # Slack: a command button (its value runs as the clicker's command); Discord the same.
    actions = progress_line(note).blocks[-1]
    assert actions["type"] == "actions"
    assert actions["elements"][0]["action_id"] == COMMAND_ACTION_ID
    assert actions["elements"][0]["value"] == "/bench-cancel 1"
    view = reply_view(Reply(buttons=[button]))
    assert view is not None and view.children[0].custom_id.endswith("bench-cancel 1")


async def test_pod_deployment_benches_through_the_pod_proxy(bot: BotHarness) -> None:
    await deploy(bot, "--mode pod")
    bot.clock.advance(600)  # the pod's vLLM has loaded
    _, done = await bench(bot, f"1 --concurrency 1,4 --requests 4 {SMALL}")
    assert done.ok, done.as_plain_text()
    assert "whether busy or not" in (await bot.send("/bench 1", user="alice")).as_plain_text()
    (run,) = runs(bot)
    assert run.mode == "pod"
    single, four = levels(run)
    assert single["output_tokens"] == 4 * 32
    # Paced by the pod's simulated card too: 4 streams beat 1.
    assert four["output_tokens_per_second"] > 2 * single["output_tokens_per_second"]


async def test_a_run_killed_mid_load_is_failed_at_the_next_start(bot: BotHarness) -> None:
    from tools.deploy.saga import recover_interrupted

    await deploy(bot)
    org = bot.ctx(user="alice").org_id
    # What a SIGKILL mid-run leaves on disk: the row the run wrote first, still `running`.
    with bot.services.db.session() as s:
        row = bench_store.create(
            s,
            org_id=org,
            deployment_id=1,
            deployment_name="x",
            model_id=MODEL,
            gpu="AMPERE_16",
            requested_by="alice",
            price_per_hour=Decimal("0.58"),
            settings_json="{}",
            created_at=bot.clock.now(),
        )
        run_id = row.id
    await recover_interrupted(bot.services)
    with bot.services.db.session() as s:
        after = bench_store.get(s, org_id=org, run_id=run_id)
    assert after is not None and after.status == "failed"
    assert after.stop_reason == "interrupted by a restart" and after.finished_at is not None


def test_hosted_price_comparison_reads_both_ways() -> None:
    from tools.bench.tools import hosted_comparison_text, price_ratio_text

    assert (
        price_ratio_text(0.30, 0.60) == "2.0× cheaper"
        and price_ratio_text(1.20, 0.60) == "2.0× dearer"
    )
    assert (
        hosted_comparison_text(0.30, 0.60)
        == "$0.60 per 1M output tokens vs $0.30 here: 2.0× cheaper here"
    )


async def test_a_second_run_on_a_busy_deployment_is_refused(bot: BotHarness) -> None:
    await deploy(bot)
    task = asyncio.ensure_future(
        bench(bot, "1 --concurrency 8 --requests 512 --output-tokens 2048 --duration 600")
    )
    for _ in range(2000):
        await asyncio.sleep(0.005)
        if bot.services.bench_runs:
            break
    assert bot.services.bench_runs and not task.done()
    second = await bot.send("/bench 1", user="alice")
    assert not second.ok and second.approval_id is None
    assert "Benchmark #1 of #1" in second.text and "still running" in second.text
    assert (await bot.send("/bench-cancel 1", user="alice")).ok
    _, done = await asyncio.wait_for(task, timeout=1.0)
    assert "Cancelled" in done.text


async def test_a_run_in_another_process_blocks_a_second_one(bot: BotHarness) -> None:
    """One run per deployment holds across processes (web, discord, worker): the database
    says a run is going, not this process's memory. A row another process left `running` is
    seen by the preview and by the run, and the database refuses a second running row."""
    from sqlalchemy.exc import IntegrityError

    await deploy(bot)
    org = bot.ctx(user="alice").org_id
    fields = dict(
        deployment_id=1,
        deployment_name="qwen",
        model_id=MODEL,
        gpu="ADA_24",
        requested_by="bob",
        created_at=bot.clock.now(),
    )
    with bot.services.db.session() as s:
        other = bench_store.create(s, org_id=org, **fields)  # another process's run
    assert not bot.services.bench_runs  # nothing in this process's memory

    refused = await bot.send("/bench 1", user="alice")
    assert not refused.ok and refused.approval_id is None, refused.as_plain_text()
    assert f"Benchmark #{other.id} of #1" in refused.text and "still running" in refused.text
    with pytest.raises(IntegrityError), bot.services.db.session() as s:
        bench_store.create(s, org_id=org, **fields)

    with bot.services.db.session() as s:
        bench_store.finish(s, org_id=org, run_id=other.id, now=bot.clock.now(), status="done")
    _, done = await bench(bot, "1 --concurrency 1 --requests 2 --output-tokens 16")
    assert done.ok, done.as_plain_text()


async def test_a_pods_simulated_speed_follows_its_vllm_serve_arguments(bot: BotHarness) -> None:
    """The emulator paces a pod as its `vllm serve` arguments make it: `--quantization fp8` is
    read from the pod's args (where the deploy puts it), not from an env var pods never get."""
    from tools.runpod.sandbox import throughput

    ask = await bot.send("/deploy qwen --quant fp8 --mode pod", user="alice")
    assert ask.approval_id is not None, ask.as_plain_text()
    assert (await bot.approve(ask.approval_id, user="alice")).ok
    bot.clock.advance(900)  # the pod's vLLM has loaded
    _, done = await bench(bot, f"1 --concurrency 1 --requests 2 {SMALL}")
    assert done.ok, done.as_plain_text()
    (pod,) = emulator(bot).state.pods.values()
    lane = emulator(bot).throughput._lanes[f"pod:{pod.id}"]
    assert lane.rate.model == throughput.model_cost("Qwen/Qwen3-8B", "fp8")
    assert lane.rate.model != throughput.model_cost("Qwen/Qwen3-8B", None)
