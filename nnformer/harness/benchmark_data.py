"""What a sweep needs of a benchmark: graphs in index order, labels, protocol sizes, zero-cost proxy scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.nb201 import DATASET_LABELS as NB201_DATASETS
from ..errors import NNFormerError



@dataclass
class BenchmarkData:
    """Labels are in the benchmark's units (NB201: percent; latency: ms; the predictor transforms them).

    ``task="accuracy"``: the TNASP protocol (first N cells train, the next ``n_val`` validate, tau over all cells).
    ``task="latency"``: a seeded random draw of N cells trains (no validation set: the last EMA weights are kept),
    and every other cell tests; errors are reported as MAPE and Acc(d) beside tau and Spearman.
    """

    name: str
    graphs: list
    train_label: np.ndarray
    test_labels: dict[str, np.ndarray]  # name -> label over all cells
    ns: tuple[int, ...]
    n_val: int
    proxies: dict[str, np.ndarray] | None = None
    lut: np.ndarray | None = None  # one-hot (position, op) per architecture: a per-layer lookup table's inputs
    max_nodes: int = 8
    source: tuple = ()  # arguments of load_space() that rebuild this space in a worker process
    task: str = "accuracy"


def load_space(space: str, data_dir=None, dataset: str = "cifar10") -> BenchmarkData:
    """``nb201`` (``dataset``: cifar10, cifar100, imagenet16), ``nb101``, or ``help-nb201`` / ``help-fbnet``
    (``dataset``: a HELP device)."""
    if space == "help-nb201":
        return help_nb201_space(data_dir, dataset)
    if space == "help-fbnet":
        return help_fbnet_space(data_dir, dataset)
    return nb201_space(data_dir, dataset) if space == "nb201" else nb101_space(data_dir)


def help_nb201_space(data_dir, device: str) -> BenchmarkData:
    """NAS-Bench-201 cells with HELP's latency on ``device`` (ms), for the latency protocol."""
    from ..data.help import load_help_latency
    from ..data.nb201 import load_nb201

    from ..spaces.nb201 import OPS, parse_arch_str

    ms = load_help_latency("nb201", device, data_dir)
    t = load_nb201(data_dir)
    ops = np.array([[OPS.index(o) for o in parse_arch_str(s)] for s in t.arch_strs.tolist()])
    return BenchmarkData(f"help-nb201-{device}", t.graphs, ms, {"test": ms}, (100, 1000), 0,
                     proxies=_proxies("nb201", t.arch_strs.tolist()), max_nodes=8,
                     source=("help-nb201", data_dir, device), task="latency", lut=_one_hot(ops, len(OPS)))


def help_fbnet_space(data_dir, device: str) -> BenchmarkData:
    """HELP's 5,000 FBNet networks as chain graphs with HELP's latency on ``device`` (ms), for the latency
    protocol; the proxies are the networks' FLOPs and parameters (:func:`nnformer.spaces.fbnet.fbnet_cost`)."""
    from ..data.help import fbnet_graphs, load_fbnet_archs, load_help_latency
    from ..spaces.fbnet import BLOCKS

    ms = load_help_latency("fbnet", device, data_dir)
    graphs, proxies = fbnet_graphs(data_dir)
    lut = _one_hot(np.array(load_fbnet_archs(data_dir)), len(BLOCKS))
    return BenchmarkData(f"help-fbnet-{device}", graphs, ms, {"test": ms}, (100, 1000), 0, proxies=proxies,
                     max_nodes=24, source=("help-fbnet", data_dir, device), task="latency", lut=lut)


def _one_hot(choices: np.ndarray, k: int) -> np.ndarray:
    """(n, positions * k) indicators of the op at each position (an edge of a cell, a layer of a network)."""
    n, pos = choices.shape
    out = np.zeros((n, pos * k), dtype=np.float64)
    out[np.arange(n)[:, None], np.arange(pos) * k + choices] = 1.0
    return out


def nb201_space(data_dir, dataset: str = "cifar10") -> BenchmarkData:
    from ..data.nb201 import load_nb201

    if dataset not in NB201_DATASETS:
        raise NNFormerError(f"unknown NB201 dataset {dataset!r}; known: {', '.join(NB201_DATASETS)}")
    t = load_nb201(data_dir)
    tr, te = NB201_DATASETS[dataset]
    return BenchmarkData(f"nb201-{dataset}", t.graphs, t.labels[tr], {"test": t.labels[te], "val": t.labels[tr]},
                     (78, 156, 469, 781, 1563), 1024, proxies=_proxies("nb201", t.arch_strs.tolist()), max_nodes=8,
                     source=("nb201", data_dir, dataset))


def nb101_space(data_dir) -> BenchmarkData:
    from ..data.nb101 import load_nb101

    t = load_nb101(data_dir)
    full = len(t) > 100_000
    specs = [t.spec(i) for i in range(len(t))]
    return BenchmarkData("nb101" if full else "nb101-subset", t.graphs, t.label("val"),
                     {"test": t.label("test"), "val": t.label("val")},
                     (100, 172, 424, 4236) if full else (100, 172, 424), 1024 if full else 200,
                     proxies=_proxies("nb101", specs), max_nodes=7, source=("nb101", data_dir))


def _proxies(space: str, items) -> dict[str, np.ndarray] | None:
    try:
        from ..zero_cost import proxy_scores
    except ImportError:
        return None
    return {p: np.asarray(proxy_scores(space, p, items), dtype=np.float64) for p in ("params", "flops")}
