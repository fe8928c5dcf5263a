"""NNLQ's protocols on a multi-family latency dataset of whole networks (`nnformer profile --out DIR`).

* ``in-domain``: per family, the first 90% of its models (by sample index) train one predictor for all families,
  the last 10% test; errors per family and over all test models.
* ``ood`` (out of domain): for each family, a predictor trained on every model of the other families predicts every
  model of the held-out one.

Methods are those of :data:`METHODS`: NN-Former and its ablations read the node features (op attributes and shapes)
and the graph's static features (FLOPs, parameters, memory access, batch, operators, input size); the GCN reads the
same; ``flops-linear`` fits log latency to the log static costs. Each (method, protocol, held-out family, seed) is
one record of ``runs.jsonl``, appended as it finishes; a rerun skips what is stored.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import NNFormerError
from ..machine import code_version, describe_line
from .engine import RunStore, run_jobs
from .methods import METHODS as ACCURACY_METHODS

# the networks and settings of :data:`.methods.METHODS`, with this protocol's labels (every network also reads the
# graph's static features here)
METHODS: dict[str, tuple[str, dict, str]] = {
    "nnformer": (*ACCURACY_METHODS["nnformer"][:2], "NN-Former (ASMA + BGIFFN), node + static"),
    "transformer": (*ACCURACY_METHODS["transformer"][:2], "plain transformer, node + static"),
    "global-bgiffn": (*ACCURACY_METHODS["global-bgiffn"][:2], "global attention + BGIFFN"),
    "asma-ffn": (*ACCURACY_METHODS["asma-ffn"][:2], "ASMA + plain FFN"),
    "gcn-static": ("gcn", {}, "GCN, node + static features (NNLP-style)"),
    "flops-linear": ("linear", {}, "linear regression on log FLOPs, params, memory access"),
}
PROTOCOLS = ("in-domain", "ood")
# NN-Former paper (NNLQ, GPU with TensorRT): in-domain MAPE 1.11 %; out-of-domain mean MAPE 8.39 %
PAPER = {"in-domain": 1.11, "ood": 8.39}


def _fit_predict(method: str, graphs, ms, train, test, seed: int, recipe: str, settings: dict) -> np.ndarray:
    from ..baselines import FlopsLinear, GCNConfig
    from ..latency.onnx_graph import STATIC_NAMES
    from ..predictor import Predictor

    kind, over, _ = METHODS[method]
    if kind == "linear":
        cols = [STATIC_NAMES.index(k) for k in ("flops", "params", "memory_access")]
        x = np.stack([g.graph_features for g in graphs])[:, cols]  # stored as logs
        return FlopsLinear().fit(x[train], ms[train]).predict(x[test])
    model = GCNConfig() if kind == "gcn" else None
    net = {} if kind == "gcn" else over
    p = Predictor(recipe, network=model, settings={"evals": 5, **settings, "seed": seed, **net}, task="latency",
                  progress=False)
    p.fit([graphs[i] for i in train], ms[train])
    return p.predict([graphs[i] for i in test])


def run_one(data: tuple, method: str, protocol: str, held: str, seed: int, recipe: str, settings: dict) -> dict:
    """One record: the method trained under ``protocol`` (``held``: the held-out family, or ``all``)."""
    from ..metrics import report
    from ..protocols import family_split, leave_family_out

    rows, graphs, ms, families = data
    fam = np.asarray(families)
    split = (family_split(families, [r["index"] for r in rows]) if protocol == "in-domain"
             else leave_family_out(families, held))
    t0 = time.perf_counter()
    code = code_version()
    est = _fit_predict(method, graphs, ms, split.train, split.test, seed, recipe, settings)
    true = ms[split.test]
    rec = {"method": method, "protocol": protocol, "held": held, "seed": seed, "recipe": recipe,
           "n_train": len(split.train), **report(est, true, groups=fam[split.test]),
           "seconds": time.perf_counter() - t0, "code": code, "machine": describe_line()}
    if settings:
        rec["settings"] = settings
    return rec


def _run_job(data: tuple, job: tuple, recipe: str, settings: dict) -> dict:
    return run_one(data, *job, recipe, settings)


def _load_data(path: str, correct_drift: bool = False) -> tuple:
    from ..latency.dataset import load_training_set

    return load_training_set(path, correct_drift=correct_drift)


def sweep(data: tuple, methods, protocols, seeds, recipe: str, directory: Path, settings: dict | None = None,
          progress: bool = True, train: bool = True, families=None, jobs: int = 1, path=None,
          correct_drift: bool = False) -> list[dict]:
    """Run every missing (method, protocol, held-out family, seed) into ``directory/runs.jsonl``; return the
    records of the grid. ``jobs > 1``: that many single-threaded worker processes, each reading the dataset at
    ``path`` (``correct_drift``: as ``data`` was read, the labels divided by the host's speed)."""
    for m in methods:
        if m not in METHODS:
            raise NNFormerError(f"unknown method {m!r}; known: {', '.join(METHODS)}")
    store = RunStore(directory, ("method", "protocol", "held", "seed"), "networks sweep")
    all_families = list(dict.fromkeys(data[3]))
    held = {"in-domain": ["all"], "ood": list(families or all_families)}
    grid = [(m, p, h, s) for p in protocols for h in held[p] for m in methods
            for s in (seeds if METHODS[m][0] != "linear" else [0])]
    todo = [k for k in grid if k not in store.records()] if train else []
    mark = {"correct_drift": True} if correct_drift else {}  # stored with each run: the labels it learnt
    if train and not todo:
        store.tidy()  # a run killed while writing the tables leaves their temporaries
    if todo:
        with store.writing() as write:
            run_jobs(todo, partial(_run_job, recipe=recipe, settings=settings or {}),
                     store=lambda job, rec: write({**rec, **mark}), jobs=jobs if path is not None else 1,
                     context=data, load=_load_data, load_args=(str(path), correct_drift), desc="networks",
                     unit="run", label=lambda j: f"{j[0]} {j[1]} {j[2]} seed={j[3]}", progress=progress)
    have = store.records()
    return [have[k] for k in grid if k in have]


def write_tables(records: list[dict], out_base: Path, command: str, notes: str = "",
                 all_families=None) -> list[Path]:
    """Markdown / CSV / JSON of MAPE per family and method (mean ± std over seeds) for each protocol, and a plot.
    ``all_families``: the dataset's families (a method's mean is marked incomplete unless it covers them all)."""
    from ..io import atomic_write_json, atomic_write_text
    from .report import _head

    lines, (date, machines, codes) = _head("Latency of whole networks: NNLQ's protocols", command, notes, records)
    csv = ["protocol,method,family,k,mape_mean,mape_std"]
    summary: dict = {}
    for protocol in PROTOCOLS:
        rs = [r for r in records if r["protocol"] == protocol]
        if not rs:
            continue
        methods = list(dict.fromkeys(r["method"] for r in rs))
        families = sorted({f for r in rs for f in r["per_family_mape"]} | set(all_families or ()))
        cell: dict = {}
        for m in methods:
            for f in families:
                v = [r["per_family_mape"][f] for r in rs if r["method"] == m and f in r["per_family_mape"]]
                if v:
                    cell[m, f] = (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            per_seed, complete = [], True  # the mean over families of each seed; complete: every family stored
            for s in sorted({r["seed"] for r in rs if r["method"] == m}):
                vals = {f: v for r in rs if r["method"] == m and r["seed"] == s
                        for f, v in r["per_family_mape"].items()}
                complete &= len(vals) == len(families)
                per_seed.append(float(np.mean(list(vals.values()))) if vals else float("nan"))
            cell[m, "mean"] = (float(np.mean(per_seed)), float(np.std(per_seed, ddof=1)) if len(per_seed) > 1
                               else 0.0, len(per_seed), complete)
        summary[protocol] = {"methods": methods, "families": families, "cells": cell}
        title = ("In-domain (per family the first 90% train one predictor, the last 10% test)" if protocol ==
                 "in-domain" else "Out of domain (train on every other family, test on the held-out one)")
        lines += [f"## {title}: MAPE % (mean ± std over seeds)", "",
                  "| method | " + " | ".join(families) + " | mean over families | paper (NNLQ) |",
                  "|---|" + "---|" * (len(families) + 2)]
        for m in methods:
            cells = []
            for f in families:
                c = cell.get((m, f))
                cells.append("-" if c is None else f"{c[0]:.2f}" + (f" ± {c[1]:.2f}" if c[2] > 1 else ""))
                if c is not None:
                    csv.append(f"{protocol},{m},{f},{c[2]},{c[0]:.4f},{c[1]:.4f}")
            mean = cell[m, "mean"]
            csv.append(f"{protocol},{m},mean,{mean[2]},{mean[0]:.4f},{mean[1]:.4f}")
            mean_txt = f"{mean[0]:.2f}" + (f" ± {mean[1]:.2f}" if mean[2] > 1 else "") + ("" if mean[3] else
                                                                                         " (incomplete)")
            lines.append(f"| {METHODS[m][2]} (`{m}`) | " + " | ".join(cells) + f" | {mean_txt} | "
                         f"{PAPER[protocol]:.2f} |")
        lines.append("")
    md = atomic_write_text(out_base.with_suffix(".md"), "\n".join(lines) + "\n")
    cs = atomic_write_text(out_base.with_suffix(".csv"), "\n".join(csv) + "\n")
    js = atomic_write_json(out_base.with_suffix(".json"), {
        "command": command, "machines": machines, "code": codes, "date": date, "runs": len(records),
        "summary": {p: {"methods": s["methods"], "families": s["families"],
                        "mape": {f"{m}|{f}": list(v[:3]) for (m, f), v in s["cells"].items()}}
                    for p, s in summary.items()}})
    png = out_base.parent / (out_base.name + "_mape.png")
    _plot(summary, png)
    return [md, cs, js, png]


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig, axes = plt.subplots(len(summary), 1, figsize=(10, 3.2 * max(1, len(summary))), dpi=120, squeeze=False)
    for ax, (protocol, s) in zip(axes[:, 0], summary.items()):
        fams, methods = s["families"], s["methods"]
        width = 0.8 / max(1, len(methods))
        for k, m in enumerate(methods):
            vals = [s["cells"].get((m, f), (np.nan, 0))[:2] for f in fams]
            ax.bar(np.arange(len(fams)) + k * width, [v[0] for v in vals], width, yerr=[v[1] for v in vals],
                   label=m, capsize=2)
        ax.set_xticks(np.arange(len(fams)) + width * (len(methods) - 1) / 2, fams, rotation=20, fontsize=7)
        ax.set_ylabel("MAPE (%)")
        ax.set_title(protocol, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
