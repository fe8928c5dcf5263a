"""A latency predictor adapted to a new device or runtime from a few of its measurements (`nnformer adapt`).

Two steps. First the offset: a new machine or thread count mostly scales every latency by one factor, so the
predictor's log-latency mean moves by the median of ``log(measured / predicted)`` over the measurements (this alone is
the ``rescaled`` row of benchmarks/results/latency-adapt). Then, with ``steps > 0``, the network is fine-tuned on the
measurements (:meth:`~nnformer.Predictor.finetune`) from that shifted start. With 30 or more measurements a fifth of
them (at least 6) is held back from both steps to recalibrate the prediction interval on the new device, since the
base predictor's interval was fitted to another one's errors; with fewer, the base interval is kept and the card says
so. :func:`adapt_profile` does it all from a predictor and a profile directory to a saved predictor directory.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import NNFormerError
from ..protocols import MIN_TRAIN
from ..shipped import DEFAULT_LATENCY

MIN_RECALIBRATE = 30


def shifted(base, graphs, ms):
    """A copy of ``base`` whose predictions are multiplied by the median ratio measured / predicted on ``graphs``.
    The probe of ``base``'s own device (``home_probe``) is not kept: the copy predicts for the measured device."""
    from .probe import HOME_KEY

    shift = float(np.median(np.log(np.asarray(ms, dtype=np.float64)) - np.log(base.predict(graphs))))
    out = copy.copy(base)
    out.target_ = dataclasses.replace(base.target_, mean=base.target_.mean + shift)
    out.header_ = {**{k: v for k, v in base.header_.items() if k != HOME_KEY}, "target": out.target_.to_dict()}
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


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """What :func:`adapt_profile` did: the adapted predictor, saved to ``out`` with ``card``; the base predictor as
    ``name@version``; how many measurements were drawn; and the MAPE (%) on them of the base predictor and of the
    adapted one (they were trained on: not a test error). The card holds :func:`adapt`'s info: ``n_adapt``,
    ``n_calibration`` (0: the base predictor's interval kept), ``steps``, ``factor``, ``lr`` and ``seed``."""

    predictor: object
    card: dict
    base: str
    n: int
    mape_before: float
    mape_after: float
    out: Path


def adapt_profile(profile: str | os.PathLike, out: str | os.PathLike, *, predictor: str | os.PathLike = DEFAULT_LATENCY,
                  n: int | None = None, steps: int = 100, lr: float | None = None, seed: int = 0,
                  name: str | None = None, version: str = "1", command: str | None = None) -> Adaptation:
    """Adapt a latency predictor of ONNX models to the measurements of a ``nnformer profile`` directory and save it
    as a new predictor directory (what ``nnformer adapt`` runs): the measured models are read, ``n`` of them drawn at
    random with ``seed`` (default: all, in a random order), :func:`adapt` applied, and the result saved to ``out``.

    Args:
        profile: the ``nnformer profile --out`` directory of measurements.
        out: the new predictor directory (new, empty, or a predictor directory, which is replaced); checked before
            any work.
        predictor: the predictor to start from: a shipped one's ``NAME[@VERSION]``, a predictor directory or a
            ``.pt`` file.
        n: how many measurements to use (at least :data:`~nnformer.protocols.MIN_TRAIN`).
        steps, lr, seed: as :func:`adapt` takes them.
        name: the new predictor's name (default: ``out``'s folder name).
        version: the new predictor's version.
        command: the command line its card records.

    Returns:
        An :class:`Adaptation`.
    """
    from ..io import check_output_dir
    from ..metrics import mape
    from ..predictor import check_predictor_dir
    from ..shipped import load_any
    from .sources import load_latency_data

    out = Path(out)
    if n is not None and n < MIN_TRAIN:
        raise NNFormerError(f"--n must be at least {MIN_TRAIN} (adapting needs {MIN_TRAIN} measured models), got {n}")
    check_predictor_dir(out, "--out ")  # before any work
    check_output_dir(out.parent if str(out.parent) else ".", "--out's folder")
    base = load_any(predictor)
    if base.task != "latency" or base.vocab_.name != "onnx":
        raise NNFormerError(f"{predictor} is not a latency predictor of ONNX models")
    data = load_latency_data(profile)
    graphs, ms = data.graphs, data.ms
    order = np.random.default_rng(seed).permutation(len(graphs))
    if n is not None:
        if n > len(graphs):
            raise NNFormerError(f"--n {n}: {profile} holds only {len(graphs)} measured models")
        order = order[:n]
    if len(order) < MIN_TRAIN:
        raise NNFormerError(f"{profile}: adapting needs at least {MIN_TRAIN} measured models, found {len(order)}")
    picked = [graphs[i] for i in order]
    before = base.predict(picked)
    adapted, info = adapt(base, picked, ms[order], steps=steps, lr=lr, seed=seed)
    after = adapted.predict(picked)
    base_card = getattr(base, "card_", {})
    based = f"{base_card.get('name', predictor)}@{base_card.get('version', '-')}"
    card = {"name": name or out.name, "version": version, "base": based, "profile": str(profile),
            "description": f"{based} adapted to {info['n_adapt']} measurements of {profile}", **info,
            "command": command}
    adapted.save(out, card=card)
    return Adaptation(adapted, card, based, len(order), mape(before, ms[order]), mape(after, ms[order]), out)
