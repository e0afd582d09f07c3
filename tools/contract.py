"""The tool contract: what a tool is, what it receives, what it returns.

One definition per tool yields the Claude tool schema, the slash-command syntax and usage line,
the `/help` text, validation errors and the audit record. Surfaces and the dispatcher (in `bot/`)
only ever talk to tools through these types.
"""

from __future__ import annotations

import math
import shlex
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, get_args, get_origin

from annotated_types import MaxLen
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from tools.errors import CockpitError, InvalidInput

if TYPE_CHECKING:
    from tools.services import Services


# Integers reach SQLite/PostgreSQL BIGINT columns: anything outside signed 64 bits overflows the
# driver, so the contract rejects it before any query is built.
DB_INT_MIN = -(2**63)
DB_INT_MAX = 2**63 - 1
_ID_DIGITS = len(str(DB_INT_MAX))
# Longest text a tool argument may carry unless its field sets its own `max_length`; a list of
# words (a chat message) may carry MAX_WORDS_CHARS in all. Nothing a person types legitimately
# comes near: these bound what reaches a query, a regex or a provider.
MAX_TEXT_CHARS = 4_000
MAX_WORDS_CHARS = 20_000


def parse_id(value: object) -> int | None:
    """A row id typed or clicked by a person ("12", "#12"): ASCII digits only (`"²".isdigit()`
    is true, and int() reads Arabic-Indic digits), 1 ≤ id ≤ DB_INT_MAX; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip().removeprefix("#")
    if not text or len(text) > _ID_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 1 <= number <= DB_INT_MAX else None


class Role(StrEnum):
    viewer = "viewer"
    member = "member"
    admin = "admin"
    owner = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_ROLE_RANK = {Role.viewer: 0, Role.member: 1, Role.admin: 2, Role.owner: 3}


class SideEffect(StrEnum):
    none = "none"
    spend = "spend"
    destroy = "destroy"
    admin = "admin"


class Platform(StrEnum):
    console = "console"
    slack = "slack"
    discord = "discord"
    api = "api"
    system = "system"


class Origin(StrEnum):
    """Who chose the tool call: the person's own command, or a model (Claude or the
    limited-mode matcher) acting on their words. The dispatcher gates agent calls."""

    person = "person"
    agent = "agent"


class RequestContext(BaseModel):
    """Who is asking, from where. Built by an adapter, trusted by everything below it."""

    model_config = ConfigDict(frozen=True)

    org_id: int
    workspace_id: int
    member_id: int | None = None
    user_id: str
    display_name: str
    role: Role
    platform: Platform
    workspace_name: str = ""
    timezone: str = "UTC"
    channel: str | None = None
    thread: str | None = None
    idempotency_key: str | None = None
    origin: Origin = Origin.person
    # The tools an API key may call (its scopes; "*" for any); None: whatever the role allows.
    scopes: tuple[str, ...] | None = None
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])

    def in_scope(self, tool: Tool) -> bool:
        return self.scopes is None or "*" in self.scopes or tool.name in self.scopes


def article(word: str) -> str:
    """ "a" or "an" before `word` (role names: "an admin", "a member")."""
    return "an" if word[:1] in "aeiou" else "a"


def permission_refusal(ctx: RequestContext, tool: Tool) -> tuple[str, str] | None:
    """(audit detail, message) when `ctx` may not run `tool`: its role, its API key's scopes,
    or a model asking for a tool it is never offered. Checked wherever a tool runs: the
    dispatcher, and a tool that runs another for the caller (`/fix`, `/alerts status`)."""
    name = tool.command or tool.name
    if not ctx.role.allows(tool.role):
        msg = (
            f"/{name} needs the {tool.role.value} role; you are {article(ctx.role.value)} "
            f"{ctx.role.value}. "
            "Ask an admin of this workspace to run it or to change your role."
        )
        return msg, msg
    if not ctx.in_scope(tool):
        return "outside the API key's scopes", (
            f"This API key's scopes do not include {tool.name}; nothing was done. "
            "Create a key with that scope (/apikey --scopes) to allow it."
        )
    if ctx.origin is Origin.agent and not tool.offered_to_agent(ctx.role):
        # The model asked for a tool it was never offered (a slash-only tool, one that takes
        # or returns a secret): refused here, where it would run, whatever the prompt said.
        return "the agent asked for a tool it is not offered", (
            f"/{name} is not available to the assistant; nothing was done. "
            f"If you want it, type /{name} yourself."
        )
    return None


# --- Replies -------------------------------------------------------------------------------


class ReplyField(BaseModel):
    label: str
    value: str


class Table(BaseModel):
    columns: list[str]
    rows: list[list[str]]


class Button(BaseModel):
    label: str
    action: str  # "approve" | "cancel" | any surface-neutral action id
    value: str
    style: str = "default"  # "primary" | "danger" | "default"


class Image(BaseModel):
    path: str
    title: str
    alt: str = ""


class Reply(BaseModel):
    """Surface-neutral answer: text plus structured parts each adapter renders its own way."""

    text: str = ""
    title: str | None = None
    fields: list[ReplyField] = Field(default_factory=list)
    table: Table | None = None
    buttons: list[Button] = Field(default_factory=list)
    image: Image | None = None
    footer: str | None = None
    ok: bool = True
    approval_id: int | None = None
    # Set by a preview when only this role (or higher) may approve, e.g. "admin" past a cap.
    approver_role: Role | None = None
    # When the approval this reply asks for expires (set by `Cockpit`; shown on the card).
    expires_at: datetime | None = None
    ephemeral: bool = False

    # On errors: the CockpitError code ("forbidden", "not_found", "rate_limited"...) and, for
    # rate limits, seconds to wait. Surfaces that speak HTTP map them to status codes.
    error_code: str | None = None
    retry_after: float | None = None

    @classmethod
    def error(cls, text: str, *, code: str = "error") -> Reply:
        return cls(text=text, ok=False, error_code=code)

    @classmethod
    def from_error(cls, exc: CockpitError) -> Reply:
        return cls(
            text=str(exc),
            ok=False,
            error_code=exc.code,
            retry_after=getattr(exc, "retry_after", None),
        )

    @property
    def needs_choice(self) -> bool:
        """Nothing was done because the person must pick one of the buttons: a question, which
        surfaces show as one rather than as an error."""
        return self.error_code == "needs_choice"

    @property
    def is_error(self) -> bool:
        """Shown as an error (warning sign, error colour): not done, and not a question."""
        return not self.ok and not self.needs_choice

    def add_field(self, label: str, value: object) -> Reply:
        self.fields.append(ReplyField(label=label, value=str(value)))
        return self

    def as_plain_text(self) -> str:
        """The reply as plain text, as the console prints it and tests read it."""
        lines: list[str] = []
        if self.title:
            lines.append(self.title)
        if self.text:
            lines.append(self.text)
        lines.extend(f"  {f.label}: {f.value}" for f in self.fields)
        if self.table:
            lines.append(render_table(self.table))
        if self.image:
            lines.append(f"[chart] {self.image.title}: {self.image.path}")
        if self.buttons:
            lines.append("  " + "  ".join(f"[{b.label}]" for b in self.buttons))
        if self.footer:
            lines.append(f"— {self.footer}")
        return "\n".join(lines)


def render_table(table: Table) -> str:
    widths = [len(c) for c in table.columns]
    for row in table.rows:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(cell))

    def fmt(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    out = [fmt(table.columns), "  " + "  ".join("-" * w for w in widths)]
    out.extend(fmt(r) for r in table.rows)
    return "\n".join(out)


# --- Tool definition -----------------------------------------------------------------------

ProgressSink = Callable[[str], Awaitable[None]]


class ProgressNote(str):
    """A progress line that offers buttons too (a running benchmark's Cancel). It is a `str`,
    so every progress sink takes it; surfaces that render buttons read `buttons`."""

    buttons: tuple[Button, ...]

    def __new__(cls, text: str, buttons: tuple[Button, ...] = ()) -> ProgressNote:
        note = super().__new__(cls, text)
        note.buttons = tuple(buttons)
        return note


async def _no_progress(_: str) -> None:
    return None


@dataclass
class ToolContext:
    """What a running tool gets: the caller, the shared services, and a progress channel."""

    request: RequestContext
    services: Services
    progress: ProgressSink = _no_progress
    approved_by: str | None = None
    # Text deltas of a streamed answer (model chat); None when the surface cannot stream.
    stream: ProgressSink | None = None

    @property
    def org_id(self) -> int:
        return self.request.org_id


ToolFunc = Callable[[ToolContext, Any], Awaitable[Reply]]
PreviewFunc = Callable[[ToolContext, Any], Awaitable[Reply]]


def arg(
    default: Any = ...,
    *,
    description: str,
    positional: bool = False,
    secret: bool = False,
    metavar: str | None = None,
    **kwargs: Any,
) -> Any:
    """Declare a tool input field. Positional fields come first on the command line, in order;
    others are `--flags`. `secret` fields are redacted in audit rows and never echoed."""
    extra: dict[str, Any] = {}
    if positional:
        extra["positional"] = True
    if secret:
        extra["secret"] = True
    if metavar:
        extra["metavar"] = metavar
    return Field(default, description=description, json_schema_extra=extra or None, **kwargs)


class ToolInput(BaseModel):
    """Base for tool input models: unknown arguments are an error, never silently dropped.

    Every field is also bounded here, once for all tools: integers fit a signed 64-bit column,
    numbers are finite, texts are valid UTF-8 without NUL and at most MAX_TEXT_CHARS long (a
    field's own `max_length` wins), so bad input is an InvalidInput, never a driver error."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or "input"
        if isinstance(value, list):
            total = 0
            for item in value:
                _check_scalar(item, limit=None)
                total += len(item) if isinstance(item, str) else 0
            if total > MAX_WORDS_CHARS:
                raise PydanticCustomError(
                    "too_long",
                    "is too long ({n:,} characters; at most {limit:,})",
                    {"n": total, "limit": MAX_WORDS_CHARS},
                )
            return value
        field_info = cls.model_fields.get(name)
        own_limit = field_info is not None and any(
            isinstance(m, MaxLen) for m in field_info.metadata
        )
        _check_scalar(value, limit=None if own_limit else MAX_TEXT_CHARS)
        return value


def _check_scalar(value: Any, *, limit: int | None) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not DB_INT_MIN <= value <= DB_INT_MAX:
            raise PydanticCustomError(
                "out_of_range", "is out of range (at most {limit})", {"limit": DB_INT_MAX}
            )
    elif isinstance(value, Decimal | float):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        if not finite or abs(float(value)) > DB_INT_MAX:
            raise PydanticCustomError("out_of_range", "must be a finite, reasonable number")
    elif isinstance(value, str):
        if limit is not None and len(value) > limit:
            raise PydanticCustomError(
                "too_long",
                "is too long ({n:,} characters; at most {limit:,})",
                {"n": len(value), "limit": limit},
            )
        if "\x00" in value:
            raise PydanticCustomError("invalid_text", "must not contain a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "invalid_text", "is not valid text (it contains a lone surrogate)"
            ) from None


class NoArgs(ToolInput):
    pass


@dataclass
class Tool:
    name: str
    func: ToolFunc
    input_model: type[BaseModel]
    description: str
    role: Role = Role.viewer
    side_effect: SideEffect = SideEffect.none
    needs_approval: bool = False
    command: str | None = None
    aliases: tuple[str, ...] = ()
    group: str = "general"
    preview: PreviewFunc | None = None
    examples: tuple[str, ...] = ()
    # False keeps a tool away from the LLM (its output is a secret, e.g. a new API key).
    agent: bool = True
    # True when the reply carries a secret (a new API key, an invite code): shown once to the
    # requester, never stored in the audit trail or replay store, never given to a model.
    secret_output: bool = False
    # For a tool that both reads and writes (`/budget` shows, `/budget set` changes): the side
    # effect of one call, from its arguments. None means always `side_effect`.
    effect: Callable[[Any], SideEffect] | None = None
    _secret_fields: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        self._secret_fields = frozenset(
            n for n, f in self.input_model.model_fields.items() if _extra(f).get("secret")
        )

    def effect_of(self, args: BaseModel) -> SideEffect:
        return self.effect(args) if self.effect is not None else self.side_effect

    def offered_to_agent(self, role: Role) -> bool:
        """Whether a model acting for someone of `role` may call this tool at all: the same
        rule builds the tools Claude is offered and gates what it asks for."""
        return (
            self.agent
            and not self._secret_fields
            and not self.secret_output
            and role.allows(self.role)
        )

    # -- schema & syntax --
    @property
    def summary(self) -> str:
        return self.description.strip().splitlines()[0]

    def anthropic_schema(self) -> dict[str, Any]:
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
            prop.pop("positional", None)
            prop.pop("metavar", None)
        return {"name": self.name, "description": self.description.strip(), "input_schema": schema}

    def positional_fields(self) -> list[str]:
        return [n for n, f in self.input_model.model_fields.items() if _extra(f).get("positional")]

    def usage(self, *, brief: bool = False) -> str:
        """The command line syntax; `brief` keeps required arguments and folds the optional
        ones into `[options]` so a list of every command stays readable."""
        parts = [f"/{self.command or self.name}"]
        optional = False
        for name, f in self.input_model.model_fields.items():
            if brief and not f.is_required() and not _extra(f).get("positional"):
                optional = True
                continue
            meta = _extra(f).get("metavar") or name.upper()
            if _extra(f).get("positional"):
                token = f"<{name}>" if f.is_required() else f"[{name}]"
                if _is_list(f.annotation):
                    token = f"<{name}...>"
            elif _is_bool(f.annotation):
                token = f"[--{_flag(name)}]"
            else:
                token = f"--{_flag(name)} {meta}"
                token = token if f.is_required() else f"[{token}]"
            parts.append(token)
        if optional:
            parts.append("[options]")
        return " ".join(parts)

    def help_text(self) -> str:
        lines = [f"{self.usage()}", f"  {self.description.strip()}"]
        for name, f in self.input_model.model_fields.items():
            label = name if _extra(f).get("positional") else f"--{_flag(name)}"
            default = (
                "" if f.is_required() or f.default in (None, False) else f" (default {f.default})"
            )
            lines.append(f"    {label}: {f.description or ''}{default}")
        lines.extend(f"  e.g. {e}" for e in self.examples)
        return "\n".join(lines)

    # -- validation --
    def parse_args(self, raw: dict[str, Any]) -> BaseModel:
        """Validate structured arguments (from Claude or an API call)."""
        try:
            return self.input_model.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInput(_describe_validation(exc), fix=f"Usage: {self.usage()}") from None

    def parse_command(self, argline: str) -> BaseModel:
        """Parse the text after `/command` into the input model, or raise with the usage line."""
        try:
            tokens = shlex.split(argline)
        except ValueError as exc:
            raise InvalidInput(
                f"Could not read the arguments ({exc}).", fix=f"Usage: {self.usage()}"
            ) from None
        return self.parse_args(self._tokens_to_dict(tokens))

    def _tokens_to_dict(self, tokens: list[str]) -> dict[str, Any]:
        fields = self.input_model.model_fields
        flags = {_flag(n): n for n in fields}
        positional = self.positional_fields()
        out: dict[str, Any] = {}
        loose: list[str] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.startswith("--") and len(tok) > 2:
                key, _, inline = tok[2:].partition("=")
                name = flags.get(key)
                if name is None:
                    raise InvalidInput(f"Unknown option --{key}.", fix=f"Usage: {self.usage()}")
                if _is_bool(fields[name].annotation) and not inline:
                    out[name] = True
                elif inline:
                    out[name] = inline
                elif i + 1 < len(tokens):
                    i += 1
                    value = tokens[i]
                    # Positionals already given: later words belong to this flag, so
                    # `/update 1 --model qwen 1.5b` works without quotes.
                    if len(loose) >= len(positional) and _is_str(fields[name].annotation):
                        while i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                            i += 1
                            value += " " + tokens[i]
                    out[name] = value
                else:
                    raise InvalidInput(f"--{key} needs a value.", fix=f"Usage: {self.usage()}")
            else:
                loose.append(tok)
            i += 1
        for idx, name in enumerate(positional):
            if idx >= len(loose):
                break
            is_last = idx == len(positional) - 1
            if _is_list(fields[name].annotation):
                out[name] = loose[idx:]
                loose = loose[:idx]
                break
            # The last positional swallows the rest, so `/deploy llama 8b` works unquoted.
            out[name] = " ".join(loose[idx:]) if is_last else loose[idx]
            if is_last:
                loose = loose[: idx + 1]
        if len(loose) > len(positional) and not positional:
            raise InvalidInput(
                f"/{self.command or self.name} takes no arguments like {loose[0]!r}.",
                fix=f"Usage: {self.usage()}",
            )
        return out

    @property
    def secret_fields(self) -> frozenset[str]:
        return self._secret_fields

    def redact(self, args: dict[str, Any]) -> dict[str, Any]:
        return {k: ("[redacted]" if k in self._secret_fields else v) for k, v in args.items()}


def _extra(f: Any) -> dict[str, Any]:
    extra = f.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    return bool(get_args(annotation)) and all(a in (bool, type(None)) for a in get_args(annotation))


def _is_str(annotation: Any) -> bool:
    if annotation is str:
        return True
    args = get_args(annotation)
    return bool(args) and str in args and all(a in (str, type(None)) for a in args)


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(get_origin(a) is list for a in get_args(annotation))


def _describe_validation(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "input"
        if err["type"] == "missing":
            problems.append(f"{loc} is required")
        elif err["type"] == "extra_forbidden":
            problems.append(f"{loc} is not a known argument")
        else:
            problems.append(f"{loc}: {err['msg']}")
    return "Invalid arguments: " + "; ".join(problems) + "."


# --- Registry ------------------------------------------------------------------------------


class Registry:
    """All tools by name and by slash command. Built-in tools register like any other."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._commands: dict[str, str] = {}

    def add(self, t: Tool) -> Tool:
        if t.name in self._tools:
            raise ValueError(f"tool {t.name!r} registered twice")
        self._tools[t.name] = t
        for cmd in (t.command or t.name, *t.aliases):
            if cmd in self._commands:
                raise ValueError(f"command /{cmd} registered twice")
            self._commands[cmd] = t.name
        return t

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def by_command(self, command: str) -> Tool | None:
        name = self._commands.get(command.lower())
        return self._tools[name] if name else None

    def commands(self) -> list[str]:
        return sorted(self._commands)

    def all(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda t: (t.group, t.name))

    def for_role(self, role: Role) -> list[Tool]:
        return [t for t in self.all() if role.allows(t.role)]


REGISTRY = Registry()


def tool(
    *,
    name: str,
    description: str,
    input_model: type[BaseModel] = NoArgs,
    role: Role = Role.viewer,
    side_effect: SideEffect = SideEffect.none,
    needs_approval: bool = False,
    command: str | None = None,
    aliases: tuple[str, ...] = (),
    group: str = "general",
    examples: tuple[str, ...] = (),
    agent: bool = True,
    secret_output: bool = False,
    effect: Callable[[Any], SideEffect] | None = None,
    registry: Registry | None = None,
) -> Callable[[ToolFunc], Tool]:
    """Register an async function `f(tc: ToolContext, args: InputModel) -> Reply` as a tool.

    The decorated name becomes the `Tool`; attach a price/plan preview with `@t.previewer`.
    """

    def wrap(func: ToolFunc) -> Tool:
        t = Tool(
            name=name,
            func=func,
            input_model=input_model,
            description=description,
            role=role,
            side_effect=side_effect,
            needs_approval=needs_approval,
            command=command,
            aliases=aliases,
            group=group,
            examples=examples,
            agent=agent,
            secret_output=secret_output,
            effect=effect,
        )
        return (registry or REGISTRY).add(t)

    return wrap


def previewer(t: Tool) -> Callable[[PreviewFunc], PreviewFunc]:
    """Attach a preview (what will happen, what it costs) shown on the approval card."""

    def wrap(func: PreviewFunc) -> PreviewFunc:
        t.preview = func
        return func

    return wrap
