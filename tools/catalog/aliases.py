"""Friendly model names → Hugging Face ids, or a short pick-list when the name is ambiguous.

Table-driven and pure. Text is tokenised so case, spaces and hyphens do not matter:
"Qwen2.5-7B", "qwen 2.5 7b" and "QWEN 7B" all become family "qwen", version "2.5", size "7b".
A family name alone picks that family's default ("qwen" → Qwen2.5-7B-Instruct) except where
sizes differ too much to guess ("deepseek" → pick-list: 1.5B to 32B is a 20× price range).
A full Hugging Face id ("org/name") passes through unchanged.
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


def _a(model_id: str, family: str, size: str, version: str | None, *tags: str) -> Alias:
    return Alias(model_id, family, size, version, frozenset(tags), model_id.split("/", 1)[1])


ALIASES: tuple[Alias, ...] = (
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
    _a("mistralai/Mistral-7B-Instruct-v0.3", "mistral", "7b", "0.3"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek", "1.5b", None, "r1"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek", "7b", None, "r1"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "deepseek", "14b", None, "r1"),
    _a("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "deepseek", "32b", None, "r1"),
    _a("google/gemma-2-9b-it", "gemma", "9b", "2"),
    _a("microsoft/Phi-3.5-mini-instruct", "phi", "3.8b", "3.5"),
)

# What a bare family name means; a family missing here always gives a pick-list.
FAMILY_DEFAULTS: dict[str, str] = {
    "qwen": "Qwen/Qwen2.5-7B-Instruct",
    "llama": "meta-llama/Llama-3.1-8B-Instruct",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.3",
    "gemma": "google/gemma-2-9b-it",
    "phi": "microsoft/Phi-3.5-mini-instruct",
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
}
TAG_WORDS = frozenset({"awq", "r1"})
# Tags that name a family on their own: "qwen r1 7b" means the DeepSeek-R1 distill of Qwen.
TAG_FAMILIES: dict[str, str] = {"r1": "deepseek"}
# Words that describe every entry here and so narrow nothing.
NOISE_WORDS = frozenset({"instruct", "it", "chat", "distill", "mini", "v", "ai", "hf", "model"})

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TOKEN = re.compile(r"r1(?![\d.])|\d+(?:\.\d+)?[bm](?![a-z])|[a-z]+|\d+(?:\.\d+)?")


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
    ordered = sorted(entries, key=lambda e: _size_value(e.size))
    if near is not None:
        ordered = sorted(ordered, key=lambda e: abs(_size_value(e.size) - near))[:MAX_PICKS]
        ordered.sort(key=lambda e: _size_value(e.size))
    return [AliasCandidate(model_id=e.model_id, label=e.label) for e in ordered[:MAX_PICKS]]


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

    tokens = tokenize(query)
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
        return tags <= a.tags | common and a.tags - common <= tags

    matches = [
        a
        for a in family_entries
        if _version_ok(a, numbers)
        and all(s == _size_value(a.size) for s in sizes)
        and wanted_variant(a)
    ]
    if len(matches) == 1:
        return AliasResult(query=text, model_id=matches[0].model_id, reason="alias")
    if len(matches) > 1:
        default = FAMILY_DEFAULTS.get(family)
        if not sizes and default and any(m.model_id == default for m in matches):
            return AliasResult(query=text, model_id=default, reason="default")
        return AliasResult(
            query=text,
            model_id=None,
            reason="ambiguous",
            candidates=_pick(matches),
            message=f"'{query}' could mean several models; pick one.",
        )
    # The family is known but not at this size/version: offer its nearest sizes.
    plain = [a for a in family_entries if wanted_variant(a)] or family_entries
    return AliasResult(
        query=text,
        model_id=None,
        reason="ambiguous",
        candidates=_pick(plain, near=sizes[0] if sizes else None),
        message=f"No {family} model in the catalog matches '{query}'; pick one or give a full "
        "Hugging Face id.",
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
    "Alias",
    "AliasCandidate",
    "AliasResult",
    "resolve_alias",
    "tokenize",
]
