"""The HTTP API (`cockpit web`): tools over JSON with API keys, through the same dispatcher.

    GET  /api/v1/tools               the tools this key may call
    POST /api/v1/tools/{name}        run one (JSON body = arguments)
    GET  /api/v1/openapi.json        an OpenAPI 3.1 description

`Idempotency-Key: <up to 200 printable characters>` on a POST makes a retry safe: the same key
for the same tool with the same API key returns the first answer (the same approval id) and
runs nothing again; the same key with other arguments is 422 (nothing runs). Keys are scoped
per API key, so one client can never replay another's.

Status codes: 200 done · 202 approval requested (a person approves it in chat with the buttons
or `/approve <id>`) · 400 bad arguments · 401 missing, wrong, expired or revoked key · 403 role
or scope too small · 404 unknown tool or resource · 422 Idempotency-Key reused with other
arguments · 429 rate limited (Retry-After)."""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot import api_access
from bot.api_access import ApiCaller
from tools.contract import Reply

if TYPE_CHECKING:
    from bot.app import Cockpit

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 200
_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
MAX_JSON_DEPTH = 32  # tool arguments are flat; deeper bodies are refused before anything runs
BAD_BODY = "The body must be a JSON object of arguments (UTF-8)."
STATUS_BY_CODE = {
    "invalid_input": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "idempotency_key_reused": 422,
    "rate_limited": 429,
    "provider_error": 502,
}


