"""RunPod client: REST v2 control plane and the serverless data plane, async on httpx.

Built against the official REST v2 OpenAPI spec (a copy ships as
`tools/runpod/sandbox/runpod-rest-v2.openapi.json`); not against REST v1 (retired 2026-11-15)
or GraphQL (retiring early 2027). v2 request bodies are strict: the typed request models below
forbid unknown fields so a typo fails here, before RunPod answers 422.

Transport
- One `httpx.AsyncClient` (connection pool) may be shared by many clients, one per
  organisation key: the key travels as a per-request `Authorization: Bearer` header, never in
  the pool. `make_http_pool()` builds a suitable pool.
- The key is kept in a `SecretStr`; it never appears in logs, exception text or `repr` (which
  shows `…last4` only), and any echo of it in a server message is scrubbed.

Retries (a small loop rather than tenacity: each wait depends on the response's `Retry-After`,
waits must go through the injectable `clock.sleep`, and creates need a look-up step between
attempts — three hooks that made the tenacity version longer than the loop)
- 429, 5xx and transport errors are retried up to `max_retries` times with exponential backoff
  and jitter (0.5 s × 2^n, capped at 30 s, scaled by a random factor in [0.5, 1]). A 429's
  `Retry-After` (seconds or HTTP date) is honoured exactly; if it asks for more than
  `RETRY_AFTER_LIMIT` seconds the client raises `RateLimited` at once instead of blocking.
- Creates (`POST /templates`, `/serverless`, `/pods`) are not idempotent and RunPod has been
  seen creating a resource while answering 500. After a 5xx or an ambiguous transport error
  (the request may have reached the server) the client lists that kind of resource and returns
  the one with the requested name if it exists; only if none does is the create retried. This
  relies on names being unique, which the bot guarantees (`cockpit-...`). 429 and connection
  failures (nothing was sent) are retried directly.
- Job submissions (`/run`, `/runsync`) are retried only when they surely did not run (429,
  connection failures); a 5xx there is surfaced, never resubmitted.
- A DELETE retried after a 5xx that then gets 404 counts as done (the first attempt worked).

Errors: every failure becomes one `ProviderError(service="runpod")` (or `RateLimited`) whose
text names the problem and the fix; RFC 9457 problem bodies (`title`, `detail`, `errors[]`)
are folded into the message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import Enum
from functools import cache
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from tools.clock import Clock
from tools.errors import CockpitError, ProviderError, RateLimited
from tools.metrics import OUTSIDE_API_SECONDS

log = logging.getLogger(__name__)

SERVICE = "runpod"
DEFAULT_API_URL = "https://api.runpod.io/v2"
DEFAULT_SERVERLESS_URL = "https://api.runpod.ai/v2"
# A pod's HTTP port through RunPod's proxy. vLLM's OpenAI server in our pods listens on 8000.
DEFAULT_POD_PROXY_URL = "https://{pod_id}-{port}.proxy.runpod.net"
POD_OPENAI_PORT = 8000
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 4
DEFAULT_POOL_CONNECTIONS = 100
SHARD_CONNECTIONS = 10  # connections per httpcore pool inside one shared pool
DEFAULT_MAX_TOKENS = 512
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_LIMIT = 60.0
# A cold serverless worker (image pull + model load) can take minutes before the first byte.
COLD_START_READ_TIMEOUT = 600.0
SECONDS_PER_HOUR = Decimal(3600)
USER_AGENT = "ai-dev-cockpit/0.1 (runpod-client)"
DETAIL_LIMIT = 300
DEFAULT_LOG_TAIL = 50
LOG_IDLE_SECONDS = 2.0  # a log stream with no event for this long has sent its backfill

KEY_FIX = "Set a new one with `/connect runpod` or the RUNPOD_API_KEY environment variable."
STATUS_PAGE = "https://uptime.runpod.io"

BucketSize = Literal["hour", "day", "week", "month", "year"]
PodAction = Literal["start", "stop", "restart", "terminate"]

# =========================================================================================
# Wire models (read): camelCase aliases, unknown fields ignored.
# =========================================================================================


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class GpuPrice(_Wire):
    """List prices in USD per GPU-hour; `serverless` is the GPU's pool flex rate."""

    secure: Decimal
    community: Decimal
    serverless: Decimal | None = None


class GpuMaxCount(_Wire):
    secure: int = 0
    community: int = 0


class DataCenterAvailability(_Wire):
    id: str
    name: str = ""
    availability: str | None = None


class GpuType(_Wire):
    """One entry of `GET /v2/catalog/gpus` (spec schema `GpuType`)."""

    id: str
    name: str
    pool: str | None = None
    manufacturer: str = "UNKNOWN"
    memory: int  # GB of VRAM
    secure: bool = False
    community: bool = False
    price: GpuPrice
    max_count: GpuMaxCount = Field(default_factory=GpuMaxCount)
    availability: str | None = None
    data_centers: list[DataCenterAvailability] = Field(default_factory=list)

    @property
    def serverless_price_per_second(self) -> Decimal | None:
        serverless = self.price.serverless
        return None if serverless is None else serverless / SECONDS_PER_HOUR


class Template(_Wire):
    id: str
    name: str
    image: str = ""
    args: str = ""
    disk: int | None = None
    ports: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    registry: str | None = None
    serverless: bool = False
    public: bool = False
    category: str | None = None
    allowed_cuda_versions: list[str] = Field(default_factory=list)


class EndpointGpu(_Wire):
    pools: list[str] = Field(default_factory=list)
    count: int = 1
    excluded_types: list[str] = Field(default_factory=list)
    allowed_cuda_versions: list[str] = Field(default_factory=list)
    min_cuda_version: str | None = None


class EndpointWorkers(_Wire):
    min: int = 0
    max: int = 0
    idle_timeout: int | None = None


