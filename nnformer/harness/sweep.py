"""Running the grid: one (method, N, seed) run, a pool of worker processes, and the resumable run store.

Each finished run is one line of ``<out>/<space>/<tag>/runs.jsonl``, appended as it finishes; a rerun skips every
(method, N, seed) already there, so a table can be completed over several invocations, and a kill loses at most the
runs in progress.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import NNFormerError
from ..graph import ArchGraph
from ..io import JsonlAppender, exclusive_lock, read_jsonl, remove_stale_temporaries
from ..machine import code_version, describe_line
from .methods import method_table, predictor_for
from .spaces import SpaceData, load_space


def recipe_tag(recipe: str, settings: dict | None = None) -> str:
    """A recipe's name with its overrides (``efficient-steps6000``): the folder of its runs and tables."""
    parts = [recipe]
    for k, v in sorted((settings or {}).items()):
        parts.append(f"{k.replace('_', '')}{v:g}" if isinstance(v, float) else f"{k.replace('_', '')}{v}")
    return "-".join(parts)


def run_dir(root: Path, space: str, recipe: str, settings: dict | None = None) -> Path:
    return Path(root) / space / recipe_tag(recipe, settings)


def run_one(space: SpaceData, method: str, n: int, seed: int, recipe: str, settings: dict | None = None,
            threads: int | None = None) -> dict:
    """Train (or rank) one method at one N and seed under the TNASP split; tau over all cells."""
    import torch

    from ..metrics import acc_within, kendall_tau, mape, spearman_rho
    from ..protocols import random_split, tnasp_split

    if threads:
        torch.set_num_threads(threads)
    code = code_version()  # before the run: the code this process imported
    settings = dict(settings or {})
    latency = space.task == "latency"
    kind, over, _ = method_table(space.task)[method]
    split = (random_split(len(space.graphs), n, 0, seed) if latency else tnasp_split(len(space.graphs), n, space.n_val))
    t0 = time.perf_counter()
    rec = {"method": method, "space": space.name, "n_train": n, "seed": seed, "recipe": recipe}
    if settings:
        rec["settings"] = settings
    y = space.train_label
    if kind in ("zero-cost", "linear") and space.proxies is None:
        raise NNFormerError("zero-cost proxies are not available (nnformer.zero_cost missing)")
    if kind == "lut" and space.lut is None:
        raise NNFormerError(f"{space.name} has no per-layer encoding for a lookup table")
    if kind == "zero-cost":
        pred = space.proxies[over["proxy"]]
        rec["epochs"] = 0
    elif kind == "linear":  # least squares of log y on the log static costs, fitted on the training cells
        x = np.column_stack([np.log1p(space.proxies[f]) for f in over["features"]] + [np.ones(len(y))])
        coef, *_ = np.linalg.lstsq(x[split.train], np.log(y[split.train]), rcond=None)
        pred = np.exp(x @ coef)
        rec["epochs"] = 0
    elif kind == "lut":  # latency = sum of a cost per (position, op): least squares on the labels themselves
        x = np.column_stack([space.lut, np.ones(len(y))])
        coef, *_ = np.linalg.lstsq(x[split.train], y[split.train], rcond=None)
        pred = np.maximum(x @ coef, 1e-6 * y[split.train].min())  # a latency is positive
        rec["epochs"] = 0
    else:
        graphs = space.graphs
        if "graph_features" in over:  # log static costs into each graph (the Predictor standardises them)
            logs = np.column_stack([np.log1p(space.proxies[f]) for f in over["graph_features"]])
            graphs = [ArchGraph(g.ops, g.adj, g.features, g.depth, v) for g, v in zip(graphs, logs)]
        p = predictor_for(method, recipe, settings, seed, space.max_nodes, space.task)
        p.fit([graphs[i] for i in split.train], y[split.train], [graphs[i] for i in split.val], y[split.val])
        pred = p.predict(graphs)
        rec.update(epochs=p.train_config_.epochs, best_epoch=p.result_.best_epoch,
                   best_val_tau=p.result_.best_val_tau, model_config=p.header_["model_config"],
                   train_config=p.header_["train_config"])
    if latency:  # every cell not trained on
        rest = np.setdiff1d(np.arange(len(y)), split.train)
        true, est = space.test_labels["test"][rest], pred[rest]
        rec.update(n_test=len(rest), mape=mape(est, true), acc10=acc_within(est, true, 0.10),
                   acc5=acc_within(est, true, 0.05), tau_test=kendall_tau(est, true),
                   spearman_test=spearman_rho(est, true))
    else:
        for name, lab in space.test_labels.items():
            rec[f"tau_{name}"] = kendall_tau(pred, lab)
    rec["seconds"] = time.perf_counter() - t0
    rec["torch_threads"] = torch.get_num_threads()
    rec["code"] = code  # which code produced the number (a stored run outlives code changes)
    rec["machine"] = describe_line()
    return rec


