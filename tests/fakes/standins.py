"""The stand-in tool the surface, agent and foundation suites share: `launch`, approval-gated
and spending, so a test can walk the whole approval path without a real provider."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

from tools.contract import Registry, Reply, Role, SideEffect, ToolContext, arg, tool


class LaunchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = arg(description="What to launch", positional=True)
    size: int = arg(1, description="How many", ge=1, le=8)


class LaunchWithTokenInput(LaunchInput):
    token: str | None = arg(None, description="A secret", secret=True)


def add_launch(
    registry: Registry, runs: Counter[str] | dict[str, int], *, with_token: bool = False
) -> None:
    """Register `launch <target> [--size N]` in `registry`: it needs approval, reports one
    progress line ("launching <target>"), answers "Launched <size> × <target>." and counts its
    runs in `runs["launch"]`. `with_token` adds a secret `--token` option (a tool taking a
    secret is never offered to the agent)."""

    @tool(
        name="launch",
        description="Launch something that costs money.",
        input_model=LaunchWithTokenInput if with_token else LaunchInput,
        role=Role.member,
        side_effect=SideEffect.spend,
        needs_approval=True,
        registry=registry,
    )
    async def launch(tc: ToolContext, args: LaunchInput) -> Reply:
        runs["launch"] = runs.get("launch", 0) + 1
        await tc.progress(f"launching {args.target}")
        return Reply(text=f"Launched {args.size} × {args.target}.")
