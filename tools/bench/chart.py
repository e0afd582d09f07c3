"""Benchmark chart as a PNG (matplotlib, Agg backend): aggregate output tokens/s and time to
first token against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bench_png(*, levels: list[dict[str, Any]], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    xs = [lv["concurrency"] for lv in levels]
    tps = [lv.get("output_tokens_per_second") or 0.0 for lv in levels]
    p50 = [lv.get("ttft_p50") or 0.0 for lv in levels]
    p95 = [lv.get("ttft_p95") or 0.0 for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.0), dpi=100)
    try:
        left.plot(xs, tps, marker="o", color="#4C72B0")
        for x, y in zip(xs, tps, strict=True):
            left.annotate(
                f"{y:,.0f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
                fontsize=7,
            )
        left.set_xlabel("concurrent requests")
        left.set_ylabel("output tokens/s (all requests)")
        left.set_ylim(bottom=0)
        right.plot(xs, p50, marker="o", color="#55A868", label="p50")
        right.plot(xs, p95, marker="s", color="#C44E52", label="p95")
        right.set_xlabel("concurrent requests")
        right.set_ylabel("time to first token (s)")
        right.set_ylim(bottom=0)
        right.legend(fontsize=7)
        for ax in (left, right):
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.spines[["top", "right"]].set_visible(False)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
