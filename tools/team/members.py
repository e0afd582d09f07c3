"""The team: members and roles, ownership, invites and joining.

Tools marked `agent=False` (invites, joining, leaving, ownership) are slash commands only:
membership changes never run from a paraphrase to Claude, and their schemas stay out of the
agent's prompt budget.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlmodel import Session

from storage import deployments, invites, orgs
from tools.contract import (
    Reply,
    Role,
    SideEffect,
    Table,
    ToolContext,
    ToolInput,
    arg,
    article,
    tool,
)
from tools.errors import Conflict, Forbidden, InvalidInput, NotFound

DEFAULT_INVITE_HOURS = 72
MAX_INVITE_HOURS = 24 * 30
RoleName = Literal["viewer", "member", "admin", "owner"]


# --- members and roles --------------------------------------------------------------------


@tool(
    name="members",
    description="List the members of this organisation and their roles.",
    group="team",
    examples=("/members",),
)
async def members_tool(tc: ToolContext, args: ToolInput) -> Reply:
    rows = await tc.services.db.read(orgs.list_members, org_id=tc.org_id)
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

    def change(s: Session) -> tuple[str, str]:
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
        return target.display_name, old

    name, old = await tc.services.db.run(change)
    return Reply(text=f"{name}: {old} → {new_role.value}.")


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
    def hand_over(s: Session) -> str:
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
        return target.display_name

    name = await tc.services.db.run(hand_over)
    return Reply(text=f"{name} is now owner; you are admin.")


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
    def remove(s: Session) -> None:
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

    await tc.services.db.run(remove)
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
        raise Forbidden(
            f"You are {article(tc.request.role.value)} {tc.request.role.value}; you cannot "
            f"invite {article(role.value)} {role.value}."
        )
    code = "CK-" + secrets.token_hex(4).upper() + "-" + secrets.token_hex(4).upper()
    now = tc.services.clock.now()
    expires = now + timedelta(hours=args.hours)

    def record(s: Session) -> Invitee | None:
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
        return invitee

    invitee = await tc.services.db.run(record)
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
            return Invitee(
                m.platform,
                m.platform_user_id,
                f"{m.display_name} ({m.platform} {m.platform_user_id})",
            )
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

    def redeem(s: Session) -> tuple[str, str, bool]:
        """(organisation name, role granted, workspace moved): one unit of work."""
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
        return (org.name if org else "the organisation"), inv.role, target_org != me.org_id

    org_name, role, moved = await tc.services.db.run(redeem)
    also = " This workspace is now part of it." if moved else ""
    return Reply(text=f"Welcome to {org_name} as {role}.{also}")


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
