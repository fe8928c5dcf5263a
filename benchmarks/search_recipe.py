"""How the NN-Former search loop should train and propose: a few settings of `nnformer search` on NB201 CIFAR-10,
side by side, with their time (the issue's target: a 150-query search under 5 minutes on this CPU).

    python benchmarks/search_recipe.py --seeds 3 --jobs 2 [--variants a,b] [--from-cache]

Each variant x seed is one search whose history is stored under benchmarks/results/search-recipe/<variant>/ (a
rerun skips complete ones and resumes the others); the table (search-recipe.md / .csv) is written from the
histories present. Times are wall seconds of one search at 1 torch thread with ``--jobs`` searches at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, command  # noqa: E402

OUT = RESULTS / "search-recipe"
QUERIES = 150
# name -> (SearchConfig fields, recipe settings, what it is)
VARIANTS = {
    "scratch-1500": ({"method": "nnformer", "train_steps": None}, {},
                     "trained afresh every round, the recipe's 1,500 steps; every cell of the space scored"),
    "warm-300": ({"method": "nnformer-warm", "train_steps": None}, {},
                 "first round 1,500 steps, then the previous predictor fine-tuned 300 steps a round"),
    "scratch-300": ({"method": "nnformer", "train_steps": None}, {"steps": 300},
                    "trained afresh every round, 300 steps (the default of `nnformer search`)"),
    "local-300": ({"method": "nnformer", "train_steps": 300, "acquisition": "mutation"}, {},
                  "300 steps afresh; candidates: the cells within two mutations of the 10 best queried"),
    "ens3-100": ({"method": "nnformer", "train_steps": 100, "ensemble": 3}, {},
                 "3 predictors a round, 100 steps each (the training of one 300-step predictor); cells ranked by "
                 "Thompson draws from their mean and spread"),
    "gcn-1500": ({"method": "gcn", "train_steps": None}, {}, "the GCN baseline's loop, 1,500 steps a round"),
}


def _path(variant: str, seed: int) -> Path:
    return OUT / variant / f"seed{seed}.jsonl"


def _one(task) -> str:
    variant, seed, data_dir = task
    import torch

    torch.set_num_threads(1)
    from nnformer.search import SearchConfig, load_search_space, search

    fields, settings, _ = VARIANTS[variant]
    space = load_search_space("nb201", data_dir, "cifar10")
    path = _path(variant, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    search(space, SearchConfig(queries=QUERIES, seed=seed, **fields), history=path, settings=settings, progress=False)
    return str(path)


def _one_job(context, task) -> str:
    """One search as a job of the sweep engine (its history is its own store)."""
    return _one(task)


def _rows(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()[1:]] if path.is_file() else []


def _round_s(rows: list[dict], k: int) -> float:
    """Wall seconds of round ``k`` (1 = the first predictor round, -1 = the last): the elapsed time at its last
    query minus that at the previous round's."""
    ends = {r["round"]: r["elapsed_s"] for r in rows}  # the last query of each round wins
    rounds = sorted(ends)
    return ends[rounds[k]] - ends[rounds[k - 1]]


def report(variants, seeds: int, data_dir) -> list[Path]:
    from nnformer.io import atomic_write_text
    from nnformer.search import load_search_space, queries_to_optimum

    optimum = float(load_search_space("nb201", data_dir, "cifar10").test.max())
    lines = ["# The NN-Former search loop: training steps, warm start, candidates", "",
             f"Written by `{command()}` from the histories under this directory. NB201 CIFAR-10, {QUERIES} queries, "
             "10 random cells then 10 a round; test accuracy of the returned cell (mean ± 95% half-width over the "
             "seeds), in how many seeds the optimum (test accuracy "
             f"{optimum:.2f}) was evaluated, and the wall time of one search (median; 1 torch thread, two searches "
             "at once on the 2 cores), with the seconds of its first and last predictor rounds.", "",
             "| variant | what | seeds | 50 | 100 | 150 | optimum found | minutes | first / last round (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    csv = ["variant,seeds,at_50_mean,at_50_ci95,at_100_mean,at_100_ci95,at_150_mean,at_150_ci95,optimum_found,"
           "median_minutes"]
    stamps = set()
    for v in variants:
        runs = [r for s in range(seeds) if len(r := _rows(_path(v, s))) >= QUERIES]
        if not runs:
            continue
        cells, csv_cells = [], []
        for q in (50, 100, 150):
            col = np.array([r[q - 1]["best_test"] for r in runs])
            ci = 1.96 * col.std(ddof=1) / np.sqrt(len(col)) if len(col) > 1 else float("nan")
            cells.append(f"{col.mean():.2f} ± {ci:.2f}")
            csv_cells += [f"{col.mean():.4f}", f"{ci:.4f}"]
        found = sum(queries_to_optimum(r, optimum) is not None for r in runs)
        minutes = float(np.median([r[-1]["elapsed_s"] for r in runs])) / 60
        first = float(np.median([_round_s(r, 1) for r in runs]))
        last = float(np.median([_round_s(r, -1) for r in runs]))
        stamps |= {(r[-1].get("code", "?"), r[-1].get("machine", "?")) for r in runs}
        lines.append(f"| `{v}` | {VARIANTS[v][2]} | {len(runs)} | " + " | ".join(cells)
                     + f" | {found}/{len(runs)} | {minutes:.2f} | {first:.0f} / {last:.0f} |")
        csv.append(f"{v},{len(runs)}," + ",".join(csv_cells) + f",{found},{minutes:.3f}")
    codes, machines = sorted({c for c, _ in stamps}), sorted({m for _, m in stamps})
    lines += ["", f"Runs: code {', '.join(codes)}; {'; '.join(machines)}.", ""]
    return [atomic_write_text(OUT / "search-recipe.md", "\n".join(lines) + "\n"),
            atomic_write_text(OUT / "search-recipe.csv", "\n".join(csv) + "\n")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--from-cache", action="store_true", help="search nothing: write the table")
    ap.add_argument("--data-dir", default="../shared/data")
    args = ap.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r}; variants: {', '.join(VARIANTS)}")
    todo = [(v, s, args.data_dir) for s in range(args.seeds) for v in variants
            if len(_rows(_path(v, s))) < QUERIES]
    if todo and not args.from_cache:
        from nnformer.harness.engine import run_jobs

        run_jobs(todo, _one_job, jobs=args.jobs, desc="recipe searches", unit="search")
    for p in report(list(VARIANTS), args.seeds, args.data_dir):  # every variant stored, not only those just run
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
