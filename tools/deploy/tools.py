"""Deployment tools: /deploy, /deployments, /status, /scale, /stop, /delete, /rollback, /update,
/reconcile. Provider calls go through the organisation's RunPod client."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import Session

from storage import deployments
from storage.models import Deployment, DeploymentStatus
from tools.catalog.sizing import DEFAULT_CONTEXT
from tools.contract import (
    Reply,
    Role,
    SideEffect,
    Table,
    ToolContext,
    ToolInput,
    arg,
    previewer,
    tool,
)
from tools.cost.estimate import money, per_second, rate
from tools.cost.guard import hard_cap_breach
from tools.deploy import diagnose
from tools.deploy.lookup import find_orphans, load_deployment
from tools.deploy.plan import (
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    DEFAULT_WORKERS_MAX,
    MAX_WORKERS,
    DeployPlan,
    PlanInput,
    build_plan,
    plan_for,
    plan_from_settings,
    pod_api_key,
    worker_env,
)
from tools.deploy.saga import delete_provider_resources, run_deploy
from tools.errors import Conflict, InvalidInput, ProviderError
from tools.runpod.client import RunPodClient
from tools.runpod.models import UpdateEndpointRequest, WorkersRequest
from tools.services import Services

# How a tool argument names a deployment (storage.deployments.find): never a fragment.
DEPLOYMENT_REF = "Number, name or full model id of the deployment"


class DeployInput(PlanInput):
    name: str | None = arg(None, description="A short name for this deployment", max_length=40)
    protected: bool = arg(False, description="Never auto-stopped by idle or budget rules")


def _plan_reply(plan: DeployPlan, *, title: str) -> Reply:
    reply = Reply(title=title, text=plan.explanation)
    reply.add_field("Model", f"{plan.model_id} · {plan.model_note}")
    reply.add_field("GPU", plan.gpu_label + ("" if plan.gpu_count == 1 else " (tensor parallel)"))
    reply.add_field(
        "Price",
        f"{rate(plan.price_per_hour)}/h while "
        + ("the pod runs" if plan.mode == "pod" else "a worker runs")
        + f" ({per_second(plan.estimate.per_second)})",
    )
    reply.add_field(
        "Estimate",
        f"≈ {money(plan.estimate.monthly)}/month: " + "; ".join(plan.estimate.assumptions),
    )
    if plan.mode == "serverless":
        reply.add_field(
            "Workers",
            f"{plan.workers_min}–{plan.workers_max}, stop after "
            f"{plan.idle_timeout}s idle; context {plan.context} tokens",
        )
    reply.add_field("Cold start", plan.cold_start_note)
    if plan.gated:
        reply.add_field(
            "Hugging Face token",
            "needed (gated model). "
            + (
                "Sent as HUGGING_FACE_HUB_TOKEN: worker-vllm echoes HF_TOKEN in its logs as "
                "--hf-token, this name it does not; it is still readable in the endpoint's env."
                if plan.mode == "serverless"
                else "Sent as the pod's HF_TOKEN env (not in its command line); readable in the "
                "pod's env."
            ),
        )
    if plan.price_note:
        reply.add_field("Prices", plan.price_note)
    return reply


@tool(
    name="deploy_model",
    command="deploy",
    input_model=DeployInput,
    role=Role.member,
    side_effect=SideEffect.spend,
    needs_approval=True,
    group="deploy",
    description="Deploy a model as a vLLM endpoint on the cheapest GPU that fits (asks for "
    "approval with the price first).",
    examples=(
        "/deploy qwen",
        "/deploy Qwen/Qwen2.5-0.5B-Instruct",
        "/deploy llama 8b --context 16384 --gpu ADA_24",
    ),
)
async def deploy_model(tc: ToolContext, args: DeployInput) -> Reply:
    plan = await plan_for(tc, args, check_access=not tc.services.sandbox)
    key = tc.request.idempotency_key or f"request:{tc.request.request_id}"
    now = tc.services.clock.now()

    def record_intent(s: Session) -> tuple[Deployment | None, Deployment | None]:
        """(the new deployment with its first revision, None) or (None, the one this key
        already made)."""
        dep = deployments.create(
            s,
            org_id=tc.org_id,
            workspace_id=tc.request.workspace_id,
            name=args.name or plan.model_id.split("/")[-1],
            model_id=plan.model_id,
            mode=plan.mode,
            gpu_pool=plan.gpu if plan.mode == "serverless" else None,
            gpu_type=plan.gpu if plan.mode == "pod" else None,
            gpu_count=plan.gpu_count,
            status=DeploymentStatus.pending,
            price_per_hour=plan.price_per_hour,
            settings_json=plan.settings_json(),
            protected=args.protected,
            idempotency_key=key,
            owner=tc.services.instance,
            created_by=tc.request.user_id,
            channel=tc.request.channel,
            thread=tc.request.thread,
            created_at=now,
            updated_at=now,
        )
        if dep is None:
            return None, deployments.by_idempotency_key(s, org_id=tc.org_id, key=key)
        assert dep.id is not None
        deployments.add_revision(
            s,
            org_id=tc.org_id,
            deployment_id=dep.id,
            revision=1,
            model_id=plan.model_id,
            settings_json=plan.settings_json(),
            created_by=tc.request.user_id,
            now=now,
        )
        return dep, None

    created, existing = await tc.services.db.run(record_intent)
    if created is None:
        assert existing is not None
        return Reply(text=f"Already handled: deployment #{existing.id} is {existing.status}.")
    client, hf_token = await tc.services.db.call(_provider_access, tc.services, tc.org_id)
    dep = await run_deploy(tc, created, plan, client=client, hf_token=hf_token)
    reply = _plan_reply(plan, title=f"#{dep.id} {dep.name} is healthy")
    if dep.provider_endpoint_id:
        reply.text = (
            f"Endpoint {dep.provider_endpoint_id} serves {plan.model_id}. "
            f"Chat with it: `/chat {dep.id} hello`. Stop it: `/stop {dep.id}`."
        )
    else:
        reply.text = (
            f"Pod {dep.provider_pod_id} serves {plan.model_id} (OpenAI API on port 8000). "
            f"Chat with it: `/chat {dep.id} hello`. Stop it: `/stop {dep.id}`; a pod bills "
            "until it is stopped."
        )
    return reply


@previewer(deploy_model)
async def preview_deploy(tc: ToolContext, args: DeployInput) -> Reply:
    plan = await plan_for(tc, args, check_access=not tc.services.sandbox)
    reply = _plan_reply(plan, title=f"Deploy {plan.model_id} on {plan.gpu_label}?")
    breach = await hard_cap_breach(tc, plan.estimate.monthly)
    if breach is not None:
        reply.add_field("Budget", breach.message)
        reply.approver_role = Role.admin
    return reply


# --- reading ----------------------------------------------------------------------------------


class ListInput(ToolInput):
    all: bool = arg(False, description="Include stopped, failed and deleted ones")


@tool(
    name="list_deployments",
    command="deployments",
    input_model=ListInput,
    group="deploy",
    description="List this organisation's deployments with status and price.",
    examples=("/deployments", "/deployments --all"),
)
async def list_deployments(tc: ToolContext, args: ListInput) -> Reply:
    statuses = None if args.all else (*deployments.ACTIVE_STATUSES, "stopped")
    rows = await tc.services.db.read(deployments.list_for, org_id=tc.org_id, statuses=statuses)
    if not rows:
        return Reply(text="No deployments yet. Try `/deploy qwen`.")
    table = Table(
        columns=["#", "name", "model", "gpu", "status", "price", "by"],
        rows=[
            [
                str(d.id),
                d.name,
                d.model_id,
                _gpu(d),
                d.status,
                f"{rate(d.price_per_hour)}/h",
                d.created_by,
            ]
            for d in rows
        ],
    )
    return Reply(title=f"{len(rows)} deployment(s)", table=table)


def _gpu(d: Deployment) -> str:
    gpu = d.gpu_pool or d.gpu_type or "?"
    return gpu if d.gpu_count == 1 else f"{d.gpu_count}× {gpu}"


class RefInput(ToolInput):
    deployment: str = arg(description=DEPLOYMENT_REF, positional=True)


@tool(
    name="deployment_status",
    command="status",
    input_model=RefInput,
    group="deploy",
    description="Health, workers and recent failures of a deployment.",
    examples=("/status 3", "/status prod-chat"),
)
async def deployment_status(tc: ToolContext, args: RefInput) -> Reply:
    dep = await load_deployment(tc, args.deployment, include_deleted=True)
    reply = Reply(title=f"#{dep.id} {dep.name}: {dep.status}")
    reply.add_field("Model", dep.model_id)
    reply.add_field("GPU", f"{_gpu(dep)} at {rate(dep.price_per_hour)}/h")
    reply.add_field("Revision", dep.current_revision)
    if dep.failure_reason:
        reply.add_field("Last failure", dep.failure_reason)
    if dep.status in (DeploymentStatus.deleted, DeploymentStatus.failed):
        return reply
    client = await runpod_of(tc)
    if dep.provider_endpoint_id:
        health = await client.health(dep.provider_endpoint_id)
        # /health documents only idle/running: per-status counts come from /workers.
        view = await diagnose.serverless_workers(client, dep.provider_endpoint_id)
        j = health.jobs
        reply.add_field("Endpoint", dep.provider_endpoint_id)
        reply.add_field(
            "Workers",
            f"{view.ready} ready, {view.starting} starting, {view.unhealthy} unhealthy"
            + (f", {view.throttled} waiting for capacity" if view.throttled else ""),
        )
        reply.add_field(
            "Jobs",
            f"{j.in_queue} queued, {j.in_progress} running, {j.completed} done, {j.failed} failed",
        )
        if view.detail:
            reply.add_field("Worker log" if view.unhealthy else "Starting", view.detail)
        reply.text = _health_sentence(dep, view.ready, view.unhealthy, j.failed)
    elif dep.provider_pod_id:
        pod_view = await diagnose.pod_server(
            client, dep.provider_pod_id, pod_api_key(tc.services, dep)
        )
        reply.add_field("Pod", f"{dep.provider_pod_id} {pod_view.status}")
        said = pod_view.describe()
        reply.text = said[:1].upper() + said[1:] + ("" if said.endswith(".") else ".")
    return reply


def _health_sentence(dep: Deployment, ready: int, unhealthy: int, failed: int) -> str:
    if dep.status == DeploymentStatus.stopped:
        return "Stopped: no workers will start until you `/scale` it up."
    if unhealthy and not ready:
        return "Unhealthy: workers are crashing (see the worker log line). Try `/rollback`."
    if ready:
        return "Healthy: a worker is ready."
    return "Healthy and scaled to zero: the next request starts a worker (cold start)."


# --- changing -------------------------------------------------------------------------------


class ScaleInput(ToolInput):
    deployment: str = arg(description=DEPLOYMENT_REF, positional=True)
    max: int = arg(description="Most workers (0 stops it)", ge=0, le=MAX_WORKERS)
    min: int = arg(0, description="Always-on workers", ge=0, le=MAX_WORKERS)


@tool(
    name="scale_deployment",
    command="scale",
    input_model=ScaleInput,
    role=Role.member,
    side_effect=SideEffect.spend,
    group="deploy",
    description="Change how many workers a serverless deployment may run.",
    examples=("/scale 3 --max 2", "/scale qwen --max 1 --min 1"),
)
async def scale_deployment(tc: ToolContext, args: ScaleInput) -> Reply:
    if args.min > args.max:
        raise InvalidInput("--min cannot be more than --max.")
    dep = _live(await load_deployment(tc, args.deployment))
    if dep.provider_pod_id and not dep.provider_endpoint_id:
        return await _start_or_stop_pod(tc, dep, running=args.max > 0)
    if not dep.provider_endpoint_id:
        raise Conflict(
            f"#{dep.id} {dep.name} has no RunPod resource to scale yet.",
            fix=f"`/status {dep.id}` shows where its deploy got to.",
        )
    client = await runpod_of(tc)
    await client.update_endpoint(
        dep.provider_endpoint_id,
        UpdateEndpointRequest(workers=WorkersRequest(min=args.min, max=args.max)),
    )
    status = "stopped" if args.max == 0 else "healthy"
    await _save(
        tc, dep, status=status, stopped_at=tc.services.clock.now() if args.max == 0 else None
    )
    return Reply(text=f"#{dep.id} {dep.name}: workers {args.min}–{args.max} ({status}).")


async def _start_or_stop_pod(tc: ToolContext, dep: Deployment, *, running: bool) -> Reply:
    """A pod has one GPU set: `/scale --max 0` stops it, any larger --max starts it again."""
    assert dep.provider_pod_id
    client = await runpod_of(tc)
    await client.pod_action(dep.provider_pod_id, "start" if running else "stop")
    now = tc.services.clock.now()
    if running:
        # "starting": the health sweep marks it healthy once RUNNING; until then no alerts,
        # and the restart counts as use so the idle sweep does not stop it right away.
        await _save(tc, dep, status=DeploymentStatus.starting, stopped_at=None, last_request_at=now)
        return Reply(
            text=f"Starting #{dep.id} {dep.name}: the pod is billed again from now; vLLM "
            f"loads the model in a few minutes. `/status {dep.id}` shows when it is ready."
        )
    await _save(tc, dep, status=DeploymentStatus.stopped, stopped_at=now)
    return Reply(text=f"#{dep.id} {dep.name}: pod stopped, no GPU is billed for it now.")


@tool(
    name="stop_deployment",
    command="stop",
    input_model=RefInput,
    role=Role.member,
    side_effect=SideEffect.destroy,
    group="deploy",
    description="Stop a deployment: scale a serverless endpoint to zero, or stop a pod. "
    "Nothing is deleted; `/scale` brings it back.",
    examples=("/stop 3",),
)
async def stop_deployment(tc: ToolContext, args: RefInput) -> Reply:
    dep = _live(await load_deployment(tc, args.deployment))
    await stop_resources(tc, dep)
    return Reply(
        text=f"Stopped #{dep.id} {dep.name}: no GPU is billed for it now. "
        f"`/scale {dep.id} --max 1` starts it again; `/delete {dep.id}` removes it."
        + (" (A stopped pod keeps its disk, which RunPod bills.)" if dep.provider_pod_id else "")
    )


async def stop_resources(tc: ToolContext, dep: Deployment) -> None:
    client = await tc.services.db.call(tc.services.runpod_for, dep.org_id)
    if dep.provider_endpoint_id:
        await client.update_endpoint(
            dep.provider_endpoint_id, UpdateEndpointRequest(workers=WorkersRequest(min=0, max=0))
        )
    elif dep.provider_pod_id:
        await client.pod_action(dep.provider_pod_id, "stop")
    await _save(tc, dep, status=DeploymentStatus.stopped, stopped_at=tc.services.clock.now())


@tool(
    name="delete_deployment",
    command="delete",
    input_model=RefInput,
    role=Role.member,
    side_effect=SideEffect.destroy,
    needs_approval=True,
    group="deploy",
    description="Delete a deployment's endpoint and template (or pod) at RunPod.",
    examples=("/delete 3",),
)
async def delete_deployment(tc: ToolContext, args: RefInput) -> Reply:
    dep = await load_deployment(tc, args.deployment)
    if dep.status == DeploymentStatus.deleted:
        return Reply(text=f"#{dep.id} is already deleted.")
    problems = await delete_provider_resources(await runpod_of(tc), dep)
    if problems:
        raise ProviderError(
            f"Could not delete everything for #{dep.id}: {'; '.join(problems)}.",
            service="runpod",
            fix=f"Nothing was marked deleted; try `/delete {dep.id}` again in a minute.",
        )
    await _save(tc, dep, status=DeploymentStatus.deleted, stopped_at=tc.services.clock.now())
    return Reply(text=f"Deleted #{dep.id} {dep.name} and its RunPod resources.")


@previewer(delete_deployment)
async def preview_delete(tc: ToolContext, args: RefInput) -> Reply:
    dep = await load_deployment(tc, args.deployment)
    return Reply(
        title=f"Delete #{dep.id} {dep.name}?",
        text=f"{dep.model_id} on {_gpu(dep)}. This removes "
        + ("the pod" if dep.provider_pod_id else "the endpoint and its template")
        + " at RunPod; it cannot be undone.",
    )


class UpdateInput(ToolInput):
    deployment: str = arg(description=DEPLOYMENT_REF, positional=True)
    model: str | None = arg(None, description="A new model (alias or Hugging Face id)")
    context: int | None = arg(None, description="New max context length", ge=256, le=1_048_576)
    idle_timeout: int | None = arg(None, description="New idle timeout in seconds", ge=5, le=3600)


@tool(
    name="update_deployment",
    command="update",
    input_model=UpdateInput,
    role=Role.member,
    side_effect=SideEffect.spend,
    needs_approval=True,
    group="deploy",
    description="Roll out a new model or settings to a serverless deployment (a new revision; "
    "`/rollback` returns to the previous one).",
    examples=("/update 3 --model qwen 14b", "/update 3 --context 16384"),
)
async def update_deployment(tc: ToolContext, args: UpdateInput) -> Reply:
    dep = _live(await load_deployment(tc, args.deployment))
    plan = await _update_plan(tc, dep, args)
    return await _apply_revision(tc, dep, plan.model_id, plan.settings_json(), plan, "update")


@previewer(update_deployment)
async def preview_update(tc: ToolContext, args: UpdateInput) -> Reply:
    dep = _live(await load_deployment(tc, args.deployment))
    plan = await _update_plan(tc, dep, args)
    return _plan_reply(plan, title=f"Update #{dep.id} {dep.name} to {plan.model_id}?")


async def _update_plan(tc: ToolContext, dep: Deployment, args: UpdateInput) -> DeployPlan:
    if not dep.provider_endpoint_id:
        raise InvalidInput("Only serverless deployments can be updated in place.")
    if args.model is None and args.context is None and args.idle_timeout is None:
        raise InvalidInput("Nothing to change.", fix="Give --model, --context or --idle-timeout.")
    old = plan_from_settings(dep.settings_json)
    plan, _ = await build_plan(
        tc,
        model=args.model or dep.model_id,
        gpu=None if args.model else dep.gpu_pool,
        context=args.context or old.get("context"),
        quant=old.get("quant") if not args.model else None,
        workers_min=old.get("workers_min", 0),
        workers_max=old.get("workers_max", DEFAULT_WORKERS_MAX),
        idle_timeout=args.idle_timeout or old.get("idle_timeout", DEFAULT_IDLE_TIMEOUT_SECONDS),
        check_access=not tc.services.sandbox,
    )
    return plan


class RollbackInput(ToolInput):
    deployment: str = arg(description=DEPLOYMENT_REF, positional=True)


@tool(
    name="rollback_deployment",
    command="rollback",
    input_model=RollbackInput,
    role=Role.member,
    side_effect=SideEffect.spend,
    group="deploy",
    description="Return a deployment to its previous revision (model and settings).",
    examples=("/rollback 3",),
)
async def rollback_deployment(tc: ToolContext, args: RollbackInput) -> Reply:
    dep = _live(await load_deployment(tc, args.deployment))
    assert dep.id is not None
    revs = await tc.services.db.read(deployments.revisions, org_id=tc.org_id, deployment_id=dep.id)
    current = next((r for r in revs if r.revision == dep.current_revision), None)
    previous = [r for r in revs if r.revision < dep.current_revision]
    if current is None or not previous:
        raise Conflict(f"#{dep.id} has no earlier revision to roll back to.")
    target = previous[-1]
    reply = await _apply_revision(
        tc,
        dep,
        target.model_id,
        target.settings_json,
        None,
        f"rollback to revision {target.revision}",
    )
    reply.title = f"#{dep.id} rolled back to revision {target.revision} ({target.model_id})"
    return reply


async def _apply_revision(
    tc: ToolContext,
    dep: Deployment,
    model_id: str,
    settings_json: str,
    plan: DeployPlan | None,
    why: str,
) -> Reply:
    assert dep.id is not None and dep.provider_endpoint_id
    settings = json.loads(settings_json)
    client, hf_token = await tc.services.db.call(_provider_access, tc.services, tc.org_id)
    env = worker_env(
        model_id=model_id,
        context=settings.get("context", DEFAULT_CONTEXT),
        gpu_count=settings.get("gpu_count", dep.gpu_count),
        quant=settings.get("quant"),
        hf_token=hf_token if settings.get("gated") else None,  # public models need no token
        init_timeout=settings.get("init_timeout"),
    )
    await client.update_endpoint(
        dep.provider_endpoint_id,
        UpdateEndpointRequest(
            env=env, workers=WorkersRequest(idle_timeout=settings.get("idle_timeout"))
        ),
    )
    releases = await client.list_releases(dep.provider_endpoint_id)
    release_id = releases.releases[0].id if releases.releases else None
    now = tc.services.clock.now()
    new_rev = dep.current_revision + 1
    dep_id = dep.id
    fields: dict[str, object] = {
        "model_id": model_id,
        "settings_json": settings_json,
        "current_revision": new_rev,
    }
    if plan is not None:
        fields["price_per_hour"] = plan.price_per_hour

    def record_revision(s: Session) -> None:
        deployments.add_revision(
            s,
            org_id=tc.org_id,
            deployment_id=dep_id,
            revision=new_rev,
            model_id=model_id,
            settings_json=settings_json,
            created_by=tc.request.user_id,
            now=now,
            provider_release=release_id,
        )
        deployments.update(s, org_id=tc.org_id, deployment_id=dep_id, now=now, **fields)

    await tc.services.db.run(record_revision)  # the revision and the row: one unit of work
    return Reply(
        title=f"#{dep.id} {dep.name}: revision {new_rev}",
        text=f"{why}: now serving {model_id} (RunPod release {release_id}). Workers "
        "restart on the new release.",
    )


def _live(dep: Deployment) -> Deployment:
    if dep.status in (DeploymentStatus.deleted, DeploymentStatus.failed):
        raise Conflict(f"#{dep.id} is {dep.status}.", fix="Deploy it again with /deploy.")
    if dep.status in (DeploymentStatus.pending, DeploymentStatus.creating):
        raise Conflict(f"#{dep.id} is still being created.", fix="Wait for it to be healthy.")
    return dep


async def _save(tc: ToolContext, dep: Deployment, **fields: object) -> None:
    assert dep.id is not None
    await tc.services.db.run(
        deployments.update,
        org_id=tc.org_id,
        deployment_id=dep.id,
        now=tc.services.clock.now(),
        **fields,
    )


async def runpod_of(tc: ToolContext) -> RunPodClient:
    """The organisation's RunPod client, resolved on a storage thread (it reads the stored key)."""
    return await tc.services.db.call(tc.services.runpod_for, tc.org_id)


