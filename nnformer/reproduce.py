"""Side-by-side accuracy-prediction tables: NN-Former, its ablations and baselines under one protocol.

Every (method, N, seed) result is cached as a small JSON file; a rerun skips what is done, so a table can be
completed over several sessions. The tables (Markdown, CSV, JSON) and the tau-vs-N plot are rebuilt from the cache
by every run, and name the command, machine and date.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NNFormerError
from .recipes import recipe_at, recipe_epochs

# method -> (network, config overrides, label in the tables). "zero-cost" methods rank by a proxy, train nothing.
METHODS: dict[str, tuple[str, dict, str]] = {
    "nnformer": ("nnformer", {"mask_mode": "paper", "ffn_mode": "bgiffn"}, "NN-Former (paper masks)"),
    "nnformer-released": ("nnformer", {"mask_mode": "released", "ffn_mode": "bgiffn"},
                          "NN-Former (released-code masks)"),
    "transformer": ("nnformer", {"mask_mode": "global", "ffn_mode": "ffn"}, "plain transformer (global + FFN)"),
    "asma-ffn": ("nnformer", {"mask_mode": "paper", "ffn_mode": "ffn"}, "ASMA + FFN"),
    "global-bgiffn": ("nnformer", {"mask_mode": "global", "ffn_mode": "bgiffn"}, "global attention + BGIFFN"),
    "adjacency-bgiffn": ("nnformer", {"mask_mode": "adjacency", "ffn_mode": "bgiffn"},
                         "adjacency-only masks + BGIFFN"),
    "forward-giffn": ("nnformer", {"mask_mode": "paper", "ffn_mode": "forward"}, "ASMA + forward-only GIFFN"),
    "backward-giffn": ("nnformer", {"mask_mode": "paper", "ffn_mode": "backward"}, "ASMA + backward-only GIFFN"),
    "gcn": ("gcn", {}, "GCN, bidirectional (Neural Predictor style)"),
    "mlp": ("mlp", {}, "MLP on one-hot ops + adjacency"),
    "params": ("zero-cost", {"proxy": "params"}, "parameter count (zero-cost)"),
    "flops": ("zero-cost", {"proxy": "flops"}, "FLOPs (zero-cost)"),
}
# --quick: the comparisons the paper's claims rest on (masks, vs a plain transformer, vs GNN / MLP / zero-cost), not
# the ablations; all 12 methods at one seed and two N took 22 min on 2 cores, over the 15-minute budget of --quick
QUICK_METHODS = ("nnformer", "nnformer-released", "transformer", "gcn", "mlp", "params", "flops")


# Kendall's tau that the NN-Former paper reports (NNFORMER.md section 8), by space and N; a sanity range only where
# the data here differs from the paper's (NB201 labels from NATS-Bench exports, NB101 only a subset).
PAPER_TAU: dict[str, dict[int, float]] = {"nb201-cifar10": {156: 0.804, 1563: 0.890}, "nb101": {100: 0.709, 4236: 0.877}}

# (method, rival, question) pairs that findings() answers from the runs, when both are in the grid
QUESTIONS = (("nnformer", "nnformer-released", "Do the paper's sibling masks beat the released code's masks?"),
             ("nnformer", "transformer", "Is NN-Former (paper masks) at or above the plain transformer?"),
             ("nnformer", "gcn", "Is NN-Former (paper masks) at or above the GCN baseline?"),
             ("nnformer", "global-bgiffn", "Do the ASMA masks beat global attention (both with BGIFFN)?"),
             ("nnformer", "asma-ffn", "Does BGIFFN beat a plain FFN (both with ASMA masks)?"))


@dataclass
class SpaceData:
    """What a sweep needs of a benchmark: graphs in index order, labels, protocol sizes."""

    name: str
    graphs: list
    train_label: np.ndarray
    test_labels: dict[str, np.ndarray]  # name -> label over all cells
    ns: tuple[int, ...]
    n_val: int
    proxies: dict[str, np.ndarray] | None = None
    max_nodes: int = 8
    source: tuple = ()  # arguments of load_space() that rebuild this space in a worker process


def load_space(space: str, data_dir=None, dataset: str = "cifar10") -> SpaceData:
    return nb201_space(data_dir, dataset) if space == "nb201" else nb101_space(data_dir)


def nb201_space(data_dir, dataset: str = "cifar10") -> SpaceData:
    from .data.nb201 import load_nb201

    t = load_nb201(data_dir)
    labels = {"cifar10": ("cifar10_valid_val200", "cifar10_test200"),
              "cifar100": ("cifar100_val200", "cifar100_test200"),
              "imagenet16": ("imagenet16_val200", "imagenet16_test200")}
    if dataset not in labels:
        raise NNFormerError(f"unknown NB201 dataset {dataset!r}; known: {', '.join(labels)}")
    tr, te = labels[dataset]
    return SpaceData(f"nb201-{dataset}", t.graphs, t.labels[tr] / 100,
                     {"test": t.labels[te] / 100, "val": t.labels[tr] / 100}, (78, 156, 469, 781, 1563), 1024,
                     proxies=_proxies("nb201", t.arch_strs.tolist()), max_nodes=8,
                     source=("nb201", data_dir, dataset))


def nb101_space(data_dir) -> SpaceData:
    from .data.nb101 import load_nb101

    t = load_nb101(data_dir)
    full = len(t) > 100_000
    specs = [t.spec(i) for i in range(len(t))]
    return SpaceData("nb101" if full else "nb101-subset", t.graphs, t.label("val"),
                     {"test": t.label("test"), "val": t.label("val")},
                     (100, 172, 424, 4236) if full else (100, 172, 424), 1024 if full else 200,
                     proxies=_proxies("nb101", specs), max_nodes=7, source=("nb101", data_dir))


def _proxies(space: str, items) -> dict[str, np.ndarray] | None:
    try:
        from .zero_cost import proxy_scores
    except ImportError:
        return None
    return {p: np.asarray(proxy_scores(space, p, items), dtype=np.float64) for p in ("params", "flops")}


def _atomic_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def code_version() -> str:
    """The package version, plus the git commit (``+dirty`` with uncommitted changes) when run from a checkout."""
    import subprocess

    from . import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                "nnformer"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return __version__
    if head.returncode != 0:
        return __version__
    return f"{__version__}+g{head.stdout.strip()}" + ("+dirty" if dirty.stdout.strip() else "")


def run_one(space: SpaceData, method: str, n: int, seed: int, recipe: str, threads: int | None = None,
            steps: int | None = None) -> dict:
    """Train (or rank) one method at one N and seed under the TNASP split; tau over all cells. ``steps`` replaces the
    recipe's step budget (every trained method gets the same budget)."""
    import torch

    from .baselines import GCNConfig, MLPConfig
    from .batching import EncodedGraphs
    from .metrics import kendall_tau
    from .model import NNFormerConfig
    from .protocols import tnasp_split
    from .train import TrainConfig, fit, predict_encoded

    if threads:
        torch.set_num_threads(threads)
    kind, over, _ = METHODS[method]
    split = tnasp_split(len(space.graphs), n, space.n_val)
    t0 = time.perf_counter()
    rec = {"method": method, "space": space.name, "n_train": n, "seed": seed, "recipe": recipe}
    if steps is not None:
        rec["steps"] = steps
    if kind == "zero-cost":
        if space.proxies is None:
            raise NNFormerError("zero-cost proxies are not available (nnformer.zero_cost missing)")
        pred = space.proxies[over["proxy"]]
        rec["epochs"] = 0
    else:
        r = recipe_at(recipe, n)
        if kind == "nnformer":
            mcfg = NNFormerConfig(**{**r["model"], **over})
        elif kind == "gcn":
            mcfg = GCNConfig()
        else:
            mcfg = MLPConfig(max_nodes=space.max_nodes)
        train = EncodedGraphs([space.graphs[i] for i in split.train])
        epochs = recipe_epochs(recipe, train, steps=steps)
        tcfg = TrainConfig(**{**r["train"], "epochs": epochs, "eval_every": max(1, epochs // 10), "seed": seed})
        y = space.train_label
        res = fit(mcfg, tcfg, train, y[split.train], EncodedGraphs([space.graphs[i] for i in split.val]),
                  y[split.val], progress=False)
        pred = predict_encoded(res.model, EncodedGraphs(space.graphs))
        rec.update(epochs=epochs, best_epoch=res.best_epoch, best_val_tau=res.best_val_tau,
                   model_config=dataclasses.asdict(mcfg), train_config=dataclasses.asdict(tcfg))
    for name, lab in space.test_labels.items():
        rec[f"tau_{name}"] = kendall_tau(pred, lab)
    rec["seconds"] = time.perf_counter() - t0
    rec["torch_threads"] = torch.get_num_threads()
    rec["code"] = code_version()  # which code produced the number (a cache file outlives code changes)
    return rec


def recipe_tag(recipe: str, steps: int | None = None) -> str:
    """Name of a recipe with its budget: the cache folder, and the suffix of the tables' file names."""
    return recipe if steps is None else f"{recipe}-steps{steps}"


def cache_path(root: Path, space: str, recipe: str, method: str, n: int, seed: int) -> Path:
    """``recipe``: a ``recipe_tag``."""
    return root / "cache" / space / recipe / method / f"N{n}-seed{seed}.json"


_WORKER_SPACE: SpaceData | None = None


def _worker(source: tuple, job: tuple, recipe: str, threads: int | None, steps: int | None = None) -> None:
    global _WORKER_SPACE
    if _WORKER_SPACE is None:
        _WORKER_SPACE = load_space(*source)
    m, n, s, path = job
    _atomic_json(run_one(_WORKER_SPACE, m, n, s, recipe, threads, steps), path)


def sweep(space: SpaceData, methods, ns, seeds, recipe: str, root: Path, threads=None, progress=True,
          jobs: int = 1, train: bool = True, steps: int | None = None) -> list[dict]:
    """Run every missing (method, N, seed) and return all cached records of the grid.

    ``train=False`` runs nothing and returns only what is cached (to write tables of a sweep in progress).

    ``jobs > 1`` runs that many single-threaded worker processes (on a 2-core CPU two 1-thread runs finish sooner
    than two 2-thread runs one after the other); each writes its own cache file, so an interrupted sweep resumes.
    """
    grid = []
    for m in methods:
        for n in ns:
            for s in ([0] if METHODS[m][0] == "zero-cost" else seeds):
                grid.append((m, n, s, cache_path(root, space.name, recipe_tag(recipe, steps), m, n, s)))
    todo = [j for j in grid if not j[3].is_file()] if train else []
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"reproduce {space.name}", unit="run", dynamic_ncols=True)
    if jobs > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_worker, space.source, j, recipe, threads or 1, steps) for j in todo]
            for f in as_completed(futures):
                f.result()
                if bar is not None:
                    bar.update(1)
    else:
        for m, n, s, path in todo:
            if bar is not None:
                bar.set_postfix_str(f"{m} N={n} seed={s}")
            _atomic_json(run_one(space, m, n, s, recipe, threads, steps), path)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return [json.loads(p.read_text()) for *_, p in grid if p.is_file()]


