"""The deploy saga: record intent → create template → create endpoint → wait for a healthy
worker, recording every provider id the moment it exists; on any failure delete what was
created and mark the deployment failed with the reason. Nothing is left half-created."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from storage import deployments
from storage.models import Deployment
from tools.catalog.sizing import GPU_MEMORY_UTILIZATION
from tools.clients.runpod import (
    CreateEndpointRequest,
    CreatePodRequest,
    CreateTemplateRequest,
    EndpointGpuRequest,
    PodGpuRequest,
    QueueDelayScalingRequest,
    WorkersRequest,
)
from tools.contract import ToolContext
from tools.deploy.plan import (
    VLLM_POD_IMAGE,
    VLLM_WORKER_IMAGE,
    DeployPlan,
    pod_api_key,
    resource_name,
)
from tools.errors import CockpitError, ProviderError
from tools.metrics import DEPLOY_PHASE_SECONDS, DEPLOYS
from tools.services import Services

log = logging.getLogger(__name__)

HEALTH_POLL_SECONDS = 5.0
HEALTHY_TIMEOUT_SECONDS = 20 * 60  # vLLM may download tens of GB before it serves
PROGRESS_EVERY_SECONDS = 60.0
# A job that makes a scaled-to-zero endpoint start a worker; worker-vllm answers it with a GET
# of /v1/models, which is cheap.
WARMUP_INPUT = {"openai_route": "/v1/models"}
IN_FLIGHT_STATUSES = ("pending", "creating", "waiting")


class DeployFailed(CockpitError):
    code = "deploy_failed"


class _Saga:
    def __init__(self, tc: ToolContext, dep: Deployment, plan: DeployPlan, client: Any) -> None:
        self.tc = tc
        self.dep = dep
        self.plan = plan
        self.client = client
        self.clock = tc.services.clock
        self.started = self.clock.now()
        self.phase_started = self.started

    @property
    def services(self) -> Services:
        return self.tc.services

    def elapsed(self) -> str:
        return f"{(self.clock.now() - self.started).total_seconds():.0f}s"

    async def say(self, text: str) -> None:
        await self.tc.progress(f"[{self.elapsed()}] {text}")

    def phase(self, name: str) -> None:
        now = self.clock.now()
        DEPLOY_PHASE_SECONDS.labels(phase=name).observe((now - self.phase_started).total_seconds())
        self.phase_started = now

    def record(self, **fields: Any) -> None:
        assert self.dep.id is not None
        with self.services.db.session() as s:
            self.dep = deployments.update(
                s, org_id=self.dep.org_id, deployment_id=self.dep.id, now=self.clock.now(), **fields
            )

    async def run(self, hf_token: str | None) -> Deployment:
        name = resource_name(self.dep.org_id, self.dep.id or 0, self.plan.model_id)
        try:
            await self.say(f"queued #{self.dep.id}: {self.plan.model_id} on {self.plan.gpu_label}")
            if self.plan.mode == "pod":
                await self.create_pod(name, hf_token)
            else:
                await self.create_serverless(name, hf_token)
            await self.wait_healthy()
        except CockpitError as exc:
            await self.compensate(str(exc))
            raise DeployFailed(
                f"Deploy #{self.dep.id} failed: {exc.message}",
                fix=(exc.fix or "") + " Nothing was left running: created resources were deleted.",
            ) from exc
        except BaseException as exc:  # cancelled or crashed: still never leave a GPU behind
            log.exception("deploy #%s interrupted", self.dep.id)
            await self.compensate(f"interrupted ({type(exc).__name__})")
            raise
        DEPLOYS.labels(outcome="healthy").inc()
        return self.dep

    async def create_serverless(self, name: str, hf_token: str | None) -> None:
        self.record(status="creating")
        await self.say("creating template")
        template = await self.client.create_template(
            CreateTemplateRequest(
                name=name,
                image=VLLM_WORKER_IMAGE,
                env=self.plan.worker_env(hf_token),
                disk=self.plan.disk_gb,
                serverless=True,
            )
        )
        self.record(provider_template_id=template.id)
        self.phase("create_template")
        await self.say(f"creating endpoint on {self.plan.gpu_label}")
        endpoint = await self.client.create_endpoint(
            CreateEndpointRequest(
                name=name,
                template_id=template.id,
                gpu=EndpointGpuRequest(pools=[self.plan.gpu], count=self.plan.gpu_count),
                workers=WorkersRequest(
                    min=self.plan.workers_min,
                    max=self.plan.workers_max,
                    idle_timeout=self.plan.idle_timeout,
                ),
                scaling=QueueDelayScalingRequest(queue_delay=4),
            )
        )
        self.record(provider_endpoint_id=endpoint.id, status="waiting")
        self.phase("create_endpoint")

    async def create_pod(self, name: str, hf_token: str | None) -> None:
        self.record(status="creating")
        await self.say(f"creating pod on {self.plan.gpu_label}")
        env = self.plan.worker_env(hf_token)
        args = (
            f"--model {self.plan.model_id} --max-model-len {self.plan.context} "
            f"--tensor-parallel-size {self.plan.gpu_count} "
            f"--gpu-memory-utilization {GPU_MEMORY_UTILIZATION}"
        )
        if "QUANTIZATION" in env:
            args += f" --quantization {env['QUANTIZATION']}"
        pod = await self.client.create_pod(
            CreatePodRequest(
                name=name,
                image=VLLM_POD_IMAGE,
                args=args,
                gpu=PodGpuRequest(id=self.plan.gpu, count=self.plan.gpu_count),
                env={
                    **{k: v for k, v in env.items() if k == "HF_TOKEN"},
                    "VLLM_API_KEY": pod_api_key(self.services, self.dep),
                },
                disk=self.plan.disk_gb,
                ports=["8000/http"],
            )
        )
        self.record(provider_pod_id=pod.id, status="waiting")
        self.phase("create_pod")

    async def wait_healthy(self) -> None:
        await self.say("waiting for workers (the first start downloads the model)")
        if self.plan.mode == "serverless":
            assert self.dep.provider_endpoint_id
            await self.client.run(self.dep.provider_endpoint_id, WARMUP_INPUT)
        deadline = self.clock.monotonic() + HEALTHY_TIMEOUT_SECONDS
        last_note = self.clock.monotonic()
        last_state = ""
        while True:
            state, ready = await self.probe()
            if ready:
                break
            now = self.clock.monotonic()
            if state != last_state or now - last_note >= PROGRESS_EVERY_SECONDS:
                await self.say(state)
                last_state, last_note = state, now
            if now >= deadline:
                raise ProviderError(
                    f"No healthy worker after {HEALTHY_TIMEOUT_SECONDS // 60} minutes ({state}).",
                    service="runpod",
                    fix="Check the model fits the GPU and that RunPod has capacity in that pool; "
                    "try `/fit` or another --gpu.",
                )
            await self.clock.sleep(HEALTH_POLL_SECONDS)
        self.phase("wait_healthy")
        healthy_at = self.clock.now()
        self.record(
            status="healthy",
            health_state="healthy",
            healthy_at=healthy_at,
            last_request_at=healthy_at,
        )
        await self.say(f"healthy after {self.elapsed()}")

    async def probe(self) -> tuple[str, bool]:
        if self.plan.mode == "pod":
            assert self.dep.provider_pod_id
            pod = await self.client.get_pod(self.dep.provider_pod_id)
            return f"pod {pod.status.lower()}", pod.status == "RUNNING"
        assert self.dep.provider_endpoint_id
        health = await self.client.health(self.dep.provider_endpoint_id)
        w = health.workers
        if w.unhealthy and not health.ready_workers:
            raise ProviderError(
                f"Workers crashed while starting ({w.unhealthy} unhealthy).",
                service="runpod",
                fix="The model may not fit or may need a Hugging Face token; see `/fit`.",
            )
        state = f"workers: {w.initializing} initializing, {health.ready_workers} ready"
        return state, health.ready_workers > 0

    async def compensate(self, reason: str) -> None:
        self.dep = await compensate(self.services, self.dep, self.client, reason)


async def delete_provider_resources(client: Any, dep: Deployment) -> list[str]:
    """Delete a deployment's endpoint, pod and template at RunPod, newest first. Already gone
    (404) counts as deleted; returns what could not be deleted."""
    problems: list[str] = []
    for label, rid, delete in (
        ("endpoint", dep.provider_endpoint_id, client.delete_endpoint),
        ("pod", dep.provider_pod_id, client.delete_pod),
        ("template", dep.provider_template_id, client.delete_template),
    ):
        if not rid:
            continue
        try:
            await delete(rid)
        except CockpitError as exc:
            if getattr(exc, "status", None) != 404:
                problems.append(f"{label} {rid}: {exc.message}")
    return problems


async def compensate(services: Services, dep: Deployment, client: Any, reason: str) -> Deployment:
    """Delete whatever exists; record the outcome whatever happens."""
    problems = await delete_provider_resources(client, dep)
    detail = reason if not problems else f"{reason}; cleanup failed for {', '.join(problems)}"
    assert dep.id is not None
    with services.db.session() as s:
        dep = deployments.update(
            s,
            org_id=dep.org_id,
            deployment_id=dep.id,
            now=services.clock.now(),
            status="failed",
            failure_reason=detail[:500],
            health_state="unknown",
        )
    DEPLOYS.labels(outcome="failed").inc()
    if problems:
        log.error("deploy #%s left resources behind: %s", dep.id, problems)
    return dep


async def run_deploy(
    tc: ToolContext, dep: Deployment, plan: DeployPlan, *, client: Any, hf_token: str | None
) -> Deployment:
    return await _Saga(tc, dep, plan, client).run(hf_token)


async def recover_interrupted(services: Services, *, before: datetime | None = None) -> int:
    """At start: deploys that were mid-saga when the process died are compensated (their
    resources deleted, marked failed), so a restart never leaves a half-created deployment."""
    with services.db.session() as s:
        stuck = deployments.list_all_active(s, statuses=IN_FLIGHT_STATUSES)
    count = 0
    for dep in stuck:
        if before is not None and dep.updated_at > before:
            continue
        try:
            client = services.runpod_for(dep.org_id)
        except CockpitError:
            continue
        await compensate(services, dep, client, "interrupted by a restart before it became healthy")
        count += 1
    return count
