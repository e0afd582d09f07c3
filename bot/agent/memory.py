"""Conversation memory for the agent: what is stored per thread and what is sent back to Claude.

Each stored row is one Messages API message: `user` (the person's words), `assistant` (Claude's
content blocks) or `tool` (the tool_result blocks, sent as a user message). Rows group into
exchanges, one per thing the person said. History sent to Claude keeps the newest exchanges
that fit a token budget (≈ chars/4); an exchange that no longer fits whole is compacted to its
question and final answer, and older ones are dropped. Broken exchanges (an interrupted save, a
tool_use without its result) are skipped, so a bad row never poisons the thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

CHARS_PER_TOKEN = 4
HISTORY_TOKEN_BUDGET = 6_000
HISTORY_MAX_ROWS = 200

MessageParam = dict[str, Any]


class StoredMessage(Protocol):
    role: str
    content: str


def estimate_tokens(value: Any) -> int:
    """Rough token count: characters / 4 (the same estimate everywhere in the agent). Structures
    count as the compact JSON that goes on the wire."""
    text = value if isinstance(value, str) else encode(value)
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def encode(content: Any) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def decode(row: StoredMessage) -> MessageParam | None:
    """A stored row as a Messages API message, or None for a role the agent does not use."""
    try:
        content = json.loads(row.content)
    except ValueError:
        content = row.content  # plain text (e.g. written by another feature)
    if not isinstance(content, str | list):
        content = row.content
    if row.role == "assistant":
        return {"role": "assistant", "content": content}
    if row.role in ("user", "tool"):
        return {"role": "user", "content": content}
    return None


@dataclass
class Exchange:
    messages: list[tuple[str, MessageParam]]  # (stored role, message)

    @property
    def tokens(self) -> int:
        return sum(estimate_tokens(m["content"]) for _, m in self.messages)

    def is_valid(self) -> bool:
        roles = [r for r, _ in self.messages]
        if len(roles) < 2 or roles[0] != "user" or roles[-1] != "assistant":
            return False
        for i, (role, msg) in enumerate(self.messages[1:], start=1):
            expected = "assistant" if roles[i - 1] in ("user", "tool") else "tool"
            if role != expected:
                return False
            if role == "assistant":
                ids = tool_use_ids(msg)
                if i == len(roles) - 1:
                    if ids:
                        return False
                elif not ids or set(ids) - set(tool_result_ids(self.messages[i + 1][1])):
                    return False
        return True

    def compact(self) -> list[MessageParam]:
        """The question and the final answer only (tool calls dropped)."""
        question = self.messages[0][1]
        answer = text_of(self.messages[-1][1]) or "(answered with tools)"
        return [question, {"role": "assistant", "content": answer}]

    def full(self) -> list[MessageParam]:
        return [m for _, m in self.messages]


def exchanges(rows: Sequence[StoredMessage]) -> list[Exchange]:
    """Group stored rows into exchanges; rows before the first user row are ignored."""
    out: list[Exchange] = []
    for row in rows:
        msg = decode(row)
        if msg is None:
            continue
        if row.role == "user":
            out.append(Exchange(messages=[]))
        if out:
            out[-1].messages.append((row.role, msg))
    return out


def history(
    rows: Sequence[StoredMessage], *, budget: int = HISTORY_TOKEN_BUDGET
) -> list[MessageParam]:
    """The messages to send before the new question: newest exchanges within `budget` tokens."""
    kept: list[list[MessageParam]] = []
    used = 0
    for ex in reversed([e for e in exchanges(rows) if e.is_valid()]):
        full = ex.full()
        size = ex.tokens
        if used + size > budget:
            full = ex.compact()
            size = sum(estimate_tokens(m["content"]) for m in full)
            if used + size > budget:
                break
        kept.append(full)
        used += size
    return [m for ex in reversed(kept) for m in ex]


def text_of(message: MessageParam) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = [
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    ]
    return "".join(parts).strip()


def tool_use_ids(message: MessageParam) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b["id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]


def tool_result_ids(message: MessageParam) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        b["tool_use_id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


__all__ = [
    "CHARS_PER_TOKEN",
    "HISTORY_MAX_ROWS",
    "HISTORY_TOKEN_BUDGET",
    "Exchange",
    "decode",
    "encode",
    "estimate_tokens",
    "exchanges",
    "history",
    "text_of",
]
