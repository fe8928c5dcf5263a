"""`nnformer reproduce search`: every method x dataset x seed of the search comparison, resumable, and its tables.

Each search's history is its own JSON-lines file, ``<out>/search-<space>/<dataset>/<method>-seed<k>.jsonl``, rewritten
after every round (a killed sweep resumes mid-search); the table (``search.md``, ``.csv``) and the plot
(``search.png``, best test accuracy vs queries, mean and 95% band) are rewritten from the files present.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..search import METHODS, SearchConfig, load_search_space, queries_to_optimum, search

CHECKPOINTS = (25, 50, 100, 150)
_SPACES: dict = {}


def history_path(out: Path, space: str, dataset: str, method: str, seed: int) -> Path:
    return out / f"search-{space}" / (dataset if space == "nb201" else "subset") / f"{method}-seed{seed}.jsonl"


def _run(task) -> str:
    """One search (in a worker process when --jobs > 1): the space is loaded once per process."""
    space, dataset, method, seed, queries, out, settings, data_dir, threads = task
    import torch

    if threads:
        torch.set_num_threads(threads)
    key = (space, dataset)
    if key not in _SPACES:
        _SPACES[key] = load_search_space(space, data_dir, dataset)
    path = history_path(Path(out), space, dataset, method, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    search(_SPACES[key], SearchConfig(method=method, queries=queries, seed=seed), history=path, settings=settings,
           progress=False)
    return str(path)


def done(path: Path, queries: int) -> bool:
    if not path.is_file():
        return False
    lines = path.read_text().splitlines()
    return len(lines) > queries and json.loads(lines[0]).get("config", {}).get("queries") == queries


def sweep(space: str, datasets, methods, seeds, queries: int, out: Path, settings: dict, data_dir=None,
          jobs: int = 1, threads: int | None = None, progress: bool = True) -> int:
    """Run every search not yet complete; returns how many ran."""
    tasks = [(space, d, m, s, queries, str(out), settings, data_dir, threads or (1 if jobs > 1 else None))
             for d in datasets for s in seeds for m in methods
             if not done(history_path(out, space, d, m, s), queries)]
    bar = None
    if progress and tasks:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc="searches", unit="search")
    if jobs > 1 and len(tasks) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            for _ in pool.imap_unordered(_run, tasks):
                bar.update(1) if bar else None
    else:
        for t in tasks:
            _run(t)
            bar.update(1) if bar else None
    if bar:
        bar.close()
    return len(tasks)


def load_runs(out: Path, space: str, dataset: str, methods, queries: int) -> dict[str, list[list[dict]]]:
    """The complete histories (``queries`` queries) of each method; a search still in progress is left out."""
    runs = {}
    for m in methods:
        files = sorted(history_path(out, space, dataset, m, 0).parent.glob(f"{m}-seed*.jsonl"),
                       key=lambda p: int(p.stem.rsplit("seed", 1)[1]))
        runs[m] = [rows for f in files if len(rows := [json.loads(ln) for ln in f.read_text().splitlines()[1:]])
                   >= queries]
    return runs


def _curve(rows: list[dict], queries: int) -> np.ndarray:
    c = np.array([r["best_test"] for r in rows], dtype=np.float64)
    return np.pad(c, (0, max(0, queries - len(c))), constant_values=np.nan)[:queries]


def write_report(out: Path, space: str, datasets, methods, queries: int, command: str, data_dir=None) -> list[Path]:
    """search.md / search.csv / search.png under ``<out>/search-<space>/`` from the stored histories."""
    from ..io import atomic_write_text

    root = out / f"search-{space}"
    checkpoints = [q for q in CHECKPOINTS if q <= queries]
    lines = [f"# Architecture search on {space}: best test accuracy of the returned cell vs queries", "",
             f"Written by `{command}` from the search histories stored beside it (one JSON-lines file per method "
             f"and seed). A query returns the cell's validation accuracy; the search returns the queried cell with "
             f"the best validation accuracy, and its test accuracy is reported. Mean ± 95% half-width (1.96 s / "
             f"sqrt(k)) over k seeds; 'optimum found': in how many seeds the cell of the best test accuracy was "
             f"evaluated within the budget, and the median query at which it was; 'minutes': median wall time of "
             f"one search.", ""]
    stamps: set = set()
    csv = ["dataset,method,seeds," + ",".join(f"best_test_at_{q}_mean,best_test_at_{q}_ci95" for q in checkpoints)
           + ",optimum_found,median_queries_to_optimum"]
    curves = {}
    for d in datasets:
        optimum = float(load_search_space(space, data_dir, d).test.max())
        runs = load_runs(out, space, d, methods, queries)
        title = d if space == "nb201" else "subset"
        lines += [f"## {title} (optimum test accuracy {optimum:.2f})", "",
                  "| method | seeds | " + " | ".join(f"{q} queries" for q in checkpoints) + " | optimum found | "
                  "minutes |", "|---|---|" + "---|" * len(checkpoints) + "---|---|"]
        for m in methods:
            rs = [rows for rows in runs[m] if rows]
            if not rs:
                continue
            c = np.stack([_curve(rows, queries) for rows in rs])
            curves[(d, m)] = c
            cells, csv_cells = [], []
            for q in checkpoints:
                col = c[:, q - 1]
                col = col[~np.isnan(col)]
                mean = col.mean() if len(col) else np.nan
                ci = 1.96 * col.std(ddof=1) / np.sqrt(len(col)) if len(col) > 1 else np.nan
                cells.append(f"{mean:.2f} ± {ci:.2f}" if len(col) > 1 else f"{mean:.2f}")
                csv_cells += [f"{mean:.4f}", f"{ci:.4f}"]
            qs = [queries_to_optimum(rows, optimum) for rows in rs]
            found = [q for q in qs if q is not None]
            med = float(np.median([q if q is not None else np.inf for q in qs]))
            med = f"{med:.0f}" if np.isfinite(med) else f">{queries}"  # found in fewer than half of the seeds
            minutes = np.median([rows[-1].get("elapsed_s", np.nan) for rows in rs]) / 60
            stamps |= {(r.get("code", "?"), r.get("machine", "?")) for rows in rs for r in rows[-1:]}
            lines.append(f"| `{m}` | {len(rs)} | " + " | ".join(cells) + f" | {len(found)}/{len(rs)} (median "
                         f"{med}) | {minutes:.2f} |")
            csv.append(f"{d},{m},{len(rs)}," + ",".join(csv_cells) + f",{len(found)},{med}")
        lines.append("")
        lines += _targets(curves, d, methods, checkpoints, runs, optimum, space)
    lines += [f"Runs: code {', '.join(sorted({c for c, _ in stamps}))}; "
              f"{'; '.join(sorted({m for _, m in stamps}))}.", ""]
    root.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write_text(root / "search.md", "\n".join(lines) + "\n"),
             atomic_write_text(root / "search.csv", "\n".join(csv) + "\n")]
    paths.append(_plot(curves, datasets, methods, queries, root / "search.png", space))
    return paths


def _targets(curves, d, methods, checkpoints, runs, optimum, space) -> list[str]:
    if "nnformer" not in methods or (d, "nnformer") not in curves:
        return []
    out = []
    nn = curves[(d, "nnformer")]
    for q in (50, 100):
        if q not in checkpoints:
            continue
        ours = np.nanmean(nn[:, q - 1])
        others = {m: np.nanmean(curves[(d, m)][:, q - 1]) for m in methods
                  if not m.startswith("nnformer") and (d, m) in curves}  # the baselines, not NN-Former's variants
        beaten = [m for m, v in others.items() if ours <= v]
        out.append(f"- At {q} queries NN-Former ({ours:.2f}) is ahead of every baseline: "
                   + ("**met**" if not beaten else f"**missed** (not ahead of {', '.join(beaten)})"))
    if space == "nb201" and d == "cifar10":
        rs = [rows for rows in runs["nnformer"] if rows]
        found = sum(queries_to_optimum(rows, optimum) is not None for rows in rs)
        out.append(f"- Optimum found within the budget in at least half of the seeds: {found}/{len(rs)}, "
                   + ("**met**" if 2 * found >= len(rs) else "**missed**"))
    return out + [""]


def _plot(curves, datasets, methods, queries, path: Path, space: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    x = np.arange(1, queries + 1)
    for ax, d in zip(axes[0], datasets):
        for m in methods:
            if (d, m) not in curves:
                continue
            c = curves[(d, m)]
            mean = np.nanmean(c, 0)
            half = 1.96 * np.nanstd(c, 0, ddof=1) / np.sqrt(len(c)) if len(c) > 1 else np.zeros_like(mean)
            ax.plot(x, mean, label=f"{m} ({len(c)})")
            ax.fill_between(x, mean - half, mean + half, alpha=0.2)
        ax.set_title(d if space == "nb201" else f"{space} subset")
        ax.set_xlabel("queries")
        ax.set_ylabel("test accuracy of the returned cell (%)")
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    from ..io import atomic_path

    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


__all__ = ["METHODS", "sweep", "write_report", "history_path"]
