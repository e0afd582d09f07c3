"""A loopback fake of the Anthropic Messages API that replays scripted turns.

The real `anthropic` SDK (httpx2 transport) talks to it over HTTP through `base_url`, so the
agent's client code runs unchanged. Routes:

- `POST /v1/messages`: pops the next scripted turn. With `"stream": true` it answers with SSE
  exactly as the API does (`message_start`, `content_block_start` / `content_block_delta`
  (`text_delta`, `input_json_delta`) / `content_block_stop`, `ping`, `message_delta` with
  `stop_reason` and cumulative usage, `message_stop`); otherwise with the Message JSON.
  A turn can also be raw SSE text (`OFFICIAL_TOOL_USE_SSE`, the official tool_use example from
  Anthropic's streaming docs, is replayed byte for byte) or an HTTP error.
- `POST /v1/messages/count_tokens`: an estimate (characters / 4).
- `GET /v1/models`: the scripted model ids.

Every request is recorded (`fake.requests`: headers and JSON body) so tests can assert on the
tools, cache_control, the system prompt and the absence of sampling parameters. Auth accepts
`Authorization: Bearer <key>` (what the 2.x SDK sends) or `x-api-key`; a key not in
`api_keys` gets a 401 like the real API. With no turn left the fake answers 500 and says so.

Usage:

    async with running_fake_anthropic() as fake:
        fake.add(tool_use("get_spend", {"period": "this week"}))
        fake.add(text_turn("You spent $12.34 this week."))
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from aiohttp import web

from fakes.loopback import serve

DEFAULT_API_KEYS = frozenset({"sk-ant-test"})
DEFAULT_MODEL = "claude-sonnet-4-5"
TEXT_CHUNK_WORDS = 2  # a text block streams as deltas of a couple of words
JSON_CHUNK_CHARS = 12  # tool input streams as fragments of this many characters

# The official example stream of a tool_use response, from Anthropic's "Streaming Messages"
# docs ("Streaming request with tool use"), copied from the reference notes.
OFFICIAL_TOOL_USE_SSE = """event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":","}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" let"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'s"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" check"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" weather"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" for"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" San"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" Francisco"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":","}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" CA"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":":"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"San"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" Francisc"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"o,"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" CA\\""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":", "}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\\"unit\\": \\"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"renheit\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"""
OFFICIAL_TOOL_USE_ID = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_ids = count(1)


# --- scripted turns ----------------------------------------------------------------------------


@dataclass
class Turn:
    """One scripted answer. Exactly one of `content` (a Message), `sse` (raw stream text) or
    `status` (an HTTP error) is used; `error_mid_stream` sends an SSE `error` event instead of
    the final events."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = "end_turn"
    usage: dict[str, int] = field(
        default_factory=lambda: {"input_tokens": 100, "output_tokens": 20}
    )
    sse: str | None = None
    status: int | None = None
    error_type: str | None = None
    error_message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    error_mid_stream: str | None = None

    def message(self, model: str) -> dict[str, Any]:
        return {
            "id": f"msg_fake{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": {
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                **self.usage,
            },
        }


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_use_block(name: str, input: dict[str, Any], *, id: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": id or f"toolu_fake{next(_ids):06d}",
        "name": name,
        "input": input,
    }


def text_turn(text: str, *, stop_reason: str = "end_turn", **usage: int) -> Turn:
    """An answer with one text block."""
    return Turn(content=[text_block(text)], stop_reason=stop_reason, usage=_usage(usage))


def tool_use(
    name: str,
    input: dict[str, Any] | None = None,
    *,
    text: str | None = None,
    id: str | None = None,
    **usage: int,
) -> Turn:
    """An answer that calls one tool (optionally after some text)."""
    content = [text_block(text)] if text else []
    content.append(tool_use_block(name, input or {}, id=id))
    return Turn(content=content, stop_reason="tool_use", usage=_usage(usage))


def tool_uses(calls: Iterable[tuple[str, dict[str, Any]]], *, text: str | None = None) -> Turn:
    """An answer with several tool_use blocks (parallel tool use)."""
    content = [text_block(text)] if text else []
    content.extend(tool_use_block(name, args) for name, args in calls)
    return Turn(content=content, stop_reason="tool_use")


def error_turn(status: int, *, message: str = "scripted error", retry_after_ms: int = 1) -> Turn:
    """An HTTP error as the API sends it; `retry-after-ms` keeps SDK retries instant."""
    return Turn(
        status=status,
        error_type=ERROR_TYPES.get(status, "api_error"),
        error_message=message,
        headers={"retry-after-ms": str(retry_after_ms)},
    )


def raw_sse(text: str) -> Turn:
    return Turn(sse=text)


def _usage(extra: dict[str, int]) -> dict[str, int]:
    return {"input_tokens": 100, "output_tokens": 20, **extra}


