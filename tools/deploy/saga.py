"""The deploy saga: record intent (with the provider name every resource will carry) → create
template → create endpoint (or a pod) → wait for a healthy worker, recording every provider id
the moment it exists; on any failure delete what was created and mark the deployment failed
with the reason. Nothing is left half-created.

A SIGKILL can land between RunPod's create and the write of its id. The name recorded before
the call is what finds such a resource again: compensation (and the recovery at the next start)
looks resources up by that name at RunPod, and deletes them in dependency order: endpoints and
pods before the template they are bound to (RunPod refuses to delete a template in use)."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime
from typing import Any

from storage import approvals, deployments, instances
from storage.models import Deployment, DeploymentStatus, HealthState
from tools.bench.recover import fail_interrupted_runs
from tools.catalog.sizing import GPU_MEMORY_UTILIZATION
from tools.contract import ToolContext
from tools.deploy import diagnose
from tools.deploy.plan import (
    POD_TOKEN_ENV,
    VLLM_POD_IMAGE,
    VLLM_WORKER_IMAGE,
    DeployPlan,
    pod_api_key,
    resource_name,
)
from tools.errors import CockpitError, ProviderError
from tools.metrics import DEPLOY_PHASE_SECONDS, DEPLOYS
from tools.runpod.models import (
    CreateEndpointRequest,
    CreatePodRequest,
    CreateTemplateRequest,
    EndpointGpuRequest,
    PodGpuRequest,
    QueueDelayScalingRequest,
    WorkersRequest,
)
from tools.services import Services

log = logging.getLogger(__name__)

HEALTH_POLL_SECONDS = 5.0
HEALTHY_TIMEOUT_SECONDS = 20 * 60  # vLLM may download tens of GB before it serves
# Past the plan's init timeout RunPod has marked the worker unhealthy; wait that much longer.
HEALTHY_TIMEOUT_MARGIN_SECONDS = 5 * 60
PROGRESS_EVERY_SECONDS = 60.0
# A job that makes a scaled-to-zero endpoint start a worker; worker-vllm answers it with a GET
# of /v1/models, which is cheap.
WARMUP_INPUT = {"openai_route": "/v1/models"}
IN_FLIGHT_STATUSES = (
    DeploymentStatus.pending,
    DeploymentStatus.creating,
    DeploymentStatus.waiting,
)
# The key in Deployment.settings_json that holds the name given to the provider's resources.
PROVIDER_NAME_KEY = "provider_name"
INTERRUPTED_REASON = "interrupted by a restart before it became healthy"


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

    async def record(self, **fields: Any) -> None:
        """One unit of work on a storage thread: the saga's state is written before it goes on."""
        assert self.dep.id is not None
        self.dep = await self.services.db.run(
            deployments.update,
            org_id=self.dep.org_id,
            deployment_id=self.dep.id,
            now=self.clock.now(),
            **fields,
        )

    async def run(self, hf_token: str | None) -> Deployment:
        name = resource_name(self.dep.org_id, self.dep.id or 0, self.plan.model_id)
        try:
            # Intent first, with the name: a crash after any create below can be found by it.
            await self.record(
                status=DeploymentStatus.creating,
                settings_json=with_provider_name(self.dep.settings_json, name),
            )
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
        await self.record(provider_template_id=template.id)
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
        await self.record(provider_endpoint_id=endpoint.id, status=DeploymentStatus.waiting)
        self.phase("create_endpoint")

    async def create_pod(self, name: str, hf_token: str | None) -> None:
        await self.say(f"creating pod on {self.plan.gpu_label}")
        env = self.plan.worker_env(hf_token)
        # The vllm/vllm-openai image runs `vllm serve`: the model is its first positional
        # argument (`--model` is deprecated there).
        args = (
            f"{self.plan.model_id} --max-model-len {self.plan.context} "
            f"--tensor-parallel-size {self.plan.gpu_count} "
            f"--gpu-memory-utilization {GPU_MEMORY_UTILIZATION}"
        )
        if "QUANTIZATION" in env:
            args += f" --quantization {env['QUANTIZATION']}"
        pod_env = {"VLLM_API_KEY": pod_api_key(self.services, self.dep)}
        if hf_token and self.plan.gated:  # public models need no token
            pod_env[POD_TOKEN_ENV] = hf_token
        pod = await self.client.create_pod(
            CreatePodRequest(
                name=name,
                image=VLLM_POD_IMAGE,
                args=args,
                gpu=PodGpuRequest(id=self.plan.gpu, count=self.plan.gpu_count),
                env=pod_env,
                disk=self.plan.disk_gb,
                ports=["8000/http"],
            )
        )
        await self.record(provider_pod_id=pod.id, status=DeploymentStatus.waiting)
        self.phase("create_pod")

    def healthy_timeout(self) -> float:
        return max(HEALTHY_TIMEOUT_SECONDS, self.plan.init_timeout + HEALTHY_TIMEOUT_MARGIN_SECONDS)

    async def wait_healthy(self) -> None:
        await self.say("waiting for workers (the first start downloads the model)")
        if self.plan.mode == "serverless":
            assert self.dep.provider_endpoint_id
            await self.client.run(self.dep.provider_endpoint_id, WARMUP_INPUT)
        limit = self.healthy_timeout()
        deadline = self.clock.monotonic() + limit
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
                    f"No healthy worker after {limit / 60:.0f} minutes ({state}).",
                    service="runpod",
                    fix="Check the model fits the GPU and that RunPod has capacity in that pool; "
                    "try `/fit` or another --gpu.",
                )
            await self.clock.sleep(HEALTH_POLL_SECONDS)
        self.phase("wait_healthy")
        healthy_at = self.clock.now()
        await self.record(
            status=DeploymentStatus.healthy,
            health_state=HealthState.healthy,
            healthy_at=healthy_at,
            last_request_at=healthy_at,
        )
        await self.say(f"healthy after {self.elapsed()}")

    async def probe(self) -> tuple[str, bool]:
        """(what the workers are doing, ready?). Raises when they crashed, quoting the log
        lines that say why: "still downloading" is waited for, "crashed" is not."""
        if self.plan.mode == "pod":
            assert self.dep.provider_pod_id
            key = pod_api_key(self.services, self.dep)
            view = await diagnose.pod_server(self.client, self.dep.provider_pod_id, key)
            if view.crashed:
                raise ProviderError(
                    f"vLLM crashed while starting on the pod: {view.detail}",
                    service="runpod",
                    fix="The model may not fit the GPU at this context; see `/fit`, try a "
                    "shorter --context or a bigger --gpu.",
                )
            if view.http_status == 401:
                raise ProviderError(
                    "The pod's vLLM refused the bot's key (401).",
                    service="runpod",
                    fix="Deploy it again; if it persists, COCKPIT_SECRET_KEY changed mid-deploy.",
                )
            return view.describe(), view.serving
        assert self.dep.provider_endpoint_id
        workers = await diagnose.serverless_workers(self.client, self.dep.provider_endpoint_id)
        if workers.crashed:
            why = f": {workers.detail}" if workers.detail else ""
            raise ProviderError(
                f"Workers crashed while starting ({workers.unhealthy} unhealthy){why}",
                service="runpod",
                fix="The model may not fit the GPU at this context or may need a Hugging Face "
                "token; see `/fit`.",
            )
        if workers.ready:
            return f"workers: {workers.ready} ready", True
        if workers.throttled and not workers.starting:
            pool = self.plan.gpu
            return f"waiting for GPU capacity in {pool} ({workers.throttled} throttled)", False
        what = workers.detail or "starting"
        return f"workers: {workers.starting} initializing ({what})", False

    async def compensate(self, reason: str) -> None:
        self.dep = await compensate(self.services, self.dep, self.client, reason)


