"""A loopback fake of the Slack Web API (aiohttp.web), for tests and local experiments.

It records every call (method, parsed form/JSON body, headers) and answers the way Slack does:
`{"ok": true, ...}` with the fields our code reads (ts/channel for chat.postMessage, a view for
views.*, upload URLs for files_upload_v2, a team/bot for auth.test and oauth.v2.access). It also
serves `response_url` posts (`/resp/<id>`), file uploads (`/upload/<id>`) and a Socket Mode
WebSocket (`/link`). Knobs: `rate_limit_once(method, retry_after)` answers the next call with
429 + Retry-After; `fail_once(method, error)` answers `{"ok": false, "error": ...}`.

    async with FakeSlack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        ...
        call = await fake.wait_for("chat.postMessage")
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

DEFAULT_TEAM_ID = "T0FAKE"
DEFAULT_TEAM_NAME = "Fake Team"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
WAIT_TIMEOUT_SECONDS = 3.0
POLL_INTERVAL_SECONDS = 0.01


@dataclass
class Call:
    method: str  # "chat.postMessage", or "response_url" / "upload" for the non-API paths
    body: dict[str, Any]
    headers: dict[str, str]
    path: str = ""

    @property
    def token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :]
        value = self.body.get("token")
        return str(value) if value else None

    def blocks(self) -> list[dict[str, Any]]:
        raw = self.body.get("blocks") or []
        return json.loads(raw) if isinstance(raw, str) else list(raw)

    def text_dump(self) -> str:
        """Everything the call carried, as one string (for "never echoed" assertions)."""
        return json.dumps(self.body, default=str)


@dataclass
class FakeSlack:
    team_id: str = DEFAULT_TEAM_ID
    team_name: str = DEFAULT_TEAM_NAME
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    installed_token: str = "xoxb-installed-token-0001"
    installer_id: str = "UINSTALLER"
    # Slack's streaming messages (chat.startStream/appendStream/stopStream). Off, the methods
    # answer `unknown_method`, as for an app or workspace without the feature.
    streaming: bool = False

    def __post_init__(self) -> None:
        self.calls: list[Call] = []
        self.socket_acks: list[dict[str, Any]] = []
        self._rate_limited: dict[str, int] = {}
        self._failures: dict[str, str] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._server: TestServer | None = None
        self.streams: dict[str, dict[str, Any]] = {}  # ts -> {"text", "blocks", "stopped"}
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_connected = asyncio.Event()
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/resp/{id}", self._response_url)
        app.router.add_post("/upload/{id}", self._upload)
        app.router.add_get("/link", self._socket)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/resp/{name}"

    # -- knobs ----------------------------------------------------------------------------

    def rate_limit_once(self, method: str, retry_after: int = 1) -> None:
        """The next call of `method` gets HTTP 429 with `Retry-After: retry_after`."""
        self._rate_limited[method] = retry_after

    def fail_once(self, method: str, error: str) -> None:
        """The next call of `method` gets `{"ok": false, "error": error}`."""
        self._failures[method] = error

    # -- reading what was received ----------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def all_text(self) -> str:
        return "\n".join(c.text_dump() for c in self.calls)

    async def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        where: Any = None,
        timeout: float = WAIT_TIMEOUT_SECONDS,
    ) -> Call:
        """Poll until `count` calls of `method` (matching `where(call)`) arrived; return the
        last one. Raises AssertionError with what did arrive on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [c for c in self.calls_to(method) if where is None or where(c)]
            if len(found) >= count:
                return found[count - 1]
            if loop.time() > deadline:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"expected {count}× {method}; the fake received {seen}")
            await asyncio.sleep(POLL_INTERVAL_SECONDS)

    # -- handlers -------------------------------------------------------------------------

    async def _parse(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if not raw:
            return body
        ctype = request.content_type
        if ctype == "application/json":
            data = json.loads(raw)
            if isinstance(data, dict):
                body.update(data)
        elif ctype == "application/x-www-form-urlencoded":
            body.update(dict(parse_qsl(raw.decode(), keep_blank_values=True)))
        else:
            body["_raw_length"] = len(raw)
        for key in ("blocks", "view", "files"):
            value = body.get(key)
            if isinstance(value, str) and value[:1] in "[{":
                body[key] = json.loads(value)
        return body

    def _record(self, method: str, request: web.Request, body: dict[str, Any]) -> Call:
        call = Call(method=method, body=body, headers=dict(request.headers), path=request.path)
        self.calls.append(call)
        return call

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._parse(request)
        self._record(method, request, body)
        if method in self._rate_limited:
            retry_after = self._rate_limited.pop(method)
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        if method in self._failures:
            return web.json_response({"ok": False, "error": self._failures.pop(method)})
        return web.json_response(self._answer(method, body))

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        ok: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            return {
                **ok,
                "url": "https://fake.slack.test/",
                "team": self.team_name,
                "team_id": self.team_id,
                "user": "cockpit",
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {"ts": ts, "text": body.get("text"), "blocks": body.get("blocks")}
            if body.get("thread_ts"):
                message["thread_ts"] = body["thread_ts"]
            return {**ok, "channel": body.get("channel"), "ts": ts, "message": message}
        if method == "chat.update":
            return {
                **ok,
                "channel": body.get("channel"),
                "ts": body.get("ts"),
                "text": body.get("text"),
            }
        if method.endswith("Stream") and method.startswith("chat."):
            return self._stream_answer(method, body)
        if method == "chat.postEphemeral":
            return {**ok, "message_ts": self._next_ts()}
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view = body.get("view") or {}
            return {**ok, "view": {**view, "id": f"V{next(self._ids)}"}}
        if method == "users.info":
            user_id = str(body.get("user") or "")
            user = self.users.get(user_id) or {
                "id": user_id,
                "name": user_id.lower(),
                "real_name": f"User {user_id}",
                "profile": {"display_name": user_id.lower(), "real_name": f"User {user_id}"},
            }
            return {**ok, "user": user}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ids)}"
            return {**ok, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = body.get("files") or []
            return {**ok, "files": [{"id": f.get("id"), "title": f.get("title")} for f in files]}
        if method == "oauth.v2.access":
            return {
                **ok,
                "app_id": "AFAKE",
                "authed_user": {"id": self.installer_id},
                "scope": "commands,chat:write,app_mentions:read",
                "token_type": "bot",
                "access_token": self.installed_token,
                "bot_user_id": BOT_USER_ID,
                "team": {"id": self.team_id, "name": self.team_name},
                "enterprise": None,
                "is_enterprise_install": False,
            }
        if method == "apps.connections.open":
            return {**ok, "url": self.url.replace("http://", "ws://") + "/link"}
        return ok

    def _stream_answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if not self.streaming:
            return {"ok": False, "error": "unknown_method"}
        if method == "chat.startStream":
            if not body.get("thread_ts"):
                return {"ok": False, "error": "invalid_arguments"}
            ts = self._next_ts()
            self.streams[ts] = {
                "text": str(body.get("markdown_text") or ""),
                "blocks": [],
                "stopped": False,
                "thread_ts": body.get("thread_ts"),
            }
            return {"ok": True, "channel": body.get("channel"), "ts": ts}
        stream = self.streams.get(str(body.get("ts")))
        if stream is None:
            return {"ok": False, "error": "message_not_found"}
        if stream["stopped"]:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        stream["text"] += str(body.get("markdown_text") or "")
        if method == "chat.stopStream":
            stream["stopped"] = True
            raw = body.get("blocks") or []
            stream["blocks"] = json.loads(raw) if isinstance(raw, str) else list(raw)
        return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await self._parse(request)
        self._record("response_url", request, body)
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        body = await self._parse(request)
        self._record("upload", request, body)
        return web.Response(text="OK - uploaded")

    # -- Socket Mode ----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1})
        self._socket_connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(msg.data))
        finally:
            self._sockets.remove(ws)
        return ws

    async def push_envelope(
        self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None
    ) -> str:
        """Send a Socket Mode envelope (`events_api`, `slash_commands`, `interactive`) to the
        connected app; returns its envelope id (the app acks with it)."""
        await asyncio.wait_for(self._socket_connected.wait(), WAIT_TIMEOUT_SECONDS)
        envelope_id = envelope_id or f"env-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        for ws in self._sockets:
            await ws.send_json(envelope)
        return envelope_id

    async def wait_for_ack(self, envelope_id: str, timeout: float = WAIT_TIMEOUT_SECONDS) -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for ack in self.socket_acks:
                if ack.get("envelope_id") == envelope_id:
                    return ack
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
        raise AssertionError(f"no Socket Mode ack for {envelope_id}; got {self.socket_acks}")
