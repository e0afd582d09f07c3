"""The RunPod emulator: an aiohttp server speaking REST v2 and the serverless data plane.

One server, two path prefixes so the planes cannot collide:
- REST v2 (control plane):  `http://HOST:PORT/rest/v2/...`  (RunPod: https://api.runpod.io/v2)
- serverless data plane:    `http://HOST:PORT/sls/v2/...`   (RunPod: https://api.runpod.ai/v2)

Every REST request body is validated against the official OpenAPI spec (422 problem+json with
`errors[]`, as RunPod's table says: "the body does not match the contract"); cross-field rules
answer 400. With `validate_responses=True` every REST response is checked against the spec too
and mismatches are collected in `response_violations` (tests assert it stays empty).

Auth: any non-empty Bearer key is accepted, except keys starting with `invalid` (for tests)
and, when `valid_keys` is given, any key not in it; those get a 401 problem response. The data
plane also accepts the bare key (`Authorization: <key>`), as RunPod's docs show both.

With `state_file`, the account (templates, endpoints, pods, billing) is loaded from that JSON
file at `start()` and saved to it, atomically, after every mutating request (any method but
GET/HEAD/OPTIONS, on both planes) and at `stop()`; workers restart cold (see persist.py).

Requests to an endpoint whose worker is still starting wait (through `clock.sleep`) until it is
ready, as RunPod holds an OpenAI or `runsync` call while a cold worker boots; `/run` returns at
once with `IN_QUEUE`. A crashed endpoint answers OpenAI calls with 500 and fails jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tools.clock import Clock
from tools.runpod.sandbox import catalog, chat, persist, throughput, vllm
from tools.runpod.sandbox.faults import Fault, FaultInjector, FaultKind
from tools.runpod.sandbox.spec import OpenApiSpec, load_spec
from tools.runpod.sandbox.state import (
    LOG_TAIL_DEFAULT,
    ApiError,
    EndpointSim,
    SandboxState,
    WorkerSim,
    iso,
)

log = logging.getLogger(__name__)

REST_PREFIX = "/rest"
SLS_PREFIX = "/sls"
# Stand-in for RunPod's pod proxy (https://{pod_id}-{port}.proxy.runpod.net): our pods run vLLM's
# OpenAI server on port 8000, which answers with the sandbox chat model once the pod is RUNNING.
PROXY_PREFIX = "/proxy"
DEFAULT_PORT = 8765
INVALID_KEY_PREFIX = "invalid"
RUNSYNC_WAIT_DEFAULT_MS = 90_000
RUNSYNC_WAIT_MIN_MS, RUNSYNC_WAIT_MAX_MS = 1_000, 300_000
RATE_LIMIT_PER_MINUTE = 60
RATE_LIMIT_POLICY = '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'
PROBLEM_JSON = "application/problem+json"
EVENT_STREAM = "text/event-stream"
LOG_SOURCES = ("container", "system")
LOG_TAIL_MAX = 5000
BILLING_BUCKETS = ("hour", "day", "week", "month", "year")
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CATALOG_PRODUCTS = ("POD", "CLUSTER", "SERVERLESS")
SANDBOX_BANNER = "RunPod sandbox: simulated cloud, no real GPUs, no charges."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Per-request values shared by the middleware and the handlers (same task, same context).
_BODY: contextvars.ContextVar[Any] = contextvars.ContextVar("sandbox_body", default=None)
_SSE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("sandbox_sse", default=None)
# The simulated GPU batch (throughput.Lane) serving the current chat request, if any.
_LANE: contextvars.ContextVar[Any] = contextvars.ContextVar("sandbox_lane", default=None)


@dataclass
class Exchange:
    """One request/response pair, recorded when `record_exchanges=True` (contract tests)."""

    plane: str  # "rest" | "sls"
    method: str
    path: str  # relative to the plane prefix, e.g. /v2/serverless/abc
    query: dict[str, str]
    request_json: Any
    status: int
    content_type: str
    response_json: Any
    response_text: str


def _chat_request(body: Any, served: str) -> dict[str, Any]:
    """An OpenAI chat request for the model `served`, or the error vLLM would answer."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise ApiError(400, "messages must be a list of chat messages")
    if body.get("model") != served:
        raise ApiError(404, f"The model `{body.get('model')}` does not exist.")
    return body


def _pod_model(config: dict[str, Any]) -> str:
    """The model a vLLM pod serves: `--served-model-name`, else the positional model of
    `vllm serve` (or the deprecated `--model`), from its args."""
    served = vllm.from_pod_args(str(config.get("args") or ""), config.get("env") or {}).served
    return served or str((config.get("env") or {}).get("MODEL_NAME") or "")


