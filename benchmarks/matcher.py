"""Limited-mode matcher benchmark (issue 14, finding 3): matching is linear in the input, 100k
characters take milliseconds, and an over-long message is refused at once.

1. `offline.match` with every intent's tool available, on adversarial 1k / 10k / 100k-character
   inputs: an intent's opening words, then long runs of spaces or mixed whitespace, or one word
   repeated ("deploy a" + 100,000 spaces + "b" is the audit's input, which took 4.7 s at 1,500
   spaces before the fix). This is what a message costs the event loop: collapsing whitespace,
   peeling off politeness, then (text short enough) the patterns.
2. The intent patterns alone on the normalised text, with no length cap (defence in depth: the
   cap in `offline.match` and in `Cockpit` is not what keeps them fast).
3. For contrast, the pre-fix deploy pattern on a few hundred spaces (it grows with the cube).
4. End to end through the real `Cockpit.handle` (`bot.testing.running_bot`: temporary SQLite,
   sandbox, fake clock, limited mode): a 100k-character message (refused as too long), two at
   the 4,000-character limit (one matched, one too wordy for limited mode), and "who am i".

Each figure is the median of `--runs` runs (perf_counter). Exits non-zero when a 100k input
takes longer than the budget in either table, or grows from 10k to 100k clearly worse than
linearly.

    .venv/bin/python benchmarks/matcher.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.agent import offline
from bot.app import MAX_MESSAGE_CHARS
from bot.testing import running_bot

SIZES = (1_000, 10_000, 100_000)
BUDGET_100K_MS = 50.0  # "100k in milliseconds"
# Linear growth makes 10k -> 100k about 10x; quadratic would be 100x. Leave room for noise.
MAX_GROWTH_10K_TO_100K = 20.0
DEFAULT_RUNS = 5
ALL_TOOLS = {intent.tool for intent in offline.INTENTS}
# (label, opening words, repeated unit): each input is opening + unit * n + "b", cut to size.
SHAPES = (
    ("deploy + spaces", "deploy a", " "),
    ("deploy + mixed whitespace", "deploy a", " \t\n"),
    ("deploy + repeated word", "deploy ", "a "),
    ("how much + spaces", "how much would a", " "),
    ("which gpu + spaces", "which gpu for a", " "),
    ("stop + repeated 'stop'", "stop ", "stop "),
    ("spend + repeated 'cost'", "spend ", "cost "),
    ("repeated 'please'", "", "please "),
    ("trailing '!'", "deploy a", "!"),
)
# bot/agent/offline.py before the fix (commit e1b605d), for the contrast figures only.
OLD_DEPLOY = re.compile(
    r"^\s*(?:please\s+)?deploy\s+(?P<model>\S.*?)(?:\s*,?\s+please)?\s*[?.!]*$", re.I
)
OLD_SPACES = (200, 400, 800)


def adversarial(opening: str, unit: str, size: int) -> str:
    body = unit * (size // len(unit) + 1)
    return (opening + body)[: size - 1] + "b"


def median_ms(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def patterns_only(text: str) -> None:
    normalised = offline.normalise(text)
    for intent in offline.INTENTS:
        m = intent.pattern.search(normalised)
        if m is not None:
            intent.build(m)


def table(title: str, fn: Callable[[str], object], runs: int) -> list[tuple[str, list[float]]]:
    print(f"\n{title} (median ms)")
    print(f"  {'input':<28}" + "".join(f"{size:>12,}" for size in SIZES) + "   10k→100k")
    rows = []
    for label, opening, unit in SHAPES:
        figures = [
            median_ms(lambda t=adversarial(opening, unit, size): fn(t), runs) for size in SIZES
        ]
        growth = figures[2] / figures[1] if figures[1] else 0.0
        print(f"  {label:<28}" + "".join(f"{ms:>12.3f}" for ms in figures) + f"{growth:>10.1f}×")
        rows.append((label, figures))
    return rows


async def end_to_end(runs: int) -> None:
    print("\nEnd to end: Cockpit.handle in limited mode (median ms)")
    with tempfile.TemporaryDirectory() as tmp:
        async with running_bot(Path(tmp), COCKPIT_RATE_LIMIT_PER_MINUTE=0) as bot:
            cases = (
                ("100,000 characters (too long)", "deploy " + "qwen " * 20_000),
                (
                    f"{MAX_MESSAGE_CHARS:,} characters, spaces (matched)",
                    "who am i" + " " * (MAX_MESSAGE_CHARS - 8),
                ),
                (
                    f"{MAX_MESSAGE_CHARS:,} characters, words (not understood)",
                    ("who am i " + "please " * MAX_MESSAGE_CHARS)[:MAX_MESSAGE_CHARS],
                ),
                ('"who am i"', "who am i"),
            )
            for label, text in cases:
                samples = []
                reply = None
                for _ in range(runs):
                    t0 = time.perf_counter()
                    reply = await bot.send(text, user="bench")
                    samples.append((time.perf_counter() - t0) * 1000)
                assert reply is not None
                first_line = reply.as_plain_text().splitlines()[0]
                print(f"  {label:<44}{statistics.median(samples):>8.3f}   {first_line[:60]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    args = parser.parse_args()

    rows = table(
        "offline.match, every tool available", lambda t: offline.match(t, ALL_TOOLS), args.runs
    )
    rows += table(
        "Intent patterns alone on normalised text, no length cap", patterns_only, args.runs
    )

    print("\nBefore the fix: the old deploy pattern on 'deploy a' + N spaces + 'b' (one run, ms)")
    for spaces in OLD_SPACES:
        text = "deploy a" + " " * spaces + "b"
        print(f"  {spaces:>5} spaces{median_ms(lambda t=text: OLD_DEPLOY.search(t), 1):>12.1f}")

    asyncio.run(end_to_end(args.runs))

    worst = max(figures[2] for _, figures in rows)
    growth = max(f[2] / f[1] for _, f in rows if f[1] > 0)
    ok = worst < BUDGET_100K_MS and growth < MAX_GROWTH_10K_TO_100K
    print(
        f"\n100k worst {worst:.2f} ms (budget {BUDGET_100K_MS:.0f} ms); worst 10k→100k growth "
        f"{growth:.1f}× (linear ≈ 10×). Verdict: {'within budget' if ok else 'OVER BUDGET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
