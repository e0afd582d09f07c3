"""Friendly model names → Hugging Face ids, or a short pick-list when the name is ambiguous.

Table-driven and pure. Text is tokenised so case, spaces and hyphens do not matter:
"Qwen3-8B", "qwen 3 8b" and "QWEN 8B" all become family "qwen", version "3", size "8b".
A family name alone picks that family's default, a current model that fits a 24 GB card
("qwen" → Qwen3-8B, "llama" → Llama-3.1-8B-Instruct), except where sizes differ too much to
guess ("deepseek", "gpt-oss", "gemma", "mistral" → a pick-list; callers price each choice).
A size that two generations share goes to the current one ("qwen 14b" → Qwen3-14B; "qwen 2.5
14b" for the older). Active-parameter suffixes ("30b-a3b") are ignored. A full Hugging Face id
("org/name") passes through unchanged.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

MAX_PICKS = 5

Reason = Literal["passthrough", "alias", "default", "ambiguous", "unknown"]


@dataclass(frozen=True)
class Alias:
    model_id: str
    family: str
    size: str  # "7b", "0.5b"
    version: str | None = None  # "2.5", "3.1", "0.3"
    tags: frozenset[str] = frozenset()  # variants that must be asked for: "awq"
    label: str = ""
    primary: bool = False  # listed first in pick-lists (DeepSeek-V3/R1 before the distills)


def _a(
    model_id: str, family: str, size: str, version: str | None, *tags: str, primary: bool = False
) -> Alias:
    return Alias(
        model_id, family, size, version, frozenset(tags), model_id.split("/", 1)[1], primary
    )


def _p(model_id: str, family: str, size: str, version: str | None, *tags: str) -> Alias:
    return _a(model_id, family, size, version, *tags, primary=True)


ALIASES: tuple[Alias, ...] = (
    _a("Qwen/Qwen3-0.6B", "qwen", "0.6b", "3"),
    _a("Qwen/Qwen3-1.7B", "qwen", "1.7b", "3"),
    _a("Qwen/Qwen3-4B", "qwen", "4b", "3"),
    _a("Qwen/Qwen3-8B", "qwen", "8b", "3"),
    _a("Qwen/Qwen3-14B", "qwen", "14b", "3"),
    _a("Qwen/Qwen3-32B", "qwen", "32b", "3"),
    _a("Qwen/Qwen3-30B-A3B", "qwen", "30b", "3"),
    _a("Qwen/Qwen3-235B-A22B", "qwen", "235b", "3"),
    _a("Qwen/Qwen3-Coder-30B-A3B-Instruct", "qwen", "30b", "3", "coder"),
    _a("Qwen/Qwen3-Next-80B-A3B-Instruct", "qwen", "80b", "3", "next"),
    _a("Qwen/Qwen2.5-0.5B-Instruct", "qwen", "0.5b", "2.5"),
    _a("Qwen/Qwen2.5-1.5B-Instruct", "qwen", "1.5b", "2.5"),
    _a("Qwen/Qwen2.5-3B-Instruct", "qwen", "3b", "2.5"),
    _a("Qwen/Qwen2.5-7B-Instruct", "qwen", "7b", "2.5"),
    _a("Qwen/Qwen2.5-14B-Instruct", "qwen", "14b", "2.5"),
    _a("Qwen/Qwen2.5-32B-Instruct", "qwen", "32b", "2.5"),
    _a("Qwen/Qwen2.5-72B-Instruct", "qwen", "72b", "2.5"),
    _a("Qwen/Qwen2.5-7B-Instruct-AWQ", "qwen", "7b", "2.5", "awq"),
    _a("meta-llama/Llama-3.2-1B-Instruct", "llama", "1b", "3.2"),
    _a("meta-llama/Llama-3.2-3B-Instruct", "llama", "3b", "3.2"),
    _a("meta-llama/Llama-3.1-8B-Instruct", "llama", "8b", "3.1"),
    _a("meta-llama/Llama-3.1-70B-Instruct", "llama", "70b", "3.1"),
    _a("meta-llama/Llama-3.3-70B-Instruct", "llama", "70b", "3.3"),
    _a("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama", "109b", "4", "scout"),
    _p("mistralai/Mistral-Small-3.2-24B-Instruct-2506", "mistral", "24b", "3.2", "small"),
    _a("mistralai/Mistral-7B-Instruct-v0.3", "mistral", "7b", "0.3"),
    _p("deepseek-ai/DeepSeek-V3", "deepseek", "671b", "3"),
    _p("deepseek-ai/DeepSeek-R1", "deepseek", "671b", None, "r1"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek", "1.5b", None, "r1"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek", "7b", None, "r1"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "deepseek", "14b", None, "r1"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "deepseek", "32b", None, "r1"),
    _a("google/gemma-3-1b-it", "gemma", "1b", "3"),
    _a("google/gemma-3-4b-it", "gemma", "4b", "3"),
    _a("google/gemma-3-12b-it", "gemma", "12b", "3"),
    _a("google/gemma-3-27b-it", "gemma", "27b", "3"),
    _a("google/gemma-2-9b-it", "gemma", "9b", "2"),
    _a("openai/gpt-oss-20b", "gpt-oss", "20b", None),
    _a("openai/gpt-oss-120b", "gpt-oss", "120b", None),
    _a("microsoft/phi-4", "phi", "14b", "4"),
    _a("microsoft/Phi-3.5-mini-instruct", "phi", "3.8b", "3.5"),
)

# What a bare family name means; a family missing here always gives a pick-list.
# Defaults are current models that fit one 24 GB card (Qwen3-8B bf16 on an L4: 15.3 GiB of
# weights, ~25k tokens of context). Mistral's current model (Small 3.2, 24B) needs a 48 GB pair
# or an 80 GB card, so "mistral" is a priced pick-list rather than a silent 7B.
FAMILY_DEFAULTS: dict[str, str] = {
    "qwen": "Qwen/Qwen3-8B",
    "llama": "meta-llama/Llama-3.1-8B-Instruct",
    "phi": "microsoft/phi-4",
}

# Other spellings of family names and variant tags.
FAMILY_SYNONYMS: dict[str, str] = {
    "qwen": "qwen",
    "qwen2": "qwen",
    "llama": "llama",
    "meta": "llama",
    "mistral": "mistral",
    "mistralai": "mistral",
    "deepseek": "deepseek",
    "gemma": "gemma",
    "google": "gemma",
    "phi": "phi",
    "microsoft": "phi",
    "gpt": "gpt-oss",
    "oss": "gpt-oss",
    "openai": "gpt-oss",
}
TAG_WORDS = frozenset({"awq", "r1", "coder", "next", "scout", "small"})
# Tags that narrow when given but need not be given ("llama 4" is Scout, "deepseek 7b" the R1
# distill); the others mark variants that must be asked for ("qwen 7b awq", "qwen coder").
DESCRIPTIVE_TAGS = frozenset({"r1", "scout", "small"})
# Families whose sizes and prices differ too much to pick one: the bare name gives a pick-list.
PICK_LIST_FAMILIES = frozenset({"deepseek", "gemma", "gpt-oss", "mistral"})
# Tags that name a family on their own: "qwen r1 7b" means the DeepSeek-R1 distill of Qwen.
TAG_FAMILIES: dict[str, str] = {"r1": "deepseek"}
# Words that describe every entry here and so narrow nothing.
NOISE_WORDS = frozenset({"instruct", "it", "chat", "distill", "mini", "v", "ai", "hf", "model"})

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# "a3b" / "a22b": active parameters of a MoE model; matched first so they are not sizes.
_ACTIVE = re.compile(r"^a\d+(?:\.\d+)?b$")
_TOKEN = re.compile(
    r"(?<![a-z])a\d+(?:\.\d+)?b(?![a-z])|r1(?![\d.])|\d+(?:\.\d+)?[bm](?![a-z])|[a-z]+|\d+(?:\.\d+)?"
)


class AliasCandidate(BaseModel):
    model_id: str
    label: str


class AliasResult(BaseModel):
    """`model_id` is set when the text names one model; otherwise `candidates` is a pick-list
    (3–5 entries where the table has them) and `message` says why."""

    query: str
    model_id: str | None
    reason: Reason
    candidates: list[AliasCandidate] = []
    message: str = ""

    @property
    def resolved(self) -> bool:
        return self.model_id is not None


def tokenize(text: str) -> list[str]:
    """ "Qwen2.5-7B-Instruct" → ["qwen", "2.5", "7b", "instruct"]."""
    return _TOKEN.findall(text.lower())


def _is_size(token: str) -> bool:
    return token[-1] in "bm" and token[:-1].replace(".", "", 1).isdigit()


def _is_number(token: str) -> bool:
    return token.replace(".", "", 1).isdigit()


def _size_value(size: str) -> float:
    value = float(size[:-1])
    return value / 1000 if size.endswith("m") else value


def _version_ok(entry: Alias, numbers: list[str]) -> bool:
    if not numbers:
        return True
    if entry.version is None:
        return False
    return all(n == entry.version or entry.version.startswith(n + ".") for n in numbers)


def _pick(entries: list[Alias], *, near: float | None = None) -> list[AliasCandidate]:
    ordered = sorted(entries, key=lambda e: (not e.primary, _size_value(e.size)))
    if near is not None:
        ordered = sorted(ordered, key=lambda e: abs(_size_value(e.size) - near))[:MAX_PICKS]
        ordered.sort(key=lambda e: _size_value(e.size))
    return [AliasCandidate(model_id=e.model_id, label=e.label) for e in ordered[:MAX_PICKS]]


def _version_key(entry: Alias) -> tuple[int, ...]:
    return tuple(int(p) for p in (entry.version or "0").split(".") if p.isdigit())


def _current_generation(entries: list[Alias]) -> list[Alias]:
    """The entries of the newest version among `entries` (all of them if versions are unset)."""
    versioned = [e for e in entries if e.version is not None]
    if not versioned:
        return entries
    newest = max(_version_key(e) for e in versioned)
    current = [e for e in versioned if _version_key(e) == newest]
    return current + [e for e in entries if e.version is None]


def resolve_alias(text: str) -> AliasResult:
    """Map what a person typed to one Hugging Face id, or to a short pick-list."""
    query = text.strip()
    if not query:
        return AliasResult(query=text, model_id=None, reason="unknown", message="Name a model.")
    if _HF_ID.match(query):
        known = {a.model_id.lower(): a.model_id for a in ALIASES}
        return AliasResult(
            query=text, model_id=known.get(query.lower(), query), reason="passthrough"
        )

    tokens = [t for t in tokenize(query) if not _ACTIVE.match(t)]
    family = next((TAG_FAMILIES[t] for t in tokens if t in TAG_FAMILIES), None) or next(
        (FAMILY_SYNONYMS[t] for t in tokens if t in FAMILY_SYNONYMS), None
    )
    if family is None:
        return _unknown(text, tokens)

    sizes = [_size_value(t) for t in tokens if _is_size(t)]
    numbers = [t for t in tokens if _is_number(t)]
    tags = {t for t in tokens if t in TAG_WORDS}
    family_entries = [a for a in ALIASES if a.family == family]
    # Tags every entry of the family has ("r1" for deepseek) narrow nothing; the others mark
    # variants that must be asked for by name ("qwen 7b awq").
    common = frozenset.intersection(*(a.tags for a in family_entries))

    def wanted_variant(a: Alias) -> bool:
        return tags <= a.tags | common and a.tags - common - DESCRIPTIVE_TAGS <= tags

    if family in PICK_LIST_FAMILIES and not (sizes or numbers or tags):
        plain = [a for a in family_entries if wanted_variant(a)]
        if not any(a.primary for a in plain):
            plain = _current_generation(plain)
        return AliasResult(
            query=text,
            model_id=None,
            reason="ambiguous",
            candidates=_pick(plain),
            message=f"'{query}' could mean several models; pick one.",
        )

    matches = [
        a
        for a in family_entries
        if _version_ok(a, numbers)
        and all(s == _size_value(a.size) for s in sizes)
        and wanted_variant(a)
    ]
    if len(matches) > 1 and sizes and not numbers:
        # One size in two generations ("qwen 14b"): the current generation.
        newest = _current_generation(matches)
        if len({a.size for a in matches}) == 1 and len(newest) == 1:
            matches = newest
    if len(matches) == 1:
        return AliasResult(query=text, model_id=matches[0].model_id, reason="alias")
    if len(matches) > 1:
        default = FAMILY_DEFAULTS.get(family)
        if not sizes and default and any(m.model_id == default for m in matches):
            return AliasResult(query=text, model_id=default, reason="default")
        if not numbers and not sizes and not any(a.primary for a in matches):
            matches = _current_generation(matches)
        return AliasResult(
            query=text,
            model_id=None,
            reason="ambiguous",
            candidates=_pick(matches),
            message=f"'{query}' could mean several models; pick one.",
        )
    # The family is known but not at this size/version: offer its nearest sizes.
    plain = _current_generation([a for a in family_entries if wanted_variant(a)] or family_entries)
    return AliasResult(
        query=text,
        model_id=None,
        reason="unknown",
        candidates=_pick(plain, near=sizes[0] if sizes else None),
        message=f"No {family} model in the catalog matches '{query}'; pick one of its nearest "
        "sizes or give a full Hugging Face id.",
    )


def _unknown(text: str, tokens: list[str]) -> AliasResult:
    words = [t for t in tokens if t.isalpha() and t not in NOISE_WORDS]
    picks: list[AliasCandidate] = []
    for word in words:
        for fam in difflib.get_close_matches(word, list(FAMILY_SYNONYMS), n=2, cutoff=0.7):
            default = FAMILY_DEFAULTS.get(FAMILY_SYNONYMS[fam])
            entries = [a for a in ALIASES if a.family == FAMILY_SYNONYMS[fam]]
            chosen = [a for a in entries if a.model_id == default] or entries[:1]
            for a in chosen:
                if all(p.model_id != a.model_id for p in picks):
                    picks.append(AliasCandidate(model_id=a.model_id, label=a.label))
    hint = " Did you mean one of these?" if picks else ""
    return AliasResult(
        query=text,
        model_id=None,
        reason="unknown",
        candidates=picks[:MAX_PICKS],
        message=f"'{text.strip()}' is not a model name I know.{hint} "
        "A full Hugging Face id (org/name) always works.",
    )


__all__ = [
    "ALIASES",
    "FAMILY_DEFAULTS",
    "PICK_LIST_FAMILIES",
    "Alias",
    "AliasCandidate",
    "AliasResult",
    "resolve_alias",
    "tokenize",
]
