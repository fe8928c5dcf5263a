"""Named training recipes: model size + schedule. ``released`` is the authors' recipe; ``fast`` is the CPU default.

``fast`` was chosen by measurement on a 2-core CPU (benchmarks/recipe.py and the README give the numbers).
"""

from __future__ import annotations

RECIPES: dict[str, dict[str, dict]] = {
    # docs/NNFORMER.md section 5-6: 12 blocks, dim 160, lr 1e-4, 3000 epochs, batch 128, EMA 0.99
    "released": {"model": {}, "train": {}},
    "fast": {
        "model": {"n_layers": 4, "dim": 96},
        "train": {"epochs": 300, "lr": 1e-3, "eval_every": 25},
    },
}
DEFAULT_RECIPE = "fast"
