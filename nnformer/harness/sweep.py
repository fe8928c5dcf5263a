"""Running the grid of the accuracy and HELP latency tables: one (method, N, seed) run, on the sweep engine.

Each finished run is one line of ``<out>/<space>/<tag>/runs.jsonl``, appended as it finishes; a rerun skips every
(method, N, seed) already there, so a table can be completed over several invocations, and a kill loses at most the
runs in progress.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from ..baselines import FlopsLinear
from ..errors import NNFormerError
from ..graph import ArchGraph
from ..machine import code_version, describe_line
from .engine import RunStore, run_jobs
from .methods import method_table, predictor_for
from .benchmark_data import BenchmarkData, load_space


def recipe_tag(recipe: str, settings: dict | None = None) -> str:
    """A recipe's name with its overrides (``efficient-steps6000``): the folder of its runs and tables."""
    parts = [recipe]
    for k, v in sorted((settings or {}).items()):
        parts.append(f"{k.replace('_', '')}{v:g}" if isinstance(v, float) else f"{k.replace('_', '')}{v}")
    return "-".join(parts)


def run_dir(root: Path, space: str, recipe: str, settings: dict | None = None) -> Path:
    return Path(root) / space / recipe_tag(recipe, settings)


def run_one(space: BenchmarkData, method: str, n: int, seed: int, recipe: str, settings: dict | None = None,
            threads: int | None = None) -> dict:
    """Train (or rank) one method at one N and seed under the TNASP split; tau over all cells."""
    import torch

    from ..metrics import kendall_tau, report
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
        x = np.column_stack([np.log1p(space.proxies[f]) for f in over["features"]])
        pred = FlopsLinear().fit(x[split.train], y[split.train]).predict(x)
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
        rec.update(report(pred[rest], space.test_labels["test"][rest]))
    else:
        for name, lab in space.test_labels.items():
            rec[f"tau_{name}"] = kendall_tau(pred, lab)
    rec["seconds"] = time.perf_counter() - t0
    rec["torch_threads"] = torch.get_num_threads()
    rec["code"] = code  # which code produced the number (a stored run outlives code changes)
    rec["machine"] = describe_line()
    return rec


def _run_job(space: BenchmarkData, job: tuple, recipe: str, settings: dict, threads: int | None) -> dict:
    m, n, s = job
    return run_one(space, m, n, s, recipe, settings, threads)


def grid(methods, ns, seeds, task: str = "accuracy") -> list[tuple[str, int, int]]:
    """Every (method, N, seed) of a sweep; zero-cost methods have no seeds (one run each)."""
    table = method_table(task)
    return [(m, n, s) for m in methods for n in ns for s in (seeds if table[m][0] != "zero-cost" else [0])]


def run_store(directory: Path) -> RunStore:
    """The runs of one space and recipe, keyed by (method, N, seed)."""
    return RunStore(directory, ("method", "n_train", "seed"), "reproduction sweep")


def stored_runs(directory: Path) -> dict[tuple[str, int, int], dict]:
    """(method, N, seed) -> run record of ``directory/runs.jsonl`` (a later line for the same run wins)."""
    return run_store(directory).records()


def sweep(space: BenchmarkData, methods, ns, seeds, recipe: str, directory: Path, settings: dict | None = None,
          threads=None, progress=True, jobs: int = 1, train: bool = True) -> list[dict]:
    """Run every missing (method, N, seed), storing each in ``directory/runs.jsonl``; returns the grid's records.

    ``train=False`` runs nothing and returns only what is stored (to write tables of a sweep in progress).
    ``jobs > 1`` runs that many single-threaded worker processes (on a 2-core CPU two 1-thread runs finish sooner
    than two 2-thread runs one after the other).
    """
    store = run_store(directory)
    cells = grid(methods, ns, seeds, space.task)
    todo = [j for j in cells if j not in store.records()] if train else []
    if train and not todo:
        store.tidy()  # a run killed while writing the tables leaves their temporaries
    if todo:
        with store.writing() as write:
            run_jobs(todo, partial(_run_job, recipe=recipe, settings=settings or {}, threads=threads),
                     store=lambda job, rec: write(rec), jobs=jobs, context=space, load=load_space,
                     load_args=space.source, threads=threads, desc=f"reproduce {space.name}", unit="run",
                     label=lambda j: f"{j[0]} N={j[1]} seed={j[2]}", progress=progress)
    done = store.records()
    return [done[j] for j in cells if j in done]
