"""A latency predictor adapted to a new device or runtime from a few of its measurements (`nnformer adapt`).

The network is fine-tuned on the measurements (:meth:`~nnformer.Predictor.finetune`); with 30 or more, a fifth of
them (at least 6) is held back to recalibrate the prediction interval on the new device, since the base predictor's
interval was fitted to another one's errors. With fewer, the base interval is kept and the card says so.
"""

from __future__ import annotations

import numpy as np

from ..errors import NNFormerError

MIN_RECALIBRATE = 30


def adapt(base, graphs, ms, *, steps: int = 100, lr: float | None = None, seed: int = 0):
    """``(adapted predictor, info)`` from ``base`` and the measured ``graphs`` / ``ms`` (in the order given: the
    caller draws them). ``info``: how many measurements trained and recalibrated."""
    ms = np.asarray(ms, dtype=np.float64)
    if base.task != "latency":
        raise NNFormerError("only a latency predictor can be adapted to a device")
    if len(graphs) < 2:
        raise NNFormerError(f"adapting needs at least 2 measured models, got {len(graphs)}")
    n_cal = len(graphs) // 5 if len(graphs) >= MIN_RECALIBRATE else 0
    fit_idx, cal_idx = np.arange(n_cal, len(graphs)), np.arange(n_cal)
    adapted = base.finetune([graphs[i] for i in fit_idx], ms[fit_idx], steps=steps, lr=lr, seed=seed)
    if n_cal:
        adapted.calibrate([graphs[i] for i in cal_idx], ms[cal_idx])
    return adapted, {"n_adapt": len(fit_idx), "n_calibration": int(n_cal), "steps": steps,
                     "lr": float(lr or adapted.train_config_.lr), "seed": seed}
