"""A loopback fake of the Discord REST API (aiohttp.web), for tests and local experiments.

Point discord.py at it with `discord.http.Route.BASE = fake.api_base` (or DISCORD_API_URL): the
bot, interaction responses and webhooks (`Webhook.from_url(fake.webhook_url(...))`) all build
their URLs from Route.BASE. It records every call (method, path, JSON or multipart payload, the
time on an injectable clock) and answers like Discord for what discord.py calls:

- `GET /users/@me`, `GET /oauth2/applications/@me` (login); no gateway: events are fed in by
  the tests, and `gateway_url` (for `DiscordWebSocket.DEFAULT_GATEWAY`) records a connection
  attempt and refuses it;
- `POST /interactions/{id}/{token}/callback` (with_response: the callback object);
- `/webhooks/{app_id}/{token}` followups, `.../messages/@original|{id}` get/edit/delete; the
  first followup after a deferred response edits the "thinking…" message, as Discord does;
- `POST /webhooks/{id}/{token}` webhook execution (alert routes);
- channel messages (create/edit/delete/get), threads from a message, channel delete;
- `PUT /applications/{app}/commands` and the guild variant (echoed with ids and versions);
- `GET /guilds/{id}/roles` (set with `fake.roles[guild_id] = [...]`).

Responses are `application/json` exactly (discord.py parses nothing else). Unknown routes
answer 404 and are recorded, so a test sees what it did not expect.

    async with FakeDiscord(clock=clock) as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        ...
        edits = fake.calls_matching("PATCH", r"/channels/\\d+/messages/\\d+")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway-ws"
APPLICATION_ID = 1_100_000_000_000_000_001
BOT_USER_ID = 1_100_000_000_000_000_002
OWNER_ID = 1_100_000_000_000_000_003
BOT_NAME = "cockpit"
WAIT_TIMEOUT_SECONDS = 3.0
POLL_INTERVAL_SECONDS = 0.01
EPHEMERAL_FLAG = 64
LOADING_FLAG = 128

# Interaction callback types (Discord docs "Interaction Response Type").
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8


@dataclass
class Call:
    method: str
    path: str  # without the /api/v10 prefix, e.g. "/channels/1/messages"
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, content)
    at: float = 0.0  # the fake's clock (FakeClock.monotonic() in tests)

    @property
    def payload(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def embeds(self) -> list[dict[str, Any]]:
        data = self.payload
        if "data" in data and isinstance(data["data"], dict):  # interaction callbacks
            data = data["data"]
        return list(data.get("embeds") or [])

    @property
    def content(self) -> str:
        data = self.payload
        if "data" in data and isinstance(data["data"], dict):
            data = data["data"]
        return str(data.get("content") or "")

    @property
    def flags(self) -> int:
        data = self.payload
        if "data" in data and isinstance(data["data"], dict):
            data = data["data"]
        return int(data.get("flags") or 0)

    def text_dump(self) -> str:
        return json.dumps(self.json, default=str)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py's json_or_text compares the header literally.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class FakeDiscord:
    def __init__(self, *, clock: Any = None) -> None:
        self.clock = clock
        self.calls: list[Call] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.roles: dict[int, list[dict[str, Any]]] = {}
        self.interactions: dict[str, dict[str, Any]] = {}  # token -> what Discord knows
        self.deleted_channels: list[int] = []
        self._ids = itertools.count(1_200_000_000_000_000_001)
        self._server: TestServer | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._dispatch)
        app.router.add_get(GATEWAY_PATH, self._no_gateway)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def api_base(self) -> str:
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """For `DiscordWebSocket.DEFAULT_GATEWAY`: a loopback URL that records the attempt and
        refuses the WebSocket upgrade, so a started client retries without leaving this
        machine."""
        return self.url.replace("http://", "ws://") + GATEWAY_PATH

    def webhook_url(self, webhook_id: int = 1_300_000_000_000_000_001, token: str = "") -> str:
        """A Discord-shaped webhook URL (what `Webhook.from_url` accepts); requests still go to
        Route.BASE, i.e. this fake."""
        token = token or "T" * 68
        return f"https://discord.com/api/webhooks/{webhook_id}/{token}"

    def new_id(self) -> int:
        return next(self._ids)

    # -- what tests read ------------------------------------------------------------------

    def calls_matching(self, method: str, path_pattern: str) -> list[Call]:
        rx = re.compile(path_pattern)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    async def wait_for(
        self,
        predicate: Callable[[Call], bool] | tuple[str, str],
        *,
        count: int = 1,
        timeout: float = WAIT_TIMEOUT_SECONDS,
    ) -> list[Call]:
        """Wait until at least `count` recorded calls match; returns them all."""
        if isinstance(predicate, tuple):
            method, pattern = predicate
            rx = re.compile(pattern)

            def check(c: Call) -> bool:
                return c.method == method and bool(rx.fullmatch(c.path))
        else:
            check = predicate
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [c for c in self.calls if check(c)]
            if len(found) >= count:
                return found
            if loop.time() >= deadline:
                seen = "\n".join(f"  {c.method} {c.path}" for c in self.calls)
                raise AssertionError(f"expected {count} matching call(s); saw:\n{seen}")
            await asyncio.sleep(POLL_INTERVAL_SECONDS)

    def callbacks(self, interaction_id: int) -> list[Call]:
        return self.calls_matching("POST", rf"/interactions/{interaction_id}/[^/]+/callback")

    def followups(self, token: str) -> list[Call]:
        return self.calls_matching("POST", rf"/webhooks/{APPLICATION_ID}/{re.escape(token)}")

    def register_interaction(self, payload: dict[str, Any]) -> None:
        """What Discord knows about an interaction it sends: its channel and, for a component
        click, the message carrying the component (the one a deferred update edits)."""
        message = payload.get("message") or {}
        self.interactions[str(payload["token"])] = {
            "id": int(payload["id"]),
            "type": int(payload["type"]),
            "channel_id": int((payload.get("channel") or {}).get("id") or payload["channel_id"]),
            "guild_id": payload.get("guild_id"),
            "component_message_id": int(message["id"]) if message.get("id") else None,
            "original": int(message["id"]) if message.get("id") else None,
            "deferred": False,
            "deleted": False,
        }

    def message(self, message_id: int) -> dict[str, Any]:
        return self.messages[int(message_id)]

    # -- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await self._read_body(request)
        at = self.clock.monotonic() if self.clock is not None else asyncio.get_running_loop().time()
        call = Call(request.method, path, dict(request.query), body, files, at)
        self.calls.append(call)
        for method, pattern, handler in self._routes():
            if request.method != method:
                continue
            m = re.fullmatch(pattern, path)
            if m:
                return await handler(call, **m.groupdict())
        return json_response({"message": f"404: Not Found ({path})", "code": 0}, status=404)

    def _routes(self) -> list[tuple[str, str, Any]]:
        wh = r"/webhooks/(?P<wid>\d+)/(?P<token>[^/]+)"
        msg = r"(?P<mid>@original|\d+)"
        return [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("GET", r"/gateway(?:/bot)?", self._gateway),
            ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", self._callback),
            ("POST", wh, self._execute_webhook),
            ("GET", wh + "/messages/" + msg, self._webhook_get),
            ("PATCH", wh + "/messages/" + msg, self._webhook_edit),
            ("DELETE", wh + "/messages/" + msg, self._webhook_delete),
            ("POST", r"/channels/(?P<cid>\d+)/messages", self._create_message),
            ("GET", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._get_message),
            ("PATCH", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._edit_message),
            ("DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._delete_message),
            ("POST", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/threads", self._thread),
            ("POST", r"/channels/(?P<cid>\d+)/threads", self._thread),
            ("GET", r"/channels/(?P<cid>\d+)", self._get_channel),
            ("DELETE", r"/channels/(?P<cid>\d+)", self._delete_channel),
            ("PUT", r"/applications/(?P<app>\d+)/commands", self._put_commands),
            ("PUT", r"/applications/(?P<app>\d+)/guilds/(?P<gid>\d+)/commands", self._put_commands),
            ("GET", r"/applications/(?P<app>\d+)/commands", self._get_commands),
            ("GET", r"/applications/(?P<app>\d+)/guilds/(?P<gid>\d+)/commands", self._get_commands),
            ("GET", r"/guilds/(?P<gid>\d+)/roles", self._roles),
        ]

    async def _read_body(self, request: web.Request) -> tuple[Any, list[tuple[str, bytes]]]:
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            form = await request.post()
            data: Any = {}
            files: list[tuple[str, bytes]] = []
            for name, value in form.items():
                if name == "payload_json":
                    data = json.loads(str(value))
                elif hasattr(value, "file"):
                    files.append((str(value.filename), value.file.read()))
            return data, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw.decode(errors="replace"), []

    # -- objects --------------------------------------------------------------------------

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": str(BOT_USER_ID),
            "username": BOT_NAME,
            "discriminator": "0",
            "global_name": "AI Dev Cockpit",
            "avatar": None,
            "bot": True,
            "public_flags": 0,
            "flags": 0,
        }

    def _new_message(
        self,
        *,
        channel_id: int,
        data: dict[str, Any],
        files: list[tuple[str, bytes]],
        webhook_id: int | None = None,
        flags: int = 0,
    ) -> dict[str, Any]:
        mid = self.new_id()
        message = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": 0,
            "content": data.get("content") or "",
            "author": self.bot_user(),
            "embeds": data.get("embeds") or [],
            "components": data.get("components") or [],
            "attachments": self._attachments(files),
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "flags": flags | int(data.get("flags") or 0),
        }
        if webhook_id is not None:
            message["webhook_id"] = str(webhook_id)
            message["application_id"] = str(APPLICATION_ID)
        self.messages[mid] = message
        return message

    def _attachments(self, files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        out = []
        for name, content in files:
            aid = self.new_id()
            url = f"https://cdn.discordapp.com/attachments/0/{aid}/{name}"
            out.append(
                {
                    "id": str(aid),
                    "filename": name,
                    "size": len(content),
                    "url": url,
                    "proxy_url": url,
                }
            )
        return out

    def _edit(self, message: dict[str, Any], data: Any, files: list[tuple[str, bytes]]) -> None:
        if isinstance(data, dict):
            for key in ("content", "embeds", "components", "flags"):
                if key in data:
                    message[key] = (
                        data[key]
                        if data[key] is not None
                        else ("" if key == "content" else 0 if key == "flags" else [])
                    )
        if files:
            message["attachments"] = self._attachments(files)
        message["edited_timestamp"] = _now_iso()

    # -- handlers -------------------------------------------------------------------------

    async def _me(self, call: Call) -> web.Response:
        return json_response(self.bot_user())

    async def _no_gateway(self, request: web.Request) -> web.Response:
        at = self.clock.monotonic() if self.clock is not None else 0.0
        self.calls.append(Call("GET", GATEWAY_PATH, dict(request.query), None, [], at))
        return web.Response(status=503, text="no gateway in this fake")

    async def _application(self, call: Call) -> web.Response:
        return json_response(
            {
                "id": str(APPLICATION_ID),
                "name": "AI Dev Cockpit",
                "description": "",
                "icon": None,
                "rpc_origins": [],
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": {
                    "id": str(OWNER_ID),
                    "username": "owner",
                    "discriminator": "0",
                    "avatar": None,
                },
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "interactions_endpoint_url": None,
                "bot": self.bot_user(),
            }
        )

    async def _gateway(self, call: Call) -> web.Response:
        return json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _callback(self, call: Call, iid: str, token: str) -> web.Response:
        known = self.interactions.setdefault(
            token,
            {
                "id": int(iid),
                "type": 2,
                "channel_id": 0,
                "guild_id": None,
                "component_message_id": None,
                "original": None,
                "deferred": False,
                "deleted": False,
            },
        )
        kind = int(call.payload.get("type") or 0)
        data = call.payload.get("data") or {}
        interaction: dict[str, Any] = {"id": iid, "type": known["type"]}
        result: dict[str, Any] = {"interaction": interaction}
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0)
            message = self._new_message(
                channel_id=known["channel_id"],
                data=data if kind == CHANNEL_MESSAGE else {"flags": flags},
                files=call.files,
                webhook_id=APPLICATION_ID,
                flags=LOADING_FLAG if kind == DEFERRED_CHANNEL_MESSAGE else 0,
            )
            known["original"] = int(message["id"])
            known["deferred"] = kind == DEFERRED_CHANNEL_MESSAGE
            interaction.update(
                response_message_id=message["id"],
                response_message_loading=kind == DEFERRED_CHANNEL_MESSAGE,
                response_message_ephemeral=bool(flags & EPHEMERAL_FLAG),
            )
            result["resource"] = {"type": kind, "message": message}
        elif kind == UPDATE_MESSAGE and known["component_message_id"]:
            message = self.messages[known["component_message_id"]]
            self._edit(message, data, call.files)
            result["resource"] = {"type": kind, "message": message}
        return json_response(result)

    async def _execute_webhook(self, call: Call, wid: str, token: str) -> web.StreamResponse:
        data = call.payload
        known = self.interactions.get(token)
        if known is not None and int(wid) == APPLICATION_ID:
            # An interaction followup: the first one after a deferred response replaces the
            # "thinking…" message (unless that was deleted).
            original = known.get("original")
            if known.get("deferred") and original and not known.get("deleted"):
                known["deferred"] = False
                message = self.messages[original]
                self._edit(message, data, call.files)
                message["flags"] = int(message.get("flags") or 0) & ~LOADING_FLAG
            else:
                message = self._new_message(
                    channel_id=known["channel_id"],
                    data=data,
                    files=call.files,
                    webhook_id=APPLICATION_ID,
                )
        else:
            message = self._new_message(
                channel_id=self.new_id(), data=data, files=call.files, webhook_id=int(wid)
            )
            if data.get("username"):
                message["author"] = {
                    "id": wid,
                    "username": data["username"],
                    "discriminator": "0000",
                    "avatar": None,
                    "bot": True,
                }
        if call.query.get("wait") in ("true", "1", "True"):
            return json_response(message)
        return web.Response(status=204)

    def _webhook_message(self, token: str, mid: str) -> dict[str, Any] | None:
        known = self.interactions.get(token) or {}
        if mid == "@original":
            original = known.get("original")
            if original is None or known.get("deleted"):
                return None
            return self.messages.get(original)
        return self.messages.get(int(mid))

    async def _webhook_get(self, call: Call, wid: str, token: str, mid: str) -> web.Response:
        message = self._webhook_message(token, mid)
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        return json_response(message)

    async def _webhook_edit(self, call: Call, wid: str, token: str, mid: str) -> web.Response:
        message = self._webhook_message(token, mid)
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        self._edit(message, call.payload, call.files)
        known = self.interactions.get(token)
        if known is not None and mid == "@original":
            known["deferred"] = False
        return json_response(message)

    async def _webhook_delete(self, call: Call, wid: str, token: str, mid: str) -> web.Response:
        message = self._webhook_message(token, mid)
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        self.messages.pop(int(message["id"]), None)
        known = self.interactions.get(token)
        if known is not None and mid == "@original":
            known["deleted"] = True
        return web.Response(status=204)

    async def _create_message(self, call: Call, cid: str) -> web.Response:
        message = self._new_message(channel_id=int(cid), data=call.payload, files=call.files)
        return json_response(message)

    async def _get_message(self, call: Call, cid: str, mid: str) -> web.Response:
        message = self.messages.get(int(mid))
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        return json_response(message)

    async def _edit_message(self, call: Call, cid: str, mid: str) -> web.Response:
        message = self.messages.get(int(mid))
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        self._edit(message, call.payload, call.files)
        return json_response(message)

    async def _delete_message(self, call: Call, cid: str, mid: str) -> web.Response:
        self.messages.pop(int(mid), None)
        return web.Response(status=204)

    async def _thread(self, call: Call, cid: str, mid: str | None = None) -> web.Response:
        parent = self.channels.get(int(cid), {})
        tid = int(mid) if mid else self.new_id()  # a thread from a message takes its id
        thread = {
            "id": str(tid),
            "type": 11,
            "guild_id": parent.get("guild_id") or str(self._guild_of(int(cid))),
            "parent_id": cid,
            "owner_id": str(BOT_USER_ID),
            "name": call.payload.get("name") or "thread",
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": call.payload.get("auto_archive_duration") or 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }
        self.channels[tid] = thread
        return json_response(thread, status=201)

    def _guild_of(self, channel_id: int) -> int:
        for known in self.interactions.values():
            if known.get("channel_id") == channel_id and known.get("guild_id"):
                return int(known["guild_id"])
        return 0

    async def _get_channel(self, call: Call, cid: str) -> web.Response:
        channel = self.channels.get(int(cid))
        if channel is None:
            return json_response({"message": "Unknown Channel", "code": 10003}, status=404)
        return json_response(channel)

    async def _delete_channel(self, call: Call, cid: str) -> web.Response:
        channel = self.channels.pop(int(cid), None)
        self.deleted_channels.append(int(cid))
        return json_response(channel or {"id": cid, "type": 11})

    async def _put_commands(self, call: Call, app: str, gid: str | None = None) -> web.Response:
        guild = int(gid) if gid else None
        echoed = []
        for cmd in call.json or []:
            out = {
                **cmd,
                "id": str(self.new_id()),
                "application_id": app,
                "version": str(self.new_id()),
                "default_member_permissions": cmd.get("default_member_permissions"),
                "dm_permission": cmd.get("dm_permission", True),
                "nsfw": cmd.get("nsfw", False),
            }
            if guild is not None:
                out["guild_id"] = str(guild)
            echoed.append(out)
        self.commands[guild] = echoed
        return json_response(echoed)

    async def _get_commands(self, call: Call, app: str, gid: str | None = None) -> web.Response:
        return json_response(self.commands.get(int(gid) if gid else None, []))

    async def _roles(self, call: Call, gid: str) -> web.Response:
        return json_response(self.roles.get(int(gid), []))
