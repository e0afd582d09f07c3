"""Structured logs: JSON lines carrying organisation, request id and tool; secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from pydantic import BaseModel

from bot.logs import SECRETS, JsonFormatter
from bot.testing import running_bot
from tools.contract import Registry, Reply, ToolContext, tool


async def test_log_lines_are_json_with_context_and_no_secrets(tmp_path: Path) -> None:
    reg = Registry()
    secret = "sk-ant-api03-VERYSECRETVALUE-abcdef"
    SECRETS.add("plain-configured-secret-42")

    @tool(name="leaky", description="Logs, then fails with a secret in the error.", registry=reg)
    async def leaky(tc: ToolContext, args: BaseModel) -> Reply:
        logging.getLogger("tools.leaky").info("calling provider with plain-configured-secret-42")
        raise RuntimeError(f"provider said: bad key {secret}")

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        async with running_bot(tmp_path, registry=reg) as bot:
            reply = await bot.send("/leaky", user="alice")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert not reply.ok and secret not in reply.text
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    ours = [x for x in lines if x.get("tool") == "leaky"]
    assert len(ours) >= 2
    for line in ours:
        assert {"ts", "level", "logger", "msg", "org_id", "request_id", "tool"} <= set(line)
    out = stream.getvalue()
    assert secret not in out and "VERYSECRETVALUE" not in out
    assert "plain-configured-secret-42" not in out
    assert "[redacted]" in out
