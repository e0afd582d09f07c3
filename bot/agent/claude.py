"""The Claude agent: plain words → Claude → tool calls through the dispatcher → an answer.

The loop is ours (not the SDK's tool runner) so the history is explicit and easy to fake:

1. render the system prompt (stable, cached prefix + per-request facts) and offer the tools the
   caller's role may use (each from `Tool.anthropic_schema()`), plus the two skill tools;
2. stream a Messages API call, passing text deltas to `on_text` as they arrive;
3. on `tool_use`, run every requested tool concurrently through `Dispatcher.run` as the caller
   and send all results back in one message (`is_error` when a tool failed); a tool that needs
   approval only yields an approval request, which the final reply carries as buttons: the
   click goes to `Dispatcher.approve`, never through Claude;
4. stop on `end_turn`, a refusal, a cut-off answer, the step limit or the token budget.

Usage is priced and written to the organisation's ledger; the exchange is saved as the thread's
memory. When Claude cannot be used (bad key, rate limit, overload, network) the request falls
back to the limited-mode matcher and the footer says so.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.agent import memory, offline, pricing
from bot.agent.prompt import SystemPrompt, render_system_prompt
from bot.logs import SECRETS, redact
from storage import conversations, credentials, events, ledger
from tools.contract import Button, Origin, ProgressSink, Reply, RequestContext
from tools.metrics import AGENT_COST, AGENT_TOKENS
from tools.services import Services
from tools.skills import SkillSet, skills_for
from tools.skills.agent_tools import SKILL_TOOL_NAMES, run_skill_tool, skill_tool_schemas

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher
    from bot.settings import Settings

log = logging.getLogger(__name__)

TextSink = Callable[[str], Awaitable[None]]
KeyResolver = Callable[[int], str | None]

MAX_AGENT_ITERATIONS = 8  # model calls per request (tool rounds and pause_turn continuations)
MAX_OUTPUT_TOKENS = 2_048  # per model call
REQUEST_TOKEN_BUDGET = 60_000  # all tokens (input, cache, output) of one request
MAX_TOOL_RESULT_CHARS = 8_000
ANTHROPIC_TIMEOUT_SECONDS = 60.0
ANTHROPIC_MAX_RETRIES = 2  # the SDK retries 408/409/429/5xx, honouring Retry-After
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_PROVIDER = "anthropic"  # Credential.provider of a key stored by `/connect anthropic`
MAX_CACHED_CLIENTS = 64
CACHE_CONTROL = {"type": "ephemeral"}

CUT_OFF_NOTE = "(My answer was cut off at the length limit. Ask me to continue, or narrow it down.)"
REFUSAL_TEXT = (
    "Claude declined to answer this request (its safety checks stopped it). Nothing was run "
    "because of it, and this exchange is not kept in the thread's memory; try rephrasing, or "
    "use a slash command (/help)."
)
APPROVAL_FOR_MODEL = (
    "approval requested (#{id}) — the user must click Approve. Nothing has run yet; do not call "
    "the tool again. The approval card shows:\n{card}"
)
DUPLICATE_TEXT = "This message is already being answered."


class ClaudeUnavailable(Exception):
    """Claude could not be used for this request; `note` says why and what fixes it."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


@dataclass
class _Run:
    """State of one request's loop."""

    new: list[memory.MessageParam]
    usage: pricing.Usage = field(default_factory=pricing.Usage)
    texts: list[str] = field(default_factory=list)
    tool_replies: list[Reply] = field(default_factory=list)
    approvals: list[Reply] = field(default_factory=list)
    note: str | None = None
    refused: bool = False
    paused: bool = False
    streamed: bool = False
    turn_has_text: bool = False
    stream_broken: bool = False


