"""The bot against a database a few milliseconds away (issue 17, DESIGN.md §9).

Starts a real PostgreSQL (as `.ci/run` does: initdb/pg_ctl from /usr/lib/postgresql/*/bin, run
as the postgres user when root) and, in a child process, a TCP proxy that adds a
fixed latency to every chunk in each direction. Then, for SQLite, PostgreSQL on loopback and
PostgreSQL + 1 ms / + 5 ms (each way), the whole bot (`Cockpit`, sandbox emulator in-process)
runs:

- 100 concurrent `/status 1` (each resolving its person first, as an adapter does), time until
  all are answered;
- 100 concurrent `/deploy qwen 0.5b` with the provider's catalog taking 2 s (approval cards);
- 100 concurrent `/spend this week`;
- the Slack ack p99 at a steady 10 `/status` commands/s through the real Slack HTTP adapter
  (signed requests from a child process);
- database round trips per `/status` (counted at the proxy: a client→server turn; and the
  statements, counted with SQLAlchemy's `before_cursor_execute`);
- the event loop's worst stall during all of that (a 10 ms ticker's lateness);
- the scheduler's real health job (`BackgroundJobs.run_job("health")`) over 1,000 and 10,000
  deployments whose RunPod `/health` takes 100 ms.

    .venv/bin/python benchmarks/db_latency.py [--configs sqlite,loopback,1,5] [--sweep 1000,10000]
        [--commands 100] [--pg-url URL (an existing server instead of starting one)]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SECRET = "bench-signing-secret"
BUDGETS = {
    "status": 3.0,
    "spend": 5.0,
    "ack_p99_ms": 50.0,
    "stall_ms": 50.0,
    "round_trips": 10,
    "sweep_1000_loopback": 3.0,
    "sweep_1000_5ms": 6.0,
    "sweep_10000_loopback": 20.0,
}


# -- PostgreSQL and the latency proxy ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """A throw-away PostgreSQL server, started like .ci/run starts one."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise SystemExit("PostgreSQL is not installed (see .ci/run)")
        self.bin = bins[-1].parent
        self.data = Path(tempfile.mkdtemp(prefix="cockpit-bench-pg-"))
        self.port = free_port()
        self.run_as: list[str] = []
        if os.getuid() == 0:
            if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            shutil.chown(self.data, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]

    def start(self) -> str:
        run = lambda *cmd: subprocess.run([*self.run_as, *cmd], check=True, capture_output=True)  # noqa: E731
        run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "cockpit", "--auth=trust")
        run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200",
            "-l",
            str(self.data / "server.log"),
            "-w",
            "start",
        )
        run(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "cockpit",
            "cockpit_bench",
        )
        return f"postgresql://cockpit@127.0.0.1:{self.port}/cockpit_bench"

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.data, ignore_errors=True)


class LatencyProxy:
    """TCP proxy in a child process (a network's latency costs the bot no CPU or GIL time, so
    neither may the stand-in for it); every chunk is delivered `delay` seconds after it arrived,
    in order, in each direction. Counts client→server turns (round trips)."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = free_port()
        self._mp = multiprocessing.get_context("spawn")
        self._turns = self._mp.Value("q", 0)
        self._ready = self._mp.Event()
        self._process: Any = None

    @property
    def turns(self) -> int:
        return int(self._turns.value)

    def start(self) -> None:
        self._process = self._mp.Process(
            target=_proxy_main,
            args=(self.target_port, self.port, self.delay, self._turns, self._ready),
            daemon=True,
        )
        self._process.start()
        if not self._ready.wait(30):
            raise SystemExit("the latency proxy did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join(5)


def _proxy_main(target_port: int, port: int, delay: float, turns: Any, ready: Any) -> None:
    asyncio.run(_ProxyServer(target_port, port, delay, turns).serve(ready))


class _ProxyServer:
    def __init__(self, target_port: int, port: int, delay: float, turns: Any) -> None:
        self.target_port = target_port
        self.port = port
        self.delay = delay
        self.turns = turns

    async def serve(self, ready: Any) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        ready.set()
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        state = {"last": "server"}
        await asyncio.gather(
            self._pipe(reader, up_w, state, "client"),
            self._pipe(up_r, writer, state, "server"),
            return_exceptions=True,
        )

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, state: dict[str, str], side: str
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    dst.close()
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()

        pump = loop.create_task(deliver())
        try:
            while True:
                data = await src.read(65536)
                if side == "client" and data and state["last"] == "server":
                    with self.turns.get_lock():
                        self.turns.value += 1
                if data:
                    state["last"] = side
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
        finally:
            await pump


# -- the bot --------------------------------------------------------------------------------------


class StallMeter:
    """The event loop's worst lateness on a 10 ms ticker."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - due)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def reset(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst

    def stop(self) -> None:
        if self._task:
            self._task.cancel()


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from storage.db import normalise_url

    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