class EndpointScaling(_Wire):
    type: str
    queue_delay: float | None = None
    request_count: int | None = None


class Endpoint(_Wire):
    """A serverless endpoint (spec schema `Endpoint`)."""

    id: str
    name: str
    type: str | None = None
    image: str | None = None
    args: str = ""
    disk: int | None = None
    ports: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    registry: str | None = None
    gpu: EndpointGpu | None = None
    workers: EndpointWorkers = Field(default_factory=EndpointWorkers)
    scaling: EndpointScaling | None = None
    data_center_ids: list[str] = Field(default_factory=list)
    network_volumes: list[str] = Field(default_factory=list)
    timeout: int | None = None
    flashboot: str | None = None
    created_at: datetime | None = None
    request_urls: dict[str, str] = Field(default_factory=dict)


class Worker(_Wire):
    id: str
    status: str  # RUNNING | IDLE | INITIALIZING | THROTTLED | UNHEALTHY
    is_stale: bool = False
    version: int | None = None
    gpu_count: int = 0
    image: str | None = None
    uptime_seconds: int | None = None
    gpu_type_id: str | None = None
    data_center_id: str | None = None
    started_at: datetime | None = None


class WorkerSummary(_Wire):
    running: int = 0
    idle: int = 0
    initializing: int = 0
    throttled: int = 0
    unhealthy: int = 0
    total: int = 0


class EndpointWorkerList(_Wire):
    """`GET /v2/serverless/{id}/workers`: the live workers and a per-status summary."""

    workers: list[Worker] = Field(default_factory=list)
    summary: WorkerSummary = Field(default_factory=WorkerSummary)
    endpoint_version: int | None = None


class ReleaseDiff(_Wire):
    field: str
    old: Any = None
    new: Any = None


class Release(_Wire):
    id: str
    version: int | None = None
    source: str = "MANUAL"
    build_id: str | None = None
    created_by_user_id: str | None = None
    worker_count: int = 0
    created_at: datetime
    diff: list[ReleaseDiff] = Field(default_factory=list)


class RolloutSummary(_Wire):
    in_progress: bool = False
    workers_on_latest: int = 0
    workers_total: int = 0
    percent_on_latest: int = 0


class ReleaseHistory(_Wire):
    """`GET /v2/serverless/{id}/releases`: releases newest first, plus the rollout state."""

    endpoint_version: int | None = None
    rollout: RolloutSummary = Field(default_factory=RolloutSummary)
    releases: list[Release] = Field(default_factory=list)


class PodGpu(_Wire):
    id: str
    count: int = 1


class Pod(_Wire):
    id: str
    name: str
    status: str
    actions: list[str] = Field(default_factory=list)
    image: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[str] = Field(default_factory=list)
    disk: int | None = None
    gpu: PodGpu | None = None
    cloud: str | None = None
    cost: Decimal = Decimal(0)  # USD per hour now (0 when stopped)
    data_center_id: str | None = None
    template: str | None = None
    runtime: dict[str, Any] | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None


class HealthJobs(_Wire):
    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    in_queue: int = 0
    retried: int = 0


class HealthWorkers(_Wire):
    """RunPod documents only `idle` and `running` here; older answers also carried
    initializing/ready/throttled/unhealthy. A key that was not sent is None (unknown), never a
    silent 0: per-status counts come from `list_workers` (GET /v2/serverless/{id}/workers)."""

    idle: int | None = None
    initializing: int | None = None
    ready: int | None = None
    running: int | None = None
    throttled: int | None = None
    unhealthy: int | None = None


class EndpointHealth(_Wire):
    """`GET {serverless}/{id}/health`: job counts and the ready workers (idle + running)."""

    jobs: HealthJobs = Field(default_factory=HealthJobs)
    workers: HealthWorkers = Field(default_factory=HealthWorkers)

    @property
    def ready_workers(self) -> int:
        w = self.workers
        return (w.idle or 0) + (w.running or 0) + (w.ready or 0)

    @property
    def total_workers(self) -> int:
        """Workers this answer accounts for (keys not sent count as none)."""
        w = self.workers
        return self.ready_workers + sum(
            n or 0 for n in (w.initializing, w.throttled, w.unhealthy)
        )


class LogLine(BaseModel):
    """One line of a worker's or pod's log (`{"ts", "source", "line"}` of the SSE stream)."""

    ts: datetime | None = None
    source: str = "container"
    line: str = ""


class PodServerCheck(BaseModel):
    """What a pod's own server answered through RunPod's proxy (`GET /v1/models`)."""

    status: int  # HTTP status; 0 when nothing answered at all
    models: list[str] = Field(default_factory=list)

    @property
    def serving(self) -> bool:
        return self.status == 200


class JobStatus(_Wire):
    """A data-plane job. FAILED jobs keep `error` (the SDK drops it; we do not)."""

    id: str
    status: str
    output: Any = None
    error: Any = None
    delay_time: int | None = None
    execution_time: int | None = None

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


class ChatUsage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    id: str = ""
    model: str = ""
    content: str
    finish_reason: str | None = None
    usage: ChatUsage | None = None


class ChatDelta(BaseModel):
    """One streamed piece: new text, and/or the finish reason, and/or the final usage."""

    content: str = ""
    finish_reason: str | None = None
    usage: ChatUsage | None = None


class BillingQuery(_Wire):
    start_time: datetime
    end_time: datetime
    bucket_size: str


class BillingTotals(_Wire):
    total_amount: Decimal
    gpu_amount: Decimal = Decimal(0)
    cpu_amount: Decimal = Decimal(0)
    disk_amount: Decimal = Decimal(0)
    fee_amount: Decimal = Decimal(0)