def summarise(records: list[dict], methods, ns) -> dict:
    """method -> N -> {"test": (mean, std, k), "val": ..., "seconds": mean}."""
    out: dict = {}
    for m in methods:
        for n in ns:
            rs = [r for r in records if r["method"] == m and r["n_train"] == n]
            if not rs:
                continue
            cell = {"k": len(rs), "seconds": float(np.mean([r["seconds"] for r in rs])),
                    "threads": sorted({r.get("torch_threads") for r in rs if r.get("torch_threads")})}
            for lab in ("test", "val"):
                v = np.array([r[f"tau_{lab}"] for r in rs])
                cell[lab] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
            out.setdefault(m, {})[n] = cell
    return out


def findings(records: list[dict], ns, space: str) -> list[str]:
    """Markdown bullets answering QUESTIONS and the paper comparison from the cached runs (test label).

    Differences are paired by seed (same split, same seed, two methods); a verdict counts the mean over seeds.
    """
    by = {(r["method"], r["n_train"], r["seed"]): r["tau_test"] for r in records}
    out = []
    for a, b, question in QUESTIONS:
        parts, verdict = [], True
        for n in ns:
            seeds = sorted(s for (m, nn, s) in by if m == a and nn == n and (b, n, s) in by)
            if not seeds:
                continue
            d = np.array([by[a, n, s] - by[b, n, s] for s in seeds])
            verdict &= bool(d.mean() >= 0)
            wins = int((d > 0).sum())
            parts.append(f"N={n}: {d.mean():+.4f}" + (f" ± {d.std(ddof=1):.4f}, higher in {wins} of {len(d)} seeds"
                                                      if len(d) > 1 else " (1 seed)"))
        if parts:
            out.append(f"- {question} **{'Yes, at every N run' if verdict else 'No, not at every N run'}** "
                       f"(mean over seeds of `{a}` - `{b}`): " + "; ".join(parts) + ".")
    paper = PAPER_TAU.get(space, {})
    for n, ref in paper.items():
        if n not in ns:
            continue
        v = [by[k] for k in by if k[0] == "nnformer" and k[1] == n]
        if v:
            diff = float(np.mean(v)) - ref
            out.append(f"- NN-Former (paper masks) at N={n}: {np.mean(v):.4f} (k={len(v)}) vs the paper's {ref:.3f}: "
                       f"{diff:+.4f}, " + ("within 0.02." if abs(diff) <= 0.02 else
                                          f"more than 0.02 {'above' if diff > 0 else 'below'} it."))
        else:
            out.append(f"- NN-Former (paper masks) at N={n} (paper {ref:.3f}): not run yet.")
    return out


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def write_tables(summary: dict, ns, out_base: Path, title: str, command: str, notes: str = "",
                 answers: list[str] | None = None) -> list[Path]:
    """``out_base``.md / .csv / .json and ``out_base``_tau_vs_n.png from a summary (+ findings() bullets)."""
    out_base.parent.mkdir(parents=True, exist_ok=True)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Machine: {machine_line()}  ", f"Tables written: {date}", ""]
    if notes:
        lines += [notes, ""]
    one_label = all(c["test"] == c["val"] for row in summary.values() for c in row.values())
    tables = ((("test", "single accuracy label the data carries (its test and validation columns are the same)"),)
              if one_label else (("test", "test label"), ("val", "validation (training) label")))
    for lab, what in tables:
        lines += [f"## Kendall's tau over all cells, against the {what} (mean ± std over seeds; k = seeds)", "",
                  "| method | " + " | ".join(f"N={n}" for n in ns) + " | mean s/run |",
                  "|---|" + "---|" * (len(ns) + 1)]
        for m, row in summary.items():
            cells = []
            label = METHODS[m][2] if m in METHODS else m
            for n in ns:
                c = row.get(n)
                if c is None:
                    cells.append("")
                elif c["k"] == 1:
                    cells.append(f"{c[lab][0]:.4f} (k=1)")
                else:
                    cells.append(f"{c[lab][0]:.4f} ± {c[lab][1]:.4f} (k={c['k']})")
            secs = np.mean([c["seconds"] for c in row.values()])
            lines.append(f"| {label} (`{m}`) | " + " | ".join(cells) + f" | {secs:.0f} |")
        lines.append("")
    if answers:
        lines += ["## What the runs answer (computed from the cached runs, test label)", "", *answers, ""]
    md = out_base.with_suffix(".md")
    md.write_text("\n".join(lines))
    rows = ["method,n_train,k,tau_test_mean,tau_test_std,tau_val_mean,tau_val_std,seconds_mean"]
    for m, row in summary.items():
        for n, c in row.items():
            rows.append(f"\"{m}\",{n},{c['k']},{c['test'][0]:.6f},{c['test'][1]:.6f},{c['val'][0]:.6f},"
                        f"{c['val'][1]:.6f},{c['seconds']:.1f}")
    csv = out_base.with_suffix(".csv")
    csv.write_text("\n".join(rows) + "\n")
    js = out_base.with_suffix(".json")
    js.write_text(json.dumps({"command": command, "machine": machine_line(), "date": date, "answers": answers or [],
                              "summary": {m: {str(n): c for n, c in r.items()} for m, r in summary.items()}},
                             indent=1))
    png = out_base.parent / (out_base.name + "_tau_vs_n.png")
    _plot(summary, png, title)
    return [md, csv, js, png]


def _plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for m, row in summary.items():
        ns = sorted(row)
        mean = [row[n]["test"][0] for n in ns]
        std = [row[n]["test"][1] for n in ns]
        style = "--" if METHODS.get(m, ("",))[0] == "zero-cost" else "-"
        ax.errorbar(ns, mean, yerr=std, label=METHODS[m][2] if m in METHODS else m, ls=style, marker="o", ms=3, capsize=2,
                    lw=2.2 if m == "nnformer" else 1.0)
    ax.set_xscale("log")
    all_ns = sorted({n for row in summary.values() for n in row})
    ax.set_xticks(all_ns, [str(n) for n in all_ns])
    ax.minorticks_off()
    ax.set_xlabel("training cells N")
    ax.set_ylabel("Kendall's tau (test label, all cells)")
    ax.set_title(title, fontsize=9)
    if summary:  # an empty sweep still gets its (empty) plot, without a legend warning
        ax.legend(fontsize=6.5, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
