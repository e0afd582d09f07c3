"""The limited-mode agent: a small deterministic intent matcher used when no Claude key is set
(or Claude is unreachable). It maps common phrasings to the same tools the commands use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools.contract import ProgressSink, Reply, RequestContext

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher

LIMITED_MODE_NOTE = (
    "limited mode: no Claude key, so I understand only common requests. "
    "Set ANTHROPIC_API_KEY (or `/connect anthropic`) for full conversations."
)
NOT_UNDERSTOOD = (
    "I did not understand that. Without Claude I follow requests such as "
    "\"deploy qwen\", \"what's my spend this week\", \"how much would llama 8b cost\", "
    "\"is qwen healthy?\", \"stop the idle ones\", \"show the budget\" or \"delete qwen\"; "
    "/help lists every command."
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


_PERIOD = r"(?P<period>today|yesterday|this week|last week|this month|last month)"


def _spend(m: re.Match[str]) -> dict[str, Any]:
    period = (m.group("period") or "").lower()
    return {"period": period or "this week"}


# Order matters: the first match wins. Other modules append intents for their tools.
INTENTS: list[Intent] = [
    Intent(re.compile(r"\b(who am i|whoami|my role)\b", re.I), "whoami", _none),
    Intent(re.compile(r"^\s*(help|what can you do|commands)\b", re.I), "help", _none),
    Intent(
        re.compile(
            r"^\s*(?:please\s+)?deploy\s+(?P<model>\S.*?)(?:\s*,?\s+please)?\s*[?.!]*$", re.I
        ),
        "deploy_model",
        _group("model", "model"),
    ),
    # A price question about a model ("how much would mistral cost") is an estimate, not spend;
    # it must be tried before the spend intent, which also matches "cost".
    Intent(
        re.compile(
            r"^\s*(?:how\s+much\s+(?:would|does|will|do|to)\s+(?:it\s+cost\s+to\s+(?:deploy|run)\s+)?"
            r"(?:deploying\s+|running\s+)?(?P<model>(?!we\b|i\b|you\b|it\b)\S.*?)\s+cost"
            r"|(?:estimate|price(?:\s+of)?|cost\s+of)\s+(?:deploying\s+|running\s+)?"
            r"(?P<model2>(?!this\b|last\b|today\b|yesterday\b)\S.*?))\s*[?.!]*$",
            re.I,
        ),
        "estimate_cost",
        lambda m: {"model": (m.group("model") or m.group("model2")).strip(" ?.!")},
    ),
    Intent(
        re.compile(
            r"\b(spend|spent|spending|cost|costs|costing|bill|billing)\b(?:.*?\b" + _PERIOD + r")?",
            re.I,
        ),
        "get_spend",
        _spend,
    ),
    Intent(re.compile(r"\bstop\b.*\bidle\b", re.I), "stop_idle_deployments", _none),
    Intent(
        re.compile(r"^\s*(?:please\s+)?stop\s+(?:the\s+)?(?P<dep>[\w./:-]+)", re.I),
        "stop_deployment",
        _group("dep", "deployment"),
    ),
    Intent(
        re.compile(
            r"\bis\s+(?:the\s+)?(?P<dep>[\w./:-]+)\s+(?:healthy|up|ok|okay|alive|down)\b", re.I
        ),
        "deployment_status",
        _group("dep", "deployment"),
    ),
    Intent(
        re.compile(
            r"^\s*(?:what'?s\s+the\s+)?(?:status|health)(?:\s+of)?\s+(?!of\b)(?P<dep>[\w./:-]+)"
            r"\s*[?.!]*$",
            re.I,
        ),
        "deployment_status",
        _group("dep", "deployment"),
    ),
    Intent(
        re.compile(
            r"^\s*(?:please\s+)?(?:delete|remove|tear\s+down|destroy)\s+(?:the\s+)?"
            r"(?P<dep>[\w./:-]+)\s*[?.!]*$",
            re.I,
        ),
        "delete_deployment",
        _group("dep", "deployment"),
    ),
    Intent(re.compile(r"\bbudget\b", re.I), "budget", _none),
    Intent(
        re.compile(
            r"^\s*(?:which|what)\s+gpu\s+(?:for|does|do|would|should)\s+(?P<model>\S.*?)"
            r"(?:\s+(?:need|use|run\s+on))?\s*[?.!]*$",
            re.I,
        ),
        "recommend_gpu",
        _group("model", "model"),
    ),
    Intent(
        re.compile(
            r"^\s*(?:find|search(?:\s+for)?|look\s+for)\s+(?P<query>\S.*?)\s+models?\s*[?.!]*$"
            r"|^\s*(?:find|search(?:\s+for)?)\s+models?\s+(?:for\s+|like\s+)?"
            r"(?P<query2>\S.*?)\s*[?.!]*$",
            re.I,
        ),
        "search_models",
        lambda m: {"query": (m.group("query") or m.group("query2")).strip(" ?.!")},
    ),
    Intent(
        re.compile(
            r"\b(list\s+(?:my\s+|the\s+|all\s+)?deployments|what'?s\s+running|what\s+is\s+running"
            r"|show\s+(?:me\s+)?(?:my\s+|the\s+|all\s+)?deployments)\b"
            r"|^\s*(?:status|health)\s*[?.!]*$",
            re.I,
        ),
        "list_deployments",
        _none,
    ),
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


async def respond(
    dispatcher: Dispatcher,
    ctx: RequestContext,
    text: str,
    *,
    progress: ProgressSink | None = None,
    note: str = LIMITED_MODE_NOTE,
) -> Reply:
    """Answer plain words without Claude: match an intent, run its tool through the dispatcher
    (approvals and roles apply as always), and say in the footer that this is limited mode."""
    registry = dispatcher.services.registry
    available = {t.name for t in registry.for_role(ctx.role)}
    hit = match(text, available)
    if hit is None:
        return Reply(text=NOT_UNDERSTOOD, footer=note, ok=False)
    tool_name, args = hit
    tool = registry.get(tool_name)
    if tool is not None:
        # An intent may offer an argument the registered tool does not take (e.g. `idle`).
        args = {k: v for k, v in args.items() if k in tool.input_model.model_fields}
    reply = await dispatcher.run(ctx, tool_name, args, progress=progress)
    reply.footer = f"{reply.footer} · {note}" if reply.footer else note
    return reply


__all__ = [
    "INTENTS",
    "LIMITED_MODE_NOTE",
    "NOT_UNDERSTOOD",
    "_group",
    "match",
    "register_intent",
    "respond",
]
