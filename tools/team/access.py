"""Access: this organisation's provider credentials (RunPod, Hugging Face, Anthropic) and the
API keys of the HTTP API. Removing a provider key and every API-key tool are slash commands
only (`agent=False`): key changes never run from a paraphrase to Claude."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Literal

from storage import apikeys, credentials
from tools.contract import Reply, Role, SideEffect, Table, ToolContext, ToolInput, arg, tool
from tools.errors import Forbidden, InvalidInput, NotFound
from tools.team.members import RoleName

DEFAULT_API_KEY_DAYS = 90
Provider = Literal["runpod", "huggingface", "anthropic"]


# --- credentials ------------------------------------------------------------------------------


class ConnectInput(ToolInput):
    provider: Provider = arg(description="runpod, huggingface or anthropic", positional=True)
    key: str = arg(
        description="The API key (use the Slack/Discord modal, never a channel)",
        positional=True,
        secret=True,
    )


@tool(
    name="connect_provider",
    command="connect",
    input_model=ConnectInput,
    role=Role.admin,
    side_effect=SideEffect.admin,
    group="team",
    description="Store this organisation's key for RunPod, Hugging Face or Claude (verified, "
    "encrypted, shown only as …last4).",
    examples=("/connect runpod",),
)
async def connect_provider(tc: ToolContext, args: ConnectInput) -> Reply:
    key = args.key.strip()
    if len(key) < 8:
        raise InvalidInput("That does not look like an API key (too short).")
    if tc.services.credential_verifier is not None:
        await tc.services.credential_verifier(args.provider, key)
    cred = await tc.services.db.run(
        credentials.put,
        org_id=tc.org_id,
        provider=args.provider,
        secret=key,
        box=tc.services.secrets,
        actor=tc.request.user_id,
        now=tc.services.clock.now(),
    )
    return Reply(
        text=f"Saved the {args.provider} key {cred.last4}; calls for this organisation "
        "use it from now on.",
        ephemeral=True,
    )


class ProviderInput(ToolInput):
    provider: Provider = arg(description="runpod, huggingface or anthropic", positional=True)


@tool(
    name="disconnect_provider",
    agent=False,
    command="disconnect",
    input_model=ProviderInput,
    role=Role.admin,
    side_effect=SideEffect.admin,
    group="team",
    description="Delete this organisation's stored key for a provider.",
)
async def disconnect_provider(tc: ToolContext, args: ProviderInput) -> Reply:
    gone = await tc.services.db.run(credentials.delete, org_id=tc.org_id, provider=args.provider)
    if not gone:
        raise NotFound(f"No {args.provider} key is stored for this organisation.")
    return Reply(text=f"Deleted the {args.provider} key; the server's default (if any) applies.")


@tool(
    name="list_credentials",
    command="credentials",
    role=Role.admin,
    group="team",
    description="Show which provider keys this organisation has stored (…last4 only).",
)
async def list_credentials(tc: ToolContext, args: ToolInput) -> Reply:
    rows = await tc.services.db.read(credentials.list_for, org_id=tc.org_id)
    if not rows:
        return Reply(text="No keys stored. Add one with /connect runpod|huggingface|anthropic.")
    return Reply(
        table=Table(
            columns=["provider", "key", "updated", "by"],
            rows=[[c.provider, c.last4, f"{c.updated_at:%Y-%m-%d}", c.created_by] for c in rows],
        )
    )


# --- API keys -------------------------------------------------------------------------------


class ApiKeyCreateInput(ToolInput):
    name: str = arg(description="A label for the key", positional=True, max_length=60)
    role: RoleName = arg("member", description="Role the key acts with")
    scopes: str = arg("*", description="Space-separated tool names, or * for all the role allows")
    days: int = arg(DEFAULT_API_KEY_DAYS, description="Days until it expires", ge=1, le=365)


@tool(
    name="create_api_key",
    command="apikey",
    input_model=ApiKeyCreateInput,
    role=Role.admin,
    side_effect=SideEffect.admin,
    group="team",
    description="Create an API key for the HTTP API (shown once).",
    agent=False,
    secret_output=True,
    examples=('/apikey ci-bot --role member --scopes "list_deployments get_spend"',),
)
async def create_api_key(tc: ToolContext, args: ApiKeyCreateInput) -> Reply:
    role = Role(args.role)
    if not tc.request.role.allows(role):
        raise Forbidden(f"You are {tc.request.role.value}; a key cannot have more ({role.value}).")
    unknown = [x for x in args.scopes.split() if x != "*" and tc.services.registry.get(x) is None]
    if unknown:
        raise InvalidInput(f"Unknown tool(s) in scopes: {', '.join(unknown)}.", fix="See /help.")
    key = apikeys.KEY_PREFIX + secrets.token_urlsafe(32)
    now = tc.services.clock.now()
    row = await tc.services.db.run(
        apikeys.create,
        org_id=tc.org_id,
        name=args.name,
        key=key,
        role=role.value,
        scopes=args.scopes,
        created_by=tc.request.user_id,
        now=now,
        expires_at=now + timedelta(days=args.days),
    )
    return Reply(
        title=f"API key #{row.id} {args.name}",
        text=f"{key}\nCopy it now: it is not shown again. Send it as "
        "`Authorization: Bearer <key>`.",
        ephemeral=True,
    )


@tool(
    name="list_api_keys",
    agent=False,
    command="apikeys",
    role=Role.admin,
    group="team",
    description="List API keys (prefix, role, scopes, expiry, revoked).",
)
async def list_api_keys(tc: ToolContext, args: ToolInput) -> Reply:
    rows = await tc.services.db.read(apikeys.list_for, org_id=tc.org_id)
    return Reply(
        table=Table(
            columns=["id", "name", "prefix", "role", "scopes", "expires", "state"],
            rows=[
                [
                    str(k.id),
                    k.name,
                    k.prefix + "…",
                    k.role,
                    k.scopes,
                    f"{k.expires_at:%Y-%m-%d}" if k.expires_at else "never",
                    "revoked" if k.revoked_at else "active",
                ]
                for k in rows
            ],
        )
    )


class RevokeInput(ToolInput):
    key_id: int = arg(description="The key's id (see /apikeys)", positional=True)


@tool(
    name="revoke_api_key",
    agent=False,
    command="revoke",
    input_model=RevokeInput,
    role=Role.admin,
    side_effect=SideEffect.admin,
    group="team",
    description="Revoke an API key.",
)
async def revoke_api_key(tc: ToolContext, args: RevokeInput) -> Reply:
    ok = await tc.services.db.run(
        apikeys.revoke, org_id=tc.org_id, key_id=args.key_id, now=tc.services.clock.now()
    )
    if not ok:
        raise NotFound(f"No active API key #{args.key_id} in this organisation.")
    return Reply(text=f"API key #{args.key_id} revoked.")
