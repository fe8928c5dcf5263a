"""Evaluation protocols (docs/method.md section 7).

TNASP: in the benchmark's own index order, train on the first N, validate on the next 1,024, and report Kendall's
tau over the **whole** space (training cells included). A seeded random split draws the same sizes at random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import DataError

# The least data each part of a split accepts: every training entry point (`nnformer train`, `adapt`, `reproduce
# networks`, Predictor.fit / calibrate / finetune) refuses fewer, in one line, before any work.
MIN_TRAIN = 2  # the target transform (mean and spread of the labels) and the pairwise ranking loss need two labels
MIN_VALIDATION = 2  # validation ranks its graphs (Kendall's tau): none at all, or at least two
MIN_CALIBRATION = 2  # the conformal interval is a quantile of held-out errors: at least two
MIN_TEST = 2  # the test metrics rank the held-out graphs (Kendall's tau, Spearman)


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


def family_minimum(n_families: int, cal_share: float = 0.0) -> tuple[int, int, int]:
    """``(train, calibrate, test)``: the fewest models of each family that :func:`family_split` trains, calibrates
    and tests on when the dataset holds ``n_families`` families (every family is tested, and calibrated with
    ``cal_share``; together they give at least :data:`MIN_TEST` and :data:`MIN_CALIBRATION`)."""
    k = max(int(n_families), 1)
    return MIN_TRAIN, math.ceil(MIN_CALIBRATION / k) if cal_share > 0 else 0, math.ceil(MIN_TEST / k)


def family_split(families, order_keys, train_share: float = 0.9, cal_share: float = 0.0,
                 what: str = "the dataset") -> Split:
    """NNLQ's in-domain split of a multi-family dataset: per family, the first ``train_share`` of its models (by
    ``order_keys``, e.g. the sample index) train and the rest test; no validation set. ``cal_share`` of each
    family's models (the last ones of its training share) calibrate the prediction interval instead of training.

    A small family tests (and calibrates) more than its share, at least :func:`family_minimum`'s counts, so that
    every family is scored; a family too small for them is a :class:`DataError` naming it (``what``: the dataset, for
    the message)."""
    families, keys = np.asarray(families), np.asarray(order_keys)
    names = list(dict.fromkeys(families.tolist()))
    least_train, least_cal, least_test = family_minimum(len(names), cal_share)
    train, cal, test = [], [], []
    for f in names:
        idx = np.flatnonzero(families == f)
        idx = idx[np.argsort(keys[idx], kind="stable")]
        n = len(idx)
        n_test = max(least_test, n - int(round(train_share * n)))
        c = max(least_cal, int(round(cal_share * n)))
        if n - n_test - c < least_train:
            raise DataError(_family_too_small(what, f, n, len(names), cal_share))
        k = n - n_test
        train += idx[:k - c].tolist()
        cal += idx[k - c:k].tolist()
        test += idx[k:].tolist()
    as_idx = lambda v: np.sort(np.array(v, dtype=np.int64))  # noqa: E731
    return Split(as_idx(train), np.zeros(0, np.int64), as_idx(test), as_idx(cal))


def _family_too_small(what: str, family: str, n: int, n_families: int, cal_share: float) -> str:
    def counts(k: int) -> str:
        t, c, s = family_minimum(k, cal_share)
        return f"{t + c + s} per family ({t} train, " + (f"{c} calibrate, " if c else "") + f"{s} test)"

    alone = "" if n_families > 1 else f"; {counts(2)} in a dataset of two families or more"
    return (f"{what} has {n} model{'s' if n != 1 else ''} of family {family}: the split needs at least "
            f"{counts(n_families)}{alone}")


def check_split(split: Split, what: str, calibrate: bool = False) -> Split:
    """``split`` itself, or a :class:`DataError` naming the first part that holds fewer graphs than it accepts
    (:data:`MIN_TRAIN`, :data:`MIN_VALIDATION` unless empty, :data:`MIN_CALIBRATION` when ``calibrate``,
    :data:`MIN_TEST`)."""
    for name, idx, least, needed in (("train", split.train, MIN_TRAIN, True),
                                     ("validation", split.val, MIN_VALIDATION, False),
                                     ("calibration", split.cal, MIN_CALIBRATION, calibrate),
                                     ("test", split.test, MIN_TEST, True)):
        if len(idx) < least and (needed or len(idx)):
            raise DataError(f"{what}: the split leaves {len(idx)} to {name}; it needs at least {least} "
                            f"({MIN_TRAIN} train, {MIN_VALIDATION} validate or none, {MIN_CALIBRATION} calibrate, "
                            f"{MIN_TEST} test)")
    return split


def leave_family_out(families, held: str, what: str = "the dataset") -> Split:
    """NNLQ's out-of-domain split: every model of the other families trains, every model of ``held`` tests (at
    least :data:`MIN_TRAIN` and :data:`MIN_TEST` of them, else a :class:`DataError`)."""
    families = np.asarray(families)
    if held not in set(families.tolist()):
        raise ValueError(f"no model of family {held!r} in the dataset")
    split = Split(np.flatnonzero(families != held), np.zeros(0, np.int64), np.flatnonzero(families == held))
    if len(split.train) < MIN_TRAIN or len(split.test) < MIN_TEST:
        raise DataError(f"{what} has {len(split.test)} model{'s' if len(split.test) != 1 else ''} of family {held} "
                        f"and {len(split.train)} of the other families: holding {held} out needs at least {MIN_TEST} "
                        f"of it to test and {MIN_TRAIN} of the others to train")
    return split


def random_split(n_total: int, n_train: int, n_val: int = 1024, seed: int = 0) -> Split:
    """``n_train`` and ``n_val`` cells drawn at random (seeded); testing on all cells, as in TNASP."""
    if not 0 < n_train < n_total:
        raise ValueError(f"n_train must be between 1 and {n_total - 1}, got {n_train}")
    order = np.random.default_rng(seed).permutation(n_total)
    n_val = min(n_val, n_total - n_train)
    return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]), np.arange(n_total))


def calibrated_random_split(n_total: int, n_train: int, seed: int = 0) -> Split:
    """The latency protocol on a benchmark table (HELP's devices): ``n_train`` random cells train; of the others,
    ``max(20, n_train / 10)`` (at most half of them) calibrate the prediction interval; every remaining cell tests.
    At least :data:`MIN_CALIBRATION` + :data:`MIN_TEST` cells must stay out of training, else a
    :class:`DataError`."""
    if n_total - n_train < MIN_CALIBRATION + MIN_TEST:
        raise DataError(f"--n-train {n_train} leaves {max(n_total - n_train, 0)} of the {n_total:,} architectures "
                        f"out of training; at least {MIN_CALIBRATION + MIN_TEST} must stay out ({MIN_CALIBRATION} to "
                        f"calibrate the interval, {MIN_TEST} to test)")
    train = random_split(n_total, n_train, 0, seed=seed).train
    rest = np.setdiff1d(np.arange(n_total), train)
    cal = np.sort(np.random.default_rng(seed + 1).choice(rest, min(len(rest) // 2, max(20, n_train // 10)),
                                                         replace=False))
    return Split(train, np.zeros(0, np.int64), np.setdiff1d(rest, cal), cal)
