"""HELP's cross-device few-shot latency protocol: learn on some devices, predict a new one from a few measurements.

Protocol (Lee et al., NeurIPS 2021; HayeonLee/HELP): one predictor is trained on the meta-training devices (900
architectures each), the meta-validation devices pick its weights, and a held-out device is predicted from ``N``
of its measurements (10, 20, 100); Spearman's rho over the other architectures is the headline.

How the device enters the network: a fixed set of 10 **reference architectures** (drawn once per seed) is measured on
every device, and the z-scored log latencies of the references are the device's hardware embedding (HELP's
embedding is the latencies of reference architectures, too). Each (architecture, device) pair is one graph whose
graph-level features are the architecture's standardised log FLOPs and parameters followed by the device's
embedding (into NN-Former's [CLS] token, or added to the GCN's pooled nodes). The label is the architecture's log
latency z-scored with the references' mean and standard deviation on that device, so that every device has the same
scale and a prediction turns back into milliseconds with the target device's 10 reference latencies alone.

With ``N`` target samples (the references first, then more at random): the ``*-hw`` methods use only the
embedding; the ``*-hw-ft`` methods also fine-tune the meta-trained network on the ``N`` samples
(:meth:`nnformer.Predictor.finetune`). Baselines: the same networks trained on the ``N`` target samples alone, a
linear fit of log latency on log FLOPs and parameters, and FLOPs alone (no samples). Every method is tested on the
same cells: every architecture outside the first ``max(ns)`` samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..baselines import FlopsLinear
from ..errors import NNFormerError
from ..graph import ArchGraph
from ..machine import code_version, describe_line
from .engine import RunStore, run_jobs
from .methods import FEWSHOT_METHODS, METHODS

# HELP's device split for NAS-Bench-201 (its README); pixel3 (meta-train) is not in the data and is left out
HELP_NB201_DEVICES = {
    "train": ("1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "essential_ph_1",
              "samsung_s7"),
    "val": ("titanx_1", "titanx_32", "titanx_256", "gold_6240"),
    "test": ("titan_rtx_256", "gold_6226", "fpga", "pixel2"),
}
# FBNet: the same split with the batch-64 GPU files HELP's FBNet data has instead of batch 256; HELP's FBNet test
# devices are fpga, raspi4 and eyeriss (only fpga is in the data); three more outside the meta split are reported
HELP_FBNET_DEVICES = {
    "train": ("1080ti_1", "1080ti_32", "1080ti_64", "silver_4114", "silver_4210r", "samsung_a50", "essential_ph_1",
              "samsung_s7"),
    "val": ("titanx_1", "titanx_32", "titanx_64", "gold_6240"),
    "test": ("fpga", "gold_6226", "pixel2", "titan_rtx_64"),
}
N_REFERENCES = 10
META_PER_DEVICE = {"help-nb201": 900, "help-fbnet": 4000}  # HELP's meta-training samples per device
VAL_PER_DEVICE = 200
FINETUNE_STEPS = 100

NETWORK_SETTINGS = {"nnformer": METHODS["nnformer"][1], "gcn": METHODS["gcn"][1]}  # one table of methods

# HELP's published Spearman with 10 target samples (docs/method.md section 8) and FLOPs over all cells measured here
HELP_ANCHOR = {"help-nb201": {"titan_rtx_256": 0.987, "gold_6226": 0.989, "pixel2": 0.802, "fpga": 0.985},
               "help-fbnet": {"fpga": 0.892}}
FLOPS_ANCHOR = {"help-nb201": {"titan_rtx_256": 0.972, "gold_6226": 0.889, "pixel2": 0.865, "fpga": 0.938}}


@dataclass
class DeviceLatencies:
    """Architectures of a space (graphs, label-free static features) and a loader of each device's latencies."""

    name: str  # e.g. "help-nb201"
    graphs: list
    static: np.ndarray  # (n, k) standardised log FLOPs and params of every architecture
    flops: np.ndarray
    devices: dict  # "train" / "val" / "test" -> device names
    data_dir: object = None

    def latency(self, device: str) -> np.ndarray:
        from ..data.help import load_help_latency

        return load_help_latency(self.name.removeprefix("help-"), device, self.data_dir)


