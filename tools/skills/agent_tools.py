"""The agent's skill tools: `activate_skill` and `read_skill_file`.

These are handled inside the agent loop, not by the dispatcher: they only read the skill folders
the server loaded (no side effect, no organisation data), so they need no role or approval.
Loading and validating skills is the package's `__init__` (shared with the `/skills` command in
`command.py`); this module only turns a loaded `SkillSet` into the agent's two tools.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tools.errors import CockpitError
from tools.skills import Skill, SkillSet

ACTIVATE_SKILL = "activate_skill"
READ_SKILL_FILE = "read_skill_file"
SKILL_TOOL_NAMES = frozenset({ACTIVATE_SKILL, READ_SKILL_FILE})


def skill_tool_schemas(skills: SkillSet) -> list[dict[str, Any]]:
    """Anthropic tool definitions; empty when no skill is enabled. The skill names are an enum,
    so Claude cannot ask for a skill that does not exist."""
    names = skills.names()
    if not names:
        return []
    return [
        {
            "name": ACTIVATE_SKILL,
            "description": (
                "Load a skill's instructions (from <available_skills>) and its file list."
            ),
            "input_schema": {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": names}},
                "required": ["name"],
                "additionalProperties": False,
            },
        },
        {
            "name": READ_SKILL_FILE,
            "description": (
                "Read a file a skill points to; `path` is relative to the skill folder."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "skill": {"type": "string", "enum": names},
                    "path": {"type": "string", "description": "e.g. references/notes.md"},
                },
                "required": ["skill", "path"],
                "additionalProperties": False,
            },
        },
    ]


def run_skill_tool(skills: SkillSet, name: str, args: dict[str, Any]) -> tuple[str, bool]:
    """Run one skill tool call; returns (tool_result text, is_error)."""
    skill_name = str(args.get("name" if name == ACTIVATE_SKILL else "skill") or "")
    skill = skills.get(skill_name)
    if skill is None:
        known = ", ".join(skills.names()) or "none"
        return f"There is no enabled skill called {skill_name!r}. Skills: {known}.", True
    if name == ACTIVATE_SKILL:
        return activation_text(skill), False
    try:
        return skill.read_file(str(args.get("path") or "")), False
    except CockpitError as exc:
        return str(exc), True


def activation_text(skill: Skill) -> str:
    """The skill body wrapped for the model, with its bundled files listed (not read)."""
    files = skill.files()
    listing = "\n".join(f"- {f}" for f in files) if files else "(none)"
    return (
        f'<skill_content name="{escape(skill.name)}">\n{skill.body}\n</skill_content>\n'
        f"Bundled files (open with {READ_SKILL_FILE} when the skill says so):\n{listing}"
    )


__all__ = [
    "ACTIVATE_SKILL",
    "READ_SKILL_FILE",
    "SKILL_TOOL_NAMES",
    "activation_text",
    "run_skill_tool",
    "skill_tool_schemas",
]
