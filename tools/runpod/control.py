"""The RunPod control plane (REST v2): GPU catalog, templates, serverless endpoints and their
workers, releases and logs, pods, billing."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import httpx

from tools.runpod.models import (
    Body,
    BucketSize,
    CreateEndpointRequest,
    CreatePodRequest,
    CreateTemplateRequest,
    Endpoint,
    EndpointWorkerList,
    GpuType,
    LogLine,
    Pod,
    PodAction,
    PodBilling,
    PodServerCheck,
    ReleaseHistory,
    ServerlessBilling,
    Template,
    UpdateEndpointRequest,
    body_json,
)
from tools.runpod.transport import RunPodConnection, named, rfc3339, sse_data

DEFAULT_LOG_TAIL = 50
LOG_IDLE_SECONDS = 2.0  # a log stream with no event for this long has sent its backfill


class ControlPlane(RunPodConnection):
    """REST v2 calls (`{api_url}/...`)."""

    # --- catalog -------------------------------------------------------------------------
    async def list_gpus(self, *, include_availability: bool = False) -> list[GpuType]:
        """GPU types with pod and serverless prices (USD per GPU-hour) and pool ids."""
        params = (
            {"include": "AVAILABILITY", "product": "SERVERLESS"} if include_availability else None
        )
        action = "list GPU types"
        # A burst of deploy previews all want the catalog at once: they share one request
        # (100 identical responses landing together cost the event loop ~0.1 s).
        gpus = await self._coalesced(
            "catalog/gpus",
            lambda data: self._items(data, "gpus", GpuType, action),
            action=action,
            params=params,
        )
        return list(gpus)

    # --- templates -----------------------------------------------------------------------
    async def create_template(self, body: CreateTemplateRequest | Body) -> Template:
        payload = body_json(body)
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
        return named(templates, name_prefix)

    async def delete_template(self, template_id: str) -> None:
        action = f"delete template {template_id}"
        await self._call("DELETE", self._rest(f"templates/{template_id}"), action=action)

    # --- serverless endpoints ------------------------------------------------------------
    async def create_endpoint(self, body: CreateEndpointRequest | Body) -> Endpoint:
        """Create a serverless endpoint (`POST /v2/serverless`); see the create note above."""
        payload = body_json(body)
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
        return named(endpoints, name_prefix)

    async def update_endpoint(
        self, endpoint_id: str, body: UpdateEndpointRequest | Body
    ) -> Endpoint:
        """PATCH an endpoint; each change creates a new release (see `list_releases`)."""
        action = f"update serverless endpoint {endpoint_id}"
        data = await self._call(
            "PATCH",
            self._rest(f"serverless/{endpoint_id}"),
            action=action,
            json_body=body_json(body),
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
        lines: list[LogLine] = []
        async with self._streamed(
            "GET", url, action=action, params={"tail": str(tail)}
        ) as response:
            events = sse_data(response).__aiter__()
            while len(lines) < tail:
                try:
                    data = await asyncio.wait_for(events.__anext__(), LOG_IDLE_SECONDS)
                except (StopAsyncIteration, TimeoutError):
                    break
                try:
                    lines.append(LogLine.model_validate(json.loads(data)))
                except ValueError:
                    continue
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
        payload = body_json(body)
        action = f"create the pod '{payload.get('name')}'"
        return self._parse(Pod, await self._create("pods", "pods", payload, action), action)

    async def get_pod(self, pod_id: str) -> Pod:
        action = f"get pod {pod_id}"
        return self._parse(
            Pod, await self._call("GET", self._rest(f"pods/{pod_id}"), action=action), action
        )

    async def list_pods(self, *, name_prefix: str | None = None) -> list[Pod]:
        return named(await self._list("pods", "pods", Pod, "list pods"), name_prefix)

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
        params = {"startTime": rfc3339(start), "endTime": rfc3339(end), "bucketSize": bucket_size}
        if serverless_id:
            params["serverlessId"] = serverless_id
        action = "read serverless billing"
        # Concurrent /spend reports of one account over the same span share one request.
        return await self._coalesced(
            "billing/serverless",
            lambda data: self._parse(ServerlessBilling, data, action),
            action=action,
            params=params,
        )

    async def billing_pods(
        self,
        start: datetime,
        end: datetime,
        bucket_size: BucketSize = "day",
        pod_id: str | None = None,
    ) -> PodBilling:
        """Pod spend per pod per bucket in [start, end) (RunPod snaps to buckets)."""
        params = {"startTime": rfc3339(start), "endTime": rfc3339(end), "bucketSize": bucket_size}
        if pod_id:
            params["podId"] = pod_id
        action = "read pod billing"
        return await self._coalesced(
            "billing/pods",
            lambda data: self._parse(PodBilling, data, action),
            action=action,
            params=params,
        )