async def boot(tmp: Path, db_url: str | None, **env: Any) -> Any:
    from bot.app import Cockpit
    from bot.testing import test_settings

    extra = {"DATABASE_URL": db_url} if db_url else {}
    settings = test_settings(tmp, COCKPIT_RATE_LIMIT_PER_MINUTE=0, **extra, **env)
    cockpit = Cockpit(settings)
    await cockpit.start()
    return cockpit


def seed_deployments(cockpit: Any, org_id: int, workspace_id: int, endpoint_ids: list[str]) -> None:
    from decimal import Decimal

    from storage.models import Deployment

    now = datetime.now(UTC)
    rows = [
        dict(
            org_id=org_id,
            workspace_id=workspace_id,
            name=f"bench-{i}",
            model_id="Qwen/Qwen3-8B",
            mode="serverless",
            gpu_pool="ADA_24",
            gpu_count=1,
            status="healthy",
            price_per_hour=Decimal("0.5"),
            created_by="bench",
            provider_endpoint_id=eid,
            idempotency_key=f"bench-{i}",
            created_at=now,
            updated_at=now,
            healthy_at=now,
            last_request_at=now,
            health_state="healthy",
        )
        for i, eid in enumerate(endpoint_ids)
    ]
    for chunk in range(0, len(rows), 2000):
        with cockpit.db.session() as s:
            s.add_all([Deployment(**row) for row in rows[chunk : chunk + 2000]])


def endpoint_body(index: int) -> dict[str, Any]:
    return {
        "name": f"cockpit-o1-bench-{index:05d}",
        "type": "QUEUE",
        # As the planner deploys it: 8k context (the model's 40k would not fit the KV cache
        # of a 24 GB card, and the strict sandbox crash-loops such a worker as vLLM does).
        "image": "runpod/worker-v1-vllm:v2.25.2",
        "env": {"MODEL_NAME": "Qwen/Qwen3-8B", "MAX_MODEL_LEN": "8192"},
        "gpu": {"pools": ["ADA_24"], "count": 1},
        "workers": {"min": 1, "max": 2, "idleTimeout": 5},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    }


async def concurrent(cockpit: Any, n: int, text: str) -> tuple[float, int]:

    async def one(i: int) -> bool:
        ctx = await context(cockpit, f"U{i % 20}")
        reply = await cockpit.handle(ctx, text)
        return bool(reply.ok or reply.approval_id)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started, sum(results)


_OLD_DB_THREAD: Any = None


async def context(cockpit: Any, user: str) -> Any:
    """The person's request context as an adapter gets it: `Cockpit.context` (storage threads);
    before it existed, the Slack adapter's single database thread."""
    from tools.contract import Platform

    kwargs = dict(
        platform=Platform.slack,
        workspace_id="TBENCH",
        workspace_name="bench",
        user_id=user,
        display_name=user,
    )
    if hasattr(cockpit, "context"):
        return await cockpit.context(**kwargs)
    global _OLD_DB_THREAD
    if _OLD_DB_THREAD is None:
        from concurrent.futures import ThreadPoolExecutor

        _OLD_DB_THREAD = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_OLD_DB_THREAD, lambda: cockpit.context_for(**kwargs))