class ServerlessBillingRecord(BillingTotals):
    start_time: datetime
    end_time: datetime
    serverless_id: str


class PodBillingRecord(BillingTotals):
    start_time: datetime
    end_time: datetime
    pod_id: str


class BillingMetadata(_Wire):
    query: BillingQuery
    record_count: int = 0
    totals: BillingTotals


class ServerlessBilling(_Wire):
    """`GET /v2/billing/serverless`: bucketed records and the window totals (USD)."""

    records: list[ServerlessBillingRecord] = Field(default_factory=list)
    metadata: BillingMetadata

    @property
    def total(self) -> Decimal:
        return self.metadata.totals.total_amount


class PodBilling(_Wire):
    """`GET /v2/billing/pods`: bucketed records and the window totals (USD)."""

    records: list[PodBillingRecord] = Field(default_factory=list)
    metadata: BillingMetadata

    @property
    def total(self) -> Decimal:
        return self.metadata.totals.total_amount


# =========================================================================================
# Request models (write): strict like v2 itself; serialised by alias, None fields dropped.
# =========================================================================================


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class EndpointGpuRequest(_Body):
    pools: list[str]
    count: int | None = None
    excluded_types: list[str] | None = None
    allowed_cuda_versions: list[str] | None = None
    min_cuda_version: str | None = None


class EndpointGpuUpdate(_Body):
    pools: list[str] | None = None
    count: int | None = None
    excluded_types: list[str] | None = None
    allowed_cuda_versions: list[str] | None = None
    min_cuda_version: str | None = None


class WorkersRequest(_Body):
    min: int | None = None
    max: int | None = None
    idle_timeout: int | None = None


class QueueDelayScalingRequest(_Body):
    type: Literal["QUEUE_DELAY"] = "QUEUE_DELAY"
    queue_delay: float = 4.0


class RequestCountScalingRequest(_Body):
    type: Literal["REQUEST_COUNT"] = "REQUEST_COUNT"
    request_count: int


class CreateEndpointRequest(_Body):
    """`POST /v2/serverless`: one call with image, env, GPU pools, workers and scaling."""

    name: str
    type: Literal["QUEUE", "LOAD_BALANCER"] = "QUEUE"
    image: str | None = None
    template_id: str | None = None
    env: dict[str, str] | None = None
    args: str | None = None
    disk: int | None = None
    ports: list[str] | None = None
    gpu: EndpointGpuRequest
    workers: WorkersRequest | None = None
    scaling: QueueDelayScalingRequest | RequestCountScalingRequest = Field(
        default_factory=QueueDelayScalingRequest
    )
    data_center_ids: list[str] | None = None
    network_volumes: list[str] | None = None
    timeout: int | None = None
    flashboot: Literal["OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"] | None = None


class UpdateEndpointRequest(_Body):
    """`PATCH /v2/serverless/{id}`: only the fields set change; each change is a release."""

    name: str | None = None
    image: str | None = None
    template_id: str | None = None
    env: dict[str, str] | None = None
    args: str | None = None
    disk: int | None = None
    ports: list[str] | None = None
    gpu: EndpointGpuUpdate | None = None
    workers: WorkersRequest | None = None
    scaling: QueueDelayScalingRequest | RequestCountScalingRequest | None = None
    data_center_ids: list[str] | None = None
    network_volumes: list[str] | None = None
    timeout: int | None = None
    flashboot: Literal["OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"] | None = None


class CreateTemplateRequest(_Body):
    name: str
    image: str
    env: dict[str, str] | None = None
    args: str | None = None
    disk: int | None = None
    ports: list[str] | None = None
    serverless: bool | None = None
    public: bool | None = None
    category: Literal["NVIDIA", "AMD", "CPU"] | None = None
    start_ssh: bool | None = None
    start_jupyter: bool | None = None
    allowed_cuda_versions: list[str] | None = None


class PodGpuRequest(_Body):
    id: str
    count: int | None = None
    allowed_cuda_versions: list[str] | None = None
    min_cuda_version: str | None = None


class CreatePodRequest(_Body):
    name: str
    image: str | None = None
    template_id: str | None = None
    gpu: PodGpuRequest
    cloud: Literal["SECURE", "COMMUNITY"] | None = None
    env: dict[str, str] | None = None
    args: str | None = None
    disk: int | None = None
    ports: list[str] | None = None
    data_center_ids: list[str] | None = None
    start_ssh: bool | None = None
    start_jupyter: bool | None = None


Body = Mapping[str, Any] | BaseModel
_M = TypeVar("_M", bound=BaseModel)


def _body_json(body: Body) -> dict[str, Any]:
    if isinstance(body, _Body):
        return body.to_json()
    if isinstance(body, BaseModel):
        return body.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(body)


# =========================================================================================
# Helpers
# =========================================================================================


class _Retry(Enum):
    SAFE = "safe"  # reads, PATCH, DELETE, cancel, chat: retry 429 / 5xx / transport errors
    CREATE = "create"  # POST create: after a 5xx or ambiguous failure, look up by name first
    SUBMIT = "submit"  # job submission: retry only when the request surely did not run


class _MaybeCreated(Exception):
    """A create failed in a way that may still have created the resource."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


# Transport errors raised before the request could reach the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verified TLS context (certifi CA bundle), built once per process."""
    return httpx.create_ssl_context()


