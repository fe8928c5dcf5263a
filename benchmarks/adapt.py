"""Adapting the shipped CPU predictor to another runtime setting from a few measurements, against the alternatives.

    python benchmarks/adapt.py [--data datasets/latency-cpu-t2] [--ns 10,20,50,100] [--seeds 3] [--per-family 20]

The shipped predictor (registry default, trained on ONNX Runtime at 1 thread on one host) meets a dataset measured
with `nnformer profile --threads 2 --per-family 20 --seed 1` on this machine (other architectures, another thread
count, possibly another host). Per seed the dataset is shuffled; the last 100 models test, and the first N are the
user's measurements. Methods, all scored on the same 100 test models:

* `shipped`: the shipped predictor as it is;
* `rescaled`: its predictions times the median ratio measured / predicted over the N samples (one number;
  `nnformer adapt --steps 0`);
* `finetuned`: the shipped predictor fine-tuned 100 steps on the N samples, without that correction first;
* `adapted`: `nnformer adapt` (`nnformer.latency.adapt.adapt`: the correction, then 100 fine-tuning steps; with
  N >= 30 a fifth of the samples is held back from both to recalibrate the interval);
* `scratch`: NN-Former trained on the N samples alone (recipe `networks`).

Each (method, N, seed) is cached in benchmarks/results/latency-adapt/runs/; the table (adapt.md, .csv) and the
plot (adapt.png) are rewritten from the cache.
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

OUT = RESULTS / "latency-adapt"
METHODS = ("shipped", "rescaled", "finetuned", "adapted", "scratch")
N_TEST = 100
BASE = "cpu-ort-b1@1"  # the predictor its published table adapts (ten hand-written CNN families)


def run(method: str, n: int, seed: int, data: Path, per_family: int = 20) -> dict:
    from nnformer import Predictor, shipped
    from nnformer.latency.adapt import adapt
    from nnformer.latency.dataset import load_training_set
    from nnformer.machine import code_version, describe_line
    from nnformer.metrics import report

    rows, graphs, ms, _ = load_training_set(data)
    keep = [i for i, r in enumerate(rows) if r["index"] < per_family]  # the dataset's first models of each family
    graphs, ms = [graphs[i] for i in keep], ms[keep]
    order = np.random.default_rng(seed).permutation(len(graphs))
    test, train = order[-N_TEST:], order[:n]
    if n > len(graphs) - N_TEST:
        raise SystemExit(f"{data}: {len(graphs)} models, too few for N={n} and {N_TEST} test models")
    pick = lambda idx: [graphs[i] for i in idx]  # noqa: E731
    base = shipped.load(BASE)
    t0 = time.perf_counter()
    cover = None
    if method == "shipped":
        pred = base.predict(pick(test))
    elif method == "rescaled":
        pred = adapt(base, pick(train), ms[train], steps=0, seed=seed)[0].predict(pick(test))
    elif method == "finetuned":  # fine-tuning without the scale correction first
        pred = base.finetune(pick(train), ms[train], steps=100, seed=seed).predict(pick(test))
    elif method == "adapted":
        p, _ = adapt(base, pick(train), ms[train], seed=seed)
        pred, lo, hi = p.predict_interval(pick(test))
        cover = float(100 * np.mean((ms[test] >= lo) & (ms[test] <= hi)))
    else:
        p = Predictor("networks", settings={"seed": seed}, task="latency", progress=False).fit(pick(train), ms[train])
        pred = p.predict(pick(test))
    m = report(pred, ms[test])
    return {"method": method, "n": n, "seed": seed, "mape": m["mape"], "acc10": m["acc10"],
            "spearman": m["spearman_test"], "interval_coverage": cover, "seconds": time.perf_counter() - t0,
            "data": data.as_posix(), "code": code_version(), "machine": describe_line(machine())}


def write_table(rows: list[dict], data: Path) -> str:
    ns = sorted({r["n"] for r in rows})
    meta = json.loads((data / "meta.json").read_text())
    env, st = meta["environment"], meta["settings"]
    lines = ["# Adapting the shipped CPU predictor to a new runtime setting", "",
             f"Written by `{command()}` on {now()} from {len(rows)} runs cached in `runs/` (code "
             f"{', '.join(sorted({r['code'] for r in rows}))}; {'; '.join(sorted({r['machine'] for r in rows}))}).",
             f"Target data: `{data.as_posix()}` ({env['cpu']}, ONNX Runtime {env['onnxruntime']}, {st['threads']} "
             f"threads, batch {st['batch']}); {N_TEST} test models per seed, N measurements to adapt from.", "",
             "MAPE (%) on the test models, mean ± std over seeds:", "",
             "| method | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    csv = ["method,n,seeds,mape_mean,mape_std,acc10_mean,spearman_mean,interval_coverage_mean"]
    for m in METHODS:
        cells = []
        for n in ns:
            rs = [r for r in rows if r["method"] == m and r["n"] == n]
            if not rs:
                cells.append("")
                continue
            v = np.array([r["mape"] for r in rs])
            cells.append(f"{v.mean():.2f} ± {v.std():.2f}")
            cov = [r["interval_coverage"] for r in rs if r["interval_coverage"] is not None]
            csv.append(f"{m},{n},{len(rs)},{v.mean():.4f},{v.std():.4f},{np.mean([r['acc10'] for r in rs]):.2f},"
                       f"{np.mean([r['spearman'] for r in rs]):.4f},{np.mean(cov) if cov else ''}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    cov_rows = [(n, [r["interval_coverage"] for r in rows if r["method"] == "adapted" and r["n"] == n]) for n in ns]
    lines += ["", "Coverage (%) of the adapted predictor's 90% interval on the test models (N < 30: the base "
              "interval, kept; N >= 30: recalibrated on a fifth of the N):", "",
              "| N | " + " | ".join(str(n) for n, _ in cov_rows) + " |", "|---|" + "---|" * len(ns),
              "| coverage | " + " | ".join(f"{np.mean(c):.1f}" if c else "" for _, c in cov_rows) + " |"]
    atomic_write_text(OUT / "adapt.csv", "\n".join(csv) + "\n")
    _plot(rows, ns)
    return "\n".join(lines) + "\n"


def _plot(rows, ns):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in METHODS:
        pts = [(n, np.mean([r["mape"] for r in rows if r["method"] == m and r["n"] == n])) for n in ns
               if any(r["method"] == m and r["n"] == n for r in rows)]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=m)
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("measurements on the new setting (N)")
    ax.set_ylabel("test MAPE (%)")
    ax.set_title("Adapting the shipped CPU predictor")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "adapt.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="datasets/latency-cpu-t2")
    ap.add_argument("--per-family", type=int, default=20,
                    help="models of each family to use, the first by index (default 20: the 200 models the published "
                         "table was measured on; the dataset has grown since, and the cache is per method/N/seed)")
    ap.add_argument("--ns", default="10,20,50,100")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--from-cache", action="store_true")
    args = ap.parse_args()
    data = Path(args.data)
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    if not args.from_cache:
        for seed in range(args.seeds):
            for n in map(int, args.ns.split(",")):
                for m in args.methods.split(","):
                    f = OUT / "runs" / f"{m}-n{n}-seed{seed}.json"
                    if f.is_file():
                        continue
                    row = run(m, n, seed, data, args.per_family)
                    atomic_write_json(f, row, indent=1)
                    print(f"{m} N={n} seed {seed}: MAPE {row['mape']:.2f}% ({row['seconds']:.0f} s)", flush=True)
    rows = [json.loads(f.read_text()) for f in sorted((OUT / "runs").glob("*.json"))]
    text = write_table(rows, data)
    atomic_write_text(OUT / "adapt.md", text)
    print(text)


if __name__ == "__main__":
    main()
