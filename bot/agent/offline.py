"""The limited-mode agent: a small deterministic intent matcher used when no Claude key is set
(or Claude is unreachable). It maps common phrasings to the same tools the commands use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LIMITED_MODE_NOTE = (
    "limited mode: no Claude key, so I understand only common requests. "
    "Set ANTHROPIC_API_KEY (or `/connect anthropic`) for full conversations."
)


@dataclass(frozen=True)
class Intent:
    pattern: re.Pattern[str]
    tool: str
    build: Callable[[re.Match[str]], dict[str, Any]]


def _none(_: re.Match[str]) -> dict[str, Any]:
    return {}


def _group(name: str, key: str) -> Callable[[re.Match[str]], dict[str, Any]]:
    def build(m: re.Match[str]) -> dict[str, Any]:
        value = (m.group(name) or "").strip(" ?.!")
        return {key: value} if value else {}

    return build


# Order matters: the first match wins. Other modules append intents for their tools.
INTENTS: list[Intent] = [
    Intent(re.compile(r"\b(who am i|whoami|my role)\b", re.I), "whoami", _none),
    Intent(re.compile(r"^\s*(help|what can you do|commands)\b", re.I), "help", _none),
]


def register_intent(
    pattern: str, tool: str, build: Callable[[re.Match[str]], dict[str, Any]] = _none
) -> None:
    INTENTS.append(Intent(re.compile(pattern, re.I), tool, build))


def match(text: str, available: set[str]) -> tuple[str, dict[str, Any]] | None:
    for intent in INTENTS:
        if intent.tool not in available:
            continue
        m = intent.pattern.search(text)
        if m:
            return intent.tool, intent.build(m)
    return None


__all__ = ["INTENTS", "LIMITED_MODE_NOTE", "_group", "match", "register_intent"]
