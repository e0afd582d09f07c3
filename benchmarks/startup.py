"""Startup and footprint benchmark: `cockpit --help` < 0.5 s, bot ready < 3 s,
RSS < 200 MB with 1,000 deployments.

1. `cockpit --help` wall time: 10 runs of the console script in a subprocess, median (the
   CLI imports its heavy modules lazily, per command).
2. Bot ready: in this fresh process, import `bot.app`, construct `Cockpit(Settings(...))` on a
   temporary data dir (SQLite, sandbox on, everything else unset) and `await start()` (schema
   migrations from empty, the in-process RunPod emulator). Imports, construction and start are
   shown separately; the budget is on their sum.
3. Footprint: 1,000 serverless endpoints in the emulator and 1,000 deployment rows pointing at
   them (spread over 10 organisations), then one health sweep over all of them as the scheduler
   runs it (`BackgroundJobs.run_job("health")`: a /health call and a row update each). RSS is
   this process's VmRSS from /proc/self/status (bot and in-process emulator together, as
   `make run` has them); VmHWM is the peak.

    .venv/bin/python benchmarks/startup.py [--help-runs 10] [--deployments 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

HELP_BUDGET_S = 0.5
READY_BUDGET_S = 3.0
RSS_BUDGET_MB = 200.0
DEFAULT_HELP_RUNS = 10
DEFAULT_DEPLOYMENTS = 1000
ORGS = 10


def proc_status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM), in MB (2**20 bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def cockpit_command() -> list[str]:
    script = Path(sys.executable).parent / "cockpit"
    if script.exists():
        return [str(script)]
    found = shutil.which("cockpit")
    return [found] if found else [sys.executable, "-m", "bot.cli"]


def time_help(runs: int) -> list[float]:
    command = [*cockpit_command(), "--help"]
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return samples


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


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, float]:
    figures: dict[str, float] = {"rss_at_launch": proc_status_mb("VmRSS")}
    t0 = time.perf_counter()
    from cryptography.fernet import Fernet

    from bot.app import Cockpit
    from bot.settings import Settings
    from storage import deployments
    from tools.contract import Platform, Role

    t1 = time.perf_counter()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        COCKPIT_DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir / 'cockpit.db'}",
        COCKPIT_SECRET_KEY=Fernet.generate_key().decode(),
        COCKPIT_SANDBOX="on",
    )
    cockpit = Cockpit(settings)
    t2 = time.perf_counter()
    await cockpit.start()
    t3 = time.perf_counter()
    figures.update(imports=t1 - t0, construct=t2 - t1, start=t3 - t2, ready=t3 - t0)
    figures["rss_ready"] = proc_status_mb("VmRSS")
    try:
        emulator = cockpit.runpod.emulator
        endpoint_ids = [emulator.add_endpoint(endpoint_body(i)) for i in range(args.deployments)]
        orgs = [
            cockpit.context_for(
                platform=Platform.console,
                workspace_id=f"bench-{n:02d}",
                workspace_name=f"bench-{n:02d}",
                user_id="bench",
                display_name="bench",
                role=Role.owner,
            ).org_id
            for n in range(ORGS)
        ]
        now = cockpit.services.clock.now()
        with cockpit.services.db.session() as s:
            for i, endpoint_id in enumerate(endpoint_ids):
                deployments.create(
                    s,
                    org_id=orgs[i % ORGS],
                    name=f"bench-{i:04d}",
                    model_id="Qwen/Qwen3-8B",
                    gpu_pool="ADA_24",
                    status="healthy",
                    health_state="healthy",
                    provider_endpoint_id=endpoint_id,
                    price_per_hour=Decimal("1.116"),
                    created_by="bench",
                    created_at=now,
                    updated_at=now,
                )
        figures["rss_rows"] = proc_status_mb("VmRSS")
        t4 = time.perf_counter()
        report = await cockpit.background().run_job("health")
        figures["sweep"] = time.perf_counter() - t4
        figures["checked"] = report.checked if report else 0
        figures["failures"] = report.failures if report else -1
        figures["rss_swept"] = proc_status_mb("VmRSS")
        figures["rss_peak"] = proc_status_mb("VmHWM")
        if emulator.state_file is not None:
            t5 = time.perf_counter()
            emulator.save()
            figures["state_save"] = time.perf_counter() - t5
            figures["state_kb"] = emulator.state_file.stat().st_size / 1024
    finally:
        await cockpit.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--help-runs", type=int, default=DEFAULT_HELP_RUNS)
    parser.add_argument("--deployments", type=int, default=DEFAULT_DEPLOYMENTS)
    args = parser.parse_args()

    help_samples = time_help(args.help_runs)
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        f = asyncio.run(run(args, Path(tmp)))

    help_median = statistics.median(help_samples)
    help_ok = help_median < HELP_BUDGET_S
    ready_ok = f["ready"] < READY_BUDGET_S
    rss_ok = f["rss_swept"] < RSS_BUDGET_MB and f["checked"] == args.deployments
    print(
        f"cockpit --help: median {help_median:.3f} s over {len(help_samples)} runs "
        f"(min {min(help_samples):.3f}, max {max(help_samples):.3f}); "
        f"budget < {HELP_BUDGET_S} s: {'OK' if help_ok else 'OVER BUDGET'}"
    )
    print(
        f"bot ready: {f['ready']:.3f} s = imports {f['imports']:.3f} + construct "
        f"{f['construct']:.3f} + start {f['start']:.3f} (migrations, sandbox); "
        f"budget < {READY_BUDGET_S:.0f} s: {'OK' if ready_ok else 'OVER BUDGET'}"
    )
    print(
        f"RSS: {f['rss_at_launch']:.1f} MB at launch, {f['rss_ready']:.1f} MB ready, "
        f"{f['rss_rows']:.1f} MB with {args.deployments} endpoints + deployment rows, "
        f"{f['rss_swept']:.1f} MB after the health sweep (peak {f['rss_peak']:.1f} MB); "
        f"budget < {RSS_BUDGET_MB:.0f} MB: {'OK' if rss_ok else 'OVER BUDGET'}"
    )
    print(
        f"health sweep: {int(f['checked'])} deployments checked, {int(f['failures'])} failures, "
        f"{f['sweep']:.2f} s (in-process emulator, no injected latency)"
    )
    if "state_save" in f:
        print(
            f"sandbox state file with {args.deployments} endpoints: {f['state_kb']:.0f} KB, "
            f"saved in {f['state_save'] * 1000:.0f} ms (after each mutating sandbox request)"
        )
    sys.exit(0 if help_ok and ready_ok and rss_ok else 1)


if __name__ == "__main__":
    main()
