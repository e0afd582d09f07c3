"""Catalog tools: `/models`, `/model`, `/fit`. `/deploy` resolves alias → model → GPU with the
same functions (`resolve_model`, `current_offers`, `plan_fit`)."""

from __future__ import annotations

import logging
from typing import Literal

from tools.catalog import ModelInfo, catalog_label
from tools.catalog.aliases import AliasCandidate, resolve_alias
from tools.catalog.fit import FitReport, fit
from tools.catalog.gpus import FALLBACK_LABEL, GpuOffer, fallback_offers, offers_from_catalog
from tools.catalog.sizing import estimate, format_context
from tools.contract import Reply, Table, ToolContext, ToolInput, arg, tool
from tools.errors import CockpitError, InvalidInput

log = logging.getLogger(__name__)

Quant = Literal["awq", "gptq", "fp8", "bf16", "fp16"]
Mode = Literal["serverless", "pod"]


def _fmt_params(n: int | None) -> str:
    if not n:
        return "?"
    # 999.9M rounds to "1000M": from 0.9995e9 up it reads as billions.
    return f"{n / 1e9:.1f}B" if n >= 0.9995e9 else f"{n / 1e6:.0f}M"


async def resolve_model(tc: ToolContext, text: str, *, check_access: bool = False) -> ModelInfo:
    """Alias or Hugging Face id → model metadata. Ambiguous names raise with a pick-list.

    Sizing needs only public metadata, so gated models resolve without a token unless
    `check_access` (a real deploy, where the worker must download the weights)."""
    alias = resolve_alias(text)
    if not alias.resolved and alias.candidates:
        picks = "; ".join(await _priced_picks(tc, alias.candidates))
        raise InvalidInput(f"{text.strip()!r} could mean several models. Pick one: {picks}.")
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
        offers = offers_from_catalog(await client.list_gpus())
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
    report = fit(
        model,
        offers,
        context=context,
        quant=quant,
        mode=mode,  # type: ignore[arg-type]
        concurrency=concurrency,
    )
    return report, note


class SearchInput(ToolInput):
    query: str | None = arg(None, description="Words in the model id, e.g. qwen", positional=True)
    limit: int = arg(10, description="How many results", ge=1, le=50)
    max_params: float | None = arg(None, description="Largest size in billions of parameters")
    gated: bool | None = arg(None, description="Only gated (true) or only open (false) models")


@tool(
    name="search_models",
    command="models",
    input_model=SearchInput,
    group="models",
    description="Search Hugging Face chat models (text and image-text-to-text), most downloaded "
    "first.",
    examples=("/models qwen", "/models llama --max-params 10"),
)
async def search_models(tc: ToolContext, args: SearchInput) -> Reply:
    hub = await tc.services.db.call(tc.services.hub_for, tc.org_id)
    alias = resolve_alias(args.query) if args.query else None
    query = args.query
    if alias and alias.resolved and alias.reason != "passthrough":
        query = alias.model_id.split("/", 1)[0] if alias.model_id else query
    results = await hub.search_models(
        query, limit=args.limit, gated=args.gated, max_params=args.max_params
    )
    if not results:
        return Reply(
            text=f"No chat models match {args.query!r}.",
            footer="Try a shorter word, e.g. /models qwen",
        )
    snap = next((r for r in results if r.source == "snapshot"), None)
    # The bundled catalog has no download counts (none were read from the Hub): no column.
    rows = [
        [r.id, _fmt_params(r.params), r.pipeline_tag or "?", "gated" if r.gated else "open"]
        if snap
        else [r.id, _fmt_params(r.params), f"{r.downloads:,}", "gated" if r.gated else "open"]
        for r in results
    ]
    columns = ["model", "params", "task" if snap else "downloads", "access"]
    footer = f"From the {catalog_label(snap.snapshot_date)}" if snap else "Live from Hugging Face"
    return Reply(
        title=f"Models for {args.query or 'all'}",
        table=Table(columns=columns, rows=rows),
        footer=f"{footer}. `/fit <model>` sizes one; `/deploy <model>` runs it.",
    )


class ModelInput(ToolInput):
    model: str = arg(description="Alias (qwen 7b) or Hugging Face id", positional=True)


@tool(
    name="model_info",
    command="model",
    input_model=ModelInput,
    group="models",
    description="Show a model's size, architecture, context length, licence and access.",
    examples=("/model qwen 7b", "/model meta-llama/Llama-3.1-8B-Instruct"),
)
async def model_info(tc: ToolContext, args: ModelInput) -> Reply:
    m = await resolve_model(tc, args.model)
    reply = Reply(title=m.id)
    reply.add_field("Parameters", _fmt_params(m.params_total))
    reply.add_field("Weights dtype", m.quantization or m.torch_dtype or "?")
    if m.geometry:
        g = m.geometry
        reply.add_field(
            "Layers / heads / KV heads",
            f"{g.num_hidden_layers} / {g.num_attention_heads} / {g.num_key_value_heads}",
        )
        if g.max_position_embeddings:
            reply.add_field("Max context", format_context(g.max_position_embeddings))
        if g.window_layers or g.linear_layers or g.is_mla or g.num_experts:
            reply.add_field("KV cache layout", estimate(m).layout)
    reply.add_field("Licence", m.license or "?")
    reply.add_field("Access", "gated: needs a Hugging Face token" if m.gated else "open")
    reply.footer = m.source_label
    return reply


class FitInput(ToolInput):
    model: str = arg(description="Alias (qwen 7b) or Hugging Face id", positional=True)
    context: int | None = arg(None, description="Context length in tokens", ge=256, le=1_048_576)
    quant: Quant | None = arg(None, description="Weights: awq, gptq, fp8, bf16")
    mode: Mode = arg("serverless", description="serverless or pod")
    concurrency: int = arg(1, description="Sequences served at once at full context", ge=1, le=256)


@tool(
    name="recommend_gpu",
    command="fit",
    input_model=FitInput,
    group="models",
    description="Work out the cheapest GPU that serves a model, and why.",
    examples=("/fit qwen", "/fit llama 70b --quant fp8 --context 16384"),
)
async def recommend_gpu(tc: ToolContext, args: FitInput) -> Reply:
    model = await resolve_model(tc, args.model)
    report, note = await plan_fit(
        tc,
        model,
        context=args.context,
        quant=args.quant,
        mode=args.mode,
        concurrency=args.concurrency,
    )
    rows = [
        [
            o.label,
            "yes" if o.fits else "no",
            f"{o.headroom_gib:.1f}",
            format_context(o.max_context),
            f"${o.price_per_hour:.3f}/h" if o.price_per_hour is not None else "?",
        ]
        for o in [report.choice, *report.alternatives]
    ]
    return Reply(
        title=f"{model.name}: {report.choice.label}",
        text=report.explanation,
        table=Table(columns=["option", "fits", "headroom GiB", "max context", "price"], rows=rows),
        footer="; ".join(x for x in (model.source_label, note) if x),
    )
