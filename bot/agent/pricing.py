"""What a Claude request costs: token usage × a dated price table (USD per million tokens).

Prices move (Sonnet 5.5's cache-read price halved mid-life), so the table carries its date and
the ledger row says which model and token counts it was computed from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

AGENT_PRICES_AS_OF = "2026-10-16"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens. `cache_write` is the 5-minute TTL write price."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal


def _p(inp: str, out: str, write: str, read: str) -> ModelPrice:
    return ModelPrice(Decimal(inp), Decimal(out), Decimal(write), Decimal(read))


# Sources: platform.claude.com models overview and pricing pages, PromptFuel v1.0.23
# (2026-10-16). Haiku 5.5's higher tier (prompts over 100K tokens) is not used: our prompts are
# far smaller. Fable cache prices are not published: derived with the usual 1.25× write and
# 0.1× read multipliers.
AGENT_PRICES_USD_PER_MTOK: dict[str, ModelPrice] = {
    "claude-opus-5-5": _p("4", "20", "5", "0.20"),
    "claude-sonnet-5-5": _p("2", "10", "2.50", "0.10"),
    "claude-haiku-5-5": _p("0.10", "0.50", "0.125", "0.01"),
    "claude-fable-5-2": _p("8", "40", "10", "0.80"),
    "claude-fable-5-1": _p("10", "50", "12.50", "1"),
    "claude-opus-5": _p("5", "25", "6.25", "0.50"),
    "claude-sonnet-5": _p("2", "10", "2.50", "0.20"),
    "claude-opus-4-8": _p("5", "25", "6.25", "0.50"),
    "claude-opus-4-7": _p("5", "25", "6.25", "0.50"),
    "claude-opus-4-6": _p("5", "25", "6.25", "0.50"),
    "claude-opus-4-5": _p("5", "25", "6.25", "0.50"),
    "claude-sonnet-4-6": _p("3", "15", "3.75", "0.30"),
    "claude-sonnet-4-5": _p("3", "15", "3.75", "0.30"),
    "claude-haiku-4-5": _p("1", "5", "1.25", "0.10"),
}
# An unknown model id is charged at the dearest price in the table, so a guess never
# under-reports spend.
FALLBACK_PRICE = max(AGENT_PRICES_USD_PER_MTOK.values(), key=lambda p: p.output)
PER_MILLION = Decimal(1_000_000)
_DATE_SUFFIX = re.compile(r"-\d{8}$")


@dataclass
class Usage:
    """Token counts summed over the calls of one agent request."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    calls: int = 0

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def add(self, usage: object) -> None:
        """Add the `usage` of one Messages API response (an SDK object or a dict)."""

        def get(name: str) -> int:
            value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
            return int(value or 0)

        self.input_tokens += get("input_tokens")
        self.output_tokens += get("output_tokens")
        self.cache_creation_input_tokens += get("cache_creation_input_tokens")
        self.cache_read_input_tokens += get("cache_read_input_tokens")
        self.calls += 1


def price_for(model: str) -> tuple[ModelPrice, bool]:
    """The price of a model id (dated snapshots like `-20250929` map to their family), and
    whether it was found in the table."""
    for key in (model, _DATE_SUFFIX.sub("", model)):
        if key in AGENT_PRICES_USD_PER_MTOK:
            return AGENT_PRICES_USD_PER_MTOK[key], True
    return FALLBACK_PRICE, False


def cost(model: str, usage: Usage) -> Decimal:
    """USD for the usage, at the table's prices."""
    price, _ = price_for(model)
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    )
    return total / PER_MILLION


def describe(model: str, usage: Usage) -> str:
    """The ledger row's description: model, token counts and the price table's date."""
    _, known = price_for(model)
    basis = f"prices as of {AGENT_PRICES_AS_OF}" if known else "unknown model: highest price used"
    return (
        f"Claude {model}: {usage.calls} call(s), in {usage.input_tokens} "
        f"(cache write {usage.cache_creation_input_tokens}, read {usage.cache_read_input_tokens}), "
        f"out {usage.output_tokens} tokens; {basis}"
    )


__all__ = [
    "AGENT_PRICES_AS_OF",
    "AGENT_PRICES_USD_PER_MTOK",
    "ModelPrice",
    "Usage",
    "cost",
    "describe",
    "price_for",
]
