"""Catalog tools: `/models`, `/model`, `/fit`. They and `/deploy` resolve alias → model → GPU
through `tools.catalog.resolve`."""

from __future__ import annotations

import logging

from tools.catalog import catalog_label
from tools.catalog.aliases import resolve_alias
from tools.catalog.resolve import Mode, Quant, plan_fit, resolve_model
from tools.catalog.sizing import estimate, format_context
from tools.contract import Reply, Table, ToolContext, ToolInput, arg, tool
from tools.cost.estimate import rate

log = logging.getLogger(__name__)


def _fmt_params(n: int | None) -> str:
    if not n:
        return "?"
    # 999.9M rounds to "1000M": from 0.9995e9 up it reads as billions.
    return f"{n / 1e9:.1f}B" if n >= 0.9995e9 else f"{n / 1e6:.0f}M"


def _estimated_context(tokens: int, limit: int | None) -> str:
    """A max context the sizing estimated, rounded down to whole k and marked as such
    ("≈28k", not "29474"); the model's own limit ("128k") prints as it is."""
    if tokens == limit or tokens < 1024:
        return format_context(tokens)
    return f"≈{tokens // 1024}k"


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
            _estimated_context(o.max_context, report.estimate.max_position_embeddings),
            f"{rate(o.price_per_hour)}/h" if o.price_per_hour is not None else "?",
        ]
        for o in [report.choice, *report.alternatives]
    ]
    return Reply(
        title=f"{model.name}: {report.choice.label}",
        text=report.explanation,
        table=Table(columns=["option", "fits", "headroom GiB", "max context", "price"], rows=rows),
        footer="; ".join(x for x in (model.source_label, note) if x),
    )
