"""The sandbox's deterministic chat "model" and its OpenAI-shaped payloads.

The reply is a pure function of the request: `[sandbox] <model>: you said '<last user text>'`,
so tests can predict it and nobody mistakes it for a real model. Tokens are whitespace-split
words; usage counts whitespace tokens of every message (prompt) and of the reply (completion).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SNIPPET_CHARS = 200


@dataclass(frozen=True)
class ChatReply:
    model: str
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces())

    def pieces(self) -> list[str]:
        """Tokens as streamed: the first bare, every later one with its leading space."""
        return [t if i == 0 else f" {t}" for i, t in enumerate(self.tokens)]

    def usage(self) -> dict[str, int]:
        done = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        return " ".join(str(p) for p in parts)
    return ""


def reply_for(
    model: str, messages: Sequence[Mapping[str, Any]], max_tokens: int | None
) -> ChatReply:
    """The deterministic answer to a chat request."""
    texts = [_content_text(m.get("content")) for m in messages]
    user = [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    said = " ".join((user[-1] if user else "").split())
    if len(said) > SNIPPET_CHARS:
        said = said[: SNIPPET_CHARS - 1] + "…"
    tokens = f"[sandbox] {model}: you said '{said}'".split()
    finish = "stop"
    if max_tokens is not None and 0 < max_tokens < len(tokens):
        tokens, finish = tokens[:max_tokens], "length"
    prompt_tokens = sum(len(t.split()) for t in texts)
    return ChatReply(model=model, tokens=tokens, finish_reason=finish, prompt_tokens=prompt_tokens)


def completion_json(reply: ChatReply, *, completion_id: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": reply.usage(),
    }


def chunk_json(
    reply: ChatReply,
    *,
    completion_id: str,
    created: int,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": reply.model,
        "choices": [],
    }
    if usage:
        body["usage"] = reply.usage()
    else:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]
    return body


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def models_json(model: str, *, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "sandbox"}],
    }
