"""Contract: the client speaks RunPod REST v2 as the official OpenAPI spec defines it.

A scenario drives every client method against the emulator, which records each exchange. Each
recorded REST request (body and query) and response (status, content type, body) is then
checked against the spec with `openapi-schema-validator` (OAS 3.1 dialect, formats checked),
independently of the emulator's own jsonschema validation. Data-plane exchanges, which the
REST spec does not cover, are checked against the documented shapes (RunPod's serverless
endpoint operations and worker-vllm's OpenAI-compatible route).
The client's read models must also parse every example response the spec ships.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from pydantic import BaseModel
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from runpod_helpers import MODEL, Sandbox, chat_messages, endpoint_request, sandbox

from tools.errors import CockpitError
from tools.runpod.models import (
    CreateEndpointRequest,
    CreatePodRequest,
    CreateTemplateRequest,
    Endpoint,
    EndpointGpuRequest,
    EndpointGpuUpdate,
    EndpointWorkerList,
    GpuType,
    Pod,
    PodBilling,
    PodGpuRequest,
    ReleaseHistory,
    RequestCountScalingRequest,
    ServerlessBilling,
    Template,
    UpdateEndpointRequest,
    WorkersRequest,
)
from tools.runpod.sandbox import SPEC_FILE, Exchange

SPEC: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
URI = "urn:contract-test:runpod-rest-v2"
REGISTRY: Registry[Any] = Registry().with_resource(URI, DRAFT202012.create_resource(SPEC))

# REST operations the client implements: all must appear in the recorded traffic.
CLIENT_OPERATIONS = {
    "listGpuTypes",
    "createTemplate",
    "getTemplate",
    "listTemplates",
    "deleteTemplate",
    "createEndpoint",
    "getEndpoint",
    "listEndpoints",
    "updateEndpoint",
    "deleteEndpoint",
    "listEndpointWorkers",
    "listEndpointReleases",
    "getWorkerLogs",
    "getPodLogs",
    "createPod",
    "getPod",
    "listPods",
    "podAction",
    "deletePod",
    "listServerlessBilling",
    "listPodBilling",
}
# Models the client parses each operation's success response with.
READ_MODELS: dict[str, tuple[type[BaseModel], str | None]] = {
    "listGpuTypes": (GpuType, "gpus"),
    "getTemplate": (Template, None),
    "listTemplates": (Template, "templates"),
    "createEndpoint": (Endpoint, None),
    "getEndpoint": (Endpoint, None),
    "updateEndpoint": (Endpoint, None),
    "listEndpoints": (Endpoint, "endpoints"),
    "listEndpointWorkers": (EndpointWorkerList, None),
    "listEndpointReleases": (ReleaseHistory, None),
    "createPod": (Pod, None),
    "getPod": (Pod, None),
    "listPods": (Pod, "pods"),
    "podAction": (Pod, None),
    "listServerlessBilling": (ServerlessBilling, None),
    "listPodBilling": (PodBilling, None),
}

# --- data-plane shapes (/run /runsync /status /cancel /health; the OpenAI route) -------------
JOB_STATES = ["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]
COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
DATA_PLANE: dict[str, dict[str, Any]] = {
    "run_request": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "input": {},
            "webhook": {"type": "string"},
            "s3Config": {"type": "object"},
            "policy": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "executionTimeout": {"type": "integer", "minimum": 5000},
                    "lowPriority": {"type": "boolean"},
                    "ttl": {"type": "integer", "minimum": 10000},
                },
            },
        },
    },
    "job": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "status": {"enum": JOB_STATES},
            "delayTime": {"type": "integer", "minimum": 0},
            "executionTime": {"type": "integer", "minimum": 0},
            "error": {"type": "string"},
        },
        "if": {"properties": {"status": {"const": "FAILED"}}},
        "then": {"required": ["error"], "not": {"required": ["output"]}},
    },
    "health": {
        "type": "object",
        "required": ["jobs", "workers"],
        "properties": {"jobs": COUNTS, "workers": COUNTS},
    },
    "models": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": {"type": "object", "required": ["id", "object"]},
            },
        },
    },
    "chat_request": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string"},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {"role": {"enum": ["system", "user", "assistant", "tool"]}},
                },
            },
            "max_tokens": {"type": "integer", "minimum": 1},
            "stream": {"type": "boolean"},
            "stream_options": {
                "type": "object",
                "properties": {"include_usage": {"type": "boolean"}},
            },
        },
    },
    "usage": {
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            "prompt_tokens": {"type": "integer", "minimum": 0},
            "completion_tokens": {"type": "integer", "minimum": 0},
            "total_tokens": {"type": "integer", "minimum": 0},
        },
    },
    "chat_completion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "object": {"const": "chat.completion"},
            "choices": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["index", "message", "finish_reason"],
                    "properties": {
                        "message": {
                            "type": "object",
                            "required": ["role", "content"],
                            "properties": {"role": {"const": "assistant"}},
                        }
                    },
                },
            },
        },
    },
    "chat_chunk": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "object": {"const": "chat.completion.chunk"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "delta", "finish_reason"],
                    "properties": {
                        "delta": {"type": "object"},
                        "finish_reason": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
    "error": {"type": "object", "required": ["error"]},
}


# --- spec helpers (independent of tools.runpod.sandbox.spec) ----------------------------------


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            token = part.replace("~1", "/").replace("~0", "~")
            target = target[int(token)] if isinstance(target, list) else target[token]
        node = target
    return node


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _oas_errors(pointer: str, instance: Any) -> list[str]:
    validator = OAS31Validator(
        {"$ref": f"{URI}#{pointer}"}, registry=REGISTRY, format_checker=oas31_format_checker
    )
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(instance)]


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The spec path template and operation for a concrete path (literal segments first)."""
    candidates = []
    for template, item in SPEC["paths"].items():
        regex = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if method.lower() in item and re.match(regex, path):
            candidates.append((template.count("{"), template))
    if not candidates:
        return None
    template = min(candidates)[1]
    return template, SPEC["paths"][template][method.lower()]


