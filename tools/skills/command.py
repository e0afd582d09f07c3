"""`/skills`: what the agent knows how to do, and which skills are switched off and why."""

from __future__ import annotations

from pydantic import BaseModel

from tools.contract import Reply, Table, ToolContext, tool
from tools.skills import skills_for

MAX_DESCRIPTION_SHOWN = 90


@tool(
    name="skills",
    description="List the agent's skills (shipped and your own) and whether each one is enabled.",
    group="general",
    examples=("/skills",),
)
async def list_skills(tc: ToolContext, args: BaseModel) -> Reply:
    loaded = skills_for(tc.services)
    if not loaded.skills:
        return Reply(
            text="No skills are loaded.",
            footer="Add folders with a SKILL.md and list them in COCKPIT_SKILLS_DIRS.",
        )
    rows = [
        [s.name, "enabled" if s.enabled else f"disabled: {s.problem}", _short(s.description)]
        for s in loaded.skills
    ]
    enabled = len(loaded.enabled())
    return Reply(
        title="Skills",
        text=f"{enabled} of {len(loaded.skills)} skills are enabled. Ask in plain words and the "
        "agent uses the one that fits.",
        table=Table(columns=["skill", "status", "what it is for"], rows=rows),
        footer="Your own skills: folders with a SKILL.md listed in COCKPIT_SKILLS_DIRS.",
    )


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DESCRIPTION_SHOWN else text[: MAX_DESCRIPTION_SHOWN - 1] + "…"


__all__ = ["list_skills"]
