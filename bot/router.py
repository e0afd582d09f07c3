"""Deterministic command parsing: "/deploy qwen --gpu A100" → (tool, validated args)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pydantic import BaseModel

from tools.contract import Registry, Tool, parse_id
from tools.errors import InvalidInput

# `/cockpit deploy qwen` is the same as `/deploy qwen` (Slack registers one umbrella command).
UMBRELLA_COMMANDS = ("cockpit",)
DECISION_COMMANDS = ("approve", "cancel")
MAX_SHOWN = 40  # of a bad argument echoed in an error


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
    without buttons, and for approvals requested through the HTTP API). None unless the id is
    ASCII digits within the id column's range; `parse` then explains what was wrong."""
    name, rest = split_command(text)
    if name not in DECISION_COMMANDS:
        return None
    approval_id = parse_id(rest)
    return None if approval_id is None else (name, approval_id)


def parse(registry: Registry, text: str) -> ToolCall:
    """Parse a slash command. Unknown names suggest the closest command; bad arguments raise
    `InvalidInput` carrying the usage line generated from the tool's schema."""
    name, rest = split_command(text)
    # A tool may claim a two-word alias (`/bench history` for /benchmarks): it wins over the
    # first word's own tool.
    sub, _, after = rest.partition(" ")
    tool = registry.by_command(f"{name} {sub.lower()}") if sub else None
    if tool is not None:
        rest = after.strip()
    else:
        tool = registry.by_command(name)
    if tool is None and name in DECISION_COMMANDS:
        # `approval_decision` did not accept the id ("²", "#", 2**63, ...).
        shown = rest if len(rest) <= MAX_SHOWN else rest[: MAX_SHOWN - 1] + "…"
        raise InvalidInput(
            f"{shown!r} is not an approval number." if shown else "Which approval?",
            fix=f"Use the number on the card, e.g. /{name} 12.",
        )
    if tool is None:
        raise InvalidInput(f"Unknown command /{name}.", fix=_suggest(registry, name))
    return ToolCall(tool=tool, args=tool.parse_command(rest))


def _suggest(registry: Registry, name: str) -> str:
    close = difflib.get_close_matches(name, registry.commands(), n=1, cutoff=0.5)
    if close:
        return f"Did you mean /{close[0]}? Type /help for all commands."
    return "Type /help for all commands."