# --- the server --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("x-api-key")

    @property
    def tool_names(self) -> list[str]:
        return [t["name"] for t in self.body.get("tools", [])]

    @property
    def system_text(self) -> str:
        system = self.body.get("system", "")
        if isinstance(system, str):
            return system
        return "\n\n".join(b.get("text", "") for b in system)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


class FakeAnthropic:
    """State and handlers of the fake; start it with `running_fake_anthropic()`."""

    def __init__(self, *, api_keys: Iterable[str] = DEFAULT_API_KEYS) -> None:
        self.api_keys = set(api_keys)
        self.turns: deque[Turn] = deque()
        self.requests: list[RecordedRequest] = []
        self.url = ""
        self.models = [DEFAULT_MODEL]

    # -- scripting --
    def add(self, *turns: Turn) -> FakeAnthropic:
        self.turns.extend(turns)
        return self

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/messages"]

    # -- server --
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _record(self, request: web.Request) -> RecordedRequest:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = {}
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body if isinstance(body, dict) else {},
        )
        self.requests.append(rec)
        return rec

    def _auth_error(self, rec: RecordedRequest) -> web.Response | None:
        if rec.api_key in self.api_keys:
            return None
        return _error(401, "authentication_error", "invalid x-api-key")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        denied = self._auth_error(rec)
        if denied is not None:
            return denied
        if not self.turns:
            return _error(500, "api_error", "fake_anthropic: no scripted turn left")
        turn = self.turns.popleft()
        if turn.status is not None:
            return _error(
                turn.status,
                turn.error_type or "api_error",
                turn.error_message,
                headers=turn.headers,
            )
        model = str(rec.body.get("model") or DEFAULT_MODEL)
        if turn.sse is not None:
            return await _send_sse(request, [turn.sse])
        message = turn.message(model)
        if not rec.body.get("stream"):
            return web.json_response(message)
        return await _send_sse(request, _stream_events(message, turn.error_mid_stream))

    async def _count_tokens(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        denied = self._auth_error(rec)
        if denied is not None:
            return denied
        size = len(json.dumps(rec.body))
        return web.json_response({"input_tokens": max(1, size // 4)})

    async def _models(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        denied = self._auth_error(rec)
        if denied is not None:
            return denied
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
            for m in self.models
        ]
        return web.json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": self.models[0],
                "last_id": self.models[-1],
            }
        )


def _error(
    status: int, err_type: str, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "type": "error",
        "error": {"type": err_type, "message": message},
        "request_id": f"req_fake{next(_ids):06d}",
    }
    return web.json_response(body, status=status, headers=headers or {})


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _stream_events(message: dict[str, Any], error_mid_stream: str | None) -> list[str]:
    """The SSE events the API sends for `message`: blocks stream as small deltas."""
    usage = dict(message["usage"])
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    out = [_event("message_start", {"type": "message_start", "message": start})]
    out.append(_event("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            out.append(
                _event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            for piece in _text_pieces(block["text"]):
                out.append(
                    _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                )
        elif block["type"] == "tool_use":
            out.append(
                _event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": block["id"],
                            "name": block["name"],
                            "input": {},
                        },
                    },
                )
            )
            raw = json.dumps(block["input"])
            pieces = [""] + [
                raw[i : i + JSON_CHUNK_CHARS] for i in range(0, len(raw), JSON_CHUNK_CHARS)
            ]
            for piece in pieces:
                out.append(
                    _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                )
        else:
            out.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if error_mid_stream:
        out.append(
            _event(
                "error",
                {
                    "type": "error",
                    "error": {"type": error_mid_stream, "message": "scripted mid-stream error"},
                },
            )
        )
        return out
    out.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": usage,
            },
        )
    )
    out.append(_event("message_stop", {"type": "message_stop"}))
    return out


def _text_pieces(text: str) -> list[str]:
    words = text.split(" ")
    pieces = []
    for i in range(0, len(words), TEXT_CHUNK_WORDS):
        chunk = " ".join(words[i : i + TEXT_CHUNK_WORDS])
        pieces.append(chunk if i == 0 else " " + chunk)
    return pieces or [""]


async def _send_sse(request: web.Request, events: list[str]) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
    )
    await resp.prepare(request)
    for ev in events:
        await resp.write(ev.encode())
    await resp.write_eof()
    return resp


@asynccontextmanager
async def running_fake_anthropic(
    *, api_keys: Iterable[str] = DEFAULT_API_KEYS
) -> AsyncIterator[FakeAnthropic]:
    """Start the fake on 127.0.0.1 (random port); `fake.url` is the base_url to pass on."""
    fake = FakeAnthropic(api_keys=api_keys)
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake


__all__ = [
    "OFFICIAL_TOOL_USE_ID",
    "OFFICIAL_TOOL_USE_SSE",
    "FakeAnthropic",
    "RecordedRequest",
    "Turn",
    "error_turn",
    "raw_sse",
    "running_fake_anthropic",
    "text_block",
    "text_turn",
    "tool_use",
    "tool_use_block",
    "tool_uses",
]
