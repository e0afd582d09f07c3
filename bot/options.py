"""Typed command options, for a surface whose commands take typed values (Discord's slash
commands): what kind of option each field of a tool's input model is, the command line those
values stand for (the same line a person would type, so `Cockpit.handle` parses it like any
other), and the choices offered while a model name is typed."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic_core import PydanticUndefined

from bot.render import truncate
from tools.catalog.aliases import ALIASES
from tools.contract import Tool

# Option names that complete from the organisation's deployments, and from the model aliases.
DEPLOYMENT_OPTIONS = frozenset({"deployment"})
MODEL_OPTIONS = frozenset({"model"})


@dataclass(frozen=True)
class OptionKind:
    """How one input field is offered: its value type (str, int, float or bool), the values
    to choose from (a Literal or an enum), its bounds (a number's range, a text's length),
    and `words` for a list field (free words, typed as one text)."""

    type: type
    choices: tuple[str | int, ...] = ()
    low: Any = None
    high: Any = None
    words: bool = False


def command_name(tool: Tool) -> str:
    return (tool.command or tool.name).lower()


def completes(option: str) -> Literal["deployment", "model"] | None:
    """What an option of this name completes from while it is typed, if anything."""
    if option in DEPLOYMENT_OPTIONS:
        return "deployment"
    return "model" if option in MODEL_OPTIONS else None


def unwrap_optional(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Union or origin is UnionType:
        args = [a for a in get_args(annotation) if a is not NoneType]
        if len(args) == 1:
            return args[0]
    return annotation


def bounds(metadata: list[Any]) -> tuple[Any, Any]:
    low = high = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge | annotated_types.Gt):
            low = m.ge if isinstance(m, annotated_types.Ge) else m.gt
        elif isinstance(m, annotated_types.Le | annotated_types.Lt):
            high = m.le if isinstance(m, annotated_types.Le) else m.lt
        elif isinstance(m, annotated_types.MinLen):
            low = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            high = m.max_length
    return low, high


def option_kind(field: Any, *, max_choices: int) -> OptionKind:
    """str/int/float/bool map directly, a Literal (or an enum) becomes choices (at most
    `max_choices`), Decimal a float, dates and lists a str."""
    inner = unwrap_optional(field.annotation)
    low, high = bounds(list(field.metadata))
    origin = get_origin(inner)
    if origin is Literal:
        values = tuple(get_args(inner))[:max_choices]
        for kind in (str, int):
            if all(isinstance(v, kind) for v in values):
                return OptionKind(kind, choices=values)
        return OptionKind(str)
    if isinstance(inner, type) and issubclass(inner, Enum):
        return OptionKind(str, choices=tuple(str(m.value) for m in inner)[:max_choices])
    if origin is list:
        return OptionKind(str, words=True)
    if inner is bool:
        return OptionKind(bool)
    if inner in (int, float, Decimal, str):
        return OptionKind(float if inner is Decimal else inner, low=low, high=high)
    return OptionKind(str)


def describe(text: str | None, default: Any, limit: int) -> str:
    """An option's description within `limit`, naming its default when that fits."""
    text = (text or "").strip() or "…"
    if default not in (None, PydanticUndefined, False, "", [], ()):
        with_default = f"{text} (default {default})"
        if len(with_default) <= limit:
            return with_default
    return truncate(text, limit)


def command_line(tool: Tool, values: Mapping[str, Any]) -> str:
    """The slash-command line for the given option values: positionals in order (a skipped one
    before a given one takes its default), `--flag=value` for the rest, every value quoted."""
    fields = tool.input_model.model_fields
    parts = [f"/{command_name(tool)}"]
    positional = tool.positional_fields()
    given = [i for i, n in enumerate(positional) if _present(values.get(n))]
    last = given[-1] if given else -1
    for name in positional[: last + 1]:
        value = values.get(name)
        if not _present(value):
            default = fields[name].default
            if default in (None, PydanticUndefined):
                continue
            value = default
        # A list field (free words, e.g. the chat message) is one quoted token: the words
        # come back joined, and none of them can pass for an --option.
        text = _text(value)
        words = get_origin(unwrap_optional(fields[name].annotation)) is list
        parts.append(shlex.quote(" ".join(text.split()) if words else text))
    for name in fields:
        if name in positional:
            continue
        value = values.get(name)
        if value is None:
            continue
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parts.append(flag if value else f"{flag}=false")
        elif _present(value):
            parts.append(f"{flag}={shlex.quote(_text(value))}")
    return " ".join(parts)


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def model_choices(current: str) -> list[tuple[str, str]]:
    """(label, model id) of the model aliases matching what was typed (every word must
    appear), best first."""
    words = current.lower().split()
    found = []
    for alias in ALIASES:
        hay = f"{alias.model_id} {alias.family} {alias.size} {alias.version or ''}".lower()
        if all(w in hay for w in words):
            found.append((f"{alias.family} {alias.size} · {alias.model_id}", alias.model_id))
    return found