_WORKER_SPACE: SpaceData | None = None


def _worker(source: tuple, job: tuple, recipe: str, settings: dict, threads: int | None) -> dict:
    global _WORKER_SPACE
    if _WORKER_SPACE is None:
        _WORKER_SPACE = load_space(*source)
    m, n, s = job
    return run_one(_WORKER_SPACE, m, n, s, recipe, settings, threads)


def grid(methods, ns, seeds, task: str = "accuracy") -> list[tuple[str, int, int]]:
    """Every (method, N, seed) of a sweep; zero-cost methods have no seeds (one run each)."""
    table = method_table(task)
    return [(m, n, s) for m in methods for n in ns for s in (seeds if table[m][0] != "zero-cost" else [0])]


def stored_runs(directory: Path) -> dict[tuple[str, int, int], dict]:
    """(method, N, seed) -> run record of ``directory/runs.jsonl`` (a later line for the same run wins)."""
    return {(r["method"], r["n_train"], r["seed"]): r for r in read_jsonl(Path(directory) / "runs.jsonl")}


def sweep(space: SpaceData, methods, ns, seeds, recipe: str, directory: Path, settings: dict | None = None,
          threads=None, progress=True, jobs: int = 1, train: bool = True) -> list[dict]:
    """Run every missing (method, N, seed), storing each in ``directory/runs.jsonl``; returns the grid's records.

    ``train=False`` runs nothing and returns only what is stored (to write tables of a sweep in progress).
    ``jobs > 1`` runs that many single-threaded worker processes (on a 2-core CPU two 1-thread runs finish sooner
    than two 2-thread runs one after the other).
    """
    directory = Path(directory)
    cells = grid(methods, ns, seeds, space.task)
    todo = [j for j in cells if j not in stored_runs(directory)] if train else []
    if todo:
        with exclusive_lock(directory, "reproduction sweep"), JsonlAppender(directory / "runs.jsonl") as store:
            remove_stale_temporaries(directory, whole_directory=True)  # tables of a sweep killed while writing
            _run_all(space, todo, recipe, settings or {}, threads, progress, jobs, store.write)
    done = stored_runs(directory)
    return [done[j] for j in cells if j in done]


def _run_all(space, todo, recipe, settings, threads, progress, jobs, store) -> None:
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"reproduce {space.name}", unit="run", dynamic_ncols=True)
    try:
        if jobs > 1 and len(todo) > 1:
            from concurrent.futures import as_completed

            from .pool import worker_pool

            with worker_pool(jobs) as pool:
                futures = [pool.submit(_worker, space.source, j, recipe, settings, threads or 1) for j in todo]
                for f in as_completed(futures):
                    store(f.result())
                    if bar is not None:
                        bar.update(1)
        else:
            for m, n, s in todo:
                if bar is not None:
                    bar.set_postfix_str(f"{m} N={n} seed={s}")
                store(run_one(space, m, n, s, recipe, settings, threads))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
