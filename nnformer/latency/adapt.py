"""A latency predictor adapted to a new device or runtime from a few of its measurements (`nnformer adapt`).

Two steps. First the offset: a new machine or thread count mostly scales every latency by one factor, so the
predictor's log-latency mean moves by the median of ``log(measured / predicted)`` over the measurements (this alone is
the ``rescaled`` row of benchmarks/results/latency-adapt). Then, with ``steps > 0``, the network is fine-tuned on the
measurements (:meth:`~nnformer.Predictor.finetune`) from that shifted start. With 30 or more measurements a fifth of
them (at least 6) is held back from both steps to recalibrate the prediction interval on the new device, since the
base predictor's interval was fitted to another one's errors; with fewer, the base interval is kept and the card says
so.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ..errors import NNFormerError
from ..protocols import MIN_TRAIN

MIN_RECALIBRATE = 30


def shifted(base, graphs, ms):
    """A copy of ``base`` whose predictions are multiplied by the median ratio measured / predicted on ``graphs``."""
    shift = float(np.median(np.log(np.asarray(ms, dtype=np.float64)) - np.log(base.predict(graphs))))
    out = copy.copy(base)
    out.target_ = dataclasses.replace(base.target_, mean=base.target_.mean + shift)
    out.header_ = {**base.header_, "target": out.target_.to_dict()}
    return out, shift


def adapt(base, graphs, ms, *, steps: int = 100, lr: float | None = None, seed: int = 0):
    """``(adapted predictor, info)`` from ``base`` and the measured ``graphs`` / ``ms`` (in the order given: the
    caller draws them). ``steps=0``: the offset only. ``info``: how many measurements trained and recalibrated, and
    the factor applied."""
    ms = np.asarray(ms, dtype=np.float64)
    if base.task != "latency" or base.target_.kind != "log":
        raise NNFormerError("only a latency predictor can be adapted to a device")
    if len(graphs) < MIN_TRAIN:
        raise NNFormerError(f"adapting needs at least {MIN_TRAIN} measured models, got {len(graphs)}")
    n_cal = len(graphs) // 5 if len(graphs) >= MIN_RECALIBRATE else 0
    fit_idx, cal_idx = np.arange(n_cal, len(graphs)), np.arange(n_cal)
    fit_graphs = [graphs[i] for i in fit_idx]
    adapted, shift = shifted(base, fit_graphs, ms[fit_idx])
    if steps:
        adapted = adapted.finetune(fit_graphs, ms[fit_idx], steps=steps, lr=lr, seed=seed)
    if n_cal:
        adapted.calibrate([graphs[i] for i in cal_idx], ms[cal_idx])
    return adapted, {"n_adapt": len(fit_idx), "n_calibration": int(n_cal), "steps": steps,
                     "factor": float(np.exp(shift)), "lr": float(lr or adapted.train_config_.lr) if steps else None,
                     "seed": seed}
