"""Evaluation protocols (docs/NNFORMER.md section 7).

TNASP: in the benchmark's own index order, train on the first N, validate on the next 1,024, and report Kendall's
tau over the **whole** space (training cells included). A seeded random split draws the same sizes at random.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    cal: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # calibration of prediction intervals


def tnasp_split(n_total: int, n_train: int, n_val: int = 1024) -> Split:
    """First ``n_train`` by index for training, the next ``n_val`` for validation, all cells for testing."""
    if not 0 < n_train < n_total:
        raise ValueError(f"n_train must be between 1 and {n_total - 1}, got {n_train}")
    n_val = min(n_val, n_total - n_train)
    return Split(np.arange(n_train), np.arange(n_train, n_train + n_val), np.arange(n_total))


def family_split(families, order_keys, train_share: float = 0.9, cal_share: float = 0.0) -> Split:
    """NNLQ's in-domain split of a multi-family dataset: per family, the first ``train_share`` of its models (by
    ``order_keys``, e.g. the sample index) train and the rest test; no validation set. ``cal_share`` of each
    family's models (the last ones of its training share) calibrate the prediction interval instead of training."""
    families, keys = np.asarray(families), np.asarray(order_keys)
    train, cal, test = [], [], []
    for f in dict.fromkeys(families.tolist()):
        idx = np.flatnonzero(families == f)
        idx = idx[np.argsort(keys[idx], kind="stable")]
        k = int(round(train_share * len(idx)))
        c = int(round(cal_share * len(idx)))
        train += idx[:k - c].tolist()
        cal += idx[k - c:k].tolist()
        test += idx[k:].tolist()
    as_idx = lambda v: np.sort(np.array(v, dtype=np.int64))  # noqa: E731
    return Split(as_idx(train), np.zeros(0, np.int64), as_idx(test), as_idx(cal))


def leave_family_out(families, held: str) -> Split:
    """NNLQ's out-of-domain split: every model of the other families trains, every model of ``held`` tests."""
    families = np.asarray(families)
    if held not in set(families.tolist()):
        raise ValueError(f"no model of family {held!r} in the dataset")
    return Split(np.flatnonzero(families != held), np.zeros(0, np.int64), np.flatnonzero(families == held))


def random_split(n_total: int, n_train: int, n_val: int = 1024, seed: int = 0) -> Split:
    """``n_train`` and ``n_val`` cells drawn at random (seeded); testing on all cells, as in TNASP."""
    if not 0 < n_train < n_total:
        raise ValueError(f"n_train must be between 1 and {n_total - 1}, got {n_train}")
    order = np.random.default_rng(seed).permutation(n_total)
    n_val = min(n_val, n_total - n_train)
    return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]), np.arange(n_total))
