"""Agent prompt size benchmark: system prompt + tool schemas under 4k tokens.

Measures what `ClaudeAgent.respond` sends on every model call, built by the same code: the
system prompt from `bot.agent.prompt.render_system_prompt` (prompts/system.md.j2; a stable part
that carries the prompt-cache breakpoint and a per-request part after `CACHE_BREAK`) and the tool
list from `ClaudeAgent.tool_definitions` (the registry's tools the caller's role may use, minus
those taking a secret, compacted, then the two skill tools). The bot runs as in the tests
(`bot.testing.running_bot`: temporary SQLite, sandbox, fake clock, the shipped skills); no
Claude call is made and nothing goes over the network.

Tokens are an estimate, `bot.agent.memory.estimate_tokens`: ceil(characters / 4) of the system
text (its blocks joined by a blank line) and of the tools list as compact JSON, exactly as
tests/agent/test_agent_loop.py::test_system_prompt_and_tools_fit_in_4k_tokens computes it. The
anthropic SDK has no offline tokenizer for current models (counting exactly needs the
count_tokens API).

Two organisations, each with the four roles:
- "new team": fresh organisation, no budget, no deployments (the test's case);
- "busy team": a budget with hard cap and auto-stop, and more active deployments than the
  prompt lists (10), so the per-request part is as long as it gets.

    .venv/bin/python benchmarks/prompt_size.py [--deployments N] [--top 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bot.agent import memory
from bot.agent.prompt import MAX_DEPLOYMENTS_IN_PROMPT, render_system_prompt
from bot.testing import BotHarness, running_bot
from storage import deployments, ledger
from tools.contract import Role
from tools.skills import skills_for

BUDGET_TOKENS = 4_000  # the product's budget; the test asserts size < 4_000
DEFAULT_DEPLOYMENTS = MAX_DEPLOYMENTS_IN_PROMPT + 2
DEFAULT_TOP = 5
ROLES = (Role.viewer, Role.member, Role.admin, Role.owner)
MODELS = (
    ("meta-llama/Llama-3.1-8B-Instruct", "ADA_24", "0.77"),
    ("Qwen/Qwen2.5-Coder-32B-Instruct", "AMPERE_80", "2.72"),
    ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", "ADA_48_PRO", "1.33"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "AMPERE_48", "1.22"),
)


@dataclass
class Size:
    scenario: str
    role: Role
    tool_count: int
    cached: int  # stable system prefix (cache breakpoint)
    volatile: int  # per-request system tail
    system: int  # the whole system text, as the test counts it
    tools: int
    per_tool: list[tuple[str, int, int]]  # (name, tokens, characters)

    @property
    def total(self) -> int:
        return self.system + self.tools

    @property
    def headroom(self) -> int:
        return BUDGET_TOKENS - self.total

    @property
    def ok(self) -> bool:
        return self.total < BUDGET_TOKENS


def measure(bot: BotHarness, scenario: str, workspace: str, role: Role) -> Size:
    """What one model call of `ClaudeAgent.respond` carries for this caller."""
    ctx = bot.ctx(user=role.value, role=role, workspace=workspace)  # as the test
    skills = skills_for(bot.services)
    prompt = render_system_prompt(ctx, bot.services, skills=skills.enabled())
    tools = bot.cockpit.agent.tool_definitions(ctx, skills)
    system_text = "\n\n".join(block["text"] for block in prompt.blocks())
    return Size(
        scenario=scenario,
        role=role,
        tool_count=len(tools),
        cached=memory.estimate_tokens(prompt.cached),
        volatile=memory.estimate_tokens(prompt.volatile),
        system=memory.estimate_tokens(system_text),
        tools=memory.estimate_tokens(tools),
        per_tool=[
            (t["name"], memory.estimate_tokens(t), len(memory.encode(t)))
            for t in tools  # the last one includes its cache_control marker, as sent
        ],
    )


def make_busy(bot: BotHarness, workspace: str, count: int) -> None:
    """A budget with every option on and `count` active deployments in the workspace's org."""
    ctx = bot.ctx(user="owner", role=Role.owner, workspace=workspace)
    now = bot.services.clock.now()
    with bot.services.db.session() as s:
        ledger.set_budget(
            s,
            org_id=ctx.org_id,
            period="monthly",
            amount=Decimal("2500"),
            thresholds="50,80,100",
            hard_cap=True,
            auto_stop=True,
            actor=ctx.user_id,
            now=now,
        )
        first_id: int | None = None
        for i in range(count):
            model, pool, price = MODELS[i % len(MODELS)]
            repeat = i // len(MODELS)  # deploy_model's default name is the model's, numbered here
            name = model.split("/")[-1] + (f"-{repeat + 1}" if repeat else "")
            dep = deployments.create(
                s,
                org_id=ctx.org_id,
                name=name,
                model_id=model,
                gpu_pool=pool,
                gpu_count=2 if i % 5 == 4 else 1,
                status="degraded" if i % 7 == 6 else "healthy",
                health_state="healthy",
                provider_endpoint_id=f"ep-bench{i:04d}",
                price_per_hour=Decimal(price),
                protected=i % 4 == 0,
                created_by=ctx.user_id,
                created_at=now - timedelta(days=i),
                updated_at=now,
            )
            if first_id is None and dep is not None:
                first_id = dep.id
        if first_id is not None:  # some spend, so the budget line shows a percentage
            ledger.accrue(
                s,
                org_id=ctx.org_id,
                deployment_id=first_id,
                start=now - timedelta(hours=3),
                end=now,
                per_hour=Decimal("0.77"),
                now=now,
            )


