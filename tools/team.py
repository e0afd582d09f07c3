"""Teams and access: members, roles, invites, provider credentials, API keys, audit trail.

Tools marked `agent=False` (invites, joining, leaving, ownership, keys) are slash commands only:
account, key and membership changes never run from a paraphrase to Claude, and their schemas
stay out of the agent's prompt budget.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from sqlmodel import Session

from storage import activity, apikeys, audit, credentials, deployments, invites, orgs
from tools.contract import Reply, Role, SideEffect, Table, ToolContext, ToolInput, arg, tool
from tools.errors import Conflict, Forbidden, InvalidInput, NotFound

DEFAULT_INVITE_HOURS = 72
MAX_INVITE_HOURS = 24 * 30
DEFAULT_API_KEY_DAYS = 90
PROVIDERS = ("runpod", "huggingface", "anthropic")
Provider = Literal["runpod", "huggingface", "anthropic"]
RoleName = Literal["viewer", "member", "admin", "owner"]


# --- members and roles --------------------------------------------------------------------


@tool(
    name="members",
    description="List the members of this organisation and their roles.",
    group="team",
    examples=("/members",),
)
async def members_tool(tc: ToolContext, args: ToolInput) -> Reply:
    with tc.services.db.session() as s:
        rows = orgs.list_members(s, org_id=tc.org_id)
    table = Table(
        columns=["member", "platform", "role", "since"],
        rows=[
            [
                m.display_name,
                f"{m.platform}:{m.platform_user_id}",
                m.role,
                f"{m.created_at:%Y-%m-%d}",
            ]
            for m in rows
        ],
    )
    return Reply(title=f"{len(rows)} member(s)", table=table)


class RoleInput(ToolInput):
    user: str = arg(description="The member (@name or platform user id)", positional=True)
    role: RoleName = arg(description="viewer, member, admin or owner", positional=True)


@tool(
    name="set_role",
    command="role",
    input_model=RoleInput,
    role=Role.admin,
    side_effect=SideEffect.admin,
    group="team",
    description="Change a member's role (admins up to admin; only owners grant owner).",
    examples=("/role @bob admin",),
)
async def set_role(tc: ToolContext, args: RoleInput) -> Reply:
    me = tc.request
    new_role = Role(args.role)
    if not me.role.allows(new_role):
        raise Forbidden(
            f"You are {me.role.value}; you cannot grant {new_role.value}.", fix="Ask an owner."
        )
    with tc.services.db.session() as s:
        target = orgs.find_member(s, org_id=tc.org_id, ref=args.user)
        if target is None or target.id is None:
            raise NotFound(f"No member {args.user} in this organisation.", fix="See /members.")
        if target.platform_user_id == me.user_id and new_role.rank > me.role.rank:
            raise Forbidden("You cannot raise your own role.")
        if Role(target.role).rank > me.role.rank:
            raise Forbidden(f"{target.display_name} is {target.role}; you cannot change that.")
        if (
            target.role == "owner"
            and new_role != Role.owner
            and orgs.count_owners(s, org_id=tc.org_id) <= 1
        ):
            raise Conflict(
                "That is the last owner; make someone else owner first.", fix="Use /transfer @user."
            )
        old = target.role
        orgs.set_role(s, org_id=tc.org_id, member_id=target.id, role=new_role.value)
    return Reply(text=f"{target.display_name}: {old} → {new_role.value}.")


class UserInput(ToolInput):
    user: str = arg(description="The member (@name or platform user id)", positional=True)


@tool(
    name="transfer_ownership",
    agent=False,
    command="transfer",
    input_model=UserInput,
    role=Role.owner,
    side_effect=SideEffect.admin,
    group="team",
    description="Make another member owner; you become admin.",
    examples=("/transfer @carol",),
)
async def transfer(tc: ToolContext, args: UserInput) -> Reply:
    with tc.services.db.session() as s:
        target = orgs.find_member(s, org_id=tc.org_id, ref=args.user)
        me = orgs.get_member(
            s,
            org_id=tc.org_id,
            platform=tc.request.platform.value,
            platform_user_id=tc.request.user_id,
        )
        if target is None or target.id is None or me is None or me.id is None:
            raise NotFound(f"No member {args.user} in this organisation.", fix="See /members.")
        if target.id == me.id:
            raise InvalidInput("You already own this organisation.")
        orgs.set_role(s, org_id=tc.org_id, member_id=target.id, role="owner")
        orgs.set_role(s, org_id=tc.org_id, member_id=me.id, role="admin")
    return Reply(text=f"{target.display_name} is now owner; you are admin.")


@tool(
    name="leave",
    agent=False,
    description="Leave this organisation.",
    role=Role.viewer,
    side_effect=SideEffect.admin,
    group="team",
    examples=("/leave",),
)
async def leave(tc: ToolContext, args: ToolInput) -> Reply:
    with tc.services.db.session() as s:
        me = orgs.get_member(
            s,
            org_id=tc.org_id,
            platform=tc.request.platform.value,
            platform_user_id=tc.request.user_id,
        )
        if me is None or me.id is None:
            raise NotFound("You are not a member here.")
        if me.role == "owner" and orgs.count_owners(s, org_id=tc.org_id) <= 1:
            raise Conflict(
                "You are the last owner and cannot leave.", fix="Use /transfer @user first."
            )
        orgs.remove_member(s, org_id=tc.org_id, member_id=me.id)
    return Reply(text="You left the organisation. Writing here again makes you a new member.")


# --- invites --------------------------------------------------------------------------------


class InviteInput(ToolInput):
    user: str | None = arg(
        None,
        description="Only this person may use the code: an @mention, a member's name, or a "
        "user id (slack:U…, discord:<id> for someone on another platform)",
        positional=True,
    )
    role: RoleName = arg("member", description="Role the code grants")
    hours: int = arg(
        DEFAULT_INVITE_HOURS, description="Hours until the code expires", ge=1, le=MAX_INVITE_HOURS
    )


@tool(
    name="invite",
    input_model=InviteInput,
    role=Role.admin,
    side_effect=SideEffect.admin,
    group="team",
    agent=False,
    secret_output=True,
    description="Create a single-use invite code; `/join CODE` in Slack, Discord or the console "
    "links that identity (or a whole new workspace) to this organisation.",
    examples=("/invite @bob --role member", "/invite --role viewer --hours 24"),
)
async def invite(tc: ToolContext, args: InviteInput) -> Reply:
    role = Role(args.role)
    if not tc.request.role.allows(role):
        raise Forbidden(f"You are {tc.request.role.value}; you cannot invite an {role.value}.")
    code = "CK-" + secrets.token_hex(4).upper() + "-" + secrets.token_hex(4).upper()
    now = tc.services.clock.now()
    expires = now + timedelta(hours=args.hours)
    with tc.services.db.session() as s:
        invitee = _invitee(s, tc, args.user) if args.user else None
        invites.create(
            s,
            org_id=tc.org_id,
            code=code,
            role=role.value,
            invited_user=invitee.user_id if invitee else None,
            invited_platform=invitee.platform if invitee else None,
            created_by=tc.request.user_id,
            now=now,
            expires_at=expires,
        )
    who = f" for {invitee.label}" if invitee else ""
    return Reply(
        title=f"Invite{who} as {role.value}",
        text=f"Code: {code}\nThey type `/join {code}`. Single use; "
        f"expires {expires:%Y-%m-%d %H:%M} UTC.",
        ephemeral=True,
    )


# Who an invite is for is a platform user id, resolved when the invite is made: a display name
# is chosen by its owner, so anyone could take the invited person's name to claim the code.
INVITE_MENTION = re.compile(r"<@!?([A-Za-z0-9]+)(?:\|([^>]*))?>")
USER_ID_SHAPES = {
    "slack": re.compile(r"[UW][A-Z0-9]{6,20}"),
    "discord": re.compile(r"[0-9]{15,21}"),
    "console": re.compile(r"[\w.@-]{1,64}"),  # the OS user name
}


@dataclass(frozen=True)
class Invitee:
    platform: str
    user_id: str
    label: str  # what the reply says the invite is for


def _invitee(s: Session, tc: ToolContext, ref: str) -> Invitee:
    """Resolve `/invite <ref>` to a platform user id: an @mention (this platform), an explicit
    `platform:id`, a member of this organisation by id or (unambiguous) name, or an id in this
    platform's format. Anything else is refused with how to name the person."""
    ref = ref.strip()
    here = tc.request.platform.value
    mention = INVITE_MENTION.fullmatch(ref)
    prefix, colon, rest = ref.partition(":")
    if mention:
        platform, user_id = here, mention.group(1)
    elif colon and prefix.lower() in USER_ID_SHAPES:
        platform, user_id = prefix.lower(), rest.strip()
    else:
        name = ref.lstrip("@")
        members = orgs.list_members(s, org_id=tc.org_id)
        matches = [m for m in members if m.platform_user_id == name] or [
            m for m in members if m.display_name == name
        ]
        if len(matches) > 1:
            raise InvalidInput(
                f"{len(matches)} members are called {name}.",
                fix="Mention the person (@name from the list) or give their user id "
                "(see /members).",
            )
        if matches:
            m = matches[0]
            return Invitee(m.platform, m.platform_user_id,
                           f"{m.display_name} ({m.platform} {m.platform_user_id})")
        platform, user_id = here, name
        if not (here in USER_ID_SHAPES and USER_ID_SHAPES[here].fullmatch(name)):
            raise InvalidInput(
                f"I can't tell who {name} is: no member here has that name, and it is not a "
                f"{here} user id.",
                fix="Mention them (@name picked from the list), give their user id (slack:U…, "
                "discord:<id> for someone on another platform), or leave the user out for a "
                "code anyone can use.",
            )
    shape = USER_ID_SHAPES.get(platform)
    if shape is None or not shape.fullmatch(user_id):
        raise InvalidInput(
            f"{user_id or ref} is not a {platform} user id.",
            fix="Slack ids look like U0123ABCD, Discord ids are 17-20 digits.",
        )
    known = orgs.get_member(s, org_id=tc.org_id, platform=platform, platform_user_id=user_id)
    shown: str | None = known.display_name if known else (mention.group(2) if mention else None)
    label = f"{shown} ({platform} {user_id})" if shown else f"{platform} user {user_id}"
    return Invitee(platform, user_id, label)


