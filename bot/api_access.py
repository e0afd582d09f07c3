"""Who an HTTP API request speaks for: an API key checked against storage, and the context it
acts in (its organisation's API workspace, carrying the key's scopes, which the dispatcher
enforces wherever a tool runs). The core side of `bot.adapters.http_api`, which only
translates HTTP; every call here runs on the storage threads, never on the event loop."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from storage import apikeys, events, orgs
from storage.models import Workspace
from tools.contract import Platform, Reply, RequestContext, Role, Tool
from tools.errors import CockpitError

if TYPE_CHECKING:
    from bot.app import Cockpit

API_WORKSPACE_PREFIX = "api-org-"
API_WORKSPACE_NAME = "HTTP API"


@dataclass(frozen=True)
class ApiCaller:
    """A valid API key: its id, organisation, name, role and scopes."""

    key_id: int
    org_id: int
    name: str
    role: Role
    scopes: tuple[str, ...]

    def in_scope(self, tool: Tool) -> bool:
        return "*" in self.scopes or tool.name in self.scopes

    def may_call(self, tool: Tool) -> bool:
        return self.in_scope(tool) and self.role.allows(tool.role)


KeyProblem = Literal["unknown", "revoked", "expired"]


async def authenticate(cockpit: Cockpit, key: str) -> ApiCaller | KeyProblem:
    """The caller for a presented key (its last use recorded), or why it is refused."""
    now = cockpit.clock.now()

    def look_up(s: Any) -> ApiCaller | KeyProblem:
        row = apikeys.lookup(s, key=key)
        if row is None or row.id is None:
            return "unknown"
        apikeys.touch(s, org_id=row.org_id, key_id=row.id, now=now)
        if row.revoked_at is not None:
            return "revoked"
        if row.expires_at is not None and row.expires_at <= now:
            return "expired"
        return ApiCaller(
            key_id=row.id,
            org_id=row.org_id,
            name=row.name,
            role=Role(row.role),
            scopes=tuple(row.scopes.split()),
        )

    return await cockpit.db.run(look_up)


async def context_for(cockpit: Cockpit, caller: ApiCaller) -> RequestContext:
    """The key acts in its organisation's API workspace (created on first use), as itself,
    with its role."""
    external = f"{API_WORKSPACE_PREFIX}{caller.org_id}"
    now = cockpit.clock.now()

    def workspace(s: Any) -> tuple[int, str]:
        ws = orgs.find_workspace(s, platform=Platform.api.value, external_id=external)
        if ws is None:
            ws = Workspace(
                org_id=caller.org_id,
                platform=Platform.api.value,
                external_id=external,
                name=API_WORKSPACE_NAME,
                created_at=now,
            )
            s.add(ws)
            s.flush()
        assert ws.id is not None
        return ws.id, ws.timezone

    workspace_id, tz = await cockpit.db.run(workspace)
    return RequestContext(
        org_id=caller.org_id,
        workspace_id=workspace_id,
        user_id=f"apikey:{caller.key_id}",
        display_name=f"API key {caller.name}",
        role=caller.role,
        platform=Platform.api,
        workspace_name=API_WORKSPACE_NAME,
        timezone=tz,
        scopes=caller.scopes,
    )


REQUEST_MARKER = "api-request:"
KEY_REUSED = (
    "This Idempotency-Key was first used with different arguments; nothing was run. "
    "Use a new key for a new request."
)


def fingerprint(arguments: dict[str, Any]) -> str:
    """The arguments as one value: the same JSON in another key order or spacing is the same."""
    # ASCII escapes: a lone surrogate (valid JSON, not encodable UTF-8) hashes too.
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


async def keyed_context(
    cockpit: Cockpit,
    caller: ApiCaller,
    ctx: RequestContext,
    tool: Tool,
    *,
    key: str,
    arguments: dict[str, Any],
) -> RequestContext | Reply:
    """`ctx` carrying the request's Idempotency-Key, scoped to this API key and tool (another
    key or tenant never gets its answer), or the reply that stops the request: arguments the
    tool refuses (they bind no key, so the corrected request may reuse it), or a key first
    used with other arguments."""
    try:
        tool.parse_args(arguments)
    except CockpitError as exc:
        return Reply.from_error(exc)
    scoped = f"api:{caller.key_id}:{tool.name}:{key}"
    if not await bind_idempotency_key(cockpit, caller, key=scoped, arguments=arguments):
        return Reply.error(KEY_REUSED, code="idempotency_key_reused")
    return ctx.model_copy(update={"idempotency_key": scoped})


async def bind_idempotency_key(
    cockpit: Cockpit, caller: ApiCaller, *, key: str, arguments: dict[str, Any]
) -> bool:
    """Tie `key` (already scoped to the API key and tool) to these arguments the first time it
    is used. False when it was first used with other arguments: the caller reused a key for a
    different request (the IETF Idempotency-Key draft's 422), which must neither run nor get
    the first request's answer."""
    marker = f"{REQUEST_MARKER}{key}"
    mine = fingerprint(arguments)
    now = cockpit.clock.now()

    def bind(s: Any) -> bool:
        if events.claim(s, org_id=caller.org_id, key=marker, now=now):
            events.store_result(
                s, org_id=caller.org_id, key=marker, result_json=json.dumps({"arguments": mine})
            )
            return True
        row = events.seen(s, org_id=caller.org_id, key=marker)
        first = json.loads(row.result_json or "{}").get("arguments") if row is not None else None
        return first is None or first == mine

    return await cockpit.db.run(bind)
