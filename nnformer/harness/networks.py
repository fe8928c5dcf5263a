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
from pathlib import Path

import numpy as np

from ..errors import NNFormerError
from ..io import JsonlAppender, exclusive_lock, read_jsonl
from ..machine import code_version, describe_line

METHODS: dict[str, tuple[str, dict, str]] = {
    "nnformer": ("nnformer", {"mask_mode": "paper", "ffn_mode": "bgiffn"}, "NN-Former (ASMA + BGIFFN), node + static"),
    "transformer": ("nnformer", {"mask_mode": "global", "ffn_mode": "ffn"}, "plain transformer, node + static"),
    "global-bgiffn": ("nnformer", {"mask_mode": "global", "ffn_mode": "bgiffn"}, "global attention + BGIFFN"),
    "asma-ffn": ("nnformer", {"mask_mode": "paper", "ffn_mode": "ffn"}, "ASMA + plain FFN"),
    "gcn-static": ("gcn", {}, "GCN, node + static features (NNLP-style)"),
    "flops-linear": ("linear", {}, "linear regression on log FLOPs, params, memory access"),
}
PROTOCOLS = ("in-domain", "ood")
# NN-Former paper (NNLQ, GPU with TensorRT): in-domain MAPE 1.11 %; out-of-domain mean MAPE 8.39 %
PAPER = {"in-domain": 1.11, "ood": 8.39}


def _fit_predict(method: str, graphs, ms, train, test, seed: int, recipe: str, settings: dict) -> np.ndarray:
    from ..baselines import GCNConfig
    from ..latency.onnx_graph import STATIC_NAMES
    from ..predictor import Predictor

    kind, over, _ = METHODS[method]
    if kind == "linear":
        cols = [STATIC_NAMES.index(k) for k in ("flops", "params", "memory_access")]
        x = np.column_stack([np.stack([g.graph_features for g in graphs])[:, cols], np.ones(len(graphs))])
        coef, *_ = np.linalg.lstsq(x[train], np.log(ms[train]), rcond=None)
        return np.exp(x[test] @ coef)
    model = GCNConfig() if kind == "gcn" else None
    net = {} if kind == "gcn" else over
    p = Predictor(recipe, model=model, settings={"evals": 5, **settings, "seed": seed, **net}, task="latency",
                  progress=False)
    p.fit([graphs[i] for i in train], ms[train])
    return p.predict([graphs[i] for i in test])


def run_one(data: tuple, method: str, protocol: str, held: str, seed: int, recipe: str, settings: dict) -> dict:
    """One record: the method trained under ``protocol`` (``held``: the held-out family, or ``all``)."""
    from ..metrics import acc_within, kendall_tau, mape, spearman_rho
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
           "n_train": len(split.train), "n_test": len(split.test), "mape": mape(est, true),
           "acc10": acc_within(est, true, 0.10), "acc5": acc_within(est, true, 0.05),
           "tau_test": kendall_tau(est, true), "spearman_test": spearman_rho(est, true),
           "per_family_mape": {f: mape(est[fam[split.test] == f], true[fam[split.test] == f])
                               for f in dict.fromkeys(fam[split.test].tolist())},
           "seconds": time.perf_counter() - t0, "code": code, "machine": describe_line()}
    if settings:
        rec["settings"] = settings
    return rec


_WORKER_DATA: tuple | None = None


def _worker(path, job, recipe, settings, threads, correct_drift=False) -> dict:
    global _WORKER_DATA
    import torch

    from ..latency.profiler import load_training_set

    torch.set_num_threads(threads)
    if _WORKER_DATA is None:
        _WORKER_DATA = load_training_set(path, correct_drift=correct_drift)
    return run_one(_WORKER_DATA, *job, recipe, settings)


def sweep(data: tuple, methods, protocols, seeds, recipe: str, directory: Path, settings: dict | None = None,
          progress: bool = True, train: bool = True, families=None, jobs: int = 1, path=None,
          correct_drift: bool = False) -> list[dict]:
    """Run every missing (method, protocol, held-out family, seed) into ``directory/runs.jsonl``; return the
    records of the grid. ``jobs > 1``: that many single-threaded worker processes, each reading the dataset at
    ``path`` (``correct_drift``: as ``data`` was read, the labels divided by the host's speed)."""
    for m in methods:
        if m not in METHODS:
            raise NNFormerError(f"unknown method {m!r}; known: {', '.join(METHODS)}")
    directory = Path(directory)
    all_families = list(dict.fromkeys(data[3]))
    held = {"in-domain": ["all"], "ood": list(families or all_families)}
    grid = [(m, p, h, s) for p in protocols for h in held[p] for m in methods
            for s in (seeds if METHODS[m][0] != "linear" else [0])]

    def stored():
        return {(r["method"], r["protocol"], r["held"], r["seed"]): r for r in read_jsonl(directory / "runs.jsonl")}

    todo = [k for k in grid if k not in stored()] if train else []
    mark = {"correct_drift": True} if correct_drift else {}  # stored with each run: the labels it learnt
    if todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="networks", unit="run", disable=not progress, dynamic_ncols=True)
        with exclusive_lock(directory, "networks sweep"), JsonlAppender(directory / "runs.jsonl") as store:
            if jobs > 1 and len(todo) > 1 and path is not None:
                from concurrent.futures import as_completed

                from .pool import worker_pool

                with worker_pool(jobs) as pool:
                    futures = [pool.submit(_worker, str(path), job, recipe, settings or {}, 1, correct_drift)
                               for job in todo]
                    for f in as_completed(futures):
                        store.write({**f.result(), **mark})
                        bar.update(1)
            else:
                for m, p, h, s in todo:
                    store.write({**run_one(data, m, p, h, s, recipe, settings or {}), **mark})
                    bar.update(1)
        bar.close()
    have = stored()
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
                 "in-domain" else "Out of domain (train on nine families, test on the held-out one)")
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