async def run(args: argparse.Namespace, data_dir: Path) -> tuple[list[Size], int]:
    async with running_bot(data_dir) as bot:
        make_busy(bot, "acme-ml-platform", args.deployments)
        sizes = [measure(bot, "new team", "local", role) for role in ROLES]
        sizes += [measure(bot, "busy team", "acme-ml-platform", role) for role in ROLES]
        skill_count = len(skills_for(bot.services).enabled())
    return sizes, skill_count


def min_roles(sizes: list[Size]) -> dict[str, str]:
    """The lowest role each tool is offered to."""
    seen: dict[str, str] = {}
    for size in sizes:
        for name, _, _ in size.per_tool:
            seen.setdefault(name, size.role.value)
    return seen


def print_table(sizes: list[Size]) -> None:
    header = (
        f"  {'role':<7} {'tools':>5}  {'system':>6} = {'cached':>6} + {'per-req':>7}  "
        f"{'schemas':>7}  {'total':>6}  {'budget':>6}  {'headroom':>8}"
    )
    print(header)
    for z in sizes:
        print(
            f"  {z.role.value:<7} {z.tool_count:>5}  {z.system:>6} = {z.cached:>6} + "
            f"{z.volatile:>7}  {z.tools:>7}  {z.total:>6}  {BUDGET_TOKENS:>6}  "
            f"{z.headroom:>8}  {'OK' if z.ok else 'OVER BUDGET'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--deployments",
        type=int,
        default=DEFAULT_DEPLOYMENTS,
        help="active deployments of the busy team",
    )
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help="largest schemas to list")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        sizes, skill_count = asyncio.run(run(args, Path(tmp)))

    print(
        "Agent system prompt + tool schemas per model call, in tokens. ESTIMATE: "
        f"ceil(chars / {memory.CHARS_PER_TOKEN}) of the system text and of the tools' compact "
        "JSON (bot.agent.memory.estimate_tokens, as tests/agent/test_agent_loop.py); not a "
        "tokenizer count."
    )
    print(
        f"system = cached prefix (rules + {skill_count} skills) + per-request part "
        "(date, caller, budget, deployments); each part is rounded up on its own, so the parts "
        "may differ from the whole by one."
    )
    for scenario in ("new team", "busy team"):
        rows = [z for z in sizes if z.scenario == scenario]
        if scenario == "new team":
            print(f"\n{scenario}: fresh organisation, no budget, no deployments (the test's case)")
        else:
            listed = min(args.deployments, MAX_DEPLOYMENTS_IN_PROMPT)
            print(
                f"\n{scenario}: budget with hard cap + auto-stop, {args.deployments} active "
                f"deployments ({listed} listed in the prompt)"
            )
        print_table(rows)

    largest = max(sizes, key=lambda z: z.tool_count)
    roles = min_roles(sizes)
    print(f"\nlargest tool schemas ({largest.role.value}'s {largest.tool_count} tools):")
    ranked = sorted(largest.per_tool, key=lambda t: t[1], reverse=True)[: args.top]
    for name, tokens, chars in ranked:
        share = tokens / largest.tools * 100
        print(
            f"  {name:<24} {tokens:>4} tokens ({chars:>5} chars, {share:4.1f}% of schemas), "
            f"offered from {roles.get(name, '?')}"
        )

    worst = max(sizes, key=lambda z: z.total)
    ok = all(z.ok for z in sizes)
    print(
        f"\nbudget: system prompt + tool schemas < {BUDGET_TOKENS:,} tokens for every role: "
        f"largest {worst.total:,} ({worst.scenario}, {worst.role.value}), headroom "
        f"{worst.headroom:,}: {'OK' if ok else 'OVER BUDGET'}"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
