"""Figures written next to results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path


def scatter_pred_true(pred, true, path, title: str, highlight=None, xlabel="true", ylabel="predicted") -> Path:
    """Predicted-vs-true scatter; ``highlight`` (indices, e.g. the training cells) drawn on top in another colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred, true = np.asarray(pred), np.asarray(true)
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)
    ax.scatter(true, pred, s=2, alpha=0.25, color="tab:blue", label=f"all cells ({len(true):,})", rasterized=True)
    if highlight is not None and len(highlight):
        ax.scatter(true[highlight], pred[highlight], s=5, color="tab:orange", label=f"training cells ({len(highlight)})")
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8, markerscale=3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