class _TrackedStream(httpx.AsyncByteStream):
    """A response body that reports when it is closed (the request no longer holds a slot)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None
        await self._stream.aclose()


class ShardedTransport(httpx.AsyncBaseTransport):
    """One logical connection pool made of several small httpcore pools.

    httpcore 1.0's pool spends O(connections²) CPU on every request event (its
    `_assign_requests_to_connections`; encode/httpcore#1035, encode/httpx#3215). With 100
    connections a 1,000-endpoint health sweep cost ~13 ms of CPU per request and took 16 s
    instead of ~1 s. Splitting the same connection budget into pools of `shard_size` and
    sending each request to the least busy one keeps the total limit and keep-alive reuse at
    about 1 ms of CPU per request.
    """

    def __init__(self, *, max_connections: int, shard_size: int = SHARD_CONNECTIONS) -> None:
        count = max(1, -(-max_connections // shard_size))
        per_shard = max(1, -(-max_connections // count))
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        tls = _tls_context()  # one CA bundle load (~20 ms of CPU) shared by every shard
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(count)]
        self._busy = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TrackedStream(response.stream, lambda: self._release(index))
        return response

    def _release(self, index: int) -> None:
        self._busy[index] -= 1

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Requests holding a connection, per shard (a response holds it until closed)."""
        return tuple(self._busy)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def make_http_pool(
    *, max_connections: int = DEFAULT_POOL_CONNECTIONS, timeout: float = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    """A connection pool to share between RunPod clients (one per organisation key), sized
    for the health sweep: `max_connections` in total (see ShardedTransport for the layout)."""
    transport = ShardedTransport(max_connections=max_connections)
    return httpx.AsyncClient(
        transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT}
    )


def _rfc3339(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - now).total_seconds(), 0.0)


def _problem(response: httpx.Response) -> tuple[str, str, list[str]]:
    """(title, detail, errors) from an RFC 9457 problem, `{"error": ...}` or plain text."""
    title = response.reason_phrase or ""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        html = "html" in response.headers.get("content-type", "") or text.startswith("<")
        return title, "" if html else text[:DETAIL_LIMIT], []
    if not isinstance(body, dict):
        return title, "", []
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    detail = body.get("detail") or error or body.get("message") or ""
    errors = [str(e) for e in body.get("errors") or [] if e]
    return str(body.get("title") or title), str(detail)[:DETAIL_LIMIT], errors