class ClaudeAgent:
    """One per process. `respond` answers one message; `api_key_for` says whether an
    organisation can use Claude at all (otherwise the caller uses the offline matcher)."""

    def __init__(
        self,
        *,
        settings: Settings,
        services: Services,
        dispatcher: Dispatcher,
        key_for_org: KeyResolver | None = None,
    ) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self.model = settings.agent_model
        self.base_url = settings.anthropic_base_url or DEFAULT_ANTHROPIC_BASE_URL
        self._default_key = settings.anthropic_api_key
        # Extension point: where an organisation's own key comes from. The default reads the key
        # stored by `/connect anthropic` (credential provider "anthropic").
        self._key_for_org: KeyResolver = key_for_org or self._stored_key
        self._clients: dict[str, Any] = {}
        self._http: Any = None

    # -- keys and clients ---------------------------------------------------------------------

    def api_key_for(self, org_id: int) -> str | None:
        """The organisation's own Anthropic key when it has one, else ANTHROPIC_API_KEY."""
        own = self._key_for_org(org_id)
        if own:
            SECRETS.add(own, org_id=org_id)
        return own or self._default_key or None

    def _stored_key(self, org_id: int) -> str | None:
        try:
            with self.services.db.read_session() as s:  # a storage thread (`db.call`)
                return credentials.get_secret(
                    s, org_id=org_id, provider=ANTHROPIC_PROVIDER, box=self.services.secrets
                )
        except Exception:  # an unreadable stored key must not break the default key
            log.warning("could not read the stored Anthropic key of org %s", org_id, exc_info=True)
            return None

    def _client(self, api_key: str) -> Any:
        import anthropic  # lazy: the SDK takes ~1.5 s to import and only chat needs it

        client = self._clients.get(api_key)
        if client is None:
            if self._http is None:
                self._http = anthropic.DefaultAsyncHttpxClient()
            if len(self._clients) >= MAX_CACHED_CLIENTS:
                self._clients.pop(next(iter(self._clients)))  # share one pool: nothing to close
            client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=self.base_url,
                max_retries=ANTHROPIC_MAX_RETRIES,
                timeout=ANTHROPIC_TIMEOUT_SECONDS,
                http_client=self._http,
            )
            self._clients[api_key] = client
        return client

    async def aclose(self) -> None:
        self._clients.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- one request --------------------------------------------------------------------------

    async def respond(
        self,
        ctx: RequestContext,
        text: str,
        *,
        progress: ProgressSink | None = None,
        on_text: TextSink | None = None,
    ) -> Reply:
        """Answer one message in its thread. Streams text to `on_text` when given."""
        # Storage (the stored key, the claim, the prompt's figures, memory, usage) runs on the
        # storage threads: `db.call` of the synchronous helpers below.
        db = self.services.db
        api_key = await db.call(self.api_key_for, ctx.org_id)
        if not api_key:
            return await offline.respond(self.dispatcher, ctx, text, progress=progress)
        replay = await db.call(self._claim, ctx)
        if replay is not None:
            return replay
        skills = skills_for(self.services)
        system = await db.call(render_system_prompt, ctx, self.services, skills=skills.enabled())
        tools = self.tool_definitions(ctx, skills)
        past = await db.call(self._history, ctx)
        # A key pasted into chat is neither sent to Anthropic nor kept in the thread's memory.
        run = _Run(new=[{"role": "user", "content": redact(text, org_id=ctx.org_id)}])
        try:
            await self._loop(
                self._client(api_key), ctx, system, tools, past, run, skills, progress, on_text
            )
            reply = self._final_reply(run)
            if not run.refused:
                # After a refusal Anthropic says to reset the context: the refused exchange is
                # not kept, or every later message in the thread would be refused too.
                await db.call(self._remember, ctx, run.new)
        except ClaudeUnavailable as exc:
            log.warning("Claude unavailable for org %s: %s", ctx.org_id, exc.note)
            reply = await self._fallback(ctx, text, run, exc.note, progress)
            await db.call(
                self._remember,
                ctx,
                [run.new[0], {"role": "assistant", "content": reply.as_plain_text()}],
            )
        finally:
            # Spend is recorded even when the request is cancelled while it is written.
            await asyncio.shield(db.call(self._record_usage, ctx, run.usage))
        await db.call(self._store_result, ctx, reply)
        return reply

    def tool_definitions(self, ctx: RequestContext, skills: SkillSet) -> list[dict[str, Any]]:
        """The tools offered to Claude for this caller: the registry's tools their role may use
        (except those taking a secret), then the skill tools. The last one carries the
        prompt-cache breakpoint."""
        defs: list[dict[str, Any]] = []
        for t in self.services.registry.for_role(ctx.role):
            if not t.offered_to_agent(ctx.role):
                continue  # keys go through a modal or DM (`/connect`), never through Claude
            if t.name in SKILL_TOOL_NAMES:
                log.warning("registry tool %s is shadowed by the agent's skill tool", t.name)
                continue
            defs.append(compact_tool_schema(t.anthropic_schema()))
        defs.extend(skill_tool_schemas(skills))
        if defs:
            defs[-1]["cache_control"] = dict(CACHE_CONTROL)
        return defs

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(
        self,
        client: Any,
        ctx: RequestContext,
        system: SystemPrompt,
        tools: list[dict[str, Any]],
        past: list[memory.MessageParam],
        run: _Run,
        skills: SkillSet,
        progress: ProgressSink | None,
        on_text: TextSink | None,
    ) -> None:
        for step in range(MAX_AGENT_ITERATIONS):
            if step and run.usage.total >= REQUEST_TOKEN_BUDGET:
                run.note = (
                    f"(I stopped here: this request used its budget of {REQUEST_TOKEN_BUDGET:,} "
                    "tokens. Ask a narrower question to go on.)"
                )
                return
            message = await self._call(client, system, tools, past + run.new, run, on_text)
            run.usage.add(getattr(message, "usage", None))
            content = [b for b in (_block_param(b) for b in message.content) if b is not None]
            self._add_assistant(run, content)
            stop = message.stop_reason
            if stop == "tool_use" and memory.tool_use_ids({"content": content}):
                results = await self._run_tools(ctx, content, run, skills, progress)
                run.new.append({"role": "user", "content": results})
                continue
            if stop == "pause_turn":
                run.paused = True  # re-send as is: the next response continues this turn
                continue
            if stop in ("max_tokens", "model_context_window_exceeded"):
                run.note = CUT_OFF_NOTE
            elif stop == "refusal":
                run.refused = True
                details = getattr(message, "stop_details", None)
                log.warning(
                    "Claude refused (org %s, request %s): category=%s explanation=%s",
                    ctx.org_id,
                    ctx.request_id,
                    getattr(details, "category", None),
                    getattr(details, "explanation", None),
                )
            return
        run.note = (
            f"(I stopped after {MAX_AGENT_ITERATIONS} steps without a final answer. "
            "Ask a narrower question, or use a slash command.)"
        )

    async def _call(
        self,
        client: Any,
        system: SystemPrompt,
        tools: list[dict[str, Any]],
        messages: list[memory.MessageParam],
        run: _Run,
        on_text: TextSink | None,
    ) -> Any:
        import anthropic

        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": MAX_OUTPUT_TOKENS,
            "system": system.blocks(),
            "messages": _with_cache_breakpoint(messages),
        }
        if tools:
            kwargs["tools"] = tools
        run.turn_has_text = False
        try:
            async with client.messages.stream(**kwargs) as stream:
                async for event in stream:
                    if event.type == "text" and event.text:
                        await self._emit(run, on_text, event.text)
                return await stream.get_final_message()
        except anthropic.APIError as exc:
            raise ClaudeUnavailable(_describe_api_error(exc)) from exc

    async def _emit(self, run: _Run, on_text: TextSink | None, delta: str) -> None:
        if on_text is None or run.stream_broken:
            return
        if run.streamed and not run.turn_has_text:
            delta = "\n\n" + delta  # a new turn's text starts a new paragraph
        run.streamed = run.turn_has_text = True
        try:
            await on_text(delta)
        except Exception:  # a surface failing to show a delta must not lose the answer
            log.warning("on_text callback failed; streaming stopped", exc_info=True)
            run.stream_broken = True

    def _add_assistant(self, run: _Run, content: list[dict[str, Any]]) -> None:
        text = "".join(b["text"] for b in content if b.get("type") == "text")
        if run.paused and run.new and run.new[-1]["role"] == "assistant":
            run.new[-1]["content"] = list(run.new[-1]["content"]) + content
            if text:
                run.texts[-1] = (run.texts[-1] + text) if run.texts else text
        else:
            run.new.append({"role": "assistant", "content": content})
            run.texts.append(text)
        run.paused = False

    async def _run_tools(
        self,
        ctx: RequestContext,
        content: list[dict[str, Any]],
        run: _Run,
        skills: SkillSet,
        progress: ProgressSink | None,
    ) -> list[dict[str, Any]]:
        uses = [b for b in content if b.get("type") == "tool_use"]

        async def one(block: dict[str, Any]) -> tuple[dict[str, Any], Reply | None]:
            name = str(block.get("name"))
            raw = block.get("input")
            args: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if name in SKILL_TOOL_NAMES:
                text, is_error = run_skill_tool(skills, name, args)
                return _tool_result(block["id"], text, is_error), None
            reply = await self.dispatcher.run(
                _call_ctx(ctx, name, args), name, args, progress=progress
            )
            if reply.approval_id is not None:
                card = _card_text(reply)
                text = APPROVAL_FOR_MODEL.format(id=reply.approval_id, card=card)
                return _tool_result(block["id"], redact(text, org_id=ctx.org_id), False), reply
            # Known secrets and key-shaped text never reach the model, whatever a tool returned.
            text = redact(reply.as_plain_text(), org_id=ctx.org_id)
            return _tool_result(block["id"], text, not reply.ok), reply

        done = await asyncio.gather(*(one(b) for b in uses))
        for _, reply in done:
            if reply is None:
                continue
            run.tool_replies.append(reply)
            if reply.approval_id is not None:
                run.approvals.append(reply)
        return [result for result, _ in done]

    # -- the answer ---------------------------------------------------------------------------

    def _final_reply(self, run: _Run) -> Reply:
        text = "\n\n".join(t.strip() for t in run.texts if t.strip())
        if run.refused:
            text = f"{text}\n\n{REFUSAL_TEXT}".strip()
        if run.note:
            text = f"{text}\n\n{run.note}".strip()
        if not text:
            last = run.tool_replies[-1] if run.tool_replies else None
            text = last.as_plain_text() if last and not last.approval_id else ""
        reply = Reply(text=text or "(no answer)", ok=not run.refused)
        images = [r.image for r in run.tool_replies if r.image is not None]
        if images:
            reply.image = images[-1]
        if run.approvals:
            _attach_approvals(reply, run.approvals)
        if reply.footer is None and self.services.footer:
            reply.footer = self.services.footer
        return reply

    async def _fallback(
        self,
        ctx: RequestContext,
        text: str,
        run: _Run,
        note: str,
        progress: ProgressSink | None,
    ) -> Reply:
        footer = f"limited mode: {note}"
        if not run.tool_replies:
            return await offline.respond(self.dispatcher, ctx, text, progress=progress, note=footer)
        # Tools already ran for this message: show what they returned rather than asking the
        # matcher to run them again.
        parts = [r.as_plain_text() for r in run.tool_replies if r.approval_id is None]
        reply = Reply(
            text="Claude stopped answering midway. What the tools returned:\n\n"
            + "\n\n".join(parts),
        )
        if run.approvals:
            _attach_approvals(reply, run.approvals)
        reply.footer = f"{reply.footer} · {footer}" if reply.footer else footer
        return reply

    # -- memory, usage, idempotency -----------------------------------------------------------

    def _history(self, ctx: RequestContext) -> list[memory.MessageParam]:
        with self.services.db.read_session() as s:  # reads only: no transaction
            conv = conversations.find(
                s,
                org_id=ctx.org_id,
                platform=ctx.platform.value,
                channel=ctx.channel,
                thread=ctx.thread,
            )
            if conv is None or conv.id is None:
                return []
            rows = conversations.recent_messages(
                s, org_id=ctx.org_id, conversation_id=conv.id, limit=memory.HISTORY_MAX_ROWS
            )
        return memory.history(rows)

    def _remember(self, ctx: RequestContext, new: list[memory.MessageParam]) -> None:
        rows = _storable(new)
        now = self.services.clock.now()
        with self.services.db.session() as s:
            conv = conversations.get_or_create(
                s,
                org_id=ctx.org_id,
                workspace_id=ctx.workspace_id,
                platform=ctx.platform.value,
                channel=ctx.channel,
                thread=ctx.thread,
                now=now,
            )
            assert conv.id is not None
            conversations.append(
                s, org_id=ctx.org_id, conversation_id=conv.id, messages=rows, now=now
            )

    def _record_usage(self, ctx: RequestContext, usage: pricing.Usage) -> None:
        if not usage.calls:
            return
        now = self.services.clock.now()
        amount = pricing.cost(self.model, usage)
        AGENT_TOKENS.labels(direction="input").inc(
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
        )
        AGENT_TOKENS.labels(direction="output").inc(usage.output_tokens)
        AGENT_COST.inc(float(amount))
        with self.services.db.session() as s:
            ledger.add(
                s,
                org_id=ctx.org_id,
                kind="agent",
                start=now,
                end=now,
                amount=amount,
                now=now,
                user=ctx.user_id,
                description=pricing.describe(self.model, usage),
            )

    def _claim(self, ctx: RequestContext) -> Reply | None:
        """A retried platform event (same idempotency key) must not ask Claude twice."""
        if not ctx.idempotency_key:
            return None
        key = f"{ctx.idempotency_key}:agent"
        with self.services.db.session() as s:
            if events.claim(s, org_id=ctx.org_id, key=key, now=self.services.clock.now()):
                return None
            ev = events.seen(s, org_id=ctx.org_id, key=key)
            stored = ev.result_json if ev else "{}"
        if stored and stored != "{}":
            reply = Reply.model_validate_json(stored)
            reply.footer = "(already handled: this is the earlier answer)"
            return reply
        return Reply(text=DUPLICATE_TEXT, footer="(duplicate ignored)")

    def _store_result(self, ctx: RequestContext, reply: Reply) -> None:
        if not ctx.idempotency_key:
            return
        with self.services.db.session() as s:
            events.store_result(
                s,
                org_id=ctx.org_id,
                key=f"{ctx.idempotency_key}:agent",
                result_json=reply.model_dump_json(),
            )