def load_device_space(space: str, data_dir=None) -> DeviceLatencies:
    if space == "help-fbnet":
        from ..data.help import fbnet_graphs

        graphs, proxies = fbnet_graphs(data_dir)
        logs = np.log1p(np.column_stack([proxies["flops"], proxies["params"]]))
        static = (logs - logs.mean(0)) / (logs.std(0) + 1e-8)
        return DeviceLatencies(space, graphs, static.astype(np.float32), proxies["flops"], HELP_FBNET_DEVICES, data_dir)
    if space != "help-nb201":
        raise NNFormerError(f"the few-shot protocol knows help-nb201 and help-fbnet, not {space!r}")
    from ..data.nb201 import load_nb201
    from ..zero_cost import proxy_scores

    t = load_nb201(data_dir)
    archs = t.arch_strs.tolist()
    flops = np.asarray(proxy_scores("nb201", "flops", archs), dtype=np.float64)
    params = np.asarray(proxy_scores("nb201", "params", archs), dtype=np.float64)
    logs = np.log1p(np.column_stack([flops, params]))
    static = (logs - logs.mean(0)) / (logs.std(0) + 1e-8)
    return DeviceLatencies(space, t.graphs, static.astype(np.float32), flops, HELP_NB201_DEVICES, data_dir)


def sample_order(n_total: int, seed: int) -> np.ndarray:
    """The seed's draw of target samples: the first :data:`N_REFERENCES` are the reference architectures."""
    return np.random.default_rng(10_000 + seed).permutation(n_total)