def _provider_access(services: Services, org_id: int) -> tuple[RunPodClient, str | None]:
    """The organisation's RunPod client and Hugging Face token, for a storage thread: both read
    its stored keys."""
    hf_token_for = services.extras.get("hf_token_for", lambda _org: None)
    return services.runpod_for(org_id), hf_token_for(org_id)


class StopIdleInput(ToolInput):
    minutes: int = arg(15, description="Idle for at least this many minutes", ge=1, le=10_080)


@tool(
    name="stop_idle_deployments",
    command="stop-idle",
    input_model=StopIdleInput,
    role=Role.member,
    side_effect=SideEffect.destroy,
    group="deploy",
    description="Stop every deployment with no requests for a while (protected ones are kept).",
    examples=("/stop-idle", "/stop-idle --minutes 60"),
)
async def stop_idle_deployments(tc: ToolContext, args: StopIdleInput) -> Reply:
    now = tc.services.clock.now()
    cutoff = now - timedelta(minutes=args.minutes)
    live = await tc.services.db.read(
        deployments.list_for, org_id=tc.org_id, statuses=("healthy", "degraded", "unhealthy")
    )
    idle = [d for d in live if (d.last_request_at or d.healthy_at or d.created_at) <= cutoff]
    stopped, kept = [], []
    for dep in idle:
        if dep.protected:
            kept.append(f"#{dep.id} {dep.name}")
            continue
        await stop_resources(tc, dep)
        stopped.append(f"#{dep.id} {dep.name}")
    if not stopped:
        return Reply(
            text=f"Nothing idle for {args.minutes} min or more"
            + (f" (protected and idle: {', '.join(kept)})." if kept else ".")
        )
    return Reply(
        text=f"Stopped {len(stopped)} idle deployment(s): {', '.join(stopped)}."
        + (f" Kept protected: {', '.join(kept)}." if kept else "")
    )