class JoinInput(ToolInput):
    code: str = arg(description="The invite code", positional=True, secret=True)


@tool(
    name="join",
    agent=False,
    input_model=JoinInput,
    role=Role.viewer,
    side_effect=SideEffect.admin,
    group="team",
    description="Join an organisation with an invite code.",
    examples=("/join CK-1A2B3C4D-5E6F7A8B",),
)
async def join(tc: ToolContext, args: JoinInput) -> Reply:
    now = tc.services.clock.now()
    me = tc.request
    with tc.services.db.session() as s:
        inv = invites.lookup(s, code=args.code)
        if inv is None or inv.id is None:
            raise NotFound("That invite code is not valid.", fix="Check it, or ask for a new one.")
        if inv.used_at is not None:
            raise Conflict("That invite code was already used.", fix="Ask for a new one.")
        if inv.expires_at <= now:
            raise Conflict("That invite code has expired.", fix="Ask for a new one.")
        if not invites.is_for(inv, platform=me.platform.value, user_id=me.user_id):
            raise Forbidden(
                "That invite code is for someone else.",
                fix="Ask whoever invited you for a code made out to your own account.",
            )
        target_org = inv.org_id
        if target_org != me.org_id:
            _check_workspace_can_move(s, me.org_id, me.role)
        if not invites.redeem(s, invite_id=inv.id, used_by=me.user_id, now=now):
            raise Conflict("That invite code was just used.", fix="Ask for a new one.")
        if target_org != me.org_id:
            orgs.move_workspace(
                s, from_org_id=me.org_id, to_org_id=target_org, workspace_id=me.workspace_id
            )
        member = orgs.get_member(
            s, org_id=target_org, platform=me.platform.value, platform_user_id=me.user_id
        )
        if member is None:
            orgs.add_member(
                s,
                org_id=target_org,
                platform=me.platform.value,
                platform_user_id=me.user_id,
                display_name=me.display_name,
                role=inv.role,
                now=now,
            )
        elif member.id is not None:
            orgs.set_role(s, org_id=target_org, member_id=member.id, role=inv.role)
        org = orgs.get_organization(s, org_id=target_org)
    moved = " This workspace is now part of it." if target_org != me.org_id else ""
    return Reply(text=f"Welcome to {org.name if org else 'the organisation'} as {inv.role}.{moved}")