def count_statements(db: Any) -> Callable[[], int]:
    """Statements on both of the database's engines (units and autocommit reads/units)."""
    from sqlalchemy import event

    box = {"n": 0}

    def bump(*_: Any) -> None:
        box["n"] += 1

    for engine in {db.engine, db._read_engine}:
        event.listen(engine, "before_cursor_execute", bump)
    return lambda: box["n"]


async def ack_p99(
    cockpit: Any, fake: Any, rate: float, seconds: float, meter: StallMeter
) -> tuple[float, float]:
    """p99 of the Slack HTTP ack for `/status 1` sent at `rate` per second from a child, and
    the loop's worst stall while they are served (the adapter's start-up is not counted: it
    happens once, before the process serves anything)."""
    from aiohttp import web

    from bot.adapters.slack import SlackAdapter
    from bot.web import build_web_app

    adapter = SlackAdapter(cockpit, mode="http")
    await adapter.start()
    runner = web.AppRunner(build_web_app(cockpit, slack=adapter), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await asyncio.sleep(0.05)  # let the ticker the start-up held back fire first
    setup_stall = meter.reset() * 1000
    print(f"   Slack adapter start-up stalled the loop {setup_stall:.0f} ms", file=sys.stderr)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            f"http://127.0.0.1:{port}/slack/events",
            "--response-base",
            fake.response_url(""),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        await adapter.drain(60)
        serving_stall = meter.reset() * 1000
    finally:
        await adapter.close()
        await runner.cleanup()
    ms = sorted(float(x) * 1000 for x in out.decode().split())
    return (ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else float("nan")), serving_stall


async def client(url: str, response_base: str, rate: float, seconds: float) -> None:
    import aiohttp

    def signed(body: str) -> dict[str, str]:
        ts = str(int(time.time()))
        digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        return {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded",
        }

    async def send(http: aiohttp.ClientSession, i: int) -> float:
        body = urlencode(
            {
                "team_id": "TBENCH",
                "team_domain": "bench",
                "channel_id": "CBENCH",
                "user_id": f"U{i % 20}",
                "user_name": f"user{i % 20}",
                "command": "/status",
                "text": "1",
                "response_url": f"{response_base}r{i}",
                "trigger_id": f"trigger-{i}",
                "api_app_id": "ABENCH",
            }
        )
        started = time.perf_counter()
        async with http.post(url, data=body, headers=signed(body)) as resp:
            await resp.read()
        return time.perf_counter() - started

    async with aiohttp.ClientSession() as http:
        tasks = []
        for i in range(int(rate * seconds)):
            tasks.append(asyncio.ensure_future(send(http, i)))
            await asyncio.sleep(1 / rate)
        latencies = await asyncio.gather(*tasks)
    print(" ".join(f"{x:.6f}" for x in latencies))


async def health_sweep(
    cockpit: Any, meter: StallMeter, org_id: int, ws_id: int, n: int
) -> tuple[float, float]:
    from datetime import timedelta

    emulator = cockpit.runpod.emulator
    # Created an hour ago: their workers are ready (the steady state a sweep sees).
    ago = emulator.clock.now() - timedelta(hours=1)
    ids = [emulator.state.create_endpoint(endpoint_body(i), ago).id for i in range(n)]
    emulator.faults.inject("*/health", "latency", delay=0.1)
    await asyncio.to_thread(seed_deployments, cockpit, org_id, ws_id, ids)
    jobs = cockpit.background()
    await asyncio.to_thread(jobs.lease.try_acquire)
    # The emulator's set-up above runs on the loop; the sweep is what is measured. Let the
    # ticker the set-up held back fire first, or its lateness would count as the sweep's.
    await asyncio.sleep(0.05)
    meter.reset()
    started = time.perf_counter()
    await jobs.run_job("health")
    wall = time.perf_counter() - started
    emulator.faults.clear()
    return wall, 0.0


async def run_config(
    name: str, db_url: str | None, proxy: LatencyProxy | None, args: argparse.Namespace
) -> dict[str, Any]:
    from fakes.fake_slack import FakeSlack

    async with FakeSlack() as fake:
        return await _run_config(name, db_url, proxy, args, fake)


async def _run_config(
    name: str, db_url: str | None, proxy: LatencyProxy | None, args: argparse.Namespace, fake: Any
) -> dict[str, Any]:

    out: dict[str, Any] = {"config": name}
    if not args.sweeps_only:
        out.update(await _commands(name, db_url, proxy, args, fake))
    return await _sweeps(name, db_url, args, out)


async def _commands(
    name: str, db_url: str | None, proxy: LatencyProxy | None, args: argparse.Namespace, fake: Any
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"cockpit-bench-{name}-"))
    if db_url:
        reset_postgres(db_url)
    cockpit = await boot(
        tmp,
        db_url,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_BOT_TOKEN="xoxb-bench",
        SLACK_API_URL=fake.api_url,
    )
    meter = StallMeter()
    meter.start()
    out: dict[str, Any] = {}
    try:
        from storage import orgs

        ctx = await context(cockpit, "U0")
        emulator = cockpit.runpod.emulator
        eid = emulator.add_endpoint(endpoint_body(99999))
        await asyncio.to_thread(seed_deployments, cockpit, ctx.org_id, ctx.workspace_id, [eid])
        member = await cockpit.db.read(
            orgs.get_member, org_id=ctx.org_id, platform="slack", platform_user_id="U0"
        )
        assert member is not None
        await concurrent(cockpit, 20, "/status 1")  # warm up: connections, first sightings
        meter.reset()

        statements = count_statements(cockpit.db)
        before_turns, before_stmts = (proxy.turns if proxy else 0), statements()
        ctx1 = await context(cockpit, "U1")
        ctx1 = ctx1.model_copy(update={"idempotency_key": "slack:bench-rt"})
        await cockpit.handle(ctx1, "/status 1")
        # the context look-up the adapter does is part of the command
        out["round_trips"] = ((proxy.turns if proxy else 0) - before_turns) or None
        out["statements"] = statements() - before_stmts

        out["status"], ok = await concurrent(cockpit, args.commands, "/status 1")
        assert ok == args.commands, ok
        out["stall_status_ms"] = meter.reset() * 1000
        emulator.faults.inject("/rest/v2/catalog/gpus", "latency", delay=2.0)
        out["deploy"], _ = await concurrent(cockpit, args.commands, "/deploy qwen 0.5b")
        emulator.faults.clear()
        out["spend"], _ = await concurrent(cockpit, args.commands, "/spend this week")
        # The whole run's worst: the /status burst included.
        out["stall_ms"] = max(out["stall_status_ms"], meter.reset() * 1000)
        meter.reset()
        out["ack_p99_ms"], ack_stall = await ack_p99(cockpit, fake, 10.0, args.ack_seconds, meter)
        out["stall_ms"] = max(out["stall_ms"], ack_stall)
        from storage.db import on_loop_sites

        for site in on_loop_sites():
            print(f"   SQL on the event loop: {site}", file=sys.stderr)
    finally:
        meter.stop()
        await cockpit.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


