"""The limited-mode agent: a small deterministic intent matcher used when no Claude key is set
(or Claude is unreachable). It maps common phrasings to the same tools the commands use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tools.contract import Origin, ProgressSink, Reply, RequestContext
from tools.errors import RateLimited

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher

LIMITED_MODE_NOTE = (
    "limited mode: no Claude key, so I understand only common requests. "
    "Set ANTHROPIC_API_KEY (or `/connect anthropic`) for full conversations."
)
EXAMPLES = (
    '"deploy qwen", "what\'s my spend this week", "how much would llama 8b cost", '
    '"is qwen healthy?", "stop the idle ones", "show the budget", '
    '"set a budget of 500 dollars a month" or "delete qwen"'
)
NOT_UNDERSTOOD = (
    f"I did not understand that. Without Claude I follow requests such as {EXAMPLES}; "
    "/help lists every command."
)
# "help" in plain words: /help itself is for people typing it (the assistant is not offered
# it), so limited mode answers with what it follows and points at the command.
LIMITED_HELP = (
    f"Without Claude I follow short requests such as {EXAMPLES}. "
    "Type /help for every command, or /help <command> for one."
)
HELP_TOOL = "help"


# Limited mode follows short requests. Past this (once whitespace is collapsed) a text is "not
# understood" without being scanned: a paragraph that mentions "budget" is not a budget request.
MAX_MATCH_CHARS = 1_000

# Politeness around a request, peeled off before matching ("can you ... for me, please?").
_POLITE_PREFIXES = (
    "please ",
    "pls ",
    "kindly ",
    "can you ",
    "could you ",
    "would you ",
    "will you ",
)
_POLITE_SUFFIXES = (" please", " pls", " for me", " thanks", " thank you")
_TRAILING = " ,?.!"


def normalise(text: str) -> str:
    """The text the intent patterns see: whitespace runs collapsed to one space, politeness and
    trailing punctuation peeled off, curly apostrophes made straight.

    This is what keeps matching linear: no pattern ever meets two adjacent whitespace
    characters or a run of trailing punctuation, so none of them needs a quantifier over
    whitespace or punctuation next to another that could match the same characters. (Peeling
    moves two indices and slices once, so a text of 10,000 "please" stays linear too.)"""
    text = " ".join(text.split()).replace("\u2019", "'")
    start, end = 0, len(text)
    while True:
        before = (start, end)
        while end > start and text[end - 1] in _TRAILING:
            end -= 1
        for prefix in _POLITE_PREFIXES:
            if text[start : start + len(prefix)].lower() == prefix:
                start += len(prefix)
                break
        for suffix in _POLITE_SUFFIXES:
            if end - start >= len(suffix) and text[end - len(suffix) : end].lower() == suffix:
                end -= len(suffix)
                break
        if (start, end) == before:
            return text[start:end]


Build = Callable[[re.Match[str]], dict[str, Any] | None]


@dataclass(frozen=True)
class Intent:
    """A pattern, searched in the normalised text, and how to turn its match into tool
    arguments. `build` may return None to decline the match (the next intent is tried)."""

    pattern: re.Pattern[str]
    tool: str
    build: Build


def _none(_: re.Match[str]) -> dict[str, Any]:
    return {}


def _group(name: str, key: str) -> Callable[[re.Match[str]], dict[str, Any]]:
    def build(m: re.Match[str]) -> dict[str, Any]:
        value = (m.group(name) or "").strip(" ?.!")
        return {key: value} if value else {}

    return build


# Every pattern below is written for normalised text (single spaces, no trailing punctuation)
# and stays linear in its length: anchored patterns try one start, unanchored ones begin with a
# literal word, and no two unbounded quantifiers next to each other can match the same text.
_PERIOD = re.compile(
    r"\b(?P<period>today|yesterday|this week|last week|this month|last month)", re.I
)
_IDLE = re.compile(r"\bidle\b", re.I)
_ARTICLE = re.compile(r"(?:a|an|the) (?=\S)", re.I)
# The cheapest GPU that fits is what deploy_model picks anyway, so "on a cheap gpu" adds nothing.
_CHEAP_GPU = re.compile(
    r" (?:on|using|with) (?:a |an |the )?(?:cheap|cheaper|cheapest|low-cost|inexpensive)"
    r"(?: gpus?| cards?| ones?)?$",
    re.I,
)


def _spend(m: re.Match[str]) -> dict[str, Any]:
    # The period is looked for after the spend word, in one more linear scan (a `.*?` inside
    # the pattern would rescan the rest of the text from every spend word).
    found = _PERIOD.search(m.string, m.end())
    return {"period": found.group("period").lower() if found else "this week"}


def _idle(m: re.Match[str]) -> dict[str, Any] | None:
    return {} if _IDLE.search(m.string, m.end()) else None


def _set_budget(m: re.Match[str]) -> dict[str, Any]:
    period = (m.group("p1") or m.group("p2") or "month").strip().lower()
    return {"action": "set", "amount": m.group("amount")} | (
        {"weekly": True} if period.startswith("week") else {"monthly": True}
    )


# "how much would qwen cost per month", "... cost to run": the question is still the price.
_COST_SUFFIX = (
    r"(?: (?:per|a|an|each|every) (?:month|hour|day|week)| monthly| hourly"
    r"| to (?:run|deploy|host))?"
)


def _deploy(m: re.Match[str]) -> dict[str, Any] | None:
    model = m.group("model")
    article = _ARTICLE.match(model)
    if article:
        model = model[article.end() :]
    cheap = _CHEAP_GPU.search(model)
    if cheap:
        model = model[: cheap.start()]
    model = model.strip(" ,?.!")
    return {"model": model} if model else None


# Order matters: the first match wins. Other modules append intents for their tools.
INTENTS: list[Intent] = [
    Intent(re.compile(r"\b(?:who am i|whoami|my role)\b", re.I), "whoami", _none),
    Intent(re.compile(r"^(?:help|what can you do|commands)\b", re.I), "help", _none),
    Intent(
        re.compile(r"^(?:deploy|launch|spin up|bring up|start up) (?P<model>\S.*)$", re.I),
        "deploy_model",
        _deploy,
    ),
    # A price question about a model ("how much would mistral cost") is an estimate, not spend;
    # it must be tried before the spend intent, which also matches "cost".
    Intent(
        re.compile(
            r"^(?:how much (?:would|does|will|do|to) (?:it cost to (?:deploy|run) )?"
            r"(?:deploying |running )?(?P<model>(?!we\b|i\b|you\b|it\b)\S.*?) cost"
            + _COST_SUFFIX
            + r"|(?:estimate|price(?: of)?|cost of) (?:deploying |running )?"
            r"(?P<model2>(?!this\b|last\b|today\b|yesterday\b)\S.*?))$",
            re.I,
        ),
        "estimate_cost",
        lambda m: {"model": (m.group("model") or m.group("model2")).strip(" ?.!")},
    ),
    Intent(
        re.compile(r"\b(?:spend|spent|spending|cost|costs|costing|bill|billing)\b", re.I),
        "get_spend",
        _spend,
    ),
    Intent(re.compile(r"\bstop\b", re.I), "stop_idle_deployments", _idle),
    Intent(
        re.compile(r"^stop (?:the )?(?P<dep>[\w./:-]+)", re.I),
        "stop_deployment",
        _group("dep", "deployment"),
    ),
    Intent(
        re.compile(r"\bis (?:the )?(?P<dep>[\w./:-]+) (?:healthy|up|ok|okay|alive|down)\b", re.I),
        "deployment_status",
        _group("dep", "deployment"),
    ),
    Intent(
        re.compile(
            r"^(?:what'?s the )?(?:status|health)(?: of)? (?!of\b)(?P<dep>[\w./:-]+)$", re.I
        ),
        "deployment_status",
        _group("dep", "deployment"),
    ),
    Intent(
        re.compile(r"^(?:delete|remove|tear down|destroy) (?:the )?(?P<dep>[\w./:-]+)$", re.I),
        "delete_deployment",
        _group("dep", "deployment"),
    ),
    Intent(
        re.compile(
            r"^(?:set|make|change|put) (?:a |the |my |our )?(?P<p1>monthly |weekly )?budget "
            r"(?:of |to |at )?\$?(?P<amount>\d{1,9}(?:\.\d{1,2})?)(?: dollars| usd)?"
            r"(?: (?:a|per|each|every) (?P<p2>month|week))?$",
            re.I,
        ),
        "budget",
        _set_budget,
    ),
    Intent(re.compile(r"\bbudget\b", re.I), "budget", _none),
    Intent(
        re.compile(
            r"^(?:which|what) gpu (?:for|does|do|would|should) (?P<model>\S.*?)"
            r"(?: (?:need|use|run on))?$",
            re.I,
        ),
        "recommend_gpu",
        _group("model", "model"),
    ),
    Intent(
        re.compile(
            r"^(?:find|search(?: for)?|look for) (?P<query>\S.*?) models?$"
            r"|^(?:find|search(?: for)?) models? (?:for |like )?(?P<query2>\S.*)$",
            re.I,
        ),
        "search_models",
        lambda m: {"query": (m.group("query") or m.group("query2")).strip(" ?.!")},
    ),
    Intent(
        re.compile(
            r"\b(?:list (?:my |the |all )?deployments|what'?s running|what is running"
            r"|show (?:me )?(?:my |the |all )?deployments)\b"
            r"|^(?:status|health)$",
            re.I,
        ),
        "list_deployments",
        _none,
    ),
]


def register_intent(pattern: str, tool: str, build: Build = _none) -> None:
    """Add an intent for another module's tool. `pattern` is searched in `normalise`d text
    (single spaces, no trailing punctuation); keep it free of nested or adjacent unbounded
    quantifiers over the same characters, so matching stays linear."""
    INTENTS.append(Intent(re.compile(pattern, re.I), tool, build))


def match(text: str, available: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The first intent whose tool is available and whose pattern matches `text`, with its
    arguments; None when nothing matches or the text is longer than MAX_MATCH_CHARS."""
    collapsed = " ".join(text.split())
    if len(collapsed) > MAX_MATCH_CHARS:
        return None
    text = normalise(collapsed)
    for intent in INTENTS:
        if intent.tool not in available:
            continue
        m = intent.pattern.search(text)
        if m:
            args = intent.build(m)
            if args is not None:
                return intent.tool, args
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
    (approvals, roles and the rate limit apply as always), and say in the footer that this is
    limited mode. A message that matches nothing still counts once against the rate limit, as
    one that runs a tool does (the dispatcher counts that one)."""
    registry = dispatcher.services.registry
    available = {t.name for t in registry.for_role(ctx.role)}
    hit = match(text, available)
    if hit is None:
        try:
            dispatcher.rate_limiter.check(ctx)
        except RateLimited as exc:
            return Reply.from_error(exc)
        return Reply(text=NOT_UNDERSTOOD, footer=note, ok=False)
    tool_name, args = hit
    if tool_name == HELP_TOOL:
        try:
            dispatcher.rate_limiter.check(ctx)
        except RateLimited as exc:
            return Reply.from_error(exc)
        return Reply(text=LIMITED_HELP, footer=note)
    tool = registry.get(tool_name)
    if tool is not None:
        # An intent may offer an argument the registered tool does not take (e.g. `idle`).
        args = {k: v for k, v in args.items() if k in tool.input_model.model_fields}
    # The matcher guessed the tool from loose words, so it is gated like Claude: reads run,
    # anything that changes state becomes an approval card for this person.
    agent_ctx = ctx.model_copy(update={"origin": Origin.agent})
    reply = await dispatcher.run(agent_ctx, tool_name, args, progress=progress)
    reply.footer = f"{reply.footer} · {note}" if reply.footer else note
    return reply


__all__ = [
    "INTENTS",
    "LIMITED_MODE_NOTE",
    "MAX_MATCH_CHARS",
    "NOT_UNDERSTOOD",
    "_group",
    "match",
    "normalise",
    "register_intent",
    "respond",
]