def device_view(ms: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(hardware embedding, mean, std) of a device from its latencies on the reference architectures
    (:func:`nnformer.latency.devices.embedding`)."""
    from ..latency.devices import embedding

    return embedding(ms[refs])


def _pairs(space: DeviceLatencies, idx: np.ndarray, hw: np.ndarray, with_hw: bool = True) -> list[ArchGraph]:
    out = []
    for i in idx:
        g = space.graphs[i]
        feats = np.concatenate([space.static[i], hw]) if with_hw else space.static[i]
        out.append(ArchGraph(g.ops, g.adj, g.features, g.depth, feats))
    return out


def meta_train(space: DeviceLatencies, network: str, seed: int, recipe: str, settings: dict, lat: dict):
    """The predictor trained on the meta-training devices (labels: reference-z-scored log latency)."""
    from ..baselines import GCNConfig
    from ..predictor import Predictor
    from .methods import SWEEP_EVALS

    refs = sample_order(len(space.graphs), seed)[:N_REFERENCES]
    sets = {}
    for role, per in (("train", META_PER_DEVICE[space.name]), ("val", VAL_PER_DEVICE)):
        graphs, y = [], []
        for k, dev in enumerate(space.devices[role]):
            ms = lat[dev]
            hw, mean, std = device_view(ms, refs)
            idx = np.random.default_rng([seed, k, 0 if role == "train" else 1]).choice(len(ms), per, replace=False)
            graphs += _pairs(space, idx, hw)
            y.append((np.log(ms[idx]) - mean) / std)
        sets[role] = (graphs, np.concatenate(y))
    model = GCNConfig() if network == "gcn" else None
    over = {k: v for k, v in settings.items() if network == "nnformer" or k not in _network_fields()}
    p = Predictor(recipe, network=model, settings={"evals": SWEEP_EVALS, **over, "seed": seed,
                                                   **NETWORK_SETTINGS[network]},
                  task="score", progress=False)  # labels are already z-scores
    return p.fit(*sets["train"], *sets["val"])


def _network_fields() -> set[str]:
    import dataclasses

    from ..model import NNFormerConfig

    return {f.name for f in dataclasses.fields(NNFormerConfig)}


def _metrics(est: np.ndarray, true: np.ndarray, ranking_only: bool = False) -> dict:
    """Errors and rank correlations of ``est`` against ``true``; a ranking (FLOPs) has no errors (NaN)."""
    from ..metrics import report

    return report(est, true, ranking_only=ranking_only)


def run_job(space: DeviceLatencies, job: tuple[str, int], ns, test_devices, recipe: str, settings: dict,
            threads: int | None = None) -> list[dict]:
    """Every record of one job: a network meta-trained once for a seed (both ``-hw`` and ``-hw-ft`` methods), or one
    baseline method for a seed, evaluated on every test device and N."""
    import torch

    from ..predictor import Predictor

    if threads:
        torch.set_num_threads(threads)
    code = code_version()
    kind, seed = job
    order = sample_order(len(space.graphs), seed)
    refs, test = order[:N_REFERENCES], np.sort(order[max(ns):])
    base = {"space": None, "seed": seed, "recipe": recipe, "code": code, "machine": describe_line(),
            "torch_threads": torch.get_num_threads(), **({"settings": settings} if settings else {})}
    records = []
    t0 = time.perf_counter()
    if kind in ("nnformer", "gcn"):  # meta-train once, then every device and N
        needed = [*space.devices["train"], *space.devices["val"], *test_devices]
        lat = {d: space.latency(d) for d in needed}
        p = meta_train(space, kind, seed, recipe, settings, lat)
        meta_s = time.perf_counter() - t0
        for dev in test_devices:
            ms = lat[dev]
            hw, mean, std = device_view(ms, refs)
            test_graphs = p.encode(_pairs(space, test, hw))
            zero = np.exp(p.predict(test_graphs) * std + mean)
            for n in ns:
                common = {**base, "space": f"{space.name}-{dev}", "n_train": n, "meta_seconds": meta_s,
                          "epochs": p.train_config_.epochs, "best_epoch": p.result_.best_epoch,
                          "best_val_tau": p.result_.best_val_tau}
                records.append({**common, "method": f"{kind}-hw", **_metrics(zero, ms[test]), "seconds": meta_s})
                t1 = time.perf_counter()
                idx = order[:n]
                ft = p.finetune(_pairs(space, idx, hw), (np.log(ms[idx]) - mean) / std, steps=FINETUNE_STEPS,
                                seed=seed)
                est = np.exp(ft.predict(test_graphs) * std + mean)
                records.append({**common, "method": f"{kind}-hw-ft", **_metrics(est, ms[test]),
                                "finetune_steps": FINETUNE_STEPS, "seconds": meta_s + time.perf_counter() - t1})
        return records
    for dev in test_devices:
        ms = space.latency(dev)
        for n in ns:
            t1 = time.perf_counter()
            idx = order[:n]
            if kind == "flops":
                if n != min(ns):
                    continue  # needs no samples: one record per device
                est = space.flops[test]
            elif kind == "flops-linear":
                x = np.column_stack([np.log1p(space.flops), space.static[:, 1]])
                est = FlopsLinear().fit(x[idx], ms[idx]).predict(x[test])
            elif kind == "nnformer-static":
                p = Predictor(recipe, settings={"evals": 10, **settings, "seed": seed, **NETWORK_SETTINGS["nnformer"]},
                              task="latency", progress=False)
                p.fit(_pairs(space, idx, np.zeros(0, np.float32), with_hw=False), ms[idx])
                est = p.predict(_pairs(space, test, np.zeros(0, np.float32), with_hw=False))
            else:
                raise NNFormerError(f"unknown few-shot method {kind!r}")
            records.append({**base, "space": f"{space.name}-{dev}", "method": kind, "n_train": n,
                            **_metrics(est, ms[test], ranking_only=kind == "flops"),
                            "seconds": time.perf_counter() - t1})
    return records


def jobs_for(methods) -> list[str]:
    """The jobs that produce ``methods``: a meta-trained network serves both its ``-hw`` and ``-hw-ft`` methods."""
    out = []
    for m in methods:
        if m not in FEWSHOT_METHODS:
            raise NNFormerError(f"unknown few-shot method {m!r}; known: {', '.join(FEWSHOT_METHODS)}")
        net, role, _ = FEWSHOT_METHODS[m]
        kind = net if role.startswith("meta") else m
        if kind not in out:
            out.append(kind)
    return out


def sweep(space: DeviceLatencies, methods, ns, seeds, devices, recipe: str, directory: Path, settings: dict | None = None,
          threads=None, progress=True, jobs: int = 1, train: bool = True) -> list[dict]:
    """Run every missing (job, seed), appending its records to ``directory/runs.jsonl``; returns the stored records
    of ``methods`` x ``devices`` x ``ns`` x ``seeds``. A job is done when all of its records are stored."""
    settings = settings or {}
    store = RunStore(directory, ("method", "space", "n_train", "seed"), "few-shot sweep")

    def wanted(m):
        return [(m, f"{space.name}-{d}", n, s) for d in devices for n in ((min(ns),) if m == "flops" else ns)
                for s in seeds]

    have = store.records()
    todo = []
    for kind in jobs_for(methods):
        produced = [f"{kind}-hw", f"{kind}-hw-ft"] if kind in NETWORK_SETTINGS else [kind]
        for s in seeds:
            if any(k not in have for m in produced for k in wanted(m) if k[3] == s):
                todo.append((kind, s))
    if train and not todo:
        store.tidy()  # a run killed while writing the tables leaves their temporaries
    if todo and train:
        with store.writing() as write:
            run_jobs(todo, partial(run_job, ns=tuple(ns), test_devices=tuple(devices), recipe=recipe,
                                   settings=settings, threads=threads),
                     store=lambda job, recs: [write(r) for r in recs], jobs=jobs, context=space,
                     load=load_device_space, load_args=(space.name, space.data_dir), threads=threads,
                     desc=f"few-shot {space.name}", unit="job", label=lambda j: f"{j[0]} seed={j[1]}",
                     progress=progress)
    have = store.records()
    return [have[k] for m in methods for k in wanted(m) if k in have]


def targets(records: list[dict], space: str, method: str, n: int = 10) -> list[str]:
    """Markdown bullets: the issue's targets (with 10 samples, above HELP's mean over its test devices and above
    FLOPs on each), met or missed by ``method``, from the stored records. FLOPs is measured on the same test cells
    (the ``flops`` method) when stored, else taken from :data:`FLOPS_ANCHOR` (all cells)."""
    by, flops = {}, {}
    for r in records:
        dev = r["space"].split("-", 2)[-1]
        if r["method"] == method and r["n_train"] == n:
            by.setdefault(dev, []).append(r["spearman_test"])
        elif r["method"] == "flops":
            flops.setdefault(dev, []).append(r["spearman_test"])
    if not by:
        return [f"- `{method}` at N={n}: not run yet."]
    means = {d: float(np.mean(v)) for d, v in by.items()}
    flops = {**FLOPS_ANCHOR.get(space, {}), **{d: float(np.mean(v)) for d, v in flops.items()}}
    anchor = HELP_ANCHOR.get(space, {})
    out = []
    common = [d for d in anchor if d in means]
    if common:
        ours = float(np.mean([means[d] for d in common]))
        help_mean = float(np.mean([anchor[d] for d in common]))
        out.append(f"- `{method}`, mean Spearman with {n} samples over {', '.join(common)}: {ours:.3f} vs HELP's "
                   f"{help_mean:.3f} on the same devices: **{'met' if ours > help_mean else 'missed'}**.")
    for d in means:
        if d in flops:
            out.append(f"- `{method}` on {d}: {means[d]:.3f} vs FLOPs {flops[d]:.3f}"
                       + (f" and HELP {anchor[d]:.3f}" if d in anchor else "")
                       + f": above FLOPs **{'met' if means[d] > flops[d] else 'missed'}**.")
    return out