class ProtectInput(ToolInput):
    deployment: str = arg(description=DEPLOYMENT_REF, positional=True)
    off: bool = arg(False, description="Remove the protection")


@tool(
    name="protect_deployment",
    command="protect",
    input_model=ProtectInput,
    role=Role.admin,
    side_effect=SideEffect.admin,
    group="deploy",
    description="Protect a deployment from idle and budget auto-stops (or --off).",
    examples=("/protect 3", "/protect 3 --off"),
)
async def protect_deployment(tc: ToolContext, args: ProtectInput) -> Reply:
    dep = await load_deployment(tc, args.deployment)
    await _save(tc, dep, protected=not args.off)
    state = "no longer protected" if args.off else "protected: idle and budget rules skip it"
    return Reply(text=f"#{dep.id} {dep.name} is {state}.")


# --- reconcile ------------------------------------------------------------------------------


class ReconcileInput(ToolInput):
    pass


@tool(
    name="reconcile",
    input_model=ReconcileInput,
    role=Role.admin,
    group="deploy",
    description="List RunPod resources named by this bot that no deployment knows (orphans).",
    examples=("/reconcile",),
)
async def reconcile(tc: ToolContext, args: ReconcileInput) -> Reply:
    orphans = await find_orphans(tc.services, tc.org_id)
    if not orphans:
        return Reply(text="No orphaned resources: every cockpit-… resource at RunPod is known.")
    return Reply(
        title=f"{len(orphans)} orphaned resource(s)",
        text="These carry our name prefix but no deployment knows them. Delete them in "
        "the RunPod console if they are not yours.",
        table=Table(columns=["kind", "id", "name"], rows=[list(o) for o in orphans]),
    )
