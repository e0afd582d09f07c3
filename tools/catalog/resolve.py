"""From what a person typed to a model and a GPU: alias or Hugging Face id → model metadata
(`resolve_model`), the GPU offers to choose from (`current_offers`: RunPod's live catalog or the
dated fallback table) and the cheapest fit (`plan_fit`). Used by the catalog tools and the
deploy planner."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from tools.catalog import ModelInfo
from tools.catalog.aliases import AliasCandidate, resolve_alias
from tools.catalog.fit import FitReport, fit
from tools.catalog.gpus import FALLBACK_LABEL, GpuOffer, fallback_offers, offers_from_catalog
from tools.contract import ToolContext
from tools.errors import CockpitError, NeedsChoice

log = logging.getLogger(__name__)

Quant = Literal["awq", "gptq", "fp8", "bf16", "fp16"]
Mode = Literal["serverless", "pod"]


async def resolve_model(tc: ToolContext, text: str, *, check_access: bool = False) -> ModelInfo:
    """Alias or Hugging Face id → model metadata. Ambiguous names raise with a pick-list.

    Sizing needs only public metadata, so gated models resolve without a token unless
    `check_access` (a real deploy, where the worker must download the weights)."""
    alias = resolve_alias(text)
    if not alias.resolved and alias.candidates:
        # A misspelt family or a size the catalog lacks says so (the alias message); only a
        # name that fits several models "could mean several". One priced choice per line.
        lead = (
            f"{text.strip()!r} could mean several models. Pick one:"
            if alias.reason == "ambiguous"
            else alias.message
        )
        picks = "\n".join(f"• {p}" for p in await _priced_picks(tc, alias.candidates))
        options = [(c.label, c.model_id) for c in alias.candidates]
        raise NeedsChoice(f"{lead}\n{picks}", field="model", options=options)
    # Not an alias and no candidates: the Hub tries it as a repo id or names nearest matches.
    model_id = alias.model_id or text.strip()
    hub = await tc.services.db.call(tc.services.hub_for, tc.org_id)
    info: ModelInfo = await hub.model_info(model_id, check_access=check_access)
    return info


async def _priced_picks(tc: ToolContext, candidates: list[AliasCandidate]) -> list[str]:
    """ "gpt-oss-20b (openai/gpt-oss-20b): AMPERE_24 (24 GB) at $0.00019/s" per choice, so a
    pick-list says what each choice costs; a choice that cannot be sized is listed bare."""
    hub = await tc.services.db.call(tc.services.hub_for, tc.org_id)
    offers, _ = await current_offers(tc)
    picks = []
    for c in candidates:
        text = f"{c.label} ({c.model_id})"
        try:
            info = await hub.model_info(c.model_id, check_access=False)
            report = fit(info, offers)
            text += f": {report.choice.label} at {report.choice.price_label(report.mode)}"
        except CockpitError as exc:
            log.debug("No price for pick %s: %s", c.model_id, exc)
        picks.append(text)
    return picks


async def current_offers(tc: ToolContext) -> tuple[list[GpuOffer], str | None]:
    """Live GPU catalog from RunPod (or the sandbox), else the dated fallback table with a note."""
    try:
        client = await tc.services.db.call(tc.services.runpod_for, tc.org_id)
        offers = await asyncio.to_thread(offers_from_catalog, await client.list_gpus())
        if offers:
            return offers, None
    except CockpitError as exc:
        log.warning("GPU catalog unavailable, using fallback prices: %s", exc)
    return fallback_offers(), FALLBACK_LABEL


async def plan_fit(
    tc: ToolContext,
    model: ModelInfo,
    *,
    context: int | None,
    quant: str | None,
    mode: str = "serverless",
    concurrency: int = 1,
) -> tuple[FitReport, str | None]:
    offers, note = await current_offers(tc)
    # Sizing every offer is ~1 ms of CPU: a burst of previews (all woken by one shared catalog
    # answer) would run back to back in one loop iteration, so it runs on a worker thread.
    report = await asyncio.to_thread(
        fit,
        model,
        offers,
        context=context,
        quant=quant,
        mode=mode,  # type: ignore[arg-type]
        concurrency=concurrency,
    )
    return report, note
