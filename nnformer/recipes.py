"""Named training recipes: model size + schedule. ``released`` is the authors' recipe; ``fast`` is the CPU default.

``fast`` was chosen by measurement on a 2-core CPU (benchmarks/recipe.py and the README give the numbers).
"""

from __future__ import annotations

RECIPES: dict[str, dict[str, dict]] = {
    # docs/NNFORMER.md section 5-6: 12 blocks, dim 160, lr 1e-4, 3000 epochs, batch 128, EMA 0.99
    "released": {"model": {}, "train": {}},
    "fast": {
        # 4 blocks of dim 96 (0.6M parameters), 10x the released lr, no consistency copy (halves the rows per
        # step), 300 epochs: N=781 reached tau 0.864 (test label) in ~6 min on 1 thread, vs 0.859 for 3x64.
        "model": {"n_layers": 4, "dim": 96},
        "train": {"epochs": 300, "lr": 2e-3, "w_cons": 0.0, "eval_every": 25},
    },
}
DEFAULT_RECIPE = "fast"