def _query_errors(template: str, method: str, query: dict[str, str]) -> list[str]:
    op = SPEC["paths"][template][method]
    pointers: dict[str, str] = {}  # query parameter name -> pointer of its schema
    for index, param in enumerate(op.get("parameters", [])):
        base = param["$ref"].lstrip("#") if "$ref" in param else None
        base = base or _pointer("paths", template, method, "parameters", str(index))
        if _resolve(param)["in"] == "query":
            pointers[_resolve(param)["name"]] = f"{base}/schema"
    problems = []
    for name, raw in query.items():
        if name not in pointers:
            problems.append(f"query parameter {name!r} is not in the spec")
            continue
        schema = _resolve(_resolve({"$ref": "#" + pointers[name]}))
        value: Any = raw
        if schema.get("type") == "array":
            value = raw.split(",")
        elif schema.get("type") == "integer" and raw.isdigit():
            value = int(raw)
        problems += [f"query {name}: {e}" for e in _oas_errors(pointers[name], value)]
    return problems


def _rest_problems(ex: Exchange) -> Iterator[str]:
    found = _operation(ex.method, ex.path)
    where = f"{ex.method} {ex.path} -> {ex.status}"
    if found is None:
        yield f"{where}: no such operation in the spec"
        return
    template, op = found
    body_spec = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body_spec is not None:
        pointer = _pointer("paths", template, ex.method.lower(), "requestBody", "content")
        pointer += "/application~1json/schema"
        yield from (f"{where}: request {e}" for e in _oas_errors(pointer, ex.request_json))
    elif ex.request_json is not None:
        yield f"{where}: the spec defines no request body here"
    yield from (f"{where}: {e}" for e in _query_errors(template, ex.method.lower(), ex.query))
    key = str(ex.status) if str(ex.status) in op["responses"] else "default"
    response = _resolve(op["responses"][key])
    content = response.get("content", {})
    if not content:
        if ex.response_text:
            yield f"{where}: the spec says no body, got {ex.response_text[:80]!r}"
        return
    if ex.content_type not in content:
        yield f"{where}: content type {ex.content_type} not in {sorted(content)}"
        return
    ref = op["responses"][key].get("$ref")
    base = (
        ref.lstrip("#") if ref else _pointer("paths", template, ex.method.lower(), "responses", key)
    )
    pointer = f"{base}/content/{ex.content_type.replace('/', '~1')}/schema"
    if ex.content_type == "text/event-stream":  # the log routes: a string of SSE events
        yield from (f"{where}: response {e}" for e in _oas_errors(pointer, ex.response_text))
        for line in ex.response_text.splitlines():
            if line.startswith("data: ") and set(json.loads(line[6:])) != {"ts", "source", "line"}:
                yield f"{where}: log event {line!r} is not {{ts, source, line}}"
        return
    yield from (f"{where}: response {e}" for e in _oas_errors(pointer, ex.response_json))


