"""`nnformer reproduce search`: every method x dataset x seed of the search comparison, resumable, and its tables.

Each search's history is its own JSON-lines file, ``<out>/search-<space>/<dataset>/<method>-seed<k>.jsonl``, rewritten
after every round (a killed sweep resumes mid-search). Searches under a latency budget (``budgets``: HELP device ->
ms, the shipped ``help-nb201-<device>`` predicting the latency) go to
``<out>/search-nb201-latency/<dataset>-<device>-<ms>ms/<method>-seed<k>.jsonl`` with their own table
(:func:`write_latency_report`). The table (``search.md``, ``.csv``) and the plot
(``search.png``, best test accuracy vs queries, mean and 95% band) are rewritten from the histories present.

Once complete, a directory's histories move into one compressed store beside them, :data:`PACK` (:func:`pack`, run
by ``nnformer reproduce search`` before it writes the tables): the published tables are read from it, and a search
still in progress stays a loose file until it is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..search import (
    METHODS,
    SearchConfig,
    config_header,
    constraint_report,
    latency_constrained_space,
    load_search_space,
    queries_to_optimum,
    search,
)
from .engine import run_jobs

CHECKPOINTS = (25, 50, 100, 150)
_SPACES: dict = {}


def history_path(out: Path, space: str, dataset: str, method: str, seed: int, budget=None) -> Path:
    """``budget``: ``(device, ms, bound)`` of a latency-constrained search, or None."""
    if budget is not None:
        tag = f"{dataset}-{budget[0]}-{budget[1]:g}ms" + ("-upper" if budget[2] == "upper" else "")
        return out / f"search-{space}-latency" / tag / f"{method}-seed{seed}.jsonl"
    return out / f"search-{space}" / (dataset if space == "nb201" else "subset") / f"{method}-seed{seed}.jsonl"


def _space(space: str, dataset: str, data_dir, budget=None):
    """The search space, loaded (and its latency predicted) once per process."""
    key = (space, dataset, data_dir, budget)
    if key not in _SPACES:
        base = _space(space, dataset, data_dir) if budget is not None else load_search_space(space, data_dir, dataset)
        _SPACES[key] = base if budget is None else latency_constrained_space(base, budget[0], budget[1],
                                                                             data_dir=data_dir, bound=budget[2])
    return _SPACES[key]


def _run_search(context, task) -> str:
    """One search (in a worker process when --jobs > 1); it stores its own history, round by round."""
    space, dataset, method, seed, queries, out, settings, data_dir, threads, budget = task
    import torch

    if threads:
        torch.set_num_threads(threads)
    path = history_path(Path(out), space, dataset, method, seed, budget)
    path.parent.mkdir(parents=True, exist_ok=True)
    search(_space(space, dataset, data_dir, budget), SearchConfig(method=method, queries=queries, seed=seed),
           history=path, settings=settings, progress=False)
    return str(path)


PACK = "histories.jsonl.gz"  # the complete histories of a directory, one record per search (the published store)


def _read_history(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def histories(directory: Path) -> dict[str, list[dict]]:
    """File name -> history (header, then one row per query) of every search stored in ``directory``: the pack
    :data:`PACK`, then the loose files beside it (a loose file is newer: a search in progress or rerun)."""
    from ..io import read_jsonl

    out = {r["file"]: r["lines"] for r in read_jsonl(Path(directory) / PACK)}
    for f in sorted(Path(directory).glob("*-seed*.jsonl")):
        out[f.name] = _read_history(f)
    return out


def pack(directory: Path, queries: int) -> int:
    """Move every complete history (more than ``queries`` lines) of ``directory`` into its pack (gzip, written
    whole and atomically, the same bytes for the same histories); returns how many loose files it took in. A
    history with fewer lines stays loose, so a search in progress resumes from it."""
    import gzip

    from ..io import atomic_path

    directory = Path(directory)
    loose = [f for f in sorted(directory.glob("*-seed*.jsonl")) if len(f.read_text().splitlines()) > queries]
    if not loose:
        return 0
    every = histories(directory)
    keep = {f.name for f in directory.glob("*-seed*.jsonl")} - {f.name for f in loose}
    with atomic_path(directory / PACK) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        for name in sorted(every, key=_seed_order):
            if name not in keep:
                gz.write((json.dumps({"file": name, "lines": every[name]}, separators=(",", ":")) + "\n").encode())
    for f in loose:
        f.unlink()
    return len(loose)


def _seed_order(name: str) -> tuple[str, int]:
    method, seed = name.removesuffix(".jsonl").rsplit("-seed", 1)
    return method, int(seed)


def done(path: Path, queries: int, method: str, seed: int, settings: dict, stored: dict | None = None) -> bool:
    """A complete history of this search (loose or packed): ``queries`` queries of the same method, seed and
    settings under the current defaults of :class:`~nnformer.search.SearchConfig` (a history of other defaults is
    not counted: the sweep stops on it as another search). ``stored``: :func:`histories` of ``path``'s directory,
    when the caller has read them already."""
    if stored is None:
        stored = histories(path.parent) if path.parent.is_dir() else {}
    lines = stored.get(path.name, [])
    if len(lines) <= queries:
        return False
    want = config_header(SearchConfig(method=method, queries=queries, seed=seed))
    return lines[0].get("config") == want and lines[0].get("settings") == (settings or {})


def sweep(space: str, datasets, methods, seeds, queries: int, out: Path, settings: dict, data_dir=None,
          jobs: int = 1, threads: int | None = None, progress: bool = True, budgets=None, bound: str = "point") -> int:
    """Run every search not yet complete; returns how many ran. ``budgets``: ``[(device, ms), ...]``: each search
    under each latency budget instead of unconstrained (``bound``: see
    :func:`~nnformer.search.latency_constrained_space`)."""
    budgets = [(d, ms, bound) for d, ms in budgets] if budgets else None
    read: dict[Path, dict] = {}  # each directory's histories, read once (its pack holds every search of a table)

    def stored(path: Path) -> dict:
        if path.parent not in read:
            read[path.parent] = histories(path.parent)
        return read[path.parent]

    tasks = [(space, d, m, s, queries, str(out), settings, data_dir, threads or (1 if jobs > 1 else None), b)
             for d in datasets for s in seeds for b in (budgets or [None]) for m in methods
             if not done(p := history_path(out, space, d, m, s, b), queries, m, s, settings, stored(p))]
    return run_jobs(tasks, _run_search, jobs=jobs, desc="searches", unit="search",
                    label=lambda t: f"{t[1]} {t[2]} seed={t[3]}", progress=progress)


def load_runs(out: Path, space: str, dataset: str, methods, queries: int, budget=None) -> dict[str, list[list[dict]]]:
    """The complete histories (``queries`` queries) of each method, in seed order; a search still in progress is
    left out."""
    stored = histories(history_path(out, space, dataset, methods[0] if methods else "", 0, budget).parent)
    order = sorted(stored, key=_seed_order)
    return {m: [rows for name in order if _seed_order(name)[0] == m and len(rows := stored[name][1:]) >= queries]
            for m in methods}


def _curve(rows: list[dict], queries: int) -> np.ndarray:
    c = np.array([r["best_test"] for r in rows], dtype=np.float64)
    return np.pad(c, (0, max(0, queries - len(c))), constant_values=np.nan)[:queries]


def write_report(out: Path, space: str, datasets, methods, queries: int, command: str, data_dir=None) -> list[Path]:
    """search.md / search.csv / search.png under ``<out>/search-<space>/`` from the stored histories."""
    from ..io import atomic_write_text

    root = out / f"search-{space}"
    checkpoints = [q for q in CHECKPOINTS if q <= queries]
    lines = [f"# Architecture search on {space}: best test accuracy of the returned cell vs queries", "",
             f"Written by `{command}` from the search histories stored beside it (`<dataset>/{PACK}`, one "
             f"record per method and seed). A query returns the cell's validation accuracy; the search returns the "
             f"queried cell with the best validation accuracy, and its test accuracy is reported. Mean ± 95% "
             f"half-width (1.96 s / sqrt(k)) over k seeds; 'optimum found': in how many seeds the cell of the best test accuracy was "
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
        gaps = ""
        if others:
            diffs = ", ".join(f"{m} {_difference(nn[:, q - 1], curves[(d, m)][:, q - 1])}" for m in others)
            gaps = f"; NN-Former minus {diffs} (difference of the means ± its 95% half-width)"
        out.append(f"- At {q} queries NN-Former ({ours:.2f}) is ahead of every baseline: "
                   + ("**met**" if not beaten else f"**missed** (not ahead of {', '.join(beaten)})") + gaps)
    if space == "nb201" and d == "cifar10":
        rs = [rows for rows in runs["nnformer"] if rows]
        found = sum(queries_to_optimum(rows, optimum) is not None for rows in rs)
        out.append(f"- Optimum found within the budget in at least half of the seeds: {found}/{len(rs)}, "
                   + ("**met**" if 2 * found >= len(rs) else "**missed**"))
    return out + [""]


def _difference(a: np.ndarray, b: np.ndarray) -> str:
    """``mean(a) - mean(b) ± 1.96 * its standard error`` (Welch; the seeds of two methods taken as independent)."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return f"{a.mean() - b.mean():+.2f}"
    half = 1.96 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return f"{a.mean() - b.mean():+.2f} ± {half:.2f}"


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
        ax.set_title(d if space == "nb201" else f"{space} subset", fontsize=10)
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