def with_provider_name(settings_json: str, name: str) -> str:
    settings = json.loads(settings_json or "{}")
    settings[PROVIDER_NAME_KEY] = name
    return json.dumps(settings, sort_keys=True)


def provider_name(dep: Deployment) -> str:
    """The name this deployment's resources carry at RunPod: as recorded before the first
    create; for rows older than that record, the same name derived again."""
    try:
        recorded = json.loads(dep.settings_json or "{}").get(PROVIDER_NAME_KEY)
    except (ValueError, AttributeError):
        recorded = None
    return str(recorded or resource_name(dep.org_id, dep.id or 0, dep.model_id))


async def delete_provider_resources(
    client: Any, dep: Deployment, *, by_name: bool = False
) -> list[str]:
    """Delete a deployment's resources at RunPod in dependency order: endpoint and pod first,
    then the template they are bound to (RunPod refuses to delete a template in use). With
    `by_name`, resources carrying the deployment's provider name are deleted too, for creates
    whose id was never recorded (a crash between the create and the database write). Already
    gone (404) counts as deleted; returns what could not be deleted (or looked up)."""
    name = provider_name(dep) if by_name else None
    problems: list[str] = []
    for label, rid, list_named, delete in (
        ("endpoint", dep.provider_endpoint_id, client.list_endpoints, client.delete_endpoint),
        ("pod", dep.provider_pod_id, client.list_pods, client.delete_pod),
        # listed only now: RunPod may leave templates bound to an endpoint out of its list
        ("template", dep.provider_template_id, client.list_templates, client.delete_template),
    ):
        ids = [rid] if rid else []
        if name is not None:
            try:
                found = await list_named(name_prefix=name)
            except CockpitError as exc:
                problems.append(f"could not look for the {label} named {name}: {exc.message}")
                found = []
            ids += [item.id for item in found if item.name == name and item.id not in ids]
        for item_id in ids:
            try:
                await delete(item_id)
            except CockpitError as exc:
                if getattr(exc, "status", None) != 404:
                    problems.append(f"{label} {item_id}: {exc.message}")
    return problems


