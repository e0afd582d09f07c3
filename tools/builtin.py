"""Built-in tools that exercise the pipeline: `help` and `whoami`."""

from __future__ import annotations

from pydantic import BaseModel

from tools.contract import Reply, Role, Table, ToolContext, ToolInput, arg, tool
from tools.errors import NotFound


class HelpInput(ToolInput):
    topic: str | None = arg(None, description="A command to explain, e.g. deploy", positional=True)


@tool(
    name="help",
    # Claude already sees every tool it may call; /help is for people.
    agent=False,
    description="List the commands you can use, or explain one command.",
    input_model=HelpInput,
    group="general",
    examples=("/help", "/help deploy"),
)
async def help_tool(tc: ToolContext, args: HelpInput) -> Reply:
    registry = tc.services.registry
    if args.topic:
        t = registry.by_command(args.topic.lstrip("/")) or registry.get(args.topic)
        if t is None:
            raise NotFound(
                f"There is no command /{args.topic.lstrip('/')}.", fix="Type /help for the list."
            )
        return Reply(title=f"/{t.command or t.name}", text=t.help_text())
    role = tc.request.role
    rows = [
        [t.usage(brief=True), t.summary + ("" if role.allows(t.role) else f" (needs {t.role})")]
        for t in registry.all()
    ]
    return Reply(
        title="Commands",
        text='Type a command, or ask in plain words ("what\'s my spend this week").',
        table=Table(columns=["command", "what it does"], rows=rows),
        footer="`/help <command>` shows a command's options and examples.",
    )


@tool(
    name="whoami",
    description="Show who you are here: your role, workspace and organisation.",
    group="general",
    examples=("/whoami",),
)
async def whoami(tc: ToolContext, args: BaseModel) -> Reply:
    r = tc.request
    can = ", ".join(t.command or t.name for t in tc.services.registry.for_role(r.role))
    reply = Reply(title=f"You are {r.display_name}")
    reply.add_field("Role", r.role.value)
    reply.add_field("Workspace", f"{r.workspace_name or r.workspace_id} ({r.platform.value})")
    reply.add_field("Organisation id", r.org_id)
    reply.add_field("Timezone", r.timezone)
    reply.add_field("GPU cloud", "sandbox (local emulator)" if tc.services.sandbox else "RunPod")
    reply.add_field("You can use", can)
    return reply


__all__ = ["Role", "help_tool", "whoami"]
