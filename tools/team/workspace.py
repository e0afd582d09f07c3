"""Workspace settings: the timezone spend periods, quiet hours and the digest use."""

from __future__ import annotations

from storage import orgs
from tools.contract import Reply, Role, SideEffect, ToolContext, ToolInput, arg, tool
from tools.errors import Forbidden

# --- workspace settings ----------------------------------------------------------------------


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
    await tc.services.db.run(
        orgs.set_timezone,
        org_id=tc.org_id,
        workspace_id=tc.request.workspace_id,
        timezone=args.timezone,
    )
    return Reply(
        text=f'Timezone set to {args.timezone}: "this week" now starts Monday 00:00 there.'
    )
