"""The user-facing estimator: ``Predictor().fit(graphs, y).predict(graphs)``, ``save(path)``, ``load(path)``.

Hyper-parameters live in the constructor (an :class:`NNFormerConfig` and a :class:`TrainConfig`); learned state has a
trailing underscore. A saved predictor holds its configs, the selected EMA weights and the target scale, and is read
back with ``torch.load(weights_only=True)``.

Example:
    >>> from nnformer import Predictor, NNFormerConfig, TrainConfig
    >>> from nnformer.spaces.nb201 import arch_to_graph
    >>> gs = [arch_to_graph(s) for s in ['|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|',
    ...                                  '|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|']]
    >>> p = Predictor(NNFormerConfig(n_layers=1, dim=16), TrainConfig(epochs=2, eval_every=1), progress=False)
    >>> p.fit(gs, [0.9, 0.8]).predict(gs).shape
    (2,)
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from .batching import EncodedGraphs
from .errors import CheckpointError, DataError
from .graph import ArchGraph
from .model import NNFormerConfig, build_model, model_type_of, model_types
from .train import TrainConfig, TrainResult, _atomic_save, fit, load_checkpoint, predict_encoded


def _labels(y, n: int, what: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(y) != n:
        raise DataError(f"{what}: {n} graphs but {len(y)} labels")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise DataError(f"{what}: label {bad[0]} is {y[bad[0]]} (NaN or infinite labels cannot be trained on)")
    return y


def _dataclass_from(cls, d: dict, path):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise CheckpointError(f"{path}: unknown {cls.__name__} keys {sorted(unknown)}")
    try:
        return cls(**d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid {cls.__name__}: {e}") from None


class Predictor:
    """NN-Former accuracy predictor with the scikit-learn estimator contract.

    Args:
        model: the network's config (default: NN-Former's released configuration; a ``GCNConfig`` or
            ``MLPConfig`` from :mod:`nnformer.baselines` trains a baseline with the same loop).
        train: training recipe (default: :class:`TrainConfig` defaults).
        target_scale: labels are multiplied by this before training (``"auto"``: 0.01 when labels look like
            percentages, i.e. exceed 1.5, else 1), so the model sees accuracies in [0, 1] as in the paper.
        progress: show a progress bar while fitting.
    """

    def __init__(self, model=None, train: TrainConfig | None = None,
                 target_scale: float | str = "auto", progress: bool = True):
        self.model = model
        self.train = train
        self.target_scale = target_scale
        self.progress = progress

    def fit(self, graphs: Sequence[ArchGraph], y, val_graphs: Sequence[ArchGraph] | None = None, val_y=None,
            checkpoint: str | os.PathLike | None = None) -> "Predictor":
        """Train on ``graphs`` with labels ``y``; validation graphs pick the best EMA weights (``select``)."""
        model_cfg = self.model or NNFormerConfig()
        train_cfg = self.train or TrainConfig()
        y = _labels(y, len(graphs), "training set")
        if len(graphs) < 2:
            raise DataError("need at least 2 training graphs")
        if self.target_scale == "auto":
            self.scale_ = 0.01 if np.abs(y).max() > 1.5 else 1.0
        else:
            self.scale_ = float(self.target_scale)
        val = yv = None
        if val_graphs is not None and len(val_graphs) > 1:
            yv = _labels(val_y, len(val_graphs), "validation set") * self.scale_
            val = EncodedGraphs(val_graphs)
        self.result_: TrainResult = fit(model_cfg, train_cfg, EncodedGraphs(graphs), y * self.scale_, val, yv,
                                        checkpoint=checkpoint, progress=self.progress)
        self.model_ = self.result_.model
        self.model_config_, self.train_config_ = model_cfg, train_cfg
        self.history_ = self.result_.history
        return self

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise RuntimeError("this Predictor is not fitted yet: call fit() or Predictor.load()")

    def predict(self, graphs: Sequence[ArchGraph] | EncodedGraphs, batch_size: int = 2048,
                progress: bool = False) -> np.ndarray:
        """Predicted labels, in the units of the training labels."""
        self._check_fitted()
        data = graphs if isinstance(graphs, EncodedGraphs) else EncodedGraphs(graphs)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(data), desc="predict", unit="arch")
        device = next(self.model_.parameters()).device
        out = predict_encoded(self.model_, data, batch_size, device=str(device), progress=bar.update if bar else None)
        if bar:
            bar.close()
        return out / self.scale_

    def to(self, device: str | torch.device) -> "Predictor":
        """Run the network on ``device`` (e.g. ``"cuda"``) from now on; predictions come back as NumPy either way."""
        self._check_fitted()
        self.model_.to(device)
        return self

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted predictor (configs, EMA weights, target scale, history) atomically."""
        self._check_fitted()
        path = Path(path)
        _atomic_save({
            "format": "nnformer-predictor-1",
            "model_type": model_type_of(self.model_config_),
            "model_config": asdict(self.model_config_),
            "train_config": asdict(self.train_config_),
            "model": self.model_.state_dict(),
            "scale": self.scale_,
            "history": self.history_,
        }, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Predictor":
        """Rebuild a predictor saved by :meth:`save` (or a training checkpoint); never executes code."""
        ck = load_checkpoint(path)
        kind = ck.get("model_type", "nnformer")
        if kind not in model_types():
            raise CheckpointError(f"{path}: unknown network type {kind!r}")
        mc = _dataclass_from(model_types()[kind][0], ck["model_config"], path)
        tc_dict = ck.get("train_config") or ck.get("train_state", {}).get("train_config", {})
        tc = _dataclass_from(TrainConfig, tc_dict, path)
        model = build_model(mc)
        try:
            model.load_state_dict(ck["model"])
        except (RuntimeError, KeyError) as e:
            raise CheckpointError(f"{path}: weights do not match the saved config: {str(e).splitlines()[0]}") from None
        model.eval()
        p = cls(mc, tc, target_scale=ck.get("scale", 1.0), progress=False)
        p.model_, p.model_config_, p.train_config_ = model, mc, tc
        p.scale_ = float(ck.get("scale", 1.0))
        p.history_ = ck.get("history") or ck.get("train_state", {}).get("history", [])
        return p
