"""Evaluation protocols (docs/NNFORMER.md section 7).

TNASP: in the benchmark's own index order, train on the first N, validate on the next 1,024, and report Kendall's
tau over the **whole** space (training cells included). A seeded random split draws the same sizes at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def tnasp_split(n_total: int, n_train: int, n_val: int = 1024) -> Split:
    """First ``n_train`` by index for training, the next ``n_val`` for validation, all cells for testing."""
    if not 0 < n_train < n_total:
        raise ValueError(f"n_train must be between 1 and {n_total - 1}, got {n_train}")
    n_val = min(n_val, n_total - n_train)
    return Split(np.arange(n_train), np.arange(n_train, n_train + n_val), np.arange(n_total))


def random_split(n_total: int, n_train: int, n_val: int = 1024, seed: int = 0) -> Split:
    """``n_train`` and ``n_val`` cells drawn at random (seeded); testing on all cells, as in TNASP."""
    if not 0 < n_train < n_total:
        raise ValueError(f"n_train must be between 1 and {n_total - 1}, got {n_train}")
    order = np.random.default_rng(seed).permutation(n_total)
    n_val = min(n_val, n_total - n_train)
    return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]), np.arange(n_total))
