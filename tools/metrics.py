"""Prometheus metrics shared by every layer (served at /metrics by `cockpit web` and the worker).

Labels are bounded sets (tool names, outcomes, services, phases); deployment ids appear only on
the health gauge, whose series are removed when a deployment is deleted."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TOOL_CALLS = Counter(
    "cockpit_tool_calls_total", "Tool calls through the dispatcher", ["tool", "outcome"]
)
COMMANDS = Counter("cockpit_commands_total", "Messages and commands received", ["platform", "kind"])
AGENT_TOKENS = Counter("cockpit_agent_tokens_total", "Claude tokens used", ["direction"])
AGENT_COST = Counter("cockpit_agent_cost_dollars_total", "Claude spend in dollars")
DEPLOY_PHASE_SECONDS = Histogram(
    "cockpit_deploy_phase_seconds",
    "Time spent in each deploy phase",
    ["phase"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200),
)
DEPLOYS = Counter("cockpit_deploys_total", "Deploys by final outcome", ["outcome"])
DEPLOYMENT_HEALTH = Gauge(
    "cockpit_deployment_healthy", "1 when the deployment is healthy, 0 otherwise", ["deployment"]
)
ALERTS = Counter("cockpit_alerts_total", "Alert deliveries", ["sink", "outcome"])
OUTSIDE_API_SECONDS = Histogram(
    "cockpit_outside_api_seconds",
    "Latency of calls to outside services",
    ["service", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SCHEDULER_RUNS = Counter(
    "cockpit_scheduler_job_runs_total", "Scheduler job runs", ["job", "outcome"]
)
SCHEDULER_LAG = Gauge("cockpit_scheduler_job_lag_seconds", "Start delay of the last run", ["job"])
