"""The NAS-Bench-201 table: all 15,625 cells in benchmark index order, with every label of the source files.

Raw files (see :data:`nnformer.data.registry.RAW_FILES`) are verified, joined on the arch string, and saved once as
a plain ``.npz`` (no pickle) in the processed cache; later loads read only that file.

**STATS:** 15,625 cells; 2-8 nodes per pruned graph; ops input, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3,
skip_connect, output; labels in percent.

Example:
    >>> t = load_nb201("../shared/data")                     # doctest: +SKIP
    >>> t.labels["cifar10_valid_val200"].max()               # doctest: +SKIP
    91.607
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_path
from ..graph import ArchGraph
from ..spaces.nb201 import NUM_CELLS, OPS, arch_to_graph, ops_to_arch_str
from .registry import RAW_FILES, processed_dir, verified_path

FORMAT_VERSION = 1

# label name -> (source file, column, meaning). All in percent, seed means.
LABELS: dict[str, tuple[str, str, str]] = {
    "cifar10_valid_val200": ("cifar10_avg.csv", "valid-accuracy",
                             "cifar10-valid setting, validation accuracy, 200 epochs (NN-Former's train label)"),
    "cifar10_valid_test200": ("cifar10_avg.csv", "test-accuracy", "cifar10-valid setting, test accuracy, 200 epochs"),
    "cifar10_test200": ("nats_bench.csv", "CIFAR10TestAccuracy200Epochs",
                        "cifar10 setting (train+valid), test accuracy, 200 epochs (NN-Former's test label)"),
    "cifar100_val200": ("cifar100.json", "", "CIFAR-100 validation accuracy, 200 epochs"),
    "cifar100_test200": ("nats_bench.csv", "CIFAR100TestAccuracy200Epochs", "CIFAR-100 test accuracy, 200 epochs"),
    "imagenet16_val200": ("tinyimagenet.json", "", "ImageNet16-120 validation accuracy, 200 epochs"),
    "imagenet16_test200": ("nats_bench.csv", "ImageNetTestAccuracy200Epochs",
                           "ImageNet16-120 test accuracy, 200 epochs"),
    "cifar10_valid_val200_json": ("cifar10valid.json", "", "cifar10-valid validation accuracy, 200 ep (2nd copy)"),
    "cifar10_val12": ("mini-bench-arch-cell-accs.pd", "cifar10-val", "CIFAR-10 validation accuracy, 12 epochs"),
    "cifar10_test12": ("mini-bench-arch-cell-accs.pd", "cifar10-test", "CIFAR-10 test accuracy, 12 epochs"),
    "cifar100_val12": ("mini-bench-arch-cell-accs.pd", "cifar100-val", "CIFAR-100 validation accuracy, 12 epochs"),
    "cifar100_test12": ("mini-bench-arch-cell-accs.pd", "cifar100-test", "CIFAR-100 test accuracy, 12 epochs"),
    "imagenet16_val12": ("mini-bench-arch-cell-accs.pd", "imagenet-val", "ImageNet16-120 validation acc., 12 epochs"),
    "imagenet16_test12": ("mini-bench-arch-cell-accs.pd", "imagenet-test", "ImageNet16-120 test accuracy, 12 epochs"),
}
# Short names used by the protocol: the paper trains on `val` and reports tau against `test`.
ALIASES = {"val": "cifar10_valid_val200", "test": "cifar10_test200"}
# a search or sweep "on a dataset": the label it trains on (or queries) and the one it reports
DATASET_LABELS = {"cifar10": ("cifar10_valid_val200", "cifar10_test200"),
                  "cifar100": ("cifar100_val200", "cifar100_test200"),
                  "imagenet16": ("imagenet16_val200", "imagenet16_test200")}
SOURCES = tuple(f"nasbench201/{n}" for n in ("cifar10_avg.csv", "nats_bench.csv", "cifar10valid.json",
                                             "cifar100.json", "tinyimagenet.json", "mini-bench-arch-cell-accs.pd"))


@dataclass
class NB201Table:
    """All NAS-Bench-201 cells: ``arch_strs[i]`` is the cell of benchmark index ``i``; ``labels[name][i]`` its label."""

    arch_strs: np.ndarray
    labels: dict[str, np.ndarray]
    _graphs: list[ArchGraph] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.arch_strs)

    def label(self, name: str) -> np.ndarray:
        """A label column by name or alias (``val``, ``test``), in percent."""
        key = ALIASES.get(name, name)
        if key not in self.labels:
            raise DataError(f"unknown NAS-Bench-201 label {name!r}; known: {', '.join([*ALIASES, *self.labels])}")
        return self.labels[key]

    @property
    def graphs(self) -> list[ArchGraph]:
        if self._graphs is None:
            self._graphs = [arch_to_graph(s) for s in self.arch_strs]
        return self._graphs

    def index_of(self, arch: str) -> int:
        if not hasattr(self, "_index"):
            self._index = {s: i for i, s in enumerate(self.arch_strs)}
        try:
            return self._index[arch]
        except KeyError:
            raise DataError(f"{arch!r} is not a NAS-Bench-201 cell string in the table") from None


def _cache_key(data_dir) -> str:
    h = hashlib.sha256(f"nb201-v{FORMAT_VERSION}".encode())
    for name in SOURCES:
        h.update(RAW_FILES[name].sha256.encode())
    return h.hexdigest()[:16]


def _json_labels(path: Path, arch_index: dict[str, int]) -> np.ndarray:
    try:
        rows = json.loads(path.read_text())
        out = np.full(NUM_CELLS, np.nan)
        for edges, acc in rows:
            ops = [OPS[k] for node in edges for k in node]
            out[arch_index[ops_to_arch_str(ops)]] = float(acc)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise DataError(f"{path}: unexpected content ({type(e).__name__}: {e})") from None
    return out


def build_nb201(data_dir=None) -> NB201Table:
    """Verify and join the raw files (slow path; :func:`load_nb201` caches its result)."""
    import pandas as pd  # only needed for conversion

    paths = {Path(n).name: verified_path(n, data_dir) for n in SOURCES}
    try:
        c10 = pd.read_csv(paths["cifar10_avg.csv"])
        nats = pd.read_csv(paths["nats_bench.csv"])
        mini = pd.read_pickle(paths["mini-bench-arch-cell-accs.pd"])  # safe: sha256 verified above
    except Exception as e:  # pandas raises many types for a malformed file
        raise DataError(f"cannot parse NAS-Bench-201 source file: {e}") from None
    arch = c10["arch_str"].to_numpy(dtype=str)
    if len(arch) != NUM_CELLS or not (c10["index"].to_numpy() == np.arange(NUM_CELLS)).all():
        raise DataError("cifar10_avg.csv is not the 15,625 cells in index order")
    if not (nats["ArchitectureString"].to_numpy(dtype=str) == arch).all():
        raise DataError("nats_bench.csv rows are not in the same order as cifar10_avg.csv")
    if not (mini["arch"].to_numpy() == np.arange(NUM_CELLS)).all() or not (mini["cellstr"].to_numpy(dtype=str) == arch).all():
        raise DataError("mini-bench-arch-cell-accs.pd rows are not in NAS-Bench-201 index order")
    index = {s: i for i, s in enumerate(arch)}
    frames = {"cifar10_avg.csv": c10, "nats_bench.csv": nats, "mini-bench-arch-cell-accs.pd": mini}
    labels = {}
    for name, (src, col, _) in LABELS.items():
        if src.endswith(".json"):
            labels[name] = _json_labels(paths[src], index)
        else:
            labels[name] = frames[src][col].to_numpy(dtype=np.float64)
    return NB201Table(arch, labels)


def load_nb201(data_dir=None, cache: bool = True) -> NB201Table:
    """The joined NAS-Bench-201 table, converted once and cached as ``.npz`` (see module docstring)."""
    path = processed_dir() / f"nb201_{_cache_key(data_dir)}.npz"
    for name in SOURCES:  # every use: the converted table is read only after the files it came from check out
        verified_path(name, data_dir)
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return NB201Table(z["arch_strs"], {k: z[k] for k in LABELS})
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt from the verified raw files
    table = build_nb201(data_dir)
    if cache:
        with atomic_path(path, ".npz") as tmp:
            np.savez(tmp, arch_strs=table.arch_strs, **table.labels)
    return table