def _named(items: Iterable[_M], prefix: str | None) -> list[_M]:
    if prefix is None:
        return list(items)
    return [i for i in items if str(getattr(i, "name", "")).startswith(prefix)]


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` payload of each server-sent event, yielded as soon as the event ends."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


# =========================================================================================
# Client
# =========================================================================================


def _outcome(status: int) -> str:
    return "ok" if status < 400 else "rate_limited" if status == 429 else f"{status // 100}xx"


class RunPodClient:
    """Async RunPod client for one API key (REST v2 + serverless data plane)."""

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        serverless_url: str = DEFAULT_SERVERLESS_URL,
        pod_proxy_url: str = DEFAULT_POD_PROXY_URL,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ProviderError("No RunPod API key is set.", service=SERVICE, fix=KEY_FIX)
        self._key = SecretStr(api_key.strip())
        self.api_url = api_url.rstrip("/")
        self.serverless_url = serverless_url.rstrip("/")
        self.pod_proxy_url = pod_proxy_url.rstrip("/")
        self._own_http = http is None
        self._http = http if http is not None else make_http_pool(timeout=timeout)
        self._clock = clock or Clock()
        self._max_retries = max(max_retries, 0)
        self._timeout = httpx.Timeout(timeout)
        self._slow_timeout = httpx.Timeout(timeout, read=max(timeout, COLD_START_READ_TIMEOUT))
        self._rng = random.Random()

    def __repr__(self) -> str:
        return (
            f"RunPodClient(api_url={self.api_url!r}, serverless_url={self.serverless_url!r}, "
            f"key={self.key_hint!r})"
        )

    @property
    def key_hint(self) -> str:
        """The key as people may see it: `…last4`."""
        key = self._key.get_secret_value()
        return f"…{key[-4:]}" if len(key) >= 12 else "…"

    async def aclose(self) -> None:
        """Close the connection pool if this client created it (a shared pool stays open)."""
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> RunPodClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # --- plumbing ------------------------------------------------------------------------
    def _headers(self, bearer: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {bearer or self._key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def _scrub(self, text: str) -> str:
        return text.replace(self._key.get_secret_value(), self.key_hint)

    def _backoff(self, attempt: int) -> float:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        return delay * (0.5 + self._rng.random() / 2)

    def _error(self, response: httpx.Response, action: str) -> ProviderError | RateLimited:
        """The human error for a failed response to `action` ("create the endpoint 'x'")."""
        status = response.status_code
        title, detail, errors = _problem(response)
        detail = self._scrub("; ".join(errors) if errors else detail).rstrip(".")
        said = f": {detail}" if detail else ""
        if status == 401:
            return ProviderError(
                "RunPod rejected the API key (401).", service=SERVICE, status=401, fix=KEY_FIX
            )
        if status == 429:
            wait = _retry_after(response, self._clock.now()) or BACKOFF_CAP
            return RateLimited(
                f"RunPod is rate-limiting requests (429){said}.",
                retry_after=wait,
                fix=f"Wait about {wait:.0f} s and try again.",
            )
        message, fix, retryable = self._describe(status, title, action, said)
        return ProviderError(message, service=SERVICE, status=status, fix=fix, retryable=retryable)

    @staticmethod
    def _describe(status: int, title: str, action: str, said: str) -> tuple[str, str, bool]:
        if status == 403:
            fix = "Give the API key access to this resource in the RunPod console (API Keys)."
            return f"RunPod refused to {action} (403 Forbidden){said}.", fix, False
        if status == 404:
            fix = "It may have been deleted outside Cockpit; refresh the list and try again."
            return f"RunPod could not {action}: not found (404){said}.", fix, False
        if status == 422:
            fix = "This is a bug in the request Cockpit sent; please report this message."
            return f"RunPod rejected the request to {action} as invalid (422){said}.", fix, False
        if status == 409:
            fix = "The resource is not in a state that allows this; check its status and retry."
            return f"RunPod could not {action} (409 Conflict){said}.", fix, False
        if status >= 500:
            fix = f"This is usually temporary; try again in a few minutes ({STATUS_PAGE})."
            return (
                f"RunPod had a server error while trying to {action} ({status}){said}.",
                fix,
                True,
            )
        fix = "Check the settings (GPU pool, worker counts, CUDA versions) and try again."
        return f"RunPod refused to {action} ({status} {title}){said}.", fix, False

    def _transport_error(self, exc: httpx.TransportError, url: str, action: str) -> ProviderError:
        host = urlsplit(url).netloc
        return ProviderError(
            f"Could not reach RunPod ({host}) to {action}: {type(exc).__name__}.",
            service=SERVICE,
            fix=f"Check the network and RUNPOD_API_URL / RUNPOD_SERVERLESS_URL ({STATUS_PAGE}).",
            retryable=True,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        action: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        policy: _Retry = _Retry.SAFE,
        stream: bool = False,
        slow: bool = False,
        bearer: str | None = None,
    ) -> httpx.Response:
        """Send with retries; returns the final response (2xx or a non-retryable error).
        `bearer` replaces the RunPod key (a pod's own vLLM key: the account key never goes to
        a pod)."""
        timeout = self._slow_timeout if slow else self._timeout
        retried_after_5xx = False
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                url,
                json=json_body,
                params=params,
                headers=self._headers(bearer),
                timeout=timeout,
            )
            started = time.perf_counter()
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                OUTSIDE_API_SECONDS.labels(service=SERVICE, outcome="transport_error").observe(
                    time.perf_counter() - started
                )
                error = self._transport_error(exc, url, action)
                ambiguous = not isinstance(exc, _NOT_SENT)
                if ambiguous and policy is _Retry.CREATE:
                    raise _MaybeCreated(error) from exc
                if attempt >= self._max_retries or (ambiguous and policy is _Retry.SUBMIT):
                    raise error from exc
                delay, reason = self._backoff(attempt), type(exc).__name__
                retried_after_5xx = retried_after_5xx or ambiguous
            else:
                status = response.status_code
                OUTSIDE_API_SECONDS.labels(service=SERVICE, outcome=_outcome(status)).observe(
                    time.perf_counter() - started
                )
                if status == 404 and method == "DELETE" and retried_after_5xx:
                    await response.aclose()
                    return httpx.Response(204, request=request)
                if status != 429 and status < 500:
                    return response
                try:
                    if stream:
                        await response.aread()  # the error message needs the body
                    delay, reason = self._retry_plan(response, attempt, policy, action)
                finally:
                    await response.aclose()
                retried_after_5xx = retried_after_5xx or status >= 500
            log.warning(
                "RunPod %s %s: %s; retry %d/%d in %.2f s",
                method,
                urlsplit(url).path,
                reason,
                attempt + 1,
                self._max_retries,
                delay,
            )
            await self._clock.sleep(delay)
            attempt += 1

    def _retry_plan(
        self, response: httpx.Response, attempt: int, policy: _Retry, action: str
    ) -> tuple[float, str]:
        """How long to wait before retrying a 429/5xx, or raise when it must not be retried."""
        error = self._error(response, action)
        status = response.status_code
        if status >= 500 and policy is _Retry.CREATE and isinstance(error, ProviderError):
            raise _MaybeCreated(error)
        if (status >= 500 and policy is _Retry.SUBMIT) or attempt >= self._max_retries:
            raise error
        if status == 429:
            wait = _retry_after(response, self._clock.now())
            if wait is not None and wait > RETRY_AFTER_LIMIT:
                raise error
            return (wait if wait is not None else self._backoff(attempt)), "429 Too Many Requests"
        return self._backoff(attempt), f"{status} {response.reason_phrase}"

    async def _call(
        self,
        method: str,
        url: str,
        *,
        action: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        policy: _Retry = _Retry.SAFE,
        slow: bool = False,
        decimals: bool = True,
    ) -> Any:
        """One JSON exchange; returns the parsed body (None for 204) or raises the error."""
        response = await self._send(
            method, url, action=action, json_body=json_body, params=params, policy=policy, slow=slow
        )
        if response.is_error:
            raise self._error(response, action)
        if response.status_code == 204 or not response.content:
            return None
        try:
            if decimals:  # money: JSON numbers become Decimal from their text, never via float
                return json.loads(response.content, parse_float=Decimal)
            return response.json()
        except ValueError:
            raise ProviderError(
                f"RunPod sent a response that is not JSON while trying to {action}.",
                service=SERVICE,
                status=response.status_code,
                fix=f"Try again shortly; if it persists RunPod may be degraded ({STATUS_PAGE}).",
                retryable=True,
            ) from None

    def _parse(self, model: type[_M], data: Any, action: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            log.error("unexpected RunPod response to %s: %s", action, exc)
            raise ProviderError(
                f"RunPod sent an unexpected response while trying to {action}.",
                service=SERVICE,
                fix="The RunPod API may have changed; please report this message.",
            ) from None

    def _rest(self, path: str) -> str:
        return f"{self.api_url}/{path.lstrip('/')}"

    def _sls(self, endpoint_id: str, path: str) -> str:
        return f"{self.serverless_url}/{endpoint_id}/{path.lstrip('/')}"

    async def _list(self, path: str, key: str, model: type[_M], action: str) -> list[_M]:
        data = await self._call("GET", self._rest(path), action=action)
        items = data.get(key, []) if isinstance(data, dict) else []
        return [self._parse(model, item, action) for item in items]

    async def _create(self, path: str, key: str, body: dict[str, Any], action: str) -> Any:
        """POST a create; after an ambiguous failure, adopt a same-named resource if it exists."""
        name = body.get("name")
        for attempt in range(self._max_retries + 1):
            try:
                return await self._call(
                    "POST", self._rest(path), action=action, json_body=body, policy=_Retry.CREATE
                )
            except _MaybeCreated as maybe:
                found = await self._find_named(path, key, name, action, maybe.error)
                if found is not None:
                    log.warning("RunPod failed to %s but it exists; using it", action)
                    return found
                if attempt >= self._max_retries:
                    raise maybe.error from None
                await self._clock.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _find_named(
        self, path: str, key: str, name: str | None, action: str, error: ProviderError
    ) -> Any:
        """The resource a failed create may have made anyway, or None if it surely did not.
        If RunPod cannot even be asked, the create's own error is raised: retrying blind
        could create a second GPU resource."""
        if not name:
            raise error
        try:
            data = await self._call(
                "GET", self._rest(path), action=f"list after trying to {action}"
            )
        except CockpitError as lookup:
            log.warning("could not check whether RunPod managed to %s: %s", action, lookup)
            error.fix = (
                f"It may have been created anyway: check the list before retrying. {error.fix}"
            )
            raise error from None
        matches = [i for i in (data or {}).get(key, []) if i.get("name") == name]
        matches.sort(key=lambda i: str(i.get("createdAt", "")))
        return matches[-1] if matches else None

    # --- catalog -------------------------------------------------------------------------
    async def list_gpus(self, *, include_availability: bool = False) -> list[GpuType]:
        """GPU types with pod and serverless prices (USD per GPU-hour) and pool ids."""
        params = (
            {"include": "AVAILABILITY", "product": "SERVERLESS"} if include_availability else None
        )
        action = "list GPU types"
        data = await self._call("GET", self._rest("catalog/gpus"), action=action, params=params)
        return [self._parse(GpuType, g, action) for g in (data or {}).get("gpus", [])]

    # --- templates -----------------------------------------------------------------------
    async def create_template(self, body: CreateTemplateRequest | Body) -> Template:
        payload = _body_json(body)
        action = f"create the template '{payload.get('name')}'"
        return self._parse(
            Template, await self._create("templates", "templates", payload, action), action
        )

    async def get_template(self, template_id: str) -> Template:
        action = f"get template {template_id}"
        data = await self._call("GET", self._rest(f"templates/{template_id}"), action=action)
        return self._parse(Template, data, action)

    async def list_templates(self, *, name_prefix: str | None = None) -> list[Template]:
        templates = await self._list("templates", "templates", Template, "list templates")
        return _named(templates, name_prefix)

    async def delete_template(self, template_id: str) -> None:
        action = f"delete template {template_id}"
        await self._call("DELETE", self._rest(f"templates/{template_id}"), action=action)

    # --- serverless endpoints ------------------------------------------------------------
    async def create_endpoint(self, body: CreateEndpointRequest | Body) -> Endpoint:
        """Create a serverless endpoint (`POST /v2/serverless`); see the create note above."""
        payload = _body_json(body)
        action = f"create the serverless endpoint '{payload.get('name')}'"
        data = await self._create("serverless", "endpoints", payload, action)
        return self._parse(Endpoint, data, action)

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        action = f"get serverless endpoint {endpoint_id}"
        data = await self._call("GET", self._rest(f"serverless/{endpoint_id}"), action=action)
        return self._parse(Endpoint, data, action)

    async def list_endpoints(self, *, name_prefix: str | None = None) -> list[Endpoint]:
        """All serverless endpoints, optionally only those named `name_prefix...` (reconcile)."""
        endpoints = await self._list(
            "serverless", "endpoints", Endpoint, "list serverless endpoints"
        )
        return _named(endpoints, name_prefix)

    async def update_endpoint(
        self, endpoint_id: str, body: UpdateEndpointRequest | Body
    ) -> Endpoint:
        """PATCH an endpoint; each change creates a new release (see `list_releases`)."""
        action = f"update serverless endpoint {endpoint_id}"
        data = await self._call(
            "PATCH",
            self._rest(f"serverless/{endpoint_id}"),
            action=action,
            json_body=_body_json(body),
        )
        return self._parse(Endpoint, data, action)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        action = f"delete serverless endpoint {endpoint_id}"
        await self._call("DELETE", self._rest(f"serverless/{endpoint_id}"), action=action)

    async def list_workers(self, endpoint_id: str) -> EndpointWorkerList:
        action = f"list the workers of endpoint {endpoint_id}"
        data = await self._call(
            "GET", self._rest(f"serverless/{endpoint_id}/workers"), action=action
        )
        return self._parse(EndpointWorkerList, data, action)

    async def list_releases(self, endpoint_id: str) -> ReleaseHistory:
        action = f"list the releases of endpoint {endpoint_id}"
        data = await self._call(
            "GET", self._rest(f"serverless/{endpoint_id}/releases"), action=action
        )
        return self._parse(ReleaseHistory, data, action)

    async def worker_logs(
        self, endpoint_id: str, worker_id: str, *, tail: int = DEFAULT_LOG_TAIL
    ) -> list[LogLine]:
        """The last `tail` lines of a serverless worker's log (only live workers have logs)."""
        url = self._rest(f"serverless/{endpoint_id}/workers/{worker_id}/logs")
        return await self._logs(url, f"read the logs of worker {worker_id}", tail)

    async def _logs(self, url: str, action: str, tail: int) -> list[LogLine]:
        """Read the backfill of a log stream (SSE). RunPod keeps the stream open for live
        lines, so reading stops after `tail` events or when no event came for a moment."""
        response = await self._send(
            "GET", url, action=action, params={"tail": str(tail)}, stream=True
        )
        lines: list[LogLine] = []
        try:
            if response.is_error:
                await response.aread()
                raise self._error(response, action)
            events = _sse_data(response).__aiter__()
            while len(lines) < tail:
                try:
                    data = await asyncio.wait_for(events.__anext__(), LOG_IDLE_SECONDS)
                except (StopAsyncIteration, TimeoutError):
                    break
                try:
                    lines.append(LogLine.model_validate(json.loads(data)))
                except ValueError:
                    continue
        except httpx.TransportError as exc:
            raise self._transport_error(exc, url, action) from exc
        finally:
            await response.aclose()
        return lines

    # --- pods ----------------------------------------------------------------------------
    async def pod_logs(self, pod_id: str, *, tail: int = DEFAULT_LOG_TAIL) -> list[LogLine]:
        """The last `tail` lines of a pod's log (container and system)."""
        url = self._rest(f"pods/{pod_id}/logs")
        return await self._logs(url, f"read the logs of pod {pod_id}", tail)

    async def check_pod_server(self, pod_id: str, api_key: str) -> PodServerCheck:
        """One `GET /v1/models` to the pod's vLLM through RunPod's proxy, with the pod's own
        key and no retries: 200 = serving; 502 = nothing listening yet (loading, or crashed);
        401 = it refused the key. A pod is RUNNING long before this answers 200."""
        url = f"{self.pod_url(pod_id)}/v1/models"
        request = self._http.build_request(
            "GET", url, headers=self._headers(api_key), timeout=self._timeout
        )
        try:
            response = await self._http.send(request)
        except httpx.TransportError:
            return PodServerCheck(status=0)
        if response.status_code != 200:
            return PodServerCheck(status=response.status_code)
        try:
            data = response.json()
            ids = [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            return PodServerCheck(status=response.status_code)
        return PodServerCheck(status=200, models=ids)

    async def create_pod(self, body: CreatePodRequest | Body) -> Pod:
        payload = _body_json(body)
        action = f"create the pod '{payload.get('name')}'"
        return self._parse(Pod, await self._create("pods", "pods", payload, action), action)

    async def get_pod(self, pod_id: str) -> Pod:
        action = f"get pod {pod_id}"
        return self._parse(
            Pod, await self._call("GET", self._rest(f"pods/{pod_id}"), action=action), action
        )

    async def list_pods(self, *, name_prefix: str | None = None) -> list[Pod]:
        return _named(await self._list("pods", "pods", Pod, "list pods"), name_prefix)

    async def pod_action(self, pod_id: str, action: PodAction) -> Pod | None:
        """start / stop / restart (returns the pod) or terminate (returns None)."""
        what = f"{action} pod {pod_id}"
        data = await self._call(
            "POST", self._rest(f"pods/{pod_id}/action"), action=what, json_body={"action": action}
        )
        return None if data is None else self._parse(Pod, data, what)

    async def delete_pod(self, pod_id: str) -> None:
        await self._call("DELETE", self._rest(f"pods/{pod_id}"), action=f"delete pod {pod_id}")

    # --- billing -------------------------------------------------------------------------
    async def billing_serverless(
        self,
        start: datetime,
        end: datetime,
        bucket_size: BucketSize = "day",
        serverless_id: str | None = None,
    ) -> ServerlessBilling:
        """Serverless spend per endpoint per bucket in [start, end) (RunPod snaps to buckets)."""
        params = {"startTime": _rfc3339(start), "endTime": _rfc3339(end), "bucketSize": bucket_size}
        if serverless_id:
            params["serverlessId"] = serverless_id
        action = "read serverless billing"
        data = await self._call(
            "GET", self._rest("billing/serverless"), action=action, params=params
        )
        return self._parse(ServerlessBilling, data, action)

    async def billing_pods(
        self,
        start: datetime,
        end: datetime,
        bucket_size: BucketSize = "day",
        pod_id: str | None = None,
    ) -> PodBilling:
        """Pod spend per pod per bucket in [start, end) (RunPod snaps to buckets)."""
        params = {"startTime": _rfc3339(start), "endTime": _rfc3339(end), "bucketSize": bucket_size}
        if pod_id:
            params["podId"] = pod_id
        action = "read pod billing"
        data = await self._call("GET", self._rest("billing/pods"), action=action, params=params)
        return self._parse(PodBilling, data, action)

    # --- serverless data plane -----------------------------------------------------------
    async def health(self, endpoint_id: str) -> EndpointHealth:
        """Worker and job counts of an endpoint (does not wake a scaled-to-zero endpoint)."""
        action = f"check the health of endpoint {endpoint_id}"
        data = await self._call(
            "GET", self._sls(endpoint_id, "health"), action=action, decimals=False
        )
        return self._parse(EndpointHealth, data, action)

    async def run(
        self,
        endpoint_id: str,
        job_input: Any,
        *,
        webhook: str | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> JobStatus:
        """Queue a job (`/run`); returns its id and status (usually IN_QUEUE)."""
        body = self._job_body(job_input, webhook, policy)
        action = f"submit a job to endpoint {endpoint_id}"
        data = await self._call(
            "POST",
            self._sls(endpoint_id, "run"),
            action=action,
            json_body=body,
            policy=_Retry.SUBMIT,
            decimals=False,
        )
        return self._parse(JobStatus, data, action)

    async def runsync(
        self,
        endpoint_id: str,
        job_input: Any,
        *,
        wait_ms: int | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> JobStatus:
        """Run a job and wait (`/runsync`); may still return IN_QUEUE/IN_PROGRESS: poll
        `status` then. FAILED results keep their `error`."""
        params = {"wait": str(wait_ms)} if wait_ms is not None else None
        action = f"run a job on endpoint {endpoint_id}"
        data = await self._call(
            "POST",
            self._sls(endpoint_id, "runsync"),
            action=action,
            params=params,
            json_body=self._job_body(job_input, None, policy),
            policy=_Retry.SUBMIT,
            slow=True,
            decimals=False,
        )
        return self._parse(JobStatus, data, action)

    @staticmethod
    def _job_body(
        job_input: Any, webhook: str | None, policy: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"input": job_input}
        if webhook:
            body["webhook"] = webhook
        if policy:
            body["policy"] = dict(policy)
        return body

    async def status(self, endpoint_id: str, job_id: str) -> JobStatus:
        action = f"get the status of job {job_id}"
        data = await self._call(
            "GET", self._sls(endpoint_id, f"status/{job_id}"), action=action, decimals=False
        )
        return self._parse(JobStatus, data, action)

    async def cancel(self, endpoint_id: str, job_id: str) -> JobStatus:
        action = f"cancel job {job_id}"
        data = await self._call(
            "POST", self._sls(endpoint_id, f"cancel/{job_id}"), action=action, decimals=False
        )
        return self._parse(JobStatus, data, action)

    async def list_models(self, endpoint_id: str) -> list[str]:
        """Model ids served by an endpoint's OpenAI-compatible route (wakes the endpoint)."""
        action = f"list the models of endpoint {endpoint_id}"
        data = await self._call(
            "GET",
            self._sls(endpoint_id, "openai/v1/models"),
            action=action,
            slow=True,
            decimals=False,
        )
        return [str(m.get("id")) for m in (data or {}).get("data", []) if isinstance(m, dict)]

    @staticmethod
    def _chat_body(
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int,
        temperature: float | None,
        extra: Mapping[str, Any] | None,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            **(extra or {}),
        }
        if temperature is not None:
            body["temperature"] = temperature
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    async def chat_completion(
        self,
        endpoint_id: str,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        temperature: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatCompletion:
        """A whole (non-streamed) OpenAI-compatible chat completion."""
        action = f"chat with the model on endpoint {endpoint_id}"
        body = self._chat_body(messages, model, max_tokens, temperature, extra, stream=False)
        data = await self._call(
            "POST",
            self._sls(endpoint_id, "openai/v1/chat/completions"),
            action=action,
            json_body=body,
            slow=True,
            decimals=False,
        )
        choice = ((data or {}).get("choices") or [{}])[0]
        usage = (data or {}).get("usage")
        return ChatCompletion(
            id=str(data.get("id", "")),
            model=str(data.get("model", model)),
            content=str((choice.get("message") or {}).get("content") or ""),
            finish_reason=choice.get("finish_reason"),
            usage=ChatUsage.model_validate(usage) if isinstance(usage, dict) else None,
        )

    async def stream_chat(
        self,
        endpoint_id: str,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        temperature: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ChatDelta]:
        """Stream a chat completion: each token as a `ChatDelta` as soon as it arrives, then a
        delta with the finish reason, then one with the usage (requested via include_usage).
        Retries happen only before the first byte; a stream that breaks raises ProviderError."""
        action = f"chat with the model on endpoint {endpoint_id}"
        body = self._chat_body(messages, model, max_tokens, temperature, extra, stream=True)
        url = self._sls(endpoint_id, "openai/v1/chat/completions")
        async for delta in self._stream_chat(url, body, action):
            yield delta

    def pod_url(self, pod_id: str, port: int = POD_OPENAI_PORT) -> str:
        return self.pod_proxy_url.format(pod_id=pod_id, port=port)

    async def stream_pod_chat(
        self,
        pod_id: str,
        api_key: str,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ChatDelta]:
        """`stream_chat` for a pod running vLLM's OpenAI server, through RunPod's proxy, with
        the pod's own API key (`VLLM_API_KEY`); `extra` adds request fields (ignore_eos)."""
        action = f"chat with the model on pod {pod_id}"
        body = self._chat_body(messages, model, max_tokens, None, extra, stream=True)
        url = f"{self.pod_url(pod_id)}/v1/chat/completions"
        try:
            async for delta in self._stream_chat(url, body, action, bearer=api_key):
                yield delta
        except ProviderError as exc:
            if exc.status != 401:
                raise
            raise ProviderError(
                f"The model server on pod {pod_id} refused the bot's key (401): the pod was "
                "started without it, or COCKPIT_SECRET_KEY changed since.",
                service=SERVICE,
                status=401,
                fix="Delete the deployment and deploy it again.",
            ) from exc

    async def _stream_chat(
        self, url: str, body: dict[str, Any], action: str, *, bearer: str | None = None
    ) -> AsyncIterator[ChatDelta]:
        response = await self._send(
            "POST", url, action=action, json_body=body, stream=True, slow=True, bearer=bearer
        )
        try:
            if response.is_error:
                await response.aread()
                raise self._error(response, action)
            async for delta in self._deltas(response, action):
                yield delta
        except httpx.TransportError as exc:
            raise self._transport_error(exc, url, action) from exc
        finally:
            await response.aclose()

    async def _deltas(self, response: httpx.Response, action: str) -> AsyncIterator[ChatDelta]:
        async for data in _sse_data(response):
            if data.strip() == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                log.warning("skipping a malformed SSE event while trying to %s", action)
                continue
            if chunk.get("error"):
                error = chunk["error"]
                detail = error.get("message") if isinstance(error, dict) else error
                raise ProviderError(
                    f"The model failed mid-reply while trying to {action}: "
                    f"{self._scrub(str(detail))}",
                    service=SERVICE,
                    fix="Try again; if it keeps failing check the endpoint's workers and logs.",
                    retryable=True,
                )
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason")
                if content or finish:
                    yield ChatDelta(content=content, finish_reason=finish)
            if isinstance(chunk.get("usage"), dict):
                yield ChatDelta(usage=ChatUsage.model_validate(chunk["usage"]))