def write_latency_report(out: Path, space: str, datasets, methods, queries: int, budgets, command: str,
                         data_dir=None, bound: str = "point") -> list[Path]:
    """search.md / search.csv / search.png under ``<out>/search-<space>-latency/`` from the stored histories of the
    searches under each latency budget: the returned cell's true test accuracy, whether its true latency meets the
    budget, and its gap to the best cell that truly does."""
    from ..io import atomic_write_text

    root = out / f"search-{space}-latency"
    budgets = [(d, ms, bound) for d, ms in budgets]
    checkpoints = [q for q in (50, 100, 150) if q <= queries]
    lines = [f"# Latency-constrained search on {space}", "",
             f"Written by `{command}` from the search histories stored beside it. Every method may query only the "
             f"cells whose latency on the device, as predicted by the shipped `help-{space}-<device>` predictor"
             + (" (the upper end of its calibrated 90% interval)" if bound == "upper" else "") + ", is "
             "within the budget; a query returns the cell's validation accuracy; the search returns the queried "
             "cell with the best one. Reported: that cell's test accuracy (mean ± 95% half-width over k seeds), "
             "its true latency (HELP's measurement; median over seeds), in how many seeds it truly meets the "
             "budget, and its gap in test accuracy to the best cell that truly meets the budget (mean).", ""]
    csv = ["dataset,device,budget_ms,method,seeds," + ",".join(f"test_at_{q}_mean,test_at_{q}_ci95"
                                                             for q in checkpoints)
           + ",budget_met,median_latency_ms,mean_gap_to_best_feasible"]
    curves, panels, stamps = {}, [], set()
    for d in datasets:
        for b in budgets:
            sp = _space(space, d, data_dir, b)
            c = sp.constraint
            truly = sp.latency <= c["budget_ms"]
            best = float(sp.test[truly].max())
            panels.append((d, b))
            lines += [f"## {d} on {b[0]}, at most {b[1]:g} ms", "",
                      f"{c['cells_allowed']:,} cells predicted within the budget, "
                      f"{100 * truly[sp.allowed].mean():.1f}% of them truly within it; {int(truly.sum()):,} cells "
                      f"truly within it, the best of them at test accuracy {best:.2f} (unconstrained optimum "
                      f"{sp.test.max():.2f}).", "",
                      "| method | seeds | " + " | ".join(f"{q} queries" for q in checkpoints)
                      + " | budget truly met | true latency (ms) | gap to the best feasible |",
                      "|---|---|" + "---|" * len(checkpoints) + "---|---|---|"]
            runs = load_runs(out, space, d, methods, queries, b)
            for m in methods:
                rs = runs[m]
                if not rs:
                    continue
                cur = np.stack([_curve(rows, queries) for rows in rs])
                curves[(d, b, m)] = cur
                cells, csv_cells = [], []
                for q in checkpoints:
                    col = cur[:, q - 1]
                    ci = 1.96 * col.std(ddof=1) / np.sqrt(len(col)) if len(col) > 1 else np.nan
                    cells.append(f"{col.mean():.2f} ± {ci:.2f}" if len(col) > 1 else f"{col.mean():.2f}")
                    csv_cells += [f"{col.mean():.4f}", f"{ci:.4f}"]
                reps = [constraint_report(sp, rows) for rows in rs]
                met = sum(r["holds"] for r in reps)
                lat = float(np.median([r["returned_latency_ms"] for r in reps]))
                gap = float(np.mean([r["gap_to_best_feasible"] for r in reps]))
                stamps |= {(r.get("code", "?"), r.get("machine", "?")) for rows in rs for r in rows[-1:]}
                lines.append(f"| `{m}` | {len(rs)} | " + " | ".join(cells)
                             + f" | {met}/{len(rs)} | {lat:.3g} | {gap:+.2f} |")
                csv.append(f"{d},{b[0]},{b[1]:g},{m},{len(rs)}," + ",".join(csv_cells) + f",{met},{lat:.4f},{gap:.4f}")
            lines.append("")
    lines += [f"Runs: code {', '.join(sorted({c for c, _ in stamps}))}; "
              f"{'; '.join(sorted({m for _, m in stamps}))}.", ""]
    root.mkdir(parents=True, exist_ok=True)
    name = "search" + ("-upper" if bound == "upper" else "")
    paths = [atomic_write_text(root / f"{name}.md", "\n".join(lines) + "\n"),
             atomic_write_text(root / f"{name}.csv", "\n".join(csv) + "\n")]
    flat = {(f"{d}, {b[0]} <= {b[1]:g} ms", m): c for (d, b, m), c in curves.items()}
    paths.append(_plot(flat, [f"{d}, {b[0]} <= {b[1]:g} ms" for d, b in panels], methods, queries,
                       root / f"{name}.png", space))
    return paths


__all__ = ["METHODS", "sweep", "write_report", "write_latency_report", "history_path"]
