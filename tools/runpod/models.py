"""RunPod wire models: what REST v2 and the serverless data plane send (read models: camelCase
aliases, unknown fields ignored) and what the client sends (request models: strict like v2
itself, so a typo fails here before RunPod answers 422)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

SECONDS_PER_HOUR = Decimal(3600)

BucketSize = Literal["hour", "day", "week", "month", "year"]
PodAction = Literal["start", "stop", "restart", "terminate"]


class PodStatus(StrEnum):
    """`PodStatus` in the REST v2 spec."""

    PROVISIONING = "PROVISIONING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    ERROR = "ERROR"
    TERMINATED = "TERMINATED"


class WorkerStatus(StrEnum):
    """`WorkerStatus` in the REST v2 spec."""

    RUNNING = "RUNNING"
    IDLE = "IDLE"
    INITIALIZING = "INITIALIZING"
    THROTTLED = "THROTTLED"
    UNHEALTHY = "UNHEALTHY"


class JobState(StrEnum):
    """A serverless job's `status` on the data plane."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


JOB_FINAL_STATES = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT)


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
    status: str  # a WorkerStatus value
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
        return self.ready_workers + sum(n or 0 for n in (w.initializing, w.throttled, w.unhealthy))


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
        return self.status in JOB_FINAL_STATES


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
ModelT = TypeVar("ModelT", bound=BaseModel)


def body_json(body: Body) -> dict[str, Any]:
    if isinstance(body, _Body):
        return body.to_json()
    if isinstance(body, BaseModel):
        return body.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(body)