# --- helpers -----------------------------------------------------------------------------------


def _block_param(block: Any) -> dict[str, Any] | None:
    """An SDK content block as a request block (what we send back and store)."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    dumped = (
        block.model_dump(mode="json", exclude_none=True) if hasattr(block, "model_dump") else None
    )
    return dumped if isinstance(dumped, dict) else None


def compact_tool_schema(definition: dict[str, Any]) -> dict[str, Any]:
    """A tool definition with pydantic's verbose optionals folded (`anyOf: [X, null]` becomes X,
    left out of `required`), defaults, bounds and `additionalProperties: false` dropped: the
    tool contract validates arguments where the call runs, and every token here is paid per
    call."""
    out = copy.deepcopy(definition)
    schema = out.get("input_schema")
    if isinstance(schema, dict):
        if schema.get("additionalProperties") is False:
            del schema["additionalProperties"]
        out["input_schema"] = _compact_node(schema)
    return out


def _compact_node(node: Any) -> Any:
    if isinstance(node, list):
        return [_compact_node(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _compact_node(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        options = [o for o in options if o != {"type": "null"}]
        node["anyOf"] = options
    if isinstance(options, list) and {"type": "number"} in options and _STRING in options:
        # pydantic's Decimal (a number, or a string of one): a number says it.
        options = [o for o in options if o != _STRING]
        node["anyOf"] = options
    if isinstance(options, list) and len(options) == 1 and isinstance(options[0], dict):
        del node["anyOf"]
        node = {**options[0], **node}
    # Defaults apply when an argument is left out, and the approval card or the answer shows
    # what was used; stating them costs tokens on every call.
    node.pop("default", None)
    for bound in _SCHEMA_BOUNDS:
        # Ranges and lengths are enforced where the call runs (the tool contract); an
        # argument out of range comes back as a clear is_error result the model can correct.
        node.pop(bound, None)
    return node


_STRING = {"type": "string"}
_SCHEMA_BOUNDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
)


def _with_cache_breakpoint(messages: list[memory.MessageParam]) -> list[memory.MessageParam]:
    """A copy of the messages with a cache breakpoint on the last block, so each tool round
    reads the conversation so far from the cache (tools and system carry the other two)."""
    out = copy.deepcopy(messages)
    if not out:
        return out
    last = out[-1]
    content = last["content"]
    if isinstance(content, str):
        last["content"] = [{"type": "text", "text": content, "cache_control": dict(CACHE_CONTROL)}]
    elif content and isinstance(content[-1], dict):
        content[-1]["cache_control"] = dict(CACHE_CONTROL)
    return out


def _tool_result(tool_use_id: str, text: str, is_error: bool) -> dict[str, Any]:
    if len(text) > MAX_TOOL_RESULT_CHARS:
        text = text[:MAX_TOOL_RESULT_CHARS] + "\n…(truncated)"
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": text or "(empty)",
    }
    if is_error:
        block["is_error"] = True
    return block


def _call_ctx(ctx: RequestContext, name: str, args: dict[str, Any]) -> RequestContext:
    """The caller's context for one tool call, marked as chosen by the agent (the dispatcher
    gates those). A platform event's idempotency key is made per call, so parallel calls do not
    replay each other while a retried event does not run the same call twice."""
    update: dict[str, Any] = {"origin": Origin.agent}
    if ctx.idempotency_key:
        digest = hashlib.sha256(json.dumps([name, args], sort_keys=True).encode()).hexdigest()[:16]
        update["idempotency_key"] = f"{ctx.idempotency_key}:{name}:{digest}"
    return ctx.model_copy(update=update)


def _card_text(reply: Reply) -> str:
    card = reply.model_copy(update={"buttons": [], "footer": None})
    return card.as_plain_text()


def _attach_approvals(reply: Reply, approvals: list[Reply]) -> None:
    """Put the approval card(s) on the agent's answer: the surface shows the buttons and the
    click goes to Dispatcher.approve."""
    first = approvals[0]
    reply.approval_id = first.approval_id
    reply.title = reply.title or first.title
    reply.fields = reply.fields + [f for a in approvals for f in a.fields]
    if reply.table is None:
        reply.table = next((a.table for a in approvals if a.table is not None), None)
    card_texts = [a.text for a in approvals if a.text and a.text not in reply.text]
    if card_texts:
        reply.text = "\n\n".join([reply.text, *card_texts]).strip()
    if len(approvals) == 1:
        reply.buttons = list(first.buttons)
    else:
        reply.buttons = [
            Button(
                label=f"{b.label} #{a.approval_id}", action=b.action, value=b.value, style=b.style
            )
            for a in approvals
            for b in a.buttons
        ]
    reply.footer = first.footer


def _storable(new: list[memory.MessageParam]) -> list[conversations.NewMessage]:
    """The exchange as rows, made valid for replay: an unanswered tool_use (a cut-off turn) is
    dropped and the exchange always ends with an assistant message."""
    msgs = copy.deepcopy(new)
    if msgs and msgs[-1]["role"] == "assistant" and isinstance(msgs[-1]["content"], list):
        kept = [b for b in msgs[-1]["content"] if b.get("type") != "tool_use"]
        msgs[-1]["content"] = kept or "(no text)"
    if not msgs or msgs[-1]["role"] != "assistant":
        msgs.append({"role": "assistant", "content": "(stopped before answering)"})
    rows = []
    for i, m in enumerate(msgs):
        role = m["role"] if i == 0 or m["role"] == "assistant" else "tool"
        encoded = memory.encode(m["content"])
        rows.append(
            conversations.NewMessage(
                role=role, content=encoded, tokens=memory.estimate_tokens(m["content"])
            )
        )
    return rows


def _describe_api_error(exc: Exception) -> str:
    """A person-readable reason for falling back, with the fix when there is one."""
    import anthropic

    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    err_type = ""
    if isinstance(body, dict):
        inner = body.get("error")
        err_type = str(inner.get("type", "")) if isinstance(inner, dict) else ""
    if isinstance(exc, anthropic.AuthenticationError) or status == 401:
        return (
            "Claude rejected the API key (401). Fix: set ANTHROPIC_API_KEY or run "
            "/connect anthropic with a valid key."
        )
    if isinstance(exc, anthropic.PermissionDeniedError) or status == 403:
        return (
            "Claude refused this API key access (403). Fix: check the key's workspace and "
            "permissions, then set ANTHROPIC_API_KEY or run /connect anthropic."
        )
    if isinstance(exc, anthropic.RateLimitError) or err_type == "rate_limit_error":
        return "Claude is rate-limiting this key (429). Try again in a minute."
    if status == 529 or err_type == "overloaded_error":
        return "Claude is overloaded (529). Try again in a few minutes."
    if isinstance(exc, anthropic.APITimeoutError):
        return "Claude did not answer in time. Try again shortly."
    if isinstance(exc, anthropic.APIConnectionError):
        return "Could not reach Claude (connection error). Check the network or ANTHROPIC_BASE_URL."
    if isinstance(exc, anthropic.InternalServerError) or (status or 0) >= 500:
        return f"Claude had a server error ({status}). Try again shortly."
    if status == 404:
        return (
            f"Claude does not know the model (404). Fix: check COCKPIT_AGENT_MODEL "
            f"({_message_of(body)})."
        )
    return f"Claude refused the request ({status or err_type or 'error'}: {_message_of(body)})."


def _message_of(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:200]
    return str(body or "")[:200]


__all__ = [
    "MAX_AGENT_ITERATIONS",
    "REQUEST_TOKEN_BUDGET",
    "ClaudeAgent",
    "ClaudeUnavailable",
    "TextSink",
    "compact_tool_schema",
]
