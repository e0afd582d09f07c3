"""SQLModel tables. Every row that belongs to a team carries `org_id`; queries live in the
sibling modules and always filter by it.

Conventions: datetimes are timezone-aware UTC (sqlmodel's UTCDateTime rejects naive ones);
money is stored as
integer micro-dollars through `Money`, read back as `Decimal` — exact sums on both engines.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# --- statuses ---------------------------------------------------------------------------------
# Stored as their plain values (the columns stay strings: no migration), compared by member.


class DeploymentStatus(StrEnum):
    pending = "pending"
    creating = "creating"
    waiting = "waiting"  # created at RunPod, waiting for a healthy worker
    starting = "starting"  # a pod started again
    healthy = "healthy"
    degraded = "degraded"
    unhealthy = "unhealthy"
    stopped = "stopped"
    failed = "failed"
    deleted = "deleted"


class HealthState(StrEnum):
    unknown = "unknown"
    healthy = "healthy"
    degraded = "degraded"
    unhealthy = "unhealthy"


class ApprovalStatus(StrEnum):
    pending = "pending"
    executing = "executing"
    executed = "executed"
    failed = "failed"
    cancelled = "cancelled"
    expired = "expired"


class AlertState(StrEnum):
    firing = "firing"
    resolved = "resolved"


class DeliveryStatus(StrEnum):
    sent = "sent"
    failed = "failed"


class BenchStatus(StrEnum):
    running = "running"
    done = "done"
    stopped = "stopped"
    cancelled = "cancelled"
    failed = "failed"


MICROS = Decimal(1_000_000)


class Money(TypeDecorator[Decimal]):
    """Decimal dollars stored as BIGINT micro-dollars (exact, indexable, summable)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        return int((Decimal(value) * MICROS).to_integral_value())

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)) / MICROS


def money_field(default: Decimal | None = Decimal(0), nullable: bool = False) -> Any:
    return Field(default=default, sa_column=Column(Money(), nullable=nullable))


def text_field(default: str = "") -> Any:
    return Field(default=default, sa_column=Column(Text(), nullable=False, default=default))