async def _sweeps(
    name: str, db_url: str | None, args: argparse.Namespace, out: dict[str, Any]
) -> dict[str, Any]:
    for n in args.sweeps:
        if name not in ("loopback", "5") and not (name == "sqlite" and n <= 1000):
            continue
        if n > 1000 and name != "loopback":
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f"cockpit-bench-sweep-{name}-"))
        if db_url:
            reset_postgres(db_url)
        cockpit = await boot(tmp, db_url)
        meter = StallMeter()
        meter.start()
        try:
            ctx = await context(cockpit, "U0")
            wall, _ = await health_sweep(cockpit, meter, ctx.org_id, ctx.workspace_id, n)
            out[f"sweep_{n}"] = wall
            out[f"sweep_{n}_stall_ms"] = meter.reset() * 1000
        finally:
            meter.stop()
            await cockpit.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def fmt(value: Any, unit: str = "s") -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "n":
        return str(value)
    return f"{value:.2f} s"


def print_table(results: list[dict[str, Any]], commands: int) -> None:
    labels = {"sqlite": "SQLite", "loopback": "PG loopback", "1": "PG + 1 ms", "5": "PG + 5 ms"}
    head = "| | " + " | ".join(labels[r["config"]] for r in results) + " |"
    print(head)
    print("|---" * (len(results) + 1) + "|")
    rows = [
        (f"{commands} concurrent `/status`: all answered after", "status", "s"),
        (f"{commands} concurrent `/deploy` (provider 2 s)", "deploy", "s"),
        (f"{commands} concurrent `/spend this week`", "spend", "s"),
        ("Slack ack p99 at 10 commands/s", "ack_p99_ms", "ms"),
        ("round trips for one `/status` (proxy turns)", "round_trips", "n"),
        ("SQL statements for one `/status`", "statements", "n"),
        ("event-loop stall, max (`/status` burst)", "stall_status_ms", "ms"),
        ("event-loop stall, max (all of the above)", "stall_ms", "ms"),
        ("health sweep, 1,000 deployments", "sweep_1000", "s"),
        ("health sweep, 10,000 deployments", "sweep_10000", "s"),
        ("event-loop stall, max (sweep 1,000)", "sweep_1000_stall_ms", "ms"),
    ]
    for label, key, unit in rows:
        print(f"| {label} | " + " | ".join(fmt(r.get(key), unit) for r in results) + " |")


