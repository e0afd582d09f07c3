"""In-memory RunPod account state and its simulated lifecycle.

Nothing runs in the background: every request first brings the state up to `clock.now()`
(`advance`), computing what would have happened in between — a worker that finished starting,
an idle worker that scaled to zero at its exact deadline, a job that completed. Tests move a
`FakeClock` and observe deterministic results.

Serverless lifecycle (per endpoint):
- A job or chat request to an endpoint with no usable worker starts one (INITIALIZING); it is
  ready `worker_ready_seconds` later. Another worker starts when the best queue wait exceeds
  the QUEUE_DELAY setting and `workers.max` allows it.
- A flex worker stops `workers.idleTimeout` seconds after its last work; `workers.min` workers
  ("keep warm") never idle out.
- A PATCH creates a release (version + 1). Container changes (image, env, gpu, ...) make the
  live workers stale: warm ones are replaced at once, flex ones take no new work and idle out.
- Lowering `workers.max` below the live worker count drains the excess (stale, then flex, then
  the newest first): a draining worker takes no new work and stops as soon as the work it
  already has is done, without waiting for the idle timeout; `max: 0` drains them all.
- A crash turns the live workers UNHEALTHY and fails pending jobs; the endpoint stays unhealthy
  until `recover` or a container-changing PATCH (a new release replaces the workers).

Billing, as RunPod's serverless pricing page describes it: per second, rounded up per worker
session, at the pool's flex price × GPUs per worker. Initializing is not billed; running and the
idle-timeout tail are billed; unhealthy workers are not. The active-worker discount is not
modelled (it is negotiated now).
Pods are billed per second at the catalog's secure/community price × GPU count while RUNNING
(provisioning is not billed). Disk, CPU and platform fees are reported as 0.
"""

from __future__ import annotations

import copy
import json
import random
import string
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tools.clock import Clock
from tools.runpod.sandbox import catalog, vllm

