"""Prediction intervals of latency predictors: does the nominal 90% interval hold 90% of held-out latencies?

    python benchmarks/intervals.py [--cases cpu-ort-b1,help-nb201:fpga,help-nb201:pixel2] [--seeds 3]

Per case and seed: train NN-Former on the case's training split, calibrate the split-conformal interval on the
calibration split (`Predictor.calibrate`), then measure on the test split the coverage and median width (high / low)
of the 90% interval by each method: `conformal` and `mc-dropout` (30 passes with dropout on, no calibration).

* `cpu-ort-b1`: the project's CPU dataset (datasets/latency-cpu-b1), per family 80% train / 10% calibrate / 10% test
  (the split `nnformer train --task latency --data DIR` uses), recipe `networks`.
* `help-nb201:DEVICE`: HELP's NB201 latencies, 1,000 random cells train, 100 others calibrate, a random 2,000 of the
  rest test, the default recipe (what `nnformer train --task latency --data help-nb201:DEVICE` trains).

Each (case, seed) is cached in benchmarks/results/latency-intervals/runs/ (a rerun skips it); the table
(interval.md, .csv) and plot are rewritten from the cache. Target (issue): coverage between 85% and 95%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command, machine, now  # noqa: E402
from nnformer.io import atomic_write_json, atomic_write_text  # noqa: E402

OUT = RESULTS / "latency-intervals"
DATASET = Path(__file__).resolve().parents[1] / "datasets" / "latency-cpu-b1"
LEVEL, SAMPLES = 0.9, 30


def _case_data(case: str, seed: int, data_dir):
    from nnformer.protocols import family_split, random_split

    if case == "cpu-ort-b1":
        from nnformer.latency.dataset import load_training_set

        rows, graphs, ms, fam = load_training_set(DATASET)
        s = family_split(fam, [r["index"] for r in rows], cal_share=0.1)
        return graphs, ms, s.train, s.cal, s.test, "networks"
    kind, _, device = case.partition(":")
    from nnformer.harness.benchmark_data import load_space

    space = load_space(kind, data_dir, device)
    rng = np.random.default_rng(seed)
    train = random_split(len(space.graphs), 1000, 0, seed=seed).train
    rest = rng.permutation(np.setdiff1d(np.arange(len(space.graphs)), train))
    return space.graphs, space.train_label, train, np.sort(rest[:100]), np.sort(rest[100:2100]), "scaled"


def run(case: str, seed: int, data_dir) -> dict:
    from nnformer import Predictor
    from nnformer.metrics import mape

    graphs, ms, train, cal, test, recipe = _case_data(case, seed, data_dir)
    pick = lambda idx: [graphs[i] for i in idx]  # noqa: E731
    t0 = time.perf_counter()
    p = Predictor(recipe, settings={"seed": seed}, task="latency", progress=False).fit(pick(train), ms[train])
    p.calibrate(pick(cal), ms[cal], level=LEVEL)
    row = {"case": case, "seed": seed, "recipe": recipe, "n_train": len(train), "n_cal": len(cal), "n_test": len(test),
           "train_seconds": time.perf_counter() - t0, "code": _code(), "machine": _machine()}
    enc = p.encode(pick(test))
    for method in ("conformal", "mc-dropout"):
        pred, lo, hi = p.predict_interval(enc, method=method, level=LEVEL, samples=SAMPLES, seed=seed)
        y = ms[test]
        row[method] = {"coverage": float(100 * np.mean((y >= lo) & (y <= hi))),
                       "median_width": float(np.median(hi / lo)), "mape": mape(pred, y)}
    return row


def _code() -> str:
    from nnformer.machine import code_version

    return code_version()


def _machine() -> str:
    from nnformer.machine import describe_line

    return describe_line(machine())


def table(rows: list[dict]) -> str:
    cases = list(dict.fromkeys(r["case"] for r in rows))
    lines = [f"# Prediction intervals: coverage of the nominal {100 * LEVEL:.0f}% interval on held-out latencies", "",
             f"Written by `{command()}` on {now()} from {len(rows)} runs cached in `runs/` (code "
             f"{', '.join(sorted({r['code'] for r in rows}))}; {'; '.join(sorted({r['machine'] for r in rows}))}).",
             "Target: coverage between 85% and 95%. Width: median of high / low (x1.30 = the interval spans 30%).", "",
             "| case | seeds | test / calibration | MAPE % | conformal coverage % | conformal width | "
             "MC-dropout coverage % | MC-dropout width | target (conformal) |", "|---|---|---|---|---|---|---|---|---|"]
    csv = ["case,seeds,n_test,n_cal,mape,conformal_coverage_mean,conformal_coverage_std,conformal_width,"
           "mcdropout_coverage_mean,mcdropout_coverage_std,mcdropout_width"]
    for c in cases:
        rs = [r for r in rows if r["case"] == c]
        cov = {m: np.array([r[m]["coverage"] for r in rs]) for m in ("conformal", "mc-dropout")}
        wid = {m: float(np.mean([r[m]["median_width"] for r in rs])) for m in ("conformal", "mc-dropout")}
        mp = float(np.mean([r["conformal"]["mape"] for r in rs]))
        ok = "met" if 85 <= cov["conformal"].mean() <= 95 else "missed"
        lines.append(f"| {c} | {len(rs)} | {rs[0]['n_test']} / {rs[0]['n_cal']} | {mp:.2f} | "
                     f"{cov['conformal'].mean():.1f} ± {cov['conformal'].std():.1f} | x{wid['conformal']:.2f} | "
                     f"{cov['mc-dropout'].mean():.1f} ± {cov['mc-dropout'].std():.1f} | x{wid['mc-dropout']:.3f} | "
                     f"{ok} |")
        csv.append(f"{c},{len(rs)},{rs[0]['n_test']},{rs[0]['n_cal']},{mp:.4f},{cov['conformal'].mean():.2f},"
                   f"{cov['conformal'].std():.2f},{wid['conformal']:.4f},{cov['mc-dropout'].mean():.2f},"
                   f"{cov['mc-dropout'].std():.2f},{wid['mc-dropout']:.4f}")
    atomic_write_text(OUT / "intervals.csv", "\n".join(csv) + "\n")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="cpu-ort-b1,help-nb201:fpga,help-nb201:pixel2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--from-cache", action="store_true", help="only rewrite the table from the cached runs")
    args = ap.parse_args()
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    if not args.from_cache:
        for case in args.cases.split(","):
            for seed in range(args.seeds):
                f = OUT / "runs" / f"{case.replace(':', '-')}-seed{seed}.json"
                if f.is_file():
                    continue
                row = run(case, seed, args.data_dir)
                atomic_write_json(f, row, indent=1)
                print(f"{case} seed {seed}: conformal {row['conformal']['coverage']:.1f}%, mc-dropout "
                      f"{row['mc-dropout']['coverage']:.1f}% ({row['train_seconds']:.0f} s)", flush=True)
    rows = [json.loads(f.read_text()) for f in sorted((OUT / "runs").glob("*.json"))]
    text = table(rows)
    atomic_write_text(OUT / "intervals.md", text)
    print(text)


if __name__ == "__main__":
    main()