def _shape_errors(shape: str, instance: Any) -> list[str]:
    validator = Draft202012Validator(DATA_PLANE[shape])
    return [f"{shape} {e.json_path}: {e.message}" for e in validator.iter_errors(instance)]


def _sse_chunks(text: str) -> list[Any]:
    payloads = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert payloads and payloads[-1] == "[DONE]", "a stream must end with data: [DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def _data_plane_problems(ex: Exchange) -> Iterator[str]:
    where = f"{ex.method} {ex.path} -> {ex.status}"
    route = ex.path.split("/", 3)[3]  # /v2/<endpoint>/<route...>
    if ex.status >= 400:
        yield from (f"{where}: {e}" for e in _shape_errors("error", ex.response_json))
        return
    if route in ("run", "runsync"):
        yield from (f"{where}: {e}" for e in _shape_errors("run_request", ex.request_json))
    if route.startswith(("run", "status/", "cancel/")):
        yield from (f"{where}: {e}" for e in _shape_errors("job", ex.response_json))
    elif route == "health":
        yield from (f"{where}: {e}" for e in _shape_errors("health", ex.response_json))
    elif route == "openai/v1/models":
        yield from (f"{where}: {e}" for e in _shape_errors("models", ex.response_json))
    elif route == "openai/v1/chat/completions":
        yield from (f"{where}: {e}" for e in _shape_errors("chat_request", ex.request_json))
        if ex.content_type == "text/event-stream":
            chunks = _sse_chunks(ex.response_text)
            for chunk in chunks:
                yield from (f"{where}: {e}" for e in _shape_errors("chat_chunk", chunk))
            usage = [c["usage"] for c in chunks if c.get("usage")]
            yield from (f"{where}: {e}" for u in usage for e in _shape_errors("usage", u))
        else:
            yield from (f"{where}: {e}" for e in _shape_errors("chat_completion", ex.response_json))
    else:
        yield f"{where}: unexpected data-plane route {route!r}"


# --- the scenario ------------------------------------------------------------------------------


async def _expect_error(awaitable: Any, status: int) -> None:
    with pytest.raises(CockpitError) as failed:
        await awaitable
    assert getattr(failed.value, "status", 429) == status, str(failed.value)