class Organization(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    created_at: datetime
    # Pods and always-on workers idle this long are warned, then stopped (never if protected).
    idle_stop_minutes: int = 60


class Workspace(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("platform", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    platform: str  # slack | discord | console | api
    external_id: str
    name: str
    timezone: str = "UTC"
    created_at: datetime


class Member(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "platform", "platform_user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    platform: str
    platform_user_id: str
    display_name: str
    role: str
    created_at: datetime


class Invite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    code_hash: str = Field(unique=True)
    role: str
    # Bound to a platform user id (never a display name, which its owner can change);
    # invited_platform is None only on invites created before 0006 (user id alone).
    invited_user: str | None = None
    invited_platform: str | None = None
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by: str | None = None


class Credential(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "provider"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    provider: str  # runpod | huggingface | anthropic
    encrypted_secret: str = text_field()
    last4: str
    created_by: str
    created_at: datetime
    updated_at: datetime


class ApiKey(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    name: str
    prefix: str = Field(index=True)
    key_hash: str = Field(unique=True)
    role: str
    scopes: str = ""  # space-separated tool names or "*"
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class Deployment(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key"),
        Index("ix_deployment_org_status", "org_id", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    workspace_id: int | None = Field(default=None, foreign_key="workspace.id")
    name: str
    model_id: str
    mode: str = "serverless"  # serverless | pod
    gpu_pool: str | None = None
    gpu_type: str | None = None
    gpu_count: int = 1
    status: str = DeploymentStatus.pending  # a DeploymentStatus value
    health_state: str = HealthState.unknown
    provider_template_id: str | None = None
    provider_endpoint_id: str | None = Field(default=None, index=True)
    provider_pod_id: str | None = None
    price_per_hour: Decimal = money_field()
    settings_json: str = text_field("{}")
    current_revision: int = 1
    protected: bool = False
    idempotency_key: str | None = None
    failure_reason: str | None = None
    # The process instance running this work while it is in flight (ProcessInstance.id);
    # start-up and the recover job clean up only work whose owner is gone.
    owner: str | None = None
    created_by: str
    channel: str | None = None
    thread: str | None = None
    created_at: datetime
    updated_at: datetime
    healthy_at: datetime | None = None
    stopped_at: datetime | None = None
    last_request_at: datetime | None = None
    health_failures: int = 0  # consecutive failed health checks
    jobs_seen: int = 0  # completed+running jobs at the last check: a change means traffic
    last_health_at: datetime | None = None
    idle_warned_at: datetime | None = None


class DeploymentRevision(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("deployment_id", "revision"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    revision: int
    model_id: str
    settings_json: str = text_field("{}")
    provider_release: str | None = None
    created_by: str
    created_at: datetime


class LedgerEntry(SQLModel, table=True):
    __table_args__ = (
        Index("ix_ledger_org_start", "org_id", "period_start"),
        Index("ix_ledger_org_dep_start", "org_id", "deployment_id", "period_start"),
        # covers the spend queries (ledger.entries/total by kind): index-only, in time order
        Index(
            "ix_ledger_org_kind_start",
            "org_id",
            "kind",
            "period_start",
            "deployment_id",
            "amount",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    deployment_id: int | None = Field(default=None, foreign_key="deployment.id")
    kind: str  # gpu | agent | other
    source: str = "estimate"  # estimate | billing
    period_start: datetime
    period_end: datetime
    amount: Decimal = money_field()
    user: str | None = None
    gpu: str | None = None
    description: str = ""
    created_at: datetime


class Budget(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    period: str = "monthly"  # weekly | monthly
    amount: Decimal = money_field()
    thresholds: str = "50,80,100"
    hard_cap: bool = False
    auto_stop: bool = False
    updated_by: str
    updated_at: datetime


class AlertRoute(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    kind: str  # discord_webhook | discord_channel | slack_channel
    target_encrypted: str = text_field()  # webhook URLs carry a token: encrypted like any secret
    target_label: str
    min_severity: str = "info"
    quiet_hours: str | None = None  # "22-07" in the workspace timezone
    created_by: str
    created_at: datetime


class Alert(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    key: str
    severity: str
    title: str
    details: str = text_field()
    deployment_id: int | None = Field(default=None, foreign_key="deployment.id")
    state: str = AlertState.firing
    count: int = 1
    first_seen: datetime
    last_seen: datetime
    last_sent_at: datetime | None = None
    resolved_at: datetime | None = None


class AlertDelivery(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    alert_id: int = Field(foreign_key="alert.id")
    route_id: int = Field(foreign_key="alertroute.id")
    status: str  # a DeliveryStatus value
    attempts: int = 1
    error: str | None = None
    created_at: datetime


class AlertAck(SQLModel, table=True):
    """Someone took an alert: repeats of this incident (`incident_at` = the alert's
    `first_seen`) stay quiet until it resolves."""

    __table_args__ = (UniqueConstraint("alert_id", "incident_at"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    alert_id: int = Field(foreign_key="alert.id")
    incident_at: datetime
    user_id: str
    user_name: str
    created_at: datetime


class AlertSilence(SQLModel, table=True):
    """Nothing is delivered for alert `key` between `created_at` and `ends_at` (or until
    someone ends it early: `ended_at`)."""

    __table_args__ = (Index("ix_alertsilence_org_key", "org_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    key: str
    title: str
    user_id: str
    user_name: str
    created_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None


class AlertPost(SQLModel, table=True):
    """Where an incident's first message went on one route (Slack channel + ts, Discord
    channel + message id): resolves and repeats reply to it, state changes edit it."""

    __table_args__ = (Index("ix_alertpost_alert", "alert_id", "incident_at"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    alert_id: int = Field(foreign_key="alert.id")
    route_id: int = Field(foreign_key="alertroute.id")
    incident_at: datetime
    channel: str
    ref: str
    created_at: datetime


class AuditEvent(SQLModel, table=True):
    __table_args__ = (
        Index("ix_audit_org_created", "org_id", "created_at"),
        # The audit queries by person (`/audit --user`, activity per person) read one actor's
        # rows in time order without visiting the organisation's others.
        Index("ix_audit_org_actor_created", "org_id", "actor", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    workspace_id: int | None = None
    actor: str
    actor_role: str
    platform: str
    tool: str
    outcome: str  # allowed|denied|approval_requested|approved|expired|cancelled|failed|succeeded
    args_json: str = text_field("{}")
    detail: str = text_field()
    request_id: str = ""
    created_at: datetime


class DailyCommandCount(SQLModel, table=True):
    """Rows that count against the daily per-person cap, per (organisation, person, UTC day):
    incremented in the unit of work that writes the counted audit row, so every process reads
    the same figure in one indexed look-up instead of recounting the day's audit trail."""

    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    actor: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    count: int = 0


class ProcessedEvent(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    key: str
    result_json: str = text_field("{}")
    created_at: datetime


class Conversation(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "platform", "channel", "thread"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    workspace_id: int | None = None
    platform: str
    channel: str
    thread: str
    kind: str = "agent"  # agent | model_chat
    deployment_id: int | None = Field(default=None, foreign_key="deployment.id")
    created_at: datetime


class ConversationMessage(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    role: str  # user | assistant | tool
    content: str = text_field()
    tokens: int = 0
    created_at: datetime


class Approval(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    workspace_id: int | None = None
    tool: str
    args_json: str = text_field("{}")
    request_json: str = text_field("{}")  # the requester's RequestContext, to run as them
    summary: str = text_field()
    requester: str
    # None: the requester or an admin may approve; "admin": only an admin (e.g. over a hard cap)
    approver_role: str | None = None
    status: str = ApprovalStatus.pending
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    # The process instance running this work while it is in flight (ProcessInstance.id);
    # start-up and the recover job clean up only work whose owner is gone.
    owner: str | None = None
    result_text: str = text_field()
    created_at: datetime


class CacheEntry(SQLModel, table=True):
    """Shared cache of public metadata (Hugging Face model info); holds nothing per team."""

    key: str = Field(primary_key=True)
    value_json: str = text_field("{}")
    expires_at: datetime


class ProcessInstance(SQLModel, table=True):
    """A running bot process (web, worker, discord, console), seen by the others: it says it is
    alive every few seconds, so a process that starts never cleans up another's live work."""

    id: str = Field(primary_key=True)  # random per process start
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime


class SchedulerLease(SQLModel, table=True):
    name: str = Field(primary_key=True)
    owner: str
    expires_at: datetime


class BenchRun(SQLModel, table=True):
    """One `/bench` run against a deployment: what was asked, and the figures per concurrency
    level (`results_json`); the columns below are what `/bench history` compares."""

    __table_args__ = (
        Index("ix_benchrun_org_created", "org_id", "created_at"),
        # One running run per deployment, whichever process started it (web, discord, worker).
        Index(
            "ux_benchrun_one_running",
            "org_id",
            "deployment_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    deployment_name: str
    model_id: str
    gpu: str  # pool or GPU type, as the deployment names it
    gpu_count: int = 1
    mode: str = "serverless"
    status: str = BenchStatus.running
    requested_by: str
    simulated: bool = False  # the sandbox's simulated hardware, not a real GPU
    price_per_hour: Decimal = money_field()  # what the serving workers billed, all GPUs
    settings_json: str = text_field("{}")
    results_json: str = text_field("{}")
    best_tokens_per_second: float | None = None  # aggregate output tokens/s, best level
    best_concurrency: int | None = None
    ttft_p50_seconds: float | None = None  # at the lowest concurrency
    cost_per_million_output: float | None = None  # at the best level
    cost_per_million_input: float | None = None
    cold_start_seconds: float | None = None
    stop_reason: str | None = None
    # The process instance running this work while it is in flight (ProcessInstance.id);
    # start-up and the recover job clean up only work whose owner is gone.
    owner: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


# Tables owned by the Slack surface live in their own module; importing it here registers them on
# the same metadata, so alembic and every user of these models see one complete schema.
from storage import slack_models as _slack_models  # noqa: E402, F401
