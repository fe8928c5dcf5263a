"""One recipe run on NAS-Bench-201 (TNASP split): tau over all cells vs training time, with the curve.

    python benchmarks/recipe.py --n 156 --layers 4 --dim 96 --lr 2e-3 --epochs 1000 --w-cons 0 --threads 1

Prints one JSON line per validation (epoch, seconds, val_tau) and a final RESULT line with tau against the test and
validation labels over all 15,625 cells; appends the result to benchmarks/results/recipe_runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, machine, now  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=156)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--w-cons", type=float, default=0.0)
    ap.add_argument("--mask-mode", default="paper")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nnformer.batching import EncodedGraphs
    from nnformer.data.nb201 import load_nb201
    from nnformer.metrics import kendall_tau
    from nnformer.model import NNFormerConfig
    from nnformer.protocols import tnasp_split
    from nnformer.train import TrainConfig, fit, predict_encoded

    tb = load_nb201(args.data_dir)
    sp = tnasp_split(len(tb), args.n)
    yv, yt = tb.label("val") / 100, tb.label("test") / 100
    mc = NNFormerConfig(n_layers=args.layers, dim=args.dim, mask_mode=args.mask_mode)
    tc = TrainConfig(epochs=args.epochs, lr=args.lr, w_cons=args.w_cons, eval_every=args.eval_every, seed=args.seed)
    g = tb.graphs
    t = time.perf_counter()
    res = fit(mc, tc, EncodedGraphs([g[i] for i in sp.train]), yv[sp.train], EncodedGraphs([g[i] for i in sp.val]),
              yv[sp.val], progress=False, on_eval=lambda r: print(json.dumps(r), flush=True))
    train_s = time.perf_counter() - t
    p = predict_encoded(res.model, EncodedGraphs(g))
    out = {"command": command(), "date": now(), "machine": machine(), "n": args.n, "tau_test": kendall_tau(p, yt),
           "tau_val": kendall_tau(p, yv), "train_s": train_s, "best_epoch": res.best_epoch,
           "curve": [{k: r[k] for k in ("epoch", "seconds", "val_tau")} for r in res.history]}
    print("RESULT", json.dumps({k: v for k, v in out.items() if k != "curve"}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "recipe_runs.jsonl", "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