def add_api_routes(app: web.Application, cockpit: Cockpit) -> None:
    api = HttpApi(cockpit)
    app.router.add_get(f"{API_PREFIX}/tools", _guarded(api.list_tools))
    app.router.add_post(f"{API_PREFIX}/tools/{{name}}", _guarded(api.call_tool))
    app.router.add_get(f"{API_PREFIX}/openapi.json", _guarded(api.openapi))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    """An unexpected exception becomes a problem+json 500 naming a reference (the traceback is
    logged under it), never aiohttp's bare "Server got itself in trouble"."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            ref = f"api-{uuid.uuid4().hex[:12]}"
            log.exception("HTTP API %s %s failed (reference %s)", request.method, request.path, ref)
            return _problem(
                500,
                "Internal Server Error",
                f"Something went wrong on our side (reference {ref}). Nothing else "
                "was changed; the details are in the bot's logs.",
                request_id=ref,
            )

    return guarded


def _read_arguments(body: bytes) -> dict[str, Any] | str:
    """The JSON object of arguments, or why the body is not one (for a 400)."""
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"The body is not valid UTF-8 (byte {exc.start}). {BAD_BODY}"
    try:
        raw = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return f"The body is not valid JSON ({exc.msg}, line {exc.lineno}). {BAD_BODY}"
    except RecursionError:
        return f"The body is nested too deeply (at most {MAX_JSON_DEPTH} levels). {BAD_BODY}"
    except ValueError as exc:  # NaN/Infinity, an integer of thousands of digits
        return f"The body has a value JSON arguments cannot carry ({exc}). {BAD_BODY}"
    if not isinstance(raw, dict):
        return BAD_BODY
    if _too_deep(raw, MAX_JSON_DEPTH):
        return f"The body is nested too deeply (at most {MAX_JSON_DEPTH} levels). {BAD_BODY}"
    return raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    headers = {}
    if "retry_after" in extra and extra["retry_after"] is not None:
        headers["Retry-After"] = str(max(1, math.ceil(extra.pop("retry_after"))))
    body = {"title": title, "status": status, "detail": detail, **extra}
    return web.json_response(
        body, status=status, headers=headers, content_type="application/problem+json"
    )


class HttpApi:
    def __init__(self, cockpit: Cockpit) -> None:
        self.cockpit = cockpit

    @property
    def registry(self) -> Any:
        return self.cockpit.services.registry

    async def _authenticate(self, request: web.Request) -> ApiCaller | web.Response:
        header = request.headers.get("Authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not key:
            return _problem(
                401,
                "Unauthorized",
                "Send an API key as `Authorization: Bearer <key>`"
                " (create one with /apikey in chat).",
            )
        caller = await api_access.authenticate(self.cockpit, key)
        if caller == "unknown":
            return _problem(401, "Unauthorized", "That API key is not valid.")
        if caller == "revoked":
            return _problem(
                401, "Unauthorized", "That API key was revoked. Create a new one with /apikey."
            )
        if caller == "expired":
            return _problem(
                401, "Unauthorized", "That API key has expired. Create a new one with /apikey."
            )
        return caller

    async def list_tools(self, request: web.Request) -> web.Response:
        key = await self._authenticate(request)
        if isinstance(key, web.Response):
            return key
        tools = [t for t in self.registry.all() if key.may_call(t)]
        return web.json_response(
            {
                "tools": [
                    {
                        "name": t.name,
                        "description": t.summary,
                        "needs_approval": t.needs_approval,
                        "side_effect": t.side_effect.value,
                        "input_schema": t.anthropic_schema()["input_schema"],
                    }
                    for t in tools
                ]
            }
        )

    async def call_tool(self, request: web.Request) -> web.Response:
        key = await self._authenticate(request)
        if isinstance(key, web.Response):
            return key
        name = request.match_info["name"]
        tool = self.registry.get(name)
        if tool is None:
            return _problem(
                404,
                "Not Found",
                f"There is no tool {name!r}. GET {API_PREFIX}/tools "
                "lists the ones this key may call.",
            )
        ctx = await api_access.context_for(self.cockpit, key)  # the dispatcher checks scopes
        idempotency = request.headers.get(IDEMPOTENCY_HEADER)
        if idempotency is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency):
            return _problem(
                400,
                "Bad Request",
                f"{IDEMPOTENCY_HEADER} must be 1 to "
                f"{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters.",
            )
        raw = _read_arguments(await request.read() if request.can_read_body else b"")
        if isinstance(raw, str):
            return _problem(400, "Bad Request", raw)
        if idempotency is not None:
            keyed = await api_access.keyed_context(
                self.cockpit, key, ctx, tool, key=idempotency, arguments=raw
            )
            if isinstance(keyed, Reply):
                return self._respond(keyed, request_id=ctx.request_id)
            ctx = keyed
        reply = await self.cockpit.dispatcher.run(ctx, tool.name, raw)
        return self._respond(reply, request_id=ctx.request_id)

    def _respond(self, reply: Reply, *, request_id: str) -> web.Response:
        if reply.approval_id is not None:
            return web.json_response(
                {
                    "status": "approval_requested",
                    "approval_id": reply.approval_id,
                    "detail": "A person must approve this in chat (button, or /approve "
                    f"{reply.approval_id}) before it runs.",
                    "reply": reply.model_dump(mode="json", exclude_none=True),
                },
                status=202,
            )
        if reply.ok:
            return web.json_response(
                {"status": "ok", "reply": reply.model_dump(mode="json", exclude_none=True)}
            )
        status = STATUS_BY_CODE.get(
            reply.error_code or "", 500 if reply.error_code == "error" else 400
        )
        return _problem(
            status,
            web.Response(status=status).reason or "Error",
            reply.text,
            retry_after=reply.retry_after,
            request_id=request_id,
        )

    async def openapi(self, request: web.Request) -> web.Response:
        paths: dict[str, Any] = {
            f"{API_PREFIX}/tools": {
                "get": {
                    "summary": "Tools this API key may call",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "The tools"},
                        "401": {"description": "Missing, wrong, expired or revoked key"},
                    },
                }
            },
        }
        for t in self.registry.all():
            paths[f"{API_PREFIX}/tools/{t.name}"] = {
                "post": {
                    "summary": t.summary,
                    "description": t.description.strip(),
                    "security": [{"bearer": []}],
                    "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {"schema": t.anthropic_schema()["input_schema"]}
                        },
                    },
                    "responses": {
                        "200": {"description": "Done: the reply"},
                        "202": {"description": "Approval requested; a person approves in chat"},
                        "400": {"description": "Invalid arguments (the usage is in `detail`)"},
                        "401": {"description": "Missing, wrong, expired or revoked key"},
                        "403": {"description": "Role or scope too small"},
                        "404": {"description": "Unknown tool or resource"},
                        "422": {"description": "Idempotency-Key reused with other arguments"},
                        "429": {"description": "Rate limited; see Retry-After"},
                        "500": {
                            "description": "A bug on our side; `request_id` names it in the logs"
                        },
                    },
                }
            }
        return web.json_response(
            {
                "openapi": "3.1.0",
                "info": {"title": "AI Dev Cockpit API", "version": "1"},
                "components": {
                    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                    "parameters": {
                        "IdempotencyKey": {
                            "name": IDEMPOTENCY_HEADER,
                            "in": "header",
                            "required": False,
                            "description": "Makes a retry safe: the same key for the same "
                            "tool with the same API key returns the first answer (the same "
                            "approval id) and runs nothing again. Scoped per API key.",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
                                "pattern": "^[\\x21-\\x7e]+$",
                            },
                        }
                    },
                },
                "paths": paths,
            }
        )