async def _exercise(sb: Sandbox) -> None:
    """Call every client method, success paths and typical refusals."""
    c = sb.client
    await c.list_gpus()
    await c.list_gpus(include_availability=True)

    tpl = await c.create_template(
        CreateTemplateRequest(
            name="cockpit-contract-tpl",
            image="runpod/worker-v1-vllm:v2.25.2",
            env={"MODEL_NAME": MODEL},
            disk=40,
            serverless=True,
            category="NVIDIA",
            allowed_cuda_versions=["12.8"],
        )
    )
    await c.get_template(tpl.id)
    await c.list_templates(name_prefix="cockpit-")

    ep = await c.create_endpoint(endpoint_request("cockpit-contract"))
    bound = await c.create_endpoint(
        CreateEndpointRequest(
            name="cockpit-contract-bound",
            template_id=tpl.id,
            env={"MAX_MODEL_LEN": "4096"},
            gpu=EndpointGpuRequest(
                pools=["AMPERE_80", "ADA_80_PRO"],
                excluded_types=["NVIDIA A100-SXM4-80GB"],
            ),
            workers=WorkersRequest(min=1, max=3),
            scaling=RequestCountScalingRequest(request_count=4),
            data_center_ids=["US-KS-2"],
            flashboot="FLASHBOOT",
            timeout=600_000,
        )
    )
    await c.get_endpoint(ep.id)
    await c.list_endpoints(name_prefix="cockpit-")
    await c.update_endpoint(
        ep.id,
        UpdateEndpointRequest(
            workers=WorkersRequest(max=3, idle_timeout=10),
            env={"MODEL_NAME": MODEL, "GPU_MEMORY_UTILIZATION": "0.9"},
            gpu=EndpointGpuUpdate(min_cuda_version="12.4"),
        ),
    )
    await c.update_endpoint(bound.id, {"gpu": {"minCudaVersion": "", "allowedCudaVersions": []}})

    await c.health(ep.id)
    job = await c.run(ep.id, {"prompt": "queued"}, policy={"ttl": 60_000})
    await c.status(ep.id, job.id)
    pending = await c.runsync(ep.id, {"prompt": "not yet"}, wait_ms=5_000)
    await c.cancel(ep.id, pending.id)
    sb.clock.advance(30)
    await c.status(ep.id, job.id)
    await c.runsync(ep.id, {"prompt": "done"})
    await c.list_models(ep.id)
    await c.chat_completion(ep.id, chat_messages(), MODEL, max_tokens=64)
    assert [d async for d in c.stream_chat(ep.id, chat_messages("stream it"), MODEL)]
    workers = await c.list_workers(ep.id)
    await c.worker_logs(ep.id, workers.workers[0].id, tail=20)
    await c.list_releases(ep.id)

    pod = await c.create_pod(
        CreatePodRequest(
            name="cockpit-contract-pod",
            image="runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
            gpu=PodGpuRequest(id="NVIDIA RTX A6000", count=2, allowed_cuda_versions=["12.8"]),
            cloud="COMMUNITY",
            ports=["8888/http", "22/tcp"],
            env={"JUPYTER_PASSWORD": "sandbox"},
            disk=50,
        )
    )
    await c.get_pod(pod.id)
    await c.pod_logs(pod.id)
    await c.list_pods(name_prefix="cockpit-")
    sb.clock.advance(3600)
    await c.pod_action(pod.id, "stop")
    await _expect_error(c.pod_action(pod.id, "restart"), 409)
    await c.pod_action(pod.id, "start")
    sb.clock.advance(30)
    await c.pod_action(pod.id, "restart")
    await c.pod_action(pod.id, "terminate")
    spare = await c.create_pod(
        {"name": "cockpit-spare", "image": "img", "gpu": {"id": "NVIDIA L4"}}
    )
    await c.delete_pod(spare.id)

    start, end = sb.clock.now().replace(hour=0), sb.clock.now()
    await c.billing_serverless(start, end, "hour")
    await c.billing_serverless(start, end, "day", serverless_id=ep.id)
    await c.billing_pods(start, end, "day")
    await c.billing_pods(start, end, "hour", pod_id=pod.id)

    stranger = sb.client_with(api_key="invalid-key-for-contract")
    await _expect_error(stranger.list_endpoints(), 401)
    await stranger.aclose()
    await _expect_error(c.get_endpoint("doesnotexist"), 404)
    await _expect_error(c.get_pod("doesnotexist"), 404)
    await _expect_error(c.create_endpoint(endpoint_request("x", pools=("NOPE_16",))), 400)
    await _expect_error(c.delete_template(tpl.id), 400)  # still bound to an endpoint
    sb.emulator.faults.inject("/rest/v2/templates", "rate_limit", times=1, retry_after=2)
    await c.list_templates()
    sb.emulator.faults.inject("/rest/v2/serverless", "rate_limit", retry_after=3600)
    await _expect_error(c.list_endpoints(), 429)
    sb.emulator.faults.clear()

    await c.delete_endpoint(bound.id)
    await c.delete_endpoint(ep.id)
    await c.delete_template(tpl.id)


