"""Daily-spend bar chart as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path


def daily_spend_png(*, days: list[tuple[str, Decimal]], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [d[5:] for d, _ in days] or ["—"]
    values = [float(a) for _, a in days] or [0.0]
    fig, ax = plt.subplots(figsize=(max(4.0, len(labels) * 0.6), 3.0), dpi=100)
    try:
        bars = ax.bar(labels, values, color="#4C72B0")
        ax.bar_label(bars, labels=[f"${v:,.2f}" for v in values], fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("USD")
        ax.set_ylim(bottom=0)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