def _check_workspace_can_move(s: Session, org_id: int, role: Role) -> None:
    if role != Role.owner:
        raise Forbidden("Only the owner of this workspace can link it to another organisation.")
    if (
        len(orgs.workspaces_of(s, org_id=org_id)) > 1
        or orgs.count_members(s, org_id=org_id) > 1
        or deployments.list_for(s, org_id=org_id, limit=1)
    ):
        raise Conflict(
            "This workspace's organisation already has members or deployments of its own.",
            fix="Invite the people here from that organisation instead (/invite).",
        )


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
    with tc.services.db.session() as s:
        cred = credentials.put(
            s,
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
    with tc.services.db.session() as s:
        gone = credentials.delete(s, org_id=tc.org_id, provider=args.provider)
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
    with tc.services.db.session() as s:
        rows = credentials.list_for(s, org_id=tc.org_id)
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
    with tc.services.db.session() as s:
        row = apikeys.create(
            s,
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
    with tc.services.db.session() as s:
        rows = apikeys.list_for(s, org_id=tc.org_id)
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
    with tc.services.db.session() as s:
        ok = apikeys.revoke(s, org_id=tc.org_id, key_id=args.key_id, now=tc.services.clock.now())
    if not ok:
        raise NotFound(f"No active API key #{args.key_id} in this organisation.")
    return Reply(text=f"API key #{args.key_id} revoked.")


# --- audit ----------------------------------------------------------------------------------


class AuditInput(ToolInput):
    user: str | None = arg(None, description="Only this actor")
    since: date | None = arg(None, description="From this date (YYYY-MM-DD)")
    tool: str | None = arg(None, description="Only this tool")
    limit: int = arg(20, description="How many rows", ge=1, le=200)


@tool(
    name="audit",
    input_model=AuditInput,
    role=Role.admin,
    group="team",
    description="Show the audit trail: who ran what, with which outcome.",
    examples=("/audit --user alice --since 2026-11-01",),
)
async def audit_tool(tc: ToolContext, args: AuditInput) -> Reply:
    since = (
        datetime.combine(args.since, time(0)).replace(tzinfo=tc.services.clock.now().tzinfo)
        if args.since
        else None
    )
    with tc.services.db.session() as s:
        rows = audit.query(
            s,
            org_id=tc.org_id,
            actor=args.user.lstrip("@") if args.user else None,
            tool=args.tool,
            since=since,
            limit=args.limit,
        )
    return Reply(
        title=f"Audit trail ({len(rows)} rows, newest first)",
        table=Table(
            columns=["when (UTC)", "who", "role", "tool", "outcome", "detail"],
            rows=[
                [
                    f"{r.created_at:%m-%d %H:%M:%S}",
                    r.actor,
                    r.actor_role,
                    r.tool,
                    r.outcome,
                    r.detail[:60],
                ]
                for r in rows
            ],
        ),
    )


class ActivityInput(ToolInput):
    days: int = arg(1, description="How many days back (today counts as one)", ge=1, le=90)


@tool(
    name="activity",
    input_model=ActivityInput,
    role=Role.admin,
    group="team",
    description="Activity per person: commands, agent requests, Claude tokens and spend.",
    examples=("/activity", "/activity --days 7"),
)
async def activity_tool(tc: ToolContext, args: ActivityInput) -> Reply:
    from tools.cost.periods import resolve_period

    now = tc.services.clock.now()
    period = resolve_period(f"last {args.days} days", now=now, tz=tc.request.timezone)
    with tc.services.db.session() as s:
        rows = activity.per_user(s, org_id=tc.org_id, since=period.start, until=period.full_end)
    if not rows:
        return Reply(text="No activity in that period.")
    return Reply(
        title=f"Activity, {period.describe()}",
        table=Table(
            columns=["who", "commands", "agent requests", "agent tokens", "agent spend"],
            rows=[
                [
                    a.user,
                    str(a.commands),
                    str(a.agent_requests),
                    f"{a.agent_tokens:,}",
                    f"${a.agent_spend:.4f}",
                ]
                for a in rows
            ],
        ),
    )


class TimezoneInput(ToolInput):
    timezone: str | None = arg(
        None, description="An IANA name, e.g. Europe/Berlin (admins)", positional=True
    )


@tool(
    name="timezone",
    input_model=TimezoneInput,
    role=Role.viewer,
    side_effect=SideEffect.admin,
    effect=lambda a: SideEffect.none if a.timezone is None else SideEffect.admin,
    group="team",
    description="Show or (admins) set this workspace's timezone, used for spend periods, "
    "quiet hours and the digest.",
    examples=("/timezone", "/timezone Asia/Tokyo"),
)
async def timezone_tool(tc: ToolContext, args: TimezoneInput) -> Reply:
    from tools.cost.periods import zone_for

    if not args.timezone:
        return Reply(
            text=f"This workspace uses {tc.request.timezone}. An admin changes it with "
            "`/timezone Europe/Berlin`."
        )
    if not tc.request.role.allows(Role.admin):
        raise Forbidden(
            f"Changing the timezone needs the admin role; you are {tc.request.role.value}."
        )
    zone_for(args.timezone)  # raises with the fix when the name is unknown
    with tc.services.db.session() as s:
        orgs.set_timezone(
            s, org_id=tc.org_id, workspace_id=tc.request.workspace_id, timezone=args.timezone
        )
    return Reply(
        text=f'Timezone set to {args.timezone}: "this week" now starts Monday 00:00 there.'
    )
