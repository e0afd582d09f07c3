"""Deterministic command parsing: "/deploy qwen --gpu A100" → (tool, validated args)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pydantic import BaseModel

from tools.contract import Registry, Tool
from tools.errors import InvalidInput

# `/cockpit deploy qwen` is the same as `/deploy qwen` (Slack registers one umbrella command).
UMBRELLA_COMMANDS = ("cockpit",)


@dataclass
class ToolCall:
    tool: Tool
    args: BaseModel


def is_command(text: str) -> bool:
    return text.strip().startswith("/")


def split_command(text: str) -> tuple[str, str]:
    body = text.strip().lstrip("/")
    name, _, rest = body.partition(" ")
    name = name.lower()
    if name in UMBRELLA_COMMANDS:
        if not rest.strip():
            return "help", ""
        name, _, rest = rest.strip().partition(" ")
        name = name.lower().lstrip("/")
    return name, rest.strip()


def approval_decision(text: str) -> tuple[str, int] | None:
    """`/approve 12` or `/cancel 12`: a typed decision on a pending approval (for surfaces
    without buttons, and for approvals requested through the HTTP API)."""
    name, rest = split_command(text)
    ref = rest.strip().lstrip("#")
    if name in ("approve", "cancel") and ref.isdigit():
        return name, int(ref)
    return None


def parse(registry: Registry, text: str) -> ToolCall:
    """Parse a slash command. Unknown names suggest the closest command; bad arguments raise
    `InvalidInput` carrying the usage line generated from the tool's schema."""
    name, rest = split_command(text)
    tool = registry.by_command(name)
    if tool is None:
        raise InvalidInput(f"Unknown command /{name}.", fix=_suggest(registry, name))
    return ToolCall(tool=tool, args=tool.parse_command(rest))


def _suggest(registry: Registry, name: str) -> str:
    close = difflib.get_close_matches(name, registry.commands(), n=1, cutoff=0.5)
    if close:
        return f"Did you mean /{close[0]}? Type /help for all commands."
    return "Type /help for all commands."