async def compensate(services: Services, dep: Deployment, client: Any, reason: str) -> Deployment:
    """Delete whatever exists (found by id and by name); record the outcome whatever
    happens."""
    problems = await delete_provider_resources(client, dep, by_name=True)
    detail = reason if not problems else f"{reason}; cleanup failed for {', '.join(problems)}"
    dep = await _mark_failed(services, dep, detail)
    DEPLOYS.labels(outcome="failed").inc()
    if problems:
        log.error("deploy #%s left resources behind: %s", dep.id, problems)
    return dep


async def run_deploy(
    tc: ToolContext, dep: Deployment, plan: DeployPlan, *, client: Any, hf_token: str | None
) -> Deployment:
    return await _Saga(tc, dep, plan, client).run(hf_token)


async def recover_interrupted(services: Services, *, before: datetime | None = None) -> int:
    """At start (and every minute, the `recover` job): deploys that were mid-saga when their
    process died are compensated (their resources, found by id or by their recorded name,
    deleted; marked failed), and approvals still `executing` and /bench runs still `running`
    become `failed` "interrupted by a restart", so a restart never leaves a half-created
    deployment, an approval or a benchmark that never ends. Work whose process is alive
    (storage.instances: this one, or another with a recent heartbeat) is left alone, so one
    process starting never cuts short another's deploy. Returns the deploys cleaned up."""
    live = await services.db.read(
        instances.live,
        me=services.instance,
        host=socket.gethostname(),
        pid=os.getpid(),
        now=services.clock.now(),
    )
    stuck = await services.db.read(deployments.list_all_active, statuses=IN_FLIGHT_STATUSES)
    count = 0
    for dep in stuck:
        if before is not None and dep.updated_at > before:
            continue
        if dep.owner is not None and dep.owner in live:
            continue  # its process is alive and still running the saga
        try:
            client = await services.db.call(services.runpod_for, dep.org_id)
        except CockpitError as exc:
            # No way to reach the provider for this organisation: mark it failed anyway so it
            # does not stay in flight forever; reconcile reports whatever still exists.
            log.warning("deploy #%s interrupted; cannot reach RunPod to clean up: %s", dep.id, exc)
            await _mark_failed(services, dep, f"{INTERRUPTED_REASON}; cleanup not possible: {exc}")
            count += 1
            continue
        await compensate(services, dep, client, INTERRUPTED_REASON)
        count += 1
    ended = await services.db.run(
        approvals.fail_interrupted, now=services.clock.now(), before=before, spare=live
    )
    if ended:
        log.warning("%d approval(s) were executing at the last shutdown: marked failed", ended)
    benches = await fail_interrupted_runs(services, before=before, spare=live)
    if benches:
        log.warning("%d /bench run(s) were running at the last shutdown: marked failed", benches)
    return count


async def _mark_failed(services: Services, dep: Deployment, detail: str) -> Deployment:
    assert dep.id is not None
    return await services.db.run(
        deployments.update,
        org_id=dep.org_id,
        deployment_id=dep.id,
        now=services.clock.now(),
        status=DeploymentStatus.failed,
        failure_reason=detail[:500],
        health_state=HealthState.unknown,
    )