DEFAULT_ENDPOINT_DISK_GB = 20
DEFAULT_TEMPLATE_DISK_GB = 50
DEFAULT_WORKERS_MAX = 3
DEFAULT_TIMEOUT_MS = 300_000
RUN_RESULT_TTL = timedelta(minutes=30)
RUNSYNC_RESULT_TTL = timedelta(minutes=1)
DEFAULT_BILLING_WINDOW = timedelta(days=30)
AMOUNT_PLACES = Decimal("0.000001")
CONTAINER_FIELDS = ("image", "args", "disk", "ports", "env", "registry")
SANDBOX_USER_ID = "user_sandbox"
SANDBOX_CUDA = "12.8"
_MS = timedelta(milliseconds=1)
# "Never" for a worker that will not become ready (crash loop, init timeout, no capacity):
# far enough to outlast any test, near enough for date arithmetic.
NEVER = timedelta(days=3650)
LOG_TAIL_DEFAULT = 100
FLASHBOOT_FACTOR = 0.1  # a FlashBoot restore takes a tenth of a cold container start
NO_CAPACITY = "There are no longer any instances available with the requested specifications."

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ApiError(Exception):
    """A refusal rendered as an RFC 9457 problem (REST) or `{"error": ...}` (data plane)."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def round_up_end(start: datetime, at: datetime) -> datetime:
    """End of a billed session that started at `start` and stopped at `at`, whole seconds up."""
    if at <= start:
        return start
    micros = (at - start) // timedelta(microseconds=1)
    return start + timedelta(seconds=-(-micros // 1_000_000))


@dataclass
class Meter:
    """One billed session: `rate` USD per second from `start` until `end` (open while None)."""

    kind: str  # "serverless" | "pod"
    resource_id: str
    rate: Decimal
    start: datetime
    end: datetime | None = None

    def close(self, at: datetime) -> None:
        if self.end is None:
            self.end = round_up_end(self.start, at)

    def span(self, now: datetime) -> tuple[datetime, datetime]:
        end = self.end if self.end is not None else now
        return self.start, max(end, self.start)


@dataclass
class WorkerSim:
    id: str
    version: int
    gpu_type_id: str
    gpu_count: int
    image: str
    data_center_id: str
    created_at: datetime
    ready_at: datetime
    meter: Meter
    keep_warm: bool = False
    busy_until: datetime | None = None
    last_activity: datetime | None = None
    in_flight: int = 0
    unhealthy_since: datetime | None = None
    draining_since: datetime | None = None  # over workers.max: finish the work, then stop
    startup: vllm.Startup | None = None  # the simulated vLLM start (None: not simulated)
    init_timeout: float | None = None  # RUNPOD_INIT_TIMEOUT in force, seconds
    throttled: bool = False  # waiting on capacity in its pools
    extra_logs: list[vllm.LogLine] = field(default_factory=list)

    def status(self, now: datetime) -> str:
        if self.unhealthy_since is not None and now >= self.unhealthy_since:
            return "UNHEALTHY"
        if self.throttled:
            return "THROTTLED"
        if now < self.ready_at:
            return "INITIALIZING"
        if self.in_flight or (self.busy_until is not None and now < self.busy_until):
            return "RUNNING"
        return "IDLE"

    def next_free(self, now: datetime) -> datetime:
        return max(now, self.ready_at, self.busy_until or self.ready_at)

    def idle_deadline(self, idle_timeout: int) -> datetime:
        ready = self.ready_at
        last = max(ready, self.busy_until or ready, self.last_activity or ready)
        return last + timedelta(seconds=idle_timeout)

    def drain_deadline(self) -> datetime:
        """When a draining worker stops: once the work it already had is done (no idle tail)."""
        assert self.draining_since is not None
        since = self.draining_since
        return max(since, self.busy_until or since, self.last_activity or since)


@dataclass
class JobSim:
    id: str
    input: Any
    submitted_at: datetime
    sync: bool
    worker_id: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    output: Any = None
    error: str | None = None
    failed_at: datetime | None = None
    cancelled_at: datetime | None = None

    def status(self, now: datetime) -> str:
        if self.cancelled_at is not None:
            return "CANCELLED"
        if self.failed_at is not None and now >= self.failed_at:
            return "FAILED"
        if self.start_at is None or now < self.start_at:
            return "IN_QUEUE"
        if self.end_at is not None and now < self.end_at:
            return "IN_PROGRESS"
        return "COMPLETED"

    def finished_at(self) -> datetime | None:
        return self.cancelled_at or self.failed_at or self.end_at

    def expired(self, now: datetime) -> bool:
        done = self.finished_at()
        if done is None or self.status(now) in ("IN_QUEUE", "IN_PROGRESS"):
            return False
        return now >= done + (RUNSYNC_RESULT_TTL if self.sync else RUN_RESULT_TTL)

    def json(self, now: datetime) -> dict[str, Any]:
        status = self.status(now)
        body: dict[str, Any] = {"id": self.id, "status": status}
        if self.start_at is not None and now >= self.start_at:
            body["delayTime"] = (self.start_at - self.submitted_at) // _MS
            if status == "COMPLETED" and self.end_at is not None:
                body["executionTime"] = (self.end_at - self.start_at) // _MS
        if status == "COMPLETED":
            body["output"] = self.output
        if status == "FAILED":
            body["error"] = self.error
            body["input"] = self.input
        return body


@dataclass
class EndpointSim:
    id: str
    config: dict[str, Any]
    created_at: datetime
    template_id: str | None = None
    version: int = 1
    releases: list[dict[str, Any]] = field(default_factory=list)
    workers: list[WorkerSim] = field(default_factory=list)
    jobs: dict[str, JobSim] = field(default_factory=dict)
    crashed: bool = False
    done: Counter[str] = field(default_factory=Counter)  # pruned/sync job outcomes
    booted: bool = False  # a worker has started once (FlashBoot can restore it quickly)

    @property
    def name(self) -> str:
        return str(self.config["name"])

    @property
    def min_workers(self) -> int:
        return int(self.config["workers"].get("min", 0))

    @property
    def max_workers(self) -> int:
        return int(self.config["workers"].get("max", DEFAULT_WORKERS_MAX))

    def idle_timeout(self, default: int) -> int:
        return int(self.config["workers"].get("idleTimeout", default))

    @property
    def queue_delay(self) -> float:
        scaling = self.config["scaling"]
        return float(scaling.get("queueDelay", 0.0)) if scaling["type"] == "QUEUE_DELAY" else 0.0

    def served_model(self) -> str:
        env = self.config.get("env") or {}
        for key in ("OPENAI_SERVED_MODEL_NAME_OVERRIDE", "SERVED_MODEL_NAME", "MODEL_NAME"):
            if env.get(key):
                return str(env[key])
        return self.name


@dataclass
class PodSim:
    id: str
    name: str
    config: dict[str, Any]
    gpu: catalog.GpuSpec
    gpu_count: int
    cloud: str
    data_center_id: str
    created_at: datetime
    phase_at: datetime
    phase: str = "start"  # "start" (PROVISIONING -> STARTING) or "restart" (STARTING)
    desired: str = "RUNNING"  # RUNNING | EXITED
    started_at: datetime | None = None
    meter: Meter | None = None
    template_id: str | None = None
    crashed_at: datetime | None = None  # injected crash loop (tests)
    crash_reason: str = ""

    @property
    def rate_per_hour(self) -> Decimal:
        return self.gpu.pod_price_per_hour(self.cloud) * self.gpu_count


def _tail(lines: list[vllm.LogLine], tail: int, source: str | None) -> list[vllm.LogLine]:
    picked = sorted((x for x in lines if source is None or x[1] == source), key=lambda x: x[0])
    return picked[-tail:] if tail else []


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("workers", "scaling", "gpu") and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = _flatten(old), _flatten(new)
    return [
        {"field": k, "old": a.get(k), "new": b.get(k)}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


# --- billing buckets -----------------------------------------------------------------------


def bucket_floor(dt: datetime, size: str) -> datetime:
    dt = dt.astimezone(UTC)
    if size == "hour":
        return dt.replace(minute=0, second=0, microsecond=0)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "day":
        return day
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def bucket_next(start: datetime, size: str) -> datetime:
    if size == "hour":
        return start + timedelta(hours=1)
    if size == "day":
        return start + timedelta(days=1)
    if size == "week":
        return start + timedelta(days=7)
    if size == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def bucket_ceil(dt: datetime, size: str) -> datetime:
    floor = bucket_floor(dt, size)
    return floor if floor == dt else bucket_next(floor, size)


def _amount(value: Decimal) -> float:
    return float(value.quantize(AMOUNT_PLACES))


class SandboxState:
    """Templates, endpoints (with workers, jobs, releases), pods and billing meters."""

    def __init__(
        self,
        *,
        clock: Clock,
        worker_ready_seconds: float,
        idle_timeout_default: int,
        job_seconds: float,
        pod_start_seconds: float,
        billing_lag_seconds: float = 0.0,
        seed: int = 0,
        simulate_vllm: bool = True,
    ) -> None:
        self.clock = clock
        # Model vLLM's download, load and start-up checks (vllm.py); off = the flat
        # `worker_ready_seconds` of the earlier, kinder sandbox.
        self.simulate_vllm = simulate_vllm
        self.no_capacity: set[str] = set()  # pool ids and GPU type ids out of capacity
        self.worker_ready = timedelta(seconds=worker_ready_seconds)
        self.idle_timeout_default = idle_timeout_default
        self.job_time = timedelta(seconds=job_seconds)
        self.pod_start = timedelta(seconds=pod_start_seconds)
        self.billing_lag = timedelta(seconds=billing_lag_seconds)
        self._rng = random.Random(seed)  # its state is saved with the account (persist.py)
        self.templates: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, EndpointSim] = {}
        self.pods: dict[str, PodSim] = {}
        self.meters: list[Meter] = []

    def new_id(self, length: int = 14) -> str:
        return "".join(self._rng.choices(string.ascii_lowercase + string.digits, k=length))

    # --- persistence hooks (persist.py) --------------------------------------------------
    def rng_state(self) -> tuple[Any, ...]:
        return self._rng.getstate()

    def set_rng_state(self, value: tuple[Any, ...]) -> None:
        self._rng.setstate(value)

    def restart_workers(self, ep: EndpointSim, now: datetime) -> None:
        """After a reload no worker or job survived: keep-warm workers start again, cold."""
        ep.workers.clear()
        ep.jobs.clear()
        ep.crashed = False
        self._reconcile_min(ep, now)

    # --- templates ---------------------------------------------------------------------
    def create_template(self, body: dict[str, Any]) -> dict[str, Any]:
        if any(t["name"] == body["name"] for t in self.templates.values()):
            raise ApiError(400, f"a template named '{body['name']}' already exists")
        template = {
            "id": self.new_id(10),
            "name": body["name"],
            "image": body["image"],
            "args": body.get("args", ""),
            "disk": body.get("disk", DEFAULT_TEMPLATE_DISK_GB),
            "mounts": body.get("mounts", {}),
            "ports": body.get("ports", []),
            "env": body.get("env", {}),
            "registry": body.get("registry"),
            "serverless": body.get("serverless", False),
            "public": body.get("public", False),
            "category": body.get("category", "NVIDIA"),
            "startSsh": body.get("startSsh", True),
            "startJupyter": body.get("startJupyter", True),
            "allowedCudaVersions": body.get("allowedCudaVersions", []),
        }
        self.templates[template["id"]] = template
        return template

    def get_template(self, template_id: str) -> dict[str, Any]:
        if template_id not in self.templates:
            raise ApiError(404, "template not found")
        return self.templates[template_id]

    def delete_template(self, template_id: str) -> None:
        """RunPod answers 400 while a serverless endpoint or a pod uses the template: the
        user has to go first (which is why cleanups delete in dependency order)."""
        self.get_template(template_id)
        users = [e.id for e in self.endpoints.values() if e.template_id == template_id]
        if users:
            raise ApiError(400, f"template is bound to serverless endpoint {users[0]}")
        pods = [p.id for p in self.pods.values() if p.template_id == template_id]
        if pods:
            raise ApiError(400, f"template is in use by pod {pods[0]}")
        del self.templates[template_id]

    def _serverless_template(self, template_id: str) -> dict[str, Any]:
        template = self.get_template(template_id)
        if not template["serverless"]:
            raise ApiError(422, f"template {template_id} is not a serverless template")
        return template

    # --- endpoints: configuration ------------------------------------------------------
    def _check_gpu(self, gpu: dict[str, Any]) -> None:
        for pool in gpu["pools"]:
            if pool not in catalog.KNOWN_POOLS:
                raise ApiError(400, f"unknown serverless GPU pool '{pool}'")
            if pool not in catalog.POOL_PRICE_PER_SECOND:
                raise ApiError(400, f"GPU pool '{pool}' is not available to this account")
        allowed = {g.id for p in gpu["pools"] for g in catalog.pool_gpus(p)}
        excluded = [t.strip() for t in gpu.get("excludedTypes", [])]
        for gpu_type in excluded:
            if gpu_type not in allowed:
                raise ApiError(400, f"excludedTypes: '{gpu_type}' is not a GPU type in the pools")
        if not allowed - set(excluded):
            raise ApiError(400, "excludedTypes leaves no GPU type in the selected pools")
        if gpu.get("allowedCudaVersions") and gpu.get("minCudaVersion"):
            raise ApiError(400, "allowedCudaVersions and minCudaVersion are mutually exclusive")

    @staticmethod
    def _no_idle_timeout(config: dict[str, Any]) -> bool:
        """Queue endpoints scaling on request count have no idle timeout (spec)."""
        return config["type"] == "QUEUE" and config["scaling"]["type"] == "REQUEST_COUNT"

    def _check_workers(self, config: dict[str, Any], body: dict[str, Any]) -> None:
        workers = config["workers"]
        if workers.get("min", 0) > workers.get("max", DEFAULT_WORKERS_MAX):
            raise ApiError(400, "workers.min cannot exceed workers.max")
        if self._no_idle_timeout(config):
            if "idleTimeout" in body.get("workers", {}):
                detail = (
                    "workers.idleTimeout does not apply to QUEUE endpoints scaling on REQUEST_COUNT"
                )
                raise ApiError(400, detail)
            workers.pop("idleTimeout", None)
        else:
            workers.setdefault("idleTimeout", self.idle_timeout_default)

    def create_endpoint(self, body: dict[str, Any], now: datetime) -> EndpointSim:
        if ("gpu" in body) == ("cpu" in body):
            raise ApiError(400, "specify exactly one of gpu or cpu")
        if "cpu" in body:
            raise ApiError(400, "the sandbox simulates GPU endpoints only; use gpu.pools")
        template = self._serverless_template(body["templateId"]) if "templateId" in body else None
        gpu = {"count": 1, **body["gpu"]}
        if template and "allowedCudaVersions" not in gpu and "minCudaVersion" not in gpu:
            gpu["allowedCudaVersions"] = list(template["allowedCudaVersions"])
        gpu.setdefault("allowedCudaVersions", [])
        gpu.setdefault("minCudaVersion", None)
        self._check_gpu(gpu)
        config: dict[str, Any] = {"name": body["name"], "type": body["type"]}
        config.update(self._container(body, template))
        config.update(
            gpu=gpu,
            workers={"min": 0, "max": DEFAULT_WORKERS_MAX, **body.get("workers", {})},
            scaling=dict(body["scaling"]),
            dataCenterIds=list(body.get("dataCenterIds", [])),
            networkVolumes=list(body.get("networkVolumes", [])),
            timeout=body.get("timeout", DEFAULT_TIMEOUT_MS),
            flashboot=body.get("flashboot", "OFF"),
        )
        self._check_workers(config, body)
        ep = EndpointSim(
            id=self.new_id(14),
            config=config,
            created_at=now,
            template_id=template["id"] if template else None,
        )
        ep.releases.append(self._release(ep, now, []))
        self.endpoints[ep.id] = ep
        self._reconcile_min(ep, now)
        return ep

    @staticmethod
    def _container(body: dict[str, Any], template: dict[str, Any] | None) -> dict[str, Any]:
        base: dict[str, Any] = {
            "image": "",
            "args": "",
            "disk": DEFAULT_ENDPOINT_DISK_GB,
            "ports": [],
            "env": {},
            "registry": None,
        }
        if template:
            base.update({k: copy.deepcopy(template[k]) for k in CONTAINER_FIELDS})
        for key in CONTAINER_FIELDS:
            if key in body:
                base[key] = copy.deepcopy(body[key])
        if template and "env" in body:
            base["env"] = {**template["env"], **body["env"]}
        return base

    def get_endpoint(self, endpoint_id: str) -> EndpointSim:
        if endpoint_id not in self.endpoints:
            raise ApiError(404, "serverless endpoint not found")
        return self.endpoints[endpoint_id]

    def _release(
        self, ep: EndpointSim, now: datetime, diff: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "id": self.new_id(8),
            "version": ep.version,
            "source": "MANUAL",
            "buildId": None,
            "createdByUserId": SANDBOX_USER_ID,
            "createdAt": iso(now),
            "diff": diff,
        }

    def update_endpoint(self, endpoint_id: str, body: dict[str, Any], now: datetime) -> EndpointSim:
        ep = self.get_endpoint(endpoint_id)
        self.advance(ep, now)
        if "cpu" in body:
            raise ApiError(400, "compute family is immutable: this is a GPU endpoint")
        new = copy.deepcopy(ep.config)
        template = self._serverless_template(body["templateId"]) if "templateId" in body else None
        if template or any(k in body for k in CONTAINER_FIELDS):
            container = self._container(body, template)
            new.update({k: container[k] for k in CONTAINER_FIELDS if template or k in body})
        if "gpu" in body:
            new["gpu"] = self._patched_gpu(new["gpu"], body["gpu"])
        if "workers" in body:
            new["workers"] = {**new["workers"], **body["workers"]}
        for key in ("name", "scaling", "dataCenterIds", "networkVolumes", "timeout", "flashboot"):
            if key in body:
                new[key] = copy.deepcopy(body[key])
        self._check_workers(new, body)
        diff = _diff(ep.config, new)
        if not diff:
            return ep
        container_change = any(d["field"].split(".")[0] in (*CONTAINER_FIELDS, "gpu") for d in diff)
        ep.version += 1
        ep.config = new
        ep.releases.insert(0, self._release(ep, now, diff))
        self._roll_out(ep, now, container_change)
        return ep

    def _patched_gpu(self, current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        gpu = dict(current)
        if "pools" in patch:
            gpu["pools"] = list(patch["pools"])
            gpu["excludedTypes"] = list(patch.get("excludedTypes", []))
            if not gpu["excludedTypes"]:
                del gpu["excludedTypes"]
        for key in ("count", "allowedCudaVersions"):
            if key in patch:
                gpu[key] = patch[key]
        if "minCudaVersion" in patch:
            gpu["minCudaVersion"] = patch["minCudaVersion"] or None
        self._check_gpu(gpu)
        return gpu

    def _roll_out(self, ep: EndpointSim, now: datetime, container_change: bool) -> None:
        if not container_change:
            for worker in ep.workers:
                worker.version = ep.version
        else:
            if ep.crashed:
                self.recover(ep, now)
            for worker in list(ep.workers):
                if worker.keep_warm and worker.version != ep.version:
                    self._stop(ep, worker, now)
        self._reconcile_min(ep, now)
        self._drain_excess(ep, now)

    def _drain_excess(self, ep: EndpointSim, now: datetime) -> None:
        """At most `workers.max` workers take work; the others finish theirs, then stop."""
        live = [w for w in ep.workers if w.unhealthy_since is None]
        # keep current-version, keep-warm, longest-ready workers; sorted() is stable
        live.sort(key=lambda w: (w.version != ep.version, not w.keep_warm, w.ready_at))
        for rank, worker in enumerate(live):
            if rank < ep.max_workers:
                worker.draining_since = None
            elif worker.draining_since is None:
                worker.draining_since = now
        self.advance(ep, now)  # the idle ones stop at once

    def delete_endpoint(self, endpoint_id: str, now: datetime) -> None:
        ep = self.get_endpoint(endpoint_id)
        self.advance(ep, now)
        for worker in list(ep.workers):
            self._stop(ep, worker, now)
        for job in ep.jobs.values():
            if job.status(now) in ("IN_QUEUE", "IN_PROGRESS"):
                job.cancelled_at = now
        del self.endpoints[endpoint_id]

    # --- endpoints: workers and lifecycle ----------------------------------------------
    def _placement(self, ep: EndpointSim) -> tuple[catalog.GpuSpec, Decimal]:
        gpu = ep.config["gpu"]
        excluded = {t.strip() for t in gpu.get("excludedTypes", [])}
        for pool in gpu["pools"]:
            for spec in catalog.pool_gpus(pool):
                if spec.id not in excluded and spec.serverless_price_per_second is not None:
                    return spec, spec.serverless_price_per_second * int(gpu.get("count", 1))
        raise ApiError(400, "no GPU type is available in the selected pools")

    def _start_worker(self, ep: EndpointSim, now: datetime, *, keep_warm: bool) -> WorkerSim:
        spec, rate = self._placement(ep)
        gpu_count = int(ep.config["gpu"].get("count", 1))
        startup, init_timeout = self._worker_startup(ep, spec, gpu_count)
        throttled = all(p in self.no_capacity for p in ep.config["gpu"]["pools"])
        ready_after = startup.ready_after if startup else self.worker_ready.total_seconds()
        unhealthy_at: datetime | None = None
        if ready_after is None:  # vLLM exits: a crash loop
            assert startup is not None
            unhealthy_at = now + timedelta(seconds=startup.fail_after or 0.0)
        elif init_timeout is not None and ready_after > init_timeout:
            unhealthy_at = now + timedelta(seconds=init_timeout)
        never = unhealthy_at is not None or throttled
        ready = now + NEVER if never else now + timedelta(seconds=ready_after or 0.0)
        meter = Meter("serverless", ep.id, rate, start=now if never else ready)
        if never:
            meter.close(now)  # initializing, throttled and unhealthy time is not billed
        data_centers = ep.config.get("dataCenterIds") or [catalog.DATA_CENTERS[0][0]]
        worker = WorkerSim(
            id=self.new_id(14),
            version=ep.version,
            gpu_type_id=spec.id,
            gpu_count=gpu_count,
            image=str(ep.config.get("image", "")),
            data_center_id=data_centers[0],
            created_at=now,
            ready_at=ready,
            meter=meter,
            keep_warm=keep_warm,
            unhealthy_since=unhealthy_at,
            startup=startup,
            init_timeout=init_timeout,
            throttled=throttled,
        )
        if throttled:
            worker.extra_logs.append(
                (now, "system", f"sandbox: no capacity in {', '.join(ep.config['gpu']['pools'])}")
            )
        if not never:
            ep.booted = True
        if ep.crashed:
            worker.unhealthy_since = now
            meter.close(now)
        self.meters.append(meter)
        ep.workers.append(worker)
        return worker

    def _worker_startup(
        self, ep: EndpointSim, spec: catalog.GpuSpec, gpu_count: int
    ) -> tuple[vllm.Startup | None, float | None]:
        """The simulated vLLM start of a new worker and the init timeout in force. FlashBoot
        restores a worker of an endpoint that booted before: no pull, weights in place."""
        if not self.simulate_vllm:
            return None, None
        env = ep.config.get("env") or {}
        flash = ep.booted and ep.config.get("flashboot", "OFF") != "OFF"
        container = self.worker_ready.total_seconds() * (FLASHBOOT_FACTOR if flash else 1.0)
        startup = vllm.plan_startup(
            vllm.from_worker_env(env),
            gpu_id=spec.id,
            memory_gb=spec.memory,
            gpu_count=gpu_count,
            container_seconds=container,
            weights_cached=flash,
        )
        try:
            timeout = float(env.get(vllm.INIT_TIMEOUT_ENV) or vllm.DEFAULT_INIT_TIMEOUT_SECONDS)
        except ValueError:
            timeout = vllm.DEFAULT_INIT_TIMEOUT_SECONDS
        return startup, timeout

    def _stop(self, ep: EndpointSim, worker: WorkerSim, at: datetime) -> None:
        worker.meter.close(at)
        ep.workers.remove(worker)

    def _reconcile_min(self, ep: EndpointSim, now: datetime) -> None:
        if ep.crashed:
            return
        current = [w for w in ep.workers if self._usable(ep, w)]
        warm = [w for w in current if w.keep_warm]
        need = ep.min_workers - len(warm)
        for worker in current:
            if need <= 0:
                break
            if not worker.keep_warm:
                worker.keep_warm, need = True, need - 1
        for _ in range(max(need, 0)):
            self._start_worker(ep, now, keep_warm=True)
        for worker in warm[ep.min_workers :]:
            worker.keep_warm = False
            worker.last_activity = max(worker.last_activity or now, now)

    def advance(self, ep: EndpointSim, now: datetime) -> None:
        """Apply everything that happened to `ep` up to `now` (idle scale-down, job expiry)."""
        idle = ep.idle_timeout(self.idle_timeout_default)
        for worker in list(ep.workers):
            if worker.unhealthy_since is not None or worker.in_flight:
                continue
            if worker.draining_since is not None:
                deadline = worker.drain_deadline()
            elif worker.keep_warm:
                continue
            else:
                deadline = worker.idle_deadline(idle)
            if deadline <= now:
                self._stop(ep, worker, deadline)
        for job_id, job in list(ep.jobs.items()):
            if job.expired(now):
                ep.done[job.status(now)] += 1
                del ep.jobs[job_id]

    @staticmethod
    def _usable(ep: EndpointSim, worker: WorkerSim) -> bool:
        """May take new work: current release, healthy, not draining."""
        return (
            worker.version == ep.version
            and worker.unhealthy_since is None
            and worker.draining_since is None
        )

    def advance_all(self, now: datetime) -> None:
        for ep in self.endpoints.values():
            self.advance(ep, now)

    def _schedule(self, ep: EndpointSim, now: datetime) -> tuple[WorkerSim, datetime] | None:
        """Pick the worker (starting one if scaling allows) that can take work soonest."""
        usable = [w for w in ep.workers if self._usable(ep, w)]
        best = min(usable, key=lambda w: w.next_free(now), default=None)
        start = best.next_free(now) if best else None
        waits_too_long = start is None or (start - now).total_seconds() > ep.queue_delay
        fresh_ready = now + self.worker_ready
        helps = start is None or fresh_ready < start  # a new worker would start the work sooner
        if waits_too_long and helps and len(ep.workers) < ep.max_workers:
            best, start = self._start_worker(ep, now, keep_warm=False), fresh_ready
        if best is None or start is None:
            return None
        return best, start

    def submit_job(self, ep: EndpointSim, job_input: Any, now: datetime, *, sync: bool) -> JobSim:
        self.advance(ep, now)
        job_id = f"{'sync-' if sync else ''}{self.new_id(8)}-{self.new_id(4)}-u1"
        job = JobSim(id=job_id, input=job_input, submitted_at=now, sync=sync)
        if ep.crashed:
            self._ensure_unhealthy_worker(ep, now)
            job.failed_at, job.error = now, self.crash_error(ep)
        else:
            slot = self._schedule(ep, now)
            if slot is not None:
                worker, start = slot
                job.worker_id, job.start_at = worker.id, start
                job.end_at = start + self.job_time
                worker.busy_until = job.end_at
                job.output = {"sandbox": True, "echo": job_input}
        ep.jobs[job.id] = job
        return job

    def get_job(self, ep: EndpointSim, job_id: str, now: datetime) -> JobSim:
        self.advance(ep, now)
        if job_id not in ep.jobs:
            raise ApiError(404, "job not found (unknown id or its result expired)")
        return ep.jobs[job_id]

    def cancel_job(self, ep: EndpointSim, job_id: str, now: datetime) -> JobSim:
        job = self.get_job(ep, job_id, now)
        if job.status(now) in ("IN_QUEUE", "IN_PROGRESS"):
            job.cancelled_at = now
        return job

    def begin_request(self, ep: EndpointSim, now: datetime) -> tuple[WorkerSim, float]:
        """Reserve a worker for a synchronous (OpenAI) request: (worker, seconds to wait)."""
        self.advance(ep, now)
        if ep.crashed:
            self._ensure_unhealthy_worker(ep, now)
            ep.done["FAILED"] += 1
            raise ApiError(500, self.crash_error(ep))
        slot = self._schedule(ep, now)
        if slot is None:
            raise ApiError(503, "endpoint has no workers available (workers.max is 0)")
        worker, start = slot
        worker.in_flight += 1
        return worker, max((start - now).total_seconds(), 0.0)

    def end_request(self, ep: EndpointSim, worker: WorkerSim, now: datetime, *, ok: bool) -> None:
        worker.in_flight = max(worker.in_flight - 1, 0)
        worker.last_activity = max(worker.last_activity or now, now)
        ep.done["COMPLETED" if ok else "FAILED"] += 1

    # --- crashes -------------------------------------------------------------------------
    @staticmethod
    def crash_error(ep: EndpointSim) -> str:
        return json.dumps(
            {
                "error_type": "WorkerCrashed",
                "error_message": "sandbox: the worker crashed (injected fault)",
                "worker_id": ep.workers[0].id if ep.workers else None,
            }
        )

    def _ensure_unhealthy_worker(self, ep: EndpointSim, now: datetime) -> None:
        if not ep.workers:
            self._start_worker(ep, now, keep_warm=False)

    def crash(self, ep: EndpointSim, now: datetime) -> None:
        """Workers turn UNHEALTHY (billing stops), pending jobs fail, until `recover`."""
        self.advance(ep, now)
        ep.crashed = True
        for worker in ep.workers:
            if worker.unhealthy_since is None or worker.unhealthy_since > now:
                worker.unhealthy_since = now
                worker.meter.close(now)
                worker.extra_logs.append(
                    (now, "container", "sandbox: the worker crashed (injected fault)")
                )
        for job in ep.jobs.values():
            if job.status(now) in ("IN_QUEUE", "IN_PROGRESS"):
                job.failed_at, job.error = now, self.crash_error(ep)

    def recover(self, ep: EndpointSim, now: datetime) -> None:
        ep.crashed = False
        for worker in list(ep.workers):
            if worker.unhealthy_since is not None:
                self._stop(ep, worker, now)
        self._reconcile_min(ep, now)

    # --- serverless views ----------------------------------------------------------------
    def endpoint_json(self, ep: EndpointSim, serverless_base: str) -> dict[str, Any]:
        body = copy.deepcopy(ep.config)
        base = f"{serverless_base}/{ep.id}"
        if ep.config["type"] == "QUEUE":
            urls = {
                "run": f"{base}/run",
                "runSync": f"{base}/runsync",
                "status": f"{base}/status/{{job_id}}",
                "stream": f"{base}/stream/{{job_id}}",
                "cancel": f"{base}/cancel/{{job_id}}",
                "retry": f"{base}/retry/{{job_id}}",
                "purgeQueue": f"{base}/purge-queue",
                "health": f"{base}/health",
            }
        else:
            urls = {"base": base, "health": f"{base}/ping"}
        body.update(id=ep.id, requestUrls=urls, createdAt=iso(ep.created_at))
        return body

    def workers_json(self, ep: EndpointSim, now: datetime) -> dict[str, Any]:
        self.advance(ep, now)
        workers = []
        for w in ep.workers:
            status = w.status(now)
            placed = status not in ("INITIALIZING", "THROTTLED")
            started = min(w.ready_at, w.unhealthy_since or w.ready_at)
            if status == "UNHEALTHY" and w.ready_at > now:
                started = w.created_at  # never became ready: up since its container started
            workers.append(
                {
                    "id": w.id,
                    "status": status,
                    "isStale": w.version != ep.version,
                    "version": w.version,
                    "gpuCount": w.gpu_count,
                    "image": w.image or None,
                    "uptimeSeconds": max(int((now - started).total_seconds()), 0)
                    if placed
                    else None,
                    "gpuTypeId": w.gpu_type_id if status != "THROTTLED" else None,
                    "dataCenterId": w.data_center_id if status != "THROTTLED" else None,
                    "startedAt": iso(started) if placed else None,
                }
            )
        counts = Counter(w["status"] for w in workers)
        summary = {k.lower(): counts.get(k, 0) for k in ("RUNNING", "IDLE", "INITIALIZING")}
        summary.update(
            throttled=counts.get("THROTTLED", 0),
            unhealthy=counts.get("UNHEALTHY", 0),
            total=len(workers),
        )
        return {"workers": workers, "summary": summary, "endpointVersion": ep.version}

    def releases_json(self, ep: EndpointSim, now: datetime) -> dict[str, Any]:
        self.advance(ep, now)
        per_version = Counter(w.version for w in ep.workers)
        total = len(ep.workers)
        latest = per_version.get(ep.version, 0)
        return {
            "endpointVersion": ep.version,
            "rollout": {
                "inProgress": latest < total,
                "workersOnLatest": latest,
                "workersTotal": total,
                "percentOnLatest": round(100 * latest / total) if total else 0,
            },
            "releases": [
                {**r, "workerCount": per_version.get(r["version"], 0)} for r in ep.releases
            ],
        }

    def health_json(self, ep: EndpointSim, now: datetime) -> dict[str, Any]:
        self.advance(ep, now)
        jobs = Counter(j.status(now) for j in ep.jobs.values()) + ep.done
        workers = Counter(w.status(now) for w in ep.workers)
        return {
            "jobs": {
                "completed": jobs.get("COMPLETED", 0),
                "failed": jobs.get("FAILED", 0),
                "inProgress": jobs.get("IN_PROGRESS", 0),
                "inQueue": jobs.get("IN_QUEUE", 0),
                "retried": 0,
            },
            # RunPod documents only these two keys; per-status counts (initializing,
            # throttled, unhealthy) come from GET /v2/serverless/{id}/workers.
            "workers": {"idle": workers.get("IDLE", 0), "running": workers.get("RUNNING", 0)},
        }

    def worker_logs(
        self, ep: EndpointSim, worker_id: str, now: datetime, *, tail: int, source: str | None
    ) -> list[vllm.LogLine]:
        """`GET /v2/serverless/{id}/workers/{workerId}/logs`: the backfill of a live worker."""
        self.advance(ep, now)
        worker = next((w for w in ep.workers if w.id == worker_id), None)
        if worker is None:
            raise ApiError(404, "worker not found (it is not active on this endpoint)")
        lines = list(worker.extra_logs)
        if worker.startup is not None:
            until = min(now, worker.unhealthy_since or now) if ep.crashed else now
            lines += worker.startup.log(worker.created_at, until, init_timeout=worker.init_timeout)
        return _tail(lines, tail, source)

    # --- pods ------------------------------------------------------------------------------
    def create_pod(self, body: dict[str, Any], now: datetime) -> PodSim:
        if ("gpu" in body) == ("cpu" in body):
            raise ApiError(400, "specify exactly one of gpu or cpu")
        if "cpu" in body:
            raise ApiError(400, "the sandbox simulates GPU pods only")
        template = self.get_template(body["templateId"]) if "templateId" in body else None
        if template and template["serverless"]:
            raise ApiError(422, "templateId names a serverless template; pods need a pod template")
        gpu_req = body["gpu"]
        if gpu_req.get("allowedCudaVersions") and gpu_req.get("minCudaVersion"):
            raise ApiError(400, "allowedCudaVersions and minCudaVersion are mutually exclusive")
        mounts = body.get("mounts", {})
        if "persistent" in mounts and "network" in mounts:
            raise ApiError(400, "mounts.persistent and mounts.network are mutually exclusive")
        spec = catalog.GPUS_BY_ID.get(gpu_req["id"])
        if spec is None:
            raise ApiError(400, f"unknown GPU type '{gpu_req['id']}'")
        cloud = body.get("cloud", "SECURE")
        count = int(gpu_req.get("count", 1))
        offered = spec.community if cloud == "COMMUNITY" else spec.secure
        ceiling = spec.max_community if cloud == "COMMUNITY" else spec.max_secure
        if not offered or count > ceiling or spec.id in self.no_capacity:
            raise ApiError(400, NO_CAPACITY)
        config = self._container(body, template)
        config["mounts"] = mounts or (template or {}).get("mounts", {})
        data_centers = body.get("dataCenterIds") or [catalog.DATA_CENTERS[0][0]]
        pod = PodSim(
            id=self.new_id(14),
            name=body["name"],
            config=config,
            gpu=spec,
            gpu_count=count,
            cloud=cloud,
            data_center_id=data_centers[0],
            created_at=now,
            phase_at=now,
            template_id=template["id"] if template else None,
        )
        self._open_pod_meter(pod, now)
        self.pods[pod.id] = pod
        return pod

    def _open_pod_meter(self, pod: PodSim, now: datetime) -> None:
        running_at = now + self.pod_start
        pod.meter = Meter("pod", pod.id, pod.rate_per_hour / catalog.SECONDS_PER_HOUR, running_at)
        self.meters.append(pod.meter)

    def get_pod(self, pod_id: str) -> PodSim:
        if pod_id not in self.pods:
            raise ApiError(404, "pod not found")
        return self.pods[pod_id]

    def pod_status(self, pod: PodSim, now: datetime) -> str:
        if pod.desired == "EXITED":
            return "EXITED"
        if pod.phase == "start" and now - pod.phase_at < self.pod_start / 2:
            return "PROVISIONING"
        if now < self.pod_running_at(pod):
            return "STARTING"
        return "RUNNING"

    def pod_running_at(self, pod: PodSim) -> datetime:
        """When the pod's container is (or was) up: RUNNING from then on."""
        return pod.phase_at + (self.pod_start / 2 if pod.phase == "restart" else self.pod_start)

    def pod_startup(self, pod: PodSim) -> vllm.Startup | None:
        """The simulated vLLM start inside a vLLM pod (None for other images, or when vLLM is
        not simulated). A restart keeps the container disk, so the weights are already there;
        a start after a stop downloads them again (the container disk is wiped)."""
        if not self.simulate_vllm or "vllm" not in str(pod.config.get("image", "")):
            return None
        return vllm.plan_startup(
            vllm.from_pod_args(str(pod.config.get("args") or ""), pod.config.get("env") or {}),
            gpu_id=pod.gpu.id,
            memory_gb=pod.gpu.memory,
            gpu_count=pod.gpu_count,
            container_seconds=0.0,
            weights_cached=pod.phase == "restart",
        )

    def pod_serving(self, pod: PodSim, now: datetime) -> bool:
        """Whether the server behind the pod's proxy answers (vLLM loaded, not crashing)."""
        if self.pod_status(pod, now) != "RUNNING":
            return False
        if pod.crashed_at is not None and now >= pod.crashed_at:
            return False
        startup = self.pod_startup(pod)
        if startup is None:
            return True
        after = startup.ready_after
        return after is not None and now >= self.pod_running_at(pod) + timedelta(seconds=after)

    def crash_pod(self, pod: PodSim, now: datetime, reason: str) -> None:
        """The pod's server starts crash-looping with `reason` (its container keeps
        restarting, so RunPod still reports the pod RUNNING)."""
        pod.crashed_at, pod.crash_reason = now, reason

    def pod_logs(
        self, pod: PodSim, now: datetime, *, tail: int, source: str | None
    ) -> list[vllm.LogLine]:
        """`GET /v2/pods/{id}/logs` backfill: the container's lines since it last started."""
        lines: list[vllm.LogLine] = [(pod.created_at, "system", f"pod {pod.id} created")]
        running = self.pod_running_at(pod)
        if pod.desired == "RUNNING" and now >= running:
            startup = self.pod_startup(pod)
            until = min(now, pod.crashed_at) if pod.crashed_at else now
            if startup is not None:
                lines += startup.log(running, until)
            else:
                lines.append((running, "container", f"container started ({pod.config['image']})"))
            if pod.crashed_at is not None and now >= pod.crashed_at:
                at = pod.crashed_at
                while at <= now:
                    lines.append((at, "container", pod.crash_reason))
                    lines.append((at, "system", "container exited with code 1; restarting"))
                    at += timedelta(seconds=vllm.CRASH_RESTART_SECONDS)
        return _tail(lines, tail, source)

    def pod_action(self, pod_id: str, action: str, now: datetime) -> PodSim | None:
        pod = self.get_pod(pod_id)
        status = self.pod_status(pod, now)
        if action not in _POD_ACTIONS[status]:
            raise ApiError(409, f"cannot {action} a pod that is {status}")
        if action == "terminate":
            self.delete_pod(pod_id, now)
            return None
        if action == "stop":
            pod.desired = "EXITED"
            if pod.meter:
                pod.meter.close(now)
                pod.meter = None
        elif action == "start":
            pod.desired, pod.phase, pod.phase_at = "RUNNING", "start", now
            self._open_pod_meter(pod, now)
        else:  # restart keeps the GPU (and its meter)
            pod.phase, pod.phase_at = "restart", now
        return pod

    def delete_pod(self, pod_id: str, now: datetime) -> None:
        pod = self.get_pod(pod_id)
        if pod.meter:
            pod.meter.close(now)
        del self.pods[pod_id]

    def pod_json(self, pod: PodSim, now: datetime) -> dict[str, Any]:
        status = self.pod_status(pod, now)
        running = status == "RUNNING"
        started = pod.phase_at + self.pod_start if pod.desired == "RUNNING" else None
        ssh_user = f"{pod.id}-{pod.id[:8]}"
        body: dict[str, Any] = {
            "id": pod.id,
            "name": pod.name,
            "status": status,
            "actions": _POD_ACTIONS[status],
            **{k: copy.deepcopy(pod.config[k]) for k in CONTAINER_FIELDS},
            "mounts": copy.deepcopy(pod.config["mounts"]),
            "gpu": {"id": pod.gpu.id, "count": pod.gpu_count},
            "cloud": pod.cloud,
            "dataCenterId": pod.data_center_id,
            "cudaVersion": SANDBOX_CUDA,
            "ssh": {
                "proxy": {
                    "host": "ssh.sandbox.invalid",
                    "port": 22,
                    "username": ssh_user,
                    "command": f"ssh {ssh_user}@ssh.sandbox.invalid",
                },
                "direct": None,
            },
            "template": None,
            "cost": 0.0 if status == "EXITED" else float(pod.rate_per_hour),
            "locked": False,
            "globalNetworking": {"enabled": False},
            "runtime": None,
            "createdAt": iso(pod.created_at),
            "startedAt": iso(started) if started and now >= started else None,
        }
        if running and started:
            body["runtime"] = {
                "uptime": int((now - started).total_seconds()),
                "gpus": [{"util": 0, "memoryUtil": 0} for _ in range(pod.gpu_count)],
                "ports": [],
            }
        return body

    # --- billing ---------------------------------------------------------------------------
    def billing_window(
        self,
        now: datetime,
        *,
        bucket: str,
        start: datetime | None,
        end: datetime | None,
        last_n: int | None,
    ) -> tuple[datetime, datetime]:
        if last_n is not None:
            if start is not None or end is not None:
                raise ApiError(400, "lastN is mutually exclusive with startTime/endTime")
            hi = bucket_next(bucket_floor(now, bucket), bucket)
            lo = bucket_floor(now, bucket)
            for _ in range(last_n - 1):
                lo = bucket_floor(lo - timedelta(microseconds=1), bucket)
            return lo, hi
        lo = bucket_floor(start or now - DEFAULT_BILLING_WINDOW, bucket)
        hi = bucket_ceil(end or now, bucket)
        if hi <= lo:
            raise ApiError(400, "endTime must be after startTime")
        return lo, hi

    def billing(
        self,
        kind: str,
        now: datetime,
        *,
        bucket: str,
        window: tuple[datetime, datetime],
        resource_id: str | None,
    ) -> dict[str, Any]:
        """`GET /v2/billing/serverless` (kind "serverless") or `/v2/billing/pods` ("pod")."""
        self.advance_all(now)
        effective_now = now - self.billing_lag
        lo, hi = window
        amounts: dict[tuple[datetime, str], Decimal] = {}
        for meter in self.meters:
            if meter.kind != kind or (resource_id and meter.resource_id != resource_id):
                continue
            self._accrue(meter, effective_now, lo, hi, bucket, amounts)
        id_key = "serverlessId" if kind == "serverless" else "podId"
        records = []
        for (start, rid), value in sorted(amounts.items()):
            amount = _amount(value)
            record = {
                "startTime": iso(start),
                "endTime": iso(bucket_next(start, bucket)),
                "totalAmount": amount,
                "gpuAmount": amount,
                "cpuAmount": 0.0,
                "diskAmount": 0.0,
                id_key: rid,
            }
            if kind == "serverless":
                record["feeAmount"] = 0.0
            records.append(record)
        total = sum((Decimal(str(r["totalAmount"])) for r in records), Decimal(0))
        totals = {"totalAmount": _amount(total), "gpuAmount": _amount(total)}
        totals.update(cpuAmount=0.0, diskAmount=0.0)
        if kind == "serverless":
            totals["feeAmount"] = 0.0
        unique_key = "uniqueServerlessCount" if kind == "serverless" else "uniquePodCount"
        return {
            "records": records,
            "metadata": {
                "query": {
                    "startTime": iso(lo),
                    "endTime": iso(hi),
                    "bucketSize": bucket,
                    id_key: resource_id,
                },
                "recordCount": len(records),
                unique_key: len({r[id_key] for r in records}),
                "totals": totals,
            },
        }

    @staticmethod
    def _accrue(
        meter: Meter,
        now: datetime,
        lo: datetime,
        hi: datetime,
        bucket: str,
        out: dict[tuple[datetime, str], Decimal],
    ) -> None:
        start, end = meter.span(now)
        start, end = max(start, lo), min(end, hi)
        cursor = bucket_floor(start, bucket)
        while start < end:
            nxt = bucket_next(cursor, bucket)
            piece_end = min(end, nxt)
            seconds = Decimal((piece_end - start) // timedelta(microseconds=1)) / 1_000_000
            if seconds > 0:
                key = (cursor, meter.resource_id)
                out[key] = out.get(key, Decimal(0)) + seconds * meter.rate
            start, cursor = piece_end, nxt


_POD_ACTIONS: dict[str, list[str]] = {
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
    "TERMINATED": [],
}
