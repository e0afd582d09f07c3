"""Settings from the environment and `.env` (names as in README.md, Configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RUNPOD_API_URL = "https://api.runpod.io/v2"
DEFAULT_RUNPOD_SERVERLESS_URL = "https://api.runpod.ai/v2"
DEFAULT_AGENT_MODEL = "claude-sonnet-4-5"
DEFAULT_WEB_PORT = 3000
# Loopback unless told otherwise: a hosted deployment passes `--host 0.0.0.0` (see Procfile).
DEFAULT_WEB_HOST = "127.0.0.1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    data_dir: Path = Field(default=Path("./data"), alias="COCKPIT_DATA_DIR")
    secret_key: str | None = Field(default=None, alias="COCKPIT_SECRET_KEY", repr=False)
    sandbox: Literal["auto", "on", "off"] = Field(default="auto", alias="COCKPIT_SANDBOX")
    log_level: str = Field(default="INFO", alias="COCKPIT_LOG_LEVEL")
    rate_limit_per_minute: int = Field(default=30, alias="COCKPIT_RATE_LIMIT_PER_MINUTE")
    daily_limit_per_user: int = Field(default=2000, alias="COCKPIT_DAILY_LIMIT_PER_USER")
    approval_ttl_seconds: int = Field(default=600, alias="COCKPIT_APPROVAL_TTL_SECONDS")
    sandbox_worker_ready_seconds: float = Field(default=8.0, alias="COCKPIT_SANDBOX_READY_SECONDS")
    # keep the sandbox account in <data dir>/sandbox-state.json across restarts
    sandbox_state: bool = Field(default=True, alias="COCKPIT_SANDBOX_STATE")

    runpod_api_key: str | None = Field(default=None, alias="RUNPOD_API_KEY", repr=False)
    runpod_api_url: str = Field(default=DEFAULT_RUNPOD_API_URL, alias="RUNPOD_API_URL")
    runpod_serverless_url: str = Field(
        default=DEFAULT_RUNPOD_SERVERLESS_URL, alias="RUNPOD_SERVERLESS_URL"
    )
    # How a pod's HTTP port is reached (chat with pod deployments): RunPod's proxy by default.
    runpod_pod_proxy_url: str = Field(
        default="https://{pod_id}-{port}.proxy.runpod.net", alias="RUNPOD_POD_PROXY_URL"
    )

    hf_token: str | None = Field(default=None, alias="HF_TOKEN", repr=False)
    hf_endpoint: str | None = Field(default=None, alias="HF_ENDPOINT")
    # auto: answer from the bundled snapshot in the sandbox unless HF_ENDPOINT/HF_TOKEN is set
    hub_offline: Literal["auto", "on", "off"] = Field(default="auto", alias="COCKPIT_HUB_OFFLINE")

    anthropic_api_key: str | None = Field(default=None, alias="ANTHROPIC_API_KEY", repr=False)
    anthropic_base_url: str | None = Field(default=None, alias="ANTHROPIC_BASE_URL")
    agent_model: str = Field(default=DEFAULT_AGENT_MODEL, alias="COCKPIT_AGENT_MODEL")
    skills_dirs: str = Field(default="", alias="COCKPIT_SKILLS_DIRS")  # extra skill folders

    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN", repr=False)
    slack_app_token: str | None = Field(default=None, alias="SLACK_APP_TOKEN", repr=False)
    slack_signing_secret: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET", repr=False)
    slack_client_id: str | None = Field(default=None, alias="SLACK_CLIENT_ID")
    slack_client_secret: str | None = Field(default=None, alias="SLACK_CLIENT_SECRET", repr=False)
    slack_api_url: str | None = Field(default=None, alias="SLACK_API_URL")

    discord_bot_token: str | None = Field(default=None, alias="DISCORD_BOT_TOKEN", repr=False)
    discord_api_url: str | None = Field(default=None, alias="DISCORD_API_URL")
    # "Admins=admin,Ops=member": Discord role (name or id) → bot role; empty: roles stay as stored
    discord_role_map: str = Field(default="", alias="COCKPIT_DISCORD_ROLE_MAP")

    port: int | None = Field(default=None, alias="PORT")
    host: str = Field(default=DEFAULT_WEB_HOST, alias="COCKPIT_HOST")
    # When set, /metrics (web and worker) answers only `Authorization: Bearer <token>`.
    metrics_token: str | None = Field(default=None, alias="COCKPIT_METRICS_TOKEN", repr=False)

    # background sweeps (seconds; 0 disables one)
    health_interval_seconds: int = Field(default=60, alias="COCKPIT_HEALTH_INTERVAL")
    cost_interval_seconds: int = Field(default=300, alias="COCKPIT_COST_INTERVAL")
    idle_interval_seconds: int = Field(default=300, alias="COCKPIT_IDLE_INTERVAL")
    reconcile_interval_seconds: int = Field(default=3600, alias="COCKPIT_RECONCILE_INTERVAL")
    digest_hour_utc: int = Field(default=9, alias="COCKPIT_DIGEST_HOUR", ge=0, le=23)
    health_probe: bool = Field(default=False, alias="COCKPIT_HEALTH_PROBE")
    auto_rollback: bool = Field(default=False, alias="COCKPIT_AUTO_ROLLBACK")
    alert_cooldown_minutes: int = Field(default=15, alias="COCKPIT_ALERT_COOLDOWN_MINUTES")
    # `cockpit worker` serves Prometheus /metrics here (0 turns it off)
    worker_metrics_port: int = Field(default=9101, alias="COCKPIT_WORKER_METRICS_PORT")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'cockpit.db').as_posix()}"

    @property
    def use_sandbox(self) -> bool:
        if self.sandbox == "on":
            return True
        if self.sandbox == "off":
            return False
        return not self.runpod_api_key

    @property
    def use_hub_snapshot_only(self) -> bool:
        if self.hub_offline != "auto":
            return self.hub_offline == "on"
        return self.use_sandbox and not (self.hf_endpoint or self.hf_token)

    @property
    def slack_socket_mode(self) -> bool:
        return bool(self.slack_bot_token and self.slack_app_token)

    @property
    def slack_http_mode(self) -> bool:
        return bool(self.slack_signing_secret and self.slack_client_id and self.slack_client_secret)

    @property
    def discord_enabled(self) -> bool:
        return bool(self.discord_bot_token)

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redaction filter."""
        values = [
            self.secret_key,
            self.runpod_api_key,
            self.hf_token,
            self.anthropic_api_key,
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.slack_client_secret,
            self.discord_bot_token,
            self.metrics_token,
        ]
        return [v for v in values if v]