async def main(args: argparse.Namespace) -> int:
    configs = args.configs.split(",")
    pg: Postgres | None = None
    pg_url = args.pg_url
    if any(c != "sqlite" for c in configs) and not pg_url:
        pg = Postgres()
        pg_url = pg.start()
    results = []
    try:
        for name in configs:
            proxy = None
            url = None
            if name != "sqlite":
                assert pg_url
                port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
                delay = 0.0 if name == "loopback" else float(name) / 1000
                proxy = LatencyProxy(port, delay)
                proxy.start()
                url = pg_url.replace(f":{port}/", f":{proxy.port}/")
            print(f"== {name}", file=sys.stderr, flush=True)
            try:
                results.append(await run_config(name, url, proxy, args))
            finally:
                if proxy:
                    proxy.stop()
            print(results[-1], file=sys.stderr, flush=True)
    finally:
        if pg:
            pg.stop()
    print_table(results, args.commands)
    by = {r["config"]: r for r in results}
    over = []
    if "5" in by:
        r = by["5"]
        for key in ("status", "spend", "ack_p99_ms", "stall_ms"):
            if r.get(key) is not None and r[key] >= BUDGETS[key]:
                over.append(f"PG + 5 ms {key} {r[key]:.2f}")
        if (r.get("round_trips") or 0) > BUDGETS["round_trips"]:
            over.append(f"round trips {r['round_trips']}")
        if r.get("sweep_1000") and r["sweep_1000"] >= BUDGETS["sweep_1000_5ms"]:
            over.append(f"sweep 1,000 at +5 ms {r['sweep_1000']:.1f} s")
    if "loopback" in by:
        r = by["loopback"]
        if r.get("sweep_1000") and r["sweep_1000"] >= BUDGETS["sweep_1000_loopback"]:
            over.append(f"sweep 1,000 loopback {r['sweep_1000']:.1f} s")
        if r.get("sweep_10000") and r["sweep_10000"] >= BUDGETS["sweep_10000_loopback"]:
            over.append(f"sweep 10,000 loopback {r['sweep_10000']:.1f} s")
    print("budget: " + ("OK" if not over else "OVER: " + "; ".join(over)))
    return 1 if over else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--configs", default="sqlite,loopback,1,5")
    parser.add_argument("--sweep", default="1000,10000")
    parser.add_argument("--commands", type=int, default=100)
    parser.add_argument("--ack-seconds", type=float, default=10.0)
    parser.add_argument("--pg-url")
    parser.add_argument("--sweeps-only", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--response-base", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.client:
        asyncio.run(client(ns.client, ns.response_base, ns.rate, ns.seconds))
        sys.exit(0)
    ns.sweeps = [int(x) for x in ns.sweep.split(",") if x]
    _: Awaitable[int] = main(ns)
    sys.exit(asyncio.run(_))