async def _recorded() -> list[Exchange]:
    async with sandbox() as sb:
        await _exercise(sb)
        return list(sb.emulator.exchanges)


# --- tests -------------------------------------------------------------------------------------


async def test_every_rest_exchange_matches_the_openapi_spec() -> None:
    exchanges = [e for e in await _recorded() if e.plane == "rest"]
    problems = [p for ex in exchanges for p in _rest_problems(ex)]
    assert problems == [], "\n".join(problems)
    statuses = {e.status for e in exchanges}
    assert {200, 201, 204, 400, 401, 404, 409, 429} <= statuses


async def test_every_client_operation_is_exercised() -> None:
    seen = set()
    for ex in await _recorded():
        if ex.plane == "rest" and ex.status < 400:
            found = _operation(ex.method, ex.path)
            assert found is not None
            seen.add(found[1]["operationId"])
    assert seen >= CLIENT_OPERATIONS, sorted(CLIENT_OPERATIONS - seen)


async def test_data_plane_exchanges_have_the_documented_shapes() -> None:
    exchanges = [e for e in await _recorded() if e.plane == "sls"]
    routes = {e.path.split("/", 3)[3].split("/")[0] for e in exchanges}
    assert routes >= {"health", "run", "runsync", "status", "cancel", "openai"}
    problems = [p for ex in exchanges for p in _data_plane_problems(ex)]
    assert problems == [], "\n".join(problems)


async def test_rate_limited_responses_carry_retry_after_and_every_response_ratelimit() -> None:
    async with sandbox() as sb:
        sb.emulator.faults.inject("/rest/v2/pods", "rate_limit", times=1, retry_after=2)
        await sb.client.list_pods()
        assert [e.status for e in sb.emulator.exchanges] == [429, 200]


def _examples() -> Iterator[tuple[str, str, Any]]:
    for item in SPEC["paths"].values():
        for op in item.values():
            if not isinstance(op, dict) or op.get("operationId") not in READ_MODELS:
                continue
            for status in ("200", "201"):
                media = _resolve(op["responses"].get(status, {})).get("content", {})
                for name, example in media.get("application/json", {}).get("examples", {}).items():
                    yield op["operationId"], name, example["value"]


@pytest.mark.parametrize(("operation", "name", "example"), list(_examples()))
def test_client_models_read_every_spec_example(operation: str, name: str, example: Any) -> None:
    model, key = READ_MODELS[operation]
    items = example[key] if key else [example]
    for item in items:
        model.model_validate(item)


def test_the_spec_is_the_copy_shipped_in_the_package() -> None:
    """The contract is RunPod's REST v2 spec as the package ships it (package data, loaded the
    way an installed wheel loads it), the same file the emulator validates against."""
    shipped = resources.files("tools.runpod.sandbox") / "runpod-rest-v2.openapi.json"
    assert json.loads(shipped.read_text(encoding="utf-8")) == SPEC
    assert SPEC["openapi"].startswith("3.1") and SPEC["info"]["version"].startswith("2.")
    assert [s["url"] for s in SPEC["servers"]] == ["https://api.runpod.io"]