def _log_query(request: web.Request) -> tuple[int, str | None]:
    """`tail` and `source` of the log routes, checked as the spec defines them."""
    raw_tail = request.query.get("tail", str(LOG_TAIL_DEFAULT))
    if not raw_tail.isdigit() or int(raw_tail) > LOG_TAIL_MAX:
        errors = [f"tail: must be an integer between 0 and {LOG_TAIL_MAX}"]
        raise ApiError(422, "Request validation failed.", errors)
    source = request.query.get("source")
    if source is not None and source not in LOG_SOURCES:
        raise ApiError(422, "Request validation failed.", ["source: must be container or system"])
    return int(raw_tail), source


def _log_events(lines: list[vllm.LogLine]) -> str:
    """Log lines as the spec's SSE: an `id:` (the ts, with a sequence) and a JSON `data:`."""
    out = []
    for seq, (ts, source, line) in enumerate(lines, start=1):
        stamp = iso(ts)
        payload = json.dumps({"ts": stamp, "source": source, "line": line})
        out.append(f"id: {stamp}/{seq:012d}\ndata: {payload}\n\n")
    return "".join(out)


def _parse_body(raw: bytes) -> tuple[Any, bool]:
    """(parsed JSON or None, whether the bytes were unreadable)."""
    if not raw.strip():
        return None, False
    try:
        return json.loads(raw), False
    except ValueError:
        return None, True


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors = [f"{name}: not an RFC 3339 date-time"]
        raise ApiError(422, "Request validation failed.", errors) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class RunPodEmulator:
    """A local RunPod ("sandbox cloud") for the real client code, tests and `cockpit sandbox`."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        worker_ready_seconds: float = 20.0,
        idle_timeout_default: int = 5,
        job_seconds: float = 1.0,
        pod_start_seconds: float = 10.0,
        token_delay: float = 0.0,
        billing_lag_seconds: float = 0.0,
        valid_keys: Collection[str] | None = None,
        validate_responses: bool = False,
        record_exchanges: bool = False,
        seed: int = 0,
        state_file: Path | None = None,
        hardware_rate: bool = False,
        simulate_vllm: bool = True,
    ) -> None:
        self.clock = clock or Clock()
        # Stream tokens at the rate the worker's card would (throughput.py); load-test requests
        # (`ignore_eos`) are paced even when this is off, so /bench is meaningful in tests.
        self.hardware_rate = hardware_rate
        self.throughput = throughput.Throughput(self.clock)
        self.state_file = state_file
        self.state = SandboxState(
            clock=self.clock,
            worker_ready_seconds=worker_ready_seconds,
            idle_timeout_default=idle_timeout_default,
            job_seconds=job_seconds,
            pod_start_seconds=pod_start_seconds,
            billing_lag_seconds=billing_lag_seconds,
            seed=seed,
            simulate_vllm=simulate_vllm,
        )
        self.faults = FaultInjector()
        self.spec: OpenApiSpec = load_spec()
        self.token_delay = token_delay
        self.valid_keys = frozenset(valid_keys) if valid_keys is not None else None
        self.validate_responses = validate_responses
        self.record_exchanges = record_exchanges
        self.exchanges: list[Exchange] = []
        self.response_violations: list[str] = []
        self.tokens_streamed = 0
        self._holds: list[tuple[int, asyncio.Event]] = []
        self._minute = (0, 0)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port); read the URLs from the properties.
        With a `state_file` that exists, the saved account is loaded first."""
        self.load()
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await web.SockSite(self._runner, sock, backlog=1024).start()
        self._base_url = f"http://{host}:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.save()

    # --- persistence (state_file) ----------------------------------------------------------
    def load(self) -> bool:
        """Replace the state with the saved one; False when there is no file to load (or it
        was unreadable and has been moved aside)."""
        if self.state_file is None:
            return False
        data = persist.read(self.state_file)
        if data is None:
            return False
        try:
            persist.load_state(self.state, data, self.clock.now())
        except persist.StateFileError as exc:
            persist.set_aside(self.state_file, exc)
            return False
        log.info("sandbox state loaded from %s", self.state_file)
        return True

    def save(self) -> None:
        """Write the state to `state_file` (no-op without one). A failed write is logged, not
        raised: the request that caused it has already been answered correctly."""
        if self.state_file is None:
            return
        try:
            persist.write_atomic(self.state_file, persist.dump_state(self.state, self.clock.now()))
        except OSError:
            log.warning("could not save the sandbox state to %s", self.state_file, exc_info=True)

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator is not started; await emulator.start() first")
        return self._base_url

    @property
    def api_url(self) -> str:
        """REST v2 base, the stand-in for https://api.runpod.io/v2."""
        return f"{self.base_url}{REST_PREFIX}/v2"

    @property
    def serverless_url(self) -> str:
        """Data-plane base, the stand-in for https://api.runpod.ai/v2."""
        return f"{self.base_url}{SLS_PREFIX}/v2"

    @property
    def pod_proxy_url(self) -> str:
        """Pod ports, the stand-in for https://{pod_id}-{port}.proxy.runpod.net."""
        return f"{self.base_url}{PROXY_PREFIX}/{{pod_id}}-{{port}}"

    # --- Python API for tests and benchmarks ---------------------------------------------
    # These change the state directly, without a request, so they do not save it: call
    # `save()` when it matters before `stop()` (which saves).
    def add_endpoint(self, body: dict[str, Any]) -> str:
        """Create an endpoint directly in state (no HTTP); the body must satisfy the spec."""
        op = self.spec.operation("POST", "/v2/serverless")
        assert op is not None
        pointer = self.spec.request_schema_pointer(op)
        assert pointer is not None
        errors = self.spec.errors(pointer, body)
        if errors:
            raise ValueError("; ".join(errors))
        return self.state.create_endpoint(body, self.clock.now()).id

    def crash_endpoint(self, endpoint_id: str) -> None:
        self.state.crash(self.state.get_endpoint(endpoint_id), self.clock.now())

    def recover_endpoint(self, endpoint_id: str) -> None:
        self.state.recover(self.state.get_endpoint(endpoint_id), self.clock.now())

    def crash_pod(self, pod_id: str, reason: str) -> None:
        """The vLLM server of pod `pod_id` starts crash-looping, logging `reason`."""
        self.state.crash_pod(self.state.get_pod(pod_id), self.clock.now(), reason)

    def set_capacity(self, target: str, *, available: bool) -> None:
        """No capacity in a serverless pool or for a pod GPU type (`available=False`): new
        workers there wait THROTTLED, pod creates answer 400 as RunPod does."""
        if available:
            self.state.no_capacity.discard(target)
        else:
            self.state.no_capacity.add(target)

    def hold_stream(self, after_tokens: int = 1) -> asyncio.Event:
        """Pause the next streamed chat after `after_tokens` content tokens until the returned
        event is set; lets a test prove tokens reach the client before the stream ends."""
        event = asyncio.Event()
        self._holds.append((after_tokens, event))
        return event

    # --- app ---------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=20 * 1024**2)
        app[EMULATOR_KEY] = self
        rest: list[tuple[str, str, Handler]] = [
            ("GET", "/v2/catalog/gpus", self._list_gpus),
            ("GET", "/v2/templates", self._list_templates),
            ("POST", "/v2/templates", self._create_template),
            ("GET", "/v2/templates/{id}", self._get_template),
            ("DELETE", "/v2/templates/{id}", self._delete_template),
            ("GET", "/v2/serverless", self._list_endpoints),
            ("POST", "/v2/serverless", self._create_endpoint),
            ("GET", "/v2/serverless/{id}", self._get_endpoint),
            ("PATCH", "/v2/serverless/{id}", self._update_endpoint),
            ("DELETE", "/v2/serverless/{id}", self._delete_endpoint),
            ("GET", "/v2/serverless/{id}/workers", self._list_workers),
            ("GET", "/v2/serverless/{id}/releases", self._list_releases),
            ("GET", "/v2/serverless/{id}/workers/{worker_id}/logs", self._worker_logs),
            ("GET", "/v2/pods", self._list_pods),
            ("POST", "/v2/pods", self._create_pod),
            ("GET", "/v2/pods/{id}", self._get_pod),
            ("DELETE", "/v2/pods/{id}", self._delete_pod),
            ("POST", "/v2/pods/{id}/action", self._pod_action),
            ("GET", "/v2/pods/{id}/logs", self._pod_logs),
            ("GET", "/v2/billing/serverless", self._billing_serverless),
            ("GET", "/v2/billing/pods", self._billing_pods),
        ]
        for method, path, handler in rest:
            app.router.add_route(method, REST_PREFIX + path, handler)
        ep = SLS_PREFIX + "/v2/{endpoint_id}"
        app.router.add_get(ep + "/health", self._health)
        app.router.add_post(ep + "/run", self._run)
        app.router.add_post(ep + "/runsync", self._runsync)
        app.router.add_route("GET", ep + "/status/{job_id}", self._status)
        app.router.add_route("POST", ep + "/status/{job_id}", self._status)
        app.router.add_post(ep + "/cancel/{job_id}", self._cancel)
        app.router.add_get(ep + "/openai/v1/models", self._models)
        app.router.add_post(ep + "/openai/v1/chat/completions", self._chat)
        pod = PROXY_PREFIX + "/{pod_id}-{port}/v1"
        app.router.add_post(pod + "/chat/completions", self._pod_chat)
        app.router.add_get(pod + "/models", self._pod_models)
        return app

    # --- middleware: auth, faults, validation, recording ----------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(REST_PREFIX + "/"):
            plane = "rest"
        elif request.path.startswith(PROXY_PREFIX + "/"):
            plane = "proxy"  # a pod's own server: its key, not the account's
        else:
            plane = "sls"
        body, unreadable = _parse_body(await request.read())
        _BODY.set(body)
        _SSE.set(None)
        try:
            response = await self._guarded(request, handler, plane, unreadable)
        except ApiError as err:
            response = self._error_response(request, plane, err)
        except web.HTTPException as exc:
            response = self._error_response(request, plane, ApiError(exc.status, exc.reason))
        if plane == "rest" and not response.prepared:
            self._rate_limit_headers(response)
            if self.validate_responses:
                self._check_response(request, response)
        if self.record_exchanges:
            self._record(request, plane, body, response)
        if request.method not in READ_ONLY_METHODS:
            self.save()
        return response

    async def _guarded(
        self, request: web.Request, handler: Handler, plane: str, unreadable: bool
    ) -> web.StreamResponse:
        if plane != "proxy":
            self._authenticate(request, plane)
        delay, fault = self.faults.take(request.method, request.path)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            response = await self._apply_fault(request, handler, fault)
            if response is not None:
                return response
        if plane == "rest":
            self._validate_request(request, unreadable)
        elif unreadable:
            raise ApiError(400, "request body is not valid JSON")
        return await handler(request)

    def _authenticate(self, request: web.Request, plane: str) -> None:
        header = request.headers.get("Authorization", "").strip()
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer":
            token = token.strip()
        elif plane == "sls" and header and not token:
            token = header  # the data plane also takes the bare key
        else:
            token = ""
        if not token:
            raise ApiError(401, "missing bearer token")
        rejected = token.startswith(INVALID_KEY_PREFIX)
        if rejected or (self.valid_keys is not None and token not in self.valid_keys):
            raise ApiError(401, "invalid API key")

    async def _apply_fault(
        self, request: web.Request, handler: Handler, fault: Fault
    ) -> web.StreamResponse | None:
        if fault.kind is FaultKind.RATE_LIMIT:
            err = ApiError(429, "rate limit exceeded for the minute window")
            err.headers = {"Retry-After": str(fault.retry_after)}
            raise err
        if fault.kind is FaultKind.SERVER_ERROR:
            raise ApiError(fault.status, "sandbox: injected server error")
        if fault.kind is FaultKind.CRASH:
            endpoint_id = request.match_info.get("endpoint_id") or request.match_info.get("id")
            if endpoint_id in self.state.endpoints:
                self.crash_endpoint(endpoint_id)
            return None
        # FAIL_CREATE: RunPod has been seen creating the resource and still answering 5xx.
        if fault.create_anyway:
            self._validate_request(request, unreadable=False)
            await handler(request)
        raise ApiError(fault.status, "sandbox: injected failure while creating the resource")

    def _validate_request(self, request: web.Request, unreadable: bool) -> None:
        op = self.spec.find(request.method, request.path[len(REST_PREFIX) :])
        pointer = self.spec.request_schema_pointer(op) if op else None
        if op is None or pointer is None:
            return
        if unreadable:
            raise ApiError(400, "request body is not valid JSON")
        body = _BODY.get()
        if body is None and self.spec.request_body_required(op):
            raise ApiError(400, "request body is required")
        errors = self.spec.errors(pointer, body)
        if errors:
            raise ApiError(422, "Request validation failed.", errors)

    def _error_response(self, request: web.Request, plane: str, err: ApiError) -> web.Response:
        headers = dict(err.headers or {})
        if plane == "rest":
            return web.json_response(
                err.problem(), status=err.status, content_type=PROBLEM_JSON, headers=headers
            )
        if "/openai/" in request.path or plane == "proxy":
            kind = "NotFoundError" if err.status == 404 else "worker_error"
            body: dict[str, Any] = {
                "error": {"message": err.detail, "type": kind, "code": err.status}
            }
        else:
            body = {"error": err.detail}
        return web.json_response(body, status=err.status, headers=headers)

    def _rate_limit_headers(self, response: web.StreamResponse) -> None:
        now = self.clock.now()
        minute = int(now.timestamp() // 60)
        count = self._minute[1] + 1 if self._minute[0] == minute else 1
        self._minute = (minute, count)
        remaining = max(RATE_LIMIT_PER_MINUTE - count, 0)
        response.headers["RateLimit"] = f'"minute";r={remaining};t={60 - now.second}'
        response.headers["RateLimit-Policy"] = RATE_LIMIT_POLICY

    def _check_response(self, request: web.Request, response: web.StreamResponse) -> None:
        path = request.path[len(REST_PREFIX) :]
        op = self.spec.find(request.method, path)
        if op is None or not isinstance(response, web.Response):
            return
        where = f"{request.method} {path} -> {response.status}"
        if response.status == 204:
            if response.body:
                self.response_violations.append(f"{where}: 204 with a body")
            return
        pointer = self.spec.response_schema_pointer(op, response.status, response.content_type)
        if pointer is None:
            self.response_violations.append(f"{where}: undocumented {response.content_type}")
            return
        raw = response.body if isinstance(response.body, bytes) else b""
        instance: Any = raw.decode() if response.content_type == EVENT_STREAM else None
        if instance is not None:
            for line in instance.splitlines():
                if line.startswith("data: "):
                    data = json.loads(line[len("data: ") :])
                    if set(data) != {"ts", "source", "line"}:
                        self.response_violations.append(f"{where}: log event {data}")
        else:
            instance = json.loads(raw or b"null")
        for problem in self.spec.errors(pointer, instance):
            self.response_violations.append(f"{where}: {problem}")
            log.error("sandbox response violates the spec: %s: %s", where, problem)

    def _record(
        self, request: web.Request, plane: str, body: Any, response: web.StreamResponse
    ) -> None:
        prefix = REST_PREFIX if plane == "rest" else SLS_PREFIX
        text = ""
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            text = response.body.decode()
        else:
            text = "".join(_SSE.get() or [])
        parsed, _ = _parse_body(text.encode()) if "json" in response.content_type else (None, False)
        self.exchanges.append(
            Exchange(
                plane=plane,
                method=request.method,
                path=request.path[len(prefix) :],
                query=dict(request.query),
                request_json=body,
                status=response.status,
                content_type=response.content_type,
                response_json=parsed,
                response_text=text,
            )
        )

    # --- REST: catalog and templates -------------------------------------------------------
    async def _list_gpus(self, request: web.Request) -> web.Response:
        include = request.query.get("include")
        products = [p for p in request.query.get("product", "").split(",") if p]
        if include is not None and include != "AVAILABILITY":
            raise ApiError(422, "Request validation failed.", ["include: must be AVAILABILITY"])
        bad = [p for p in products if p not in CATALOG_PRODUCTS]
        if bad:
            raise ApiError(422, "Request validation failed.", [f"product: unknown value {bad[0]}"])
        if bool(include) != bool(products):
            detail = "product is required with include=AVAILABILITY, and valid only with it"
            raise ApiError(400, detail)
        gpus = [catalog.gpu_json(g, availability=bool(include)) for g in catalog.GPUS]
        return web.json_response({"gpus": gpus})

    async def _list_templates(self, request: web.Request) -> web.Response:
        return web.json_response({"templates": list(self.state.templates.values())})

    async def _create_template(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.create_template(_BODY.get()), status=201)

    async def _get_template(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.get_template(request.match_info["id"]))

    async def _delete_template(self, request: web.Request) -> web.Response:
        self.state.delete_template(request.match_info["id"])
        return web.Response(status=204)

    # --- REST: serverless endpoints --------------------------------------------------------
    def _sls_base(self, request: web.Request) -> str:
        return f"{request.url.origin()}{SLS_PREFIX}/v2"

    def _endpoint_response(
        self, request: web.Request, ep: EndpointSim, status: int = 200
    ) -> web.Response:
        body = self.state.endpoint_json(ep, self._sls_base(request))
        return web.json_response(body, status=status)

    async def _list_endpoints(self, request: web.Request) -> web.Response:
        base = self._sls_base(request)
        endpoints = [self.state.endpoint_json(e, base) for e in self.state.endpoints.values()]
        return web.json_response({"endpoints": endpoints})

    async def _create_endpoint(self, request: web.Request) -> web.Response:
        ep = self.state.create_endpoint(_BODY.get(), self.clock.now())
        return self._endpoint_response(request, ep, status=201)

    async def _get_endpoint(self, request: web.Request) -> web.Response:
        return self._endpoint_response(request, self.state.get_endpoint(request.match_info["id"]))

    async def _update_endpoint(self, request: web.Request) -> web.Response:
        ep_id = request.match_info["id"]
        ep = self.state.update_endpoint(ep_id, _BODY.get() or {}, self.clock.now())
        return self._endpoint_response(request, ep)

    async def _delete_endpoint(self, request: web.Request) -> web.Response:
        self.state.delete_endpoint(request.match_info["id"], self.clock.now())
        return web.Response(status=204)

    async def _list_workers(self, request: web.Request) -> web.Response:
        ep = self.state.get_endpoint(request.match_info["id"])
        return web.json_response(self.state.workers_json(ep, self.clock.now()))

    async def _list_releases(self, request: web.Request) -> web.Response:
        ep = self.state.get_endpoint(request.match_info["id"])
        return web.json_response(self.state.releases_json(ep, self.clock.now()))

    async def _worker_logs(self, request: web.Request) -> web.Response:
        tail, source = _log_query(request)
        ep = self.state.get_endpoint(request.match_info["id"])
        lines = self.state.worker_logs(
            ep, request.match_info["worker_id"], self.clock.now(), tail=tail, source=source
        )
        return self._sse_response(lines)

    @staticmethod
    def _sse_response(lines: list[vllm.LogLine]) -> web.Response:
        """The backfill, then the end of the stream (RunPod keeps it open for live lines; the
        sandbox has nothing live to add, so it closes it)."""
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return web.Response(text=_log_events(lines), content_type=EVENT_STREAM, headers=headers)

    # --- REST: pods --------------------------------------------------------------------------
    async def _list_pods(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        pods = [self.state.pod_json(p, now) for p in self.state.pods.values()]
        return web.json_response({"pods": pods})

    async def _create_pod(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        pod = self.state.create_pod(_BODY.get(), now)
        return web.json_response(self.state.pod_json(pod, now), status=201)

    async def _get_pod(self, request: web.Request) -> web.Response:
        pod = self.state.get_pod(request.match_info["id"])
        return web.json_response(self.state.pod_json(pod, self.clock.now()))

    async def _delete_pod(self, request: web.Request) -> web.Response:
        self.state.delete_pod(request.match_info["id"], self.clock.now())
        return web.Response(status=204)

    async def _pod_action(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        pod = self.state.pod_action(request.match_info["id"], _BODY.get()["action"], now)
        if pod is None:
            return web.Response(status=204)
        return web.json_response(self.state.pod_json(pod, now))

    async def _pod_logs(self, request: web.Request) -> web.Response:
        tail, source = _log_query(request)
        pod = self.state.get_pod(request.match_info["id"])
        return self._sse_response(
            self.state.pod_logs(pod, self.clock.now(), tail=tail, source=source)
        )

    # --- REST: billing ---------------------------------------------------------------------
    async def _billing_serverless(self, request: web.Request) -> web.Response:
        return self._billing(request, "serverless", "serverlessId")

    async def _billing_pods(self, request: web.Request) -> web.Response:
        return self._billing(request, "pod", "podId")

    def _billing(self, request: web.Request, kind: str, id_param: str) -> web.Response:
        query = request.query
        bucket = query.get("bucketSize", "day")
        if bucket not in BILLING_BUCKETS:
            errors = [f"bucketSize: must be one of {', '.join(BILLING_BUCKETS)}"]
            raise ApiError(422, "Request validation failed.", errors)
        last_n = None
        if "lastN" in query:
            if not query["lastN"].isdigit() or int(query["lastN"]) < 1:
                errors = ["lastN: must be an integer >= 1"]
                raise ApiError(422, "Request validation failed.", errors)
            last_n = int(query["lastN"])
        now = self.clock.now()
        window = self.state.billing_window(
            now,
            bucket=bucket,
            start=_parse_time("startTime", query.get("startTime")),
            end=_parse_time("endTime", query.get("endTime")),
            last_n=last_n,
        )
        body = self.state.billing(
            kind, now, bucket=bucket, window=window, resource_id=query.get(id_param)
        )
        return web.json_response(body)

    # --- simulated hardware rate (throughput.py) ---------------------------------------------
    def _use_lane(
        self,
        body: dict[str, Any],
        key: str,
        gpu_type_id: str,
        gpu_count: int,
        env: dict[str, Any],
        model: str,
    ) -> None:
        """Serve this request through the worker's simulated batch when it is paced."""
        if not throughput.wants_pacing(body, always=self.hardware_rate):
            return
        spec = catalog.GPUS_BY_ID.get(gpu_type_id)
        _LANE.set(
            self.throughput.lane(
                key,
                gpu_type_id=gpu_type_id,
                gpu_count=gpu_count,
                memory_gb=spec.memory if spec else 0,
                env=env,
                model_id=model,
            )
        )

    # --- data plane --------------------------------------------------------------------------
    def _endpoint(self, request: web.Request) -> EndpointSim:
        ep_id = request.match_info["endpoint_id"]
        if ep_id not in self.state.endpoints:
            raise ApiError(404, f"endpoint {ep_id} not found")
        return self.state.endpoints[ep_id]

    async def _health(self, request: web.Request) -> web.Response:
        ep = self._endpoint(request)
        return web.json_response(self.state.health_json(ep, self.clock.now()))

    @staticmethod
    def _job_input(request: web.Request) -> Any:
        body = _BODY.get()
        if not isinstance(body, dict) or "input" not in body:
            raise ApiError(400, "request body must be a JSON object with an 'input' field")
        return body["input"]

    async def _run(self, request: web.Request) -> web.Response:
        ep = self._endpoint(request)
        job = self.state.submit_job(ep, self._job_input(request), self.clock.now(), sync=False)
        return web.json_response({"id": job.id, "status": job.status(self.clock.now())})

    async def _runsync(self, request: web.Request) -> web.Response:
        ep = self._endpoint(request)
        wait_raw = request.query.get("wait", str(RUNSYNC_WAIT_DEFAULT_MS))
        valid = wait_raw.isdigit() and RUNSYNC_WAIT_MIN_MS <= int(wait_raw) <= RUNSYNC_WAIT_MAX_MS
        if not valid:
            raise ApiError(400, "wait is invalid; must be between 1000 and 300000")
        now = self.clock.now()
        job = self.state.submit_job(ep, self._job_input(request), now, sync=True)
        wait = int(wait_raw) / 1000
        if job.end_at is not None:
            wait = min(wait, (job.end_at - now).total_seconds())
        await self._sleep_until(now, wait)
        return web.json_response(job.json(self.clock.now()))

    async def _status(self, request: web.Request) -> web.Response:
        ep = self._endpoint(request)
        job = self.state.get_job(ep, request.match_info["job_id"], self.clock.now())
        return web.json_response(job.json(self.clock.now()))

    async def _cancel(self, request: web.Request) -> web.Response:
        ep = self._endpoint(request)
        job = self.state.cancel_job(ep, request.match_info["job_id"], self.clock.now())
        return web.json_response({"id": job.id, "status": job.status(self.clock.now())})

    async def _sleep_until(self, start: datetime, seconds: float) -> None:
        """Wait on the clock until `start + seconds`; concurrent waiters share one FakeClock."""
        while (remaining := seconds - (self.clock.now() - start).total_seconds()) > 0:
            await self.clock.sleep(remaining)

    @contextlib.asynccontextmanager
    async def _worker_for(self, ep: EndpointSim) -> AsyncIterator[WorkerSim]:
        now = self.clock.now()
        worker, wait = self.state.begin_request(ep, now)
        ok = False
        try:
            await self._sleep_until(now, wait)
            if ep.crashed or ep.id not in self.state.endpoints:
                raise ApiError(500, self.state.crash_error(ep))
            yield worker
            ok = True
        finally:
            self.state.end_request(ep, worker, self.clock.now(), ok=ok)

    async def _models(self, request: web.Request) -> web.Response:
        ep = self._endpoint(request)
        async with self._worker_for(ep):
            created = int(ep.created_at.timestamp())
            return web.json_response(chat.models_json(ep.served_model(), created=created))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        ep = self._endpoint(request)
        body = _chat_request(_BODY.get(), ep.served_model())
        async with self._worker_for(ep) as worker:
            env = ep.config.get("env") or {}
            model = str(env.get("MODEL_NAME") or ep.served_model())
            self._use_lane(
                body, f"worker:{worker.id}", worker.gpu_type_id, worker.gpu_count, env, model
            )
            return await self._answer(request, ep.served_model(), body)

    def _pod_server(self, request: web.Request) -> tuple[Any, str]:
        """vLLM's OpenAI server in a pod, as RunPod's proxy shows it: 502 until the container
        runs and vLLM has loaded the model (or while it crash-loops), 401 without the pod's
        VLLM_API_KEY; returns (pod, served model name)."""
        pod = self.state.get_pod(request.match_info["pod_id"])
        port = request.match_info["port"]
        if f"{port}/http" not in pod.config.get("ports", []):
            raise ApiError(404, f"pod {pod.id} exposes no HTTP port {port}")
        now = self.clock.now()
        if self.state.pod_status(pod, now) != "RUNNING":
            raise ApiError(502, f"pod {pod.id} is not running")
        if not self.state.pod_serving(pod, now):
            raise ApiError(502, f"Bad Gateway: nothing answers on port {port} of pod {pod.id} yet")
        expected = (pod.config.get("env") or {}).get("VLLM_API_KEY")
        if expected and request.headers.get("Authorization") != f"Bearer {expected}":
            raise ApiError(401, "Unauthorized")
        return pod, _pod_model(pod.config)

    async def _pod_models(self, request: web.Request) -> web.Response:
        pod, served = self._pod_server(request)
        return web.json_response(chat.models_json(served, created=int(pod.created_at.timestamp())))

    async def _pod_chat(self, request: web.Request) -> web.StreamResponse:
        pod, served = self._pod_server(request)
        body = _chat_request(_BODY.get(), served)
        # Paced as the pod's `vllm serve` arguments make it: the checkpoint they load (not the
        # --served-model-name alias) at the --quantization they ask for.
        env = dict(pod.config.get("env") or {})
        serve = vllm.from_pod_args(str(pod.config.get("args") or ""), env)
        if serve.quantization:
            env["QUANTIZATION"] = serve.quantization
        model = serve.model or served
        self._use_lane(body, f"pod:{pod.id}", pod.gpu.id, pod.gpu_count, env, model)
        return await self._answer(request, served, body)

    async def _answer(
        self, request: web.Request, served: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        """The sandbox model's answer to a checked chat request: whole, or streamed as SSE."""
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        reply = chat.reply_for(served, body["messages"], max_tokens)
        reply = throughput.apply_ignore_eos(reply, body)
        completion_id = f"chatcmpl-{self.state.new_id(24)}"
        created = int(self.clock.now().timestamp())
        if not body.get("stream"):
            payload = chat.completion_json(reply, completion_id=completion_id, created=created)
            return web.json_response(payload)
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(request, reply, completion_id, created, usage)

    async def _stream(
        self,
        request: web.Request,
        reply: chat.ChatReply,
        completion_id: str,
        created: int,
        usage: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        sent: list[str] = []
        _SSE.set(sent)
        hold = self._holds.pop(0) if self._holds else None

        async def emit(data: dict[str, Any] | str) -> None:
            frame = chat.sse(data)
            sent.append(frame.decode())
            await response.write(frame)

        def chunk(**fields: Any) -> dict[str, Any]:
            return chat.chunk_json(reply, completion_id=completion_id, created=created, **fields)

        lane = _LANE.get()
        seq = None
        if lane is not None:
            seq = lane.join(prompt_tokens=reply.prompt_tokens, output_tokens=len(reply.tokens))
        try:
            await emit(chunk(delta={"role": "assistant", "content": ""}))
            for index, piece in enumerate(reply.pieces(), start=1):
                if seq is not None:
                    await seq.next_token()  # the simulated GPU produced it
                await emit(chunk(delta={"content": piece}))
                self.tokens_streamed += 1
                if hold is not None and index == hold[0]:
                    await hold[1].wait()
                if self.token_delay and seq is None:
                    await self.clock.sleep(self.token_delay)
        except ConnectionResetError:
            if seq is None:
                raise
            return response  # a load-test client went away (cut off, cancelled): not an error
        finally:
            if seq is not None:
                seq.close()
        await emit(chunk(delta={}, finish_reason=reply.finish_reason))
        if usage:
            await emit(chunk(usage=True))
        await emit("[DONE]")
        await response.write_eof()
        return response


EMULATOR_KEY = web.AppKey("emulator", RunPodEmulator)


def make_app(**options: Any) -> web.Application:
    """A standalone emulator app (`web.run_app(make_app())`); options as for RunPodEmulator."""
    return RunPodEmulator(**options).make_app()


async def main(port: int = DEFAULT_PORT, *, host: str = "127.0.0.1") -> None:
    """Run the sandbox until cancelled, printing the two base URLs (`cockpit sandbox`)."""
    emulator = RunPodEmulator(token_delay=0.02, hardware_rate=True)
    await emulator.start(host=host, port=port)
    print(SANDBOX_BANNER)
    print(f"  RUNPOD_API_URL={emulator.api_url}")
    print(f"  RUNPOD_SERVERLESS_URL={emulator.serverless_url}")
    print(f"  started {time.strftime('%Y-%m-%d %H:%M:%S')}; Ctrl-C to stop", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
