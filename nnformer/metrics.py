"""Ranking and regression metrics of predictor papers (docs/method.md section 7).
Inputs are checked (equal length, at least 2 values, finite) so a NaN never turns into a silent NaN metric.
"""

from __future__ import annotations

import numpy as np


def _check(pred, true, least: int = 2) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"pred and true differ in length: {p.shape[0]} vs {t.shape[0]}")
    if p.size < least:
        raise ValueError(f"need at least {least} value{'s' if least > 1 else ''}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("pred or true contains NaN or infinity")
    return p, t


def kendall_tau(pred, true) -> float:
    """Kendall's tau-b."""
    from scipy.stats import kendalltau

    x, y = _check(pred, true)
    return float(kendalltau(x, y).statistic)


def spearman_rho(pred, true) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import rankdata

    x, y = _check(pred, true)
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def mape(pred, true) -> float:
    """Mean absolute percentage error, in percent."""
    p, t = _check(pred, true, least=1)
    if (t == 0).any():
        raise ValueError("MAPE is undefined when a true value is 0")
    return float(np.mean(np.abs(p - t) / np.abs(t)) * 100)


def acc_within(pred, true, delta: float = 0.1) -> float:
    """Acc(delta): share (in percent) of predictions with ``|pred - true| / true <= delta``."""
    p, t = _check(pred, true, least=1)
    return float(np.mean(np.abs(p - t) / np.abs(t) <= delta + 1e-12) * 100)


def top_k_precision(pred, true, k: int) -> float:
    """Share of the true top-``k`` (largest) found among the predicted top-``k``."""
    p, t = _check(pred, true)
    k = min(int(k), len(p))
    top_p = set(np.argsort(-p, kind="stable")[:k].tolist())
    top_t = set(np.argsort(-t, kind="stable")[:k].tolist())
    return len(top_p & top_t) / k


def report(pred, true, groups=None, bounds=None, ranking_only: bool = False) -> dict:
    """The metrics every latency table and record carries: MAPE, Acc(10%), Acc(5%), Kendall's tau, Spearman and
    the number of test models, under the keys the result stores use.

    ``groups`` (one label per model, e.g. its family): MAPE per group as ``per_family_mape``, in order of first
    appearance. ``bounds`` ``(low, high, level)`` of a prediction interval: its coverage (% of ``true`` inside) and
    median width (high / low). ``ranking_only``: ``pred`` is a score, not a latency (a FLOPs count): the errors are
    NaN and only the rank correlations count.

    >>> report([1.0, 2.0, 4.0], [1.0, 2.0, 5.0])["acc10"]
    66.66666666666666
    """
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    nan = float("nan")
    m = {"mape": nan if ranking_only else mape(p, t), "acc10": nan if ranking_only else acc_within(p, t, 0.10),
         "acc5": nan if ranking_only else acc_within(p, t, 0.05), "tau_test": kendall_tau(p, t),
         "spearman_test": spearman_rho(p, t), "n_test": len(t)}
    if groups is not None:
        g = np.asarray(groups)
        m["per_family_mape"] = {f: mape(p[g == f], t[g == f]) for f in dict.fromkeys(g.tolist())}
    if bounds is not None:
        lo, hi, level = bounds
        m["interval"] = {"level": level, "coverage": float(100 * np.mean((t >= lo) & (t <= hi))),
                         "median_width_ratio": float(np.median(hi / lo))}
    return m


def conformal_quantile(abs_errors, level: float = 0.9) -> float:
    """Split-conformal half-width: the ``ceil((n + 1) level)``-th smallest of ``n`` absolute errors (the largest
    when ``n`` is too small for the level). Every calibrated interval of the package is built from it."""
    err = np.sort(np.asarray(abs_errors, dtype=np.float64).ravel())
    rank = min(int(np.ceil((err.size + 1) * level)), err.size)
    return float(err[rank - 1])
