"""The one way to train and use a predictor: ``Predictor(recipe).fit(graphs, y).predict(graphs)``, ``save``, ``load``.

``Predictor()`` trains the default recipe (``scaled``, :mod:`nnformer.recipes`); ``Predictor("released")`` the
authors' recipe; ``settings={"dim": 64, "seed": 1}`` overrides fields of the recipe (checked against its
dataclasses); ``network=`` trains another network (e.g. a baseline's ``GCNConfig``) with the recipe's training, and
``train=`` replaces the training configuration and its step budget with an explicit :class:`TrainConfig`. The CLI,
the reproduction sweeps and the benchmark scripts all train through this class.

Learned state has a trailing underscore. A saved predictor holds the resolved recipe, the op vocabulary, the
selected EMA weights, the target transform, the op types, sizes and operator mixes of the graphs it trained on (what
:mod:`nnformer.latency.coverage` checks a model against) and its calibrated interval: one ``.pt`` file
read back with ``torch.load(weights_only=True)``, or a directory of ``weights.safetensors`` and ``config.json`` (the
form shipped predictors take: :mod:`nnformer.shipped`). The fitted torch network is ``network_`` (``model=`` and
``model_`` are the deprecated names of ``network=`` and ``network_``; the saved forms, whose keys say ``model``, are
unchanged).

Example:
    >>> from nnformer import Predictor
    >>> from nnformer.spaces.nb201 import arch_to_graph
    >>> gs = [arch_to_graph(s) for s in ['|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|',
    ...                                  '|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|']]
    >>> p = Predictor(settings={"n_layers": 1, "dim": 16, "epochs": 2}, progress=False)
    >>> p.fit(gs, [0.9, 0.8]).predict(gs).shape
    (2,)
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .batching import EncodedGraphs
from .errors import CheckpointError, DataError, one_line
from .graph import ArchGraph
from .io import atomic_torch_save, sha256_of
from .latency.coverage import mix_record
from .metrics import conformal_quantile
from .protocols import MIN_CALIBRATION, MIN_TRAIN, MIN_VALIDATION
from .recipes import DEFAULT_RECIPE, Recipe, RecipeError, get_recipe
from .regressors import build_model, model_types
from .targets import TASKS, Target
from .train import (CHECKPOINT_FORMAT, TrainConfig, TrainResult, checkpoint_header, fit, load_checkpoint,
                    predict_encoded)
from .vocab import OpVocab, vocab_for


def _labels(y, n: int, what: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(y) != n:
        raise DataError(f"{what}: {n} graphs but {len(y)} labels")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise DataError(f"{what}: label {bad[0]} is {y[bad[0]]} (NaN or infinite labels cannot be trained on)")
    return y


def _dataclass_from(cls, d: dict, path):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise CheckpointError(f"{path}: unknown {cls.__name__} keys {sorted(unknown)}")
    for f in dataclasses.fields(cls):  # a switch must be a bool: None or 0 would pass the constructor and fail later
        if f.name in d and isinstance(f.default, bool) and not isinstance(d[f.name], bool):
            raise CheckpointError(f"{path}: invalid {cls.__name__}: {f.name} must be true or false, got "
                                  f"{d[f.name]!r}")
    try:
        return cls(**d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid {cls.__name__}: {e}") from None


def _finite_numbers(v, n: int | None = None) -> bool:
    return (isinstance(v, list) and (n is None or len(v) == n) and
            all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v))


def _check_header(ck: dict, mc, path) -> None:
    """The saved records that prediction reads (graph-feature normalisation, the training graphs' operator mixes)
    have the shapes, types and ranges it needs (standard deviations as ``_graph_norm`` writes them, above 1e-8): a
    config re-signed with other values is refused here, not mid-prediction."""
    norm = ck.get("graph_features_norm")
    if norm is not None:
        n = getattr(mc, "n_graph_features", None)
        if not (isinstance(norm, dict) and _finite_numbers(norm.get("mean"), n or None) and
                _finite_numbers(norm.get("std"), len(norm.get("mean") or [])) and
                all(1e-8 < x < 1e9 for x in norm["std"]) and all(abs(x) < 1e9 for x in norm["mean"])):
            raise CheckpointError(f"{path}: graph_features_norm is not {n or 'the'} finite means and positive "
                                  f"standard deviations")
    mix = ck.get("train_op_mix")
    if mix is not None:
        num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)  # noqa: E731
        if not (isinstance(mix, dict) and num(mix.get("step")) and mix["step"] > 0 and num(mix.get("within")) and
                mix["within"] >= 0 and isinstance(mix.get("mixes"), list) and
                all(isinstance(m, dict) and all(isinstance(k, str) and num(v) and 0 <= v <= 1 for k, v in m.items())
                    for m in mix["mixes"])):
            raise CheckpointError(f"{path}: train_op_mix is not a record of operator mixes (step, within, mixes)")


def _fingerprint(train: EncodedGraphs, y, val: EncodedGraphs | None, yv) -> str:
    """sha256 of the training and validation graphs and labels: a checkpoint resumes only on the same data."""
    import hashlib

    h = hashlib.sha256()
    for part in (train.ops, train.edges(), train.depth, train.features, np.asarray(y, np.float64)) + (
            () if val is None else (val.ops, val.edges(), val.depth, val.features, np.asarray(yv, np.float64))):
        h.update(b"|" if part is None else np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def _size_ranges(graphs: Sequence[ArchGraph], before: dict | None = None) -> dict:
    """The smallest and largest node count, depth and each graph-level feature of the training graphs (saved with
    the predictor as ``train_ranges``: how large and how small the models it has seen were), widened by ``before``.
    What they were made of is :func:`~nnformer.latency.coverage.mix_record` (``train_op_mix``)."""
    def span(values, old):
        lo, hi = float(np.min(values)), float(np.max(values))
        return [min(lo, old[0]), max(hi, old[1])] if old else [lo, hi]

    before = before or {}
    out = {"nodes": span([g.num_nodes for g in graphs], before.get("nodes")),
           "depth": span([g.depth_value for g in graphs], before.get("depth"))}
    if graphs and all(g.graph_features is not None for g in graphs):
        f = np.stack([np.asarray(g.graph_features, dtype=np.float64) for g in graphs])
        old = before.get("graph_features") or [None] * f.shape[1]
        if len(old) == f.shape[1]:
            out["graph_features"] = [span(f[:, j], old[j]) for j in range(f.shape[1])]
    return out


def _op_counts(graphs: Sequence[ArchGraph]) -> dict[str, int]:
    """How many nodes of each op type the training graphs hold (saved with the predictor: what it has seen)."""
    counts: dict[str, int] = {}
    for g in graphs:
        for op in g.ops:
            counts[op] = counts.get(op, 0) + 1
    return dict(sorted(counts.items()))


def _graph_norm(data: EncodedGraphs) -> dict | None:
    """Mean and standard deviation of each graph-level feature over the training graphs (saved with the predictor:
    graph features are standardised with them wherever the predictor meets a graph)."""
    if data.graph_features is None:
        return None
    f = data.graph_features.astype(np.float64)
    return {"mean": f.mean(0).tolist(), "std": np.where(f.std(0) > 1e-8, f.std(0), 1.0).tolist()}


def _apply_norm(data: EncodedGraphs, norm: dict | None) -> EncodedGraphs:
    if norm and data.graph_features is not None and data.graph_features.shape[1] == len(norm["mean"]):
        data.graph_features = ((data.graph_features - np.asarray(norm["mean"])) / np.asarray(norm["std"])).astype(
            np.float32)
    return data


class Predictor:
    """NN-Former (or a baseline) accuracy predictor with the scikit-learn estimator contract.

    Args:
        recipe: a recipe name from :data:`nnformer.recipes.RECIPES` or a :class:`~nnformer.recipes.Recipe`
            (default: ``scaled``).
        network: train this network config instead of the recipe's (a ``GCNConfig`` or ``MLPConfig`` from
            :mod:`nnformer.baselines` trains a baseline with the same loop and the recipe's training).
        train: an explicit :class:`TrainConfig` (its ``epochs`` and ``eval_every`` as given) instead of the
            recipe's training and step budget.
        settings: ``{key: value}`` overrides of the recipe, applied last (``nnformer train --set key=value``).
        vocab: the op vocabulary (default: the built-in one holding every op of the training graphs).
        task: ``accuracy`` (labels as they are, scaled), ``latency`` (positive labels, learnt as standardised
            logs) or ``score`` (labels already standardised, learnt as they are): :mod:`nnformer.targets`;
            predictions come back in the labels' units in every case.
        target_scale: for accuracy, labels are multiplied by this before training (``"auto"``: 0.01 when labels
            look like percentages, i.e. exceed 1.5, else 1), so the model sees accuracies in [0, 1] as in the paper.
        progress: show a progress bar while fitting.
        model: the deprecated name of ``network`` (a :class:`DeprecationWarning`; passing both is a TypeError).

    Fitted, ``network_`` is the trained torch network (``model_``: its deprecated name).
    """

    def __init__(self, recipe: str | Recipe = DEFAULT_RECIPE, *, network=None, train: TrainConfig | None = None,
                 settings: Mapping[str, Any] | None = None, vocab: OpVocab | None = None, task: str = "accuracy",
                 target_scale: float | str = "auto", progress: bool = True, model=None):
        if model is not None:
            if network is not None:
                raise TypeError("pass network= only: model= is its deprecated name, not a second setting")
            warnings.warn("model= is renamed network= (Predictor(network=...)); model= will be removed",
                          DeprecationWarning, stacklevel=2)
            network = model
        if not isinstance(recipe, (str, Recipe)):
            raise TypeError(f"recipe must be a recipe name or a Recipe, got {type(recipe).__name__} "
                            f"(pass network and training configs as network=... and train=...)")
        self.recipe = recipe
        self.network = network
        self.train = train
        self.settings = dict(settings or {})
        self.vocab = vocab
        if task not in TASKS:
            raise RecipeError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
        self.task = task
        self.target_scale = target_scale
        self.progress = progress
        self.recipe_at(1)  # an unknown recipe or setting fails here, before any data is read

    def recipe_at(self, n_train: int) -> Recipe:
        """The recipe this predictor trains with on ``n_train`` graphs: tiers resolved, every override applied."""
        r = get_recipe(self.recipe)
        if self.network is not None:
            if type(self.network) not in {c for c, _ in model_types().values()}:
                raise RecipeError(f"network must be the config of a registered network, got "
                                  f"{type(self.network).__name__}")
            r = r.with_model(self.network)
        if self.train is not None:
            r = Recipe(r.name, r.model, self.train, steps=0, min_epochs=self.train.epochs, evals=None)
        return r.with_settings(self.settings).resolve(n_train)

    def plan(self, graphs: Sequence[ArchGraph] | EncodedGraphs) -> tuple[Recipe, Any, TrainConfig]:
        """The resolved recipe and the network and training configs that :meth:`fit` would use on ``graphs``
        (the epoch count follows from the step budget and the number of batches an epoch)."""
        data = graphs if isinstance(graphs, EncodedGraphs) else EncodedGraphs(graphs, self.vocab)
        plan = self.recipe_at(len(data))
        for field, width in (("n_graph_features", 0 if data.graph_features is None else data.graph_features.shape[1]),
                             ("n_features", 0 if data.features is None else data.features.shape[2])):
            want = getattr(plan.model, field, None)  # None: a network that reads no such features
            if want == 0 and width:  # the network reads the graphs' features: its input width follows them
                plan = dataclasses.replace(plan, model=dataclasses.replace(plan.model, **{field: width}))
            elif want and want != width:
                what = "graph" if field == "n_graph_features" else "node"
                raise RecipeError(f"the network reads {want} {what} features, the graphs carry {width}")
        model_cfg, train_cfg = plan.configs(len(data.batches(plan.train.batch_size, plan.train.bucket,
                                                             size_sorted=plan.train.size_sorted,
                                                             max_cells=plan.train.max_cells)))
        try:
            data.vocab.check_width(getattr(model_cfg, "n_op_types", data.vocab.width))
        except ValueError as e:
            raise RecipeError(str(e)) from None
        return plan, model_cfg, train_cfg

    def fit(self, graphs: Sequence[ArchGraph], y, val_graphs: Sequence[ArchGraph] | None = None, val_y=None,
            checkpoint: str | os.PathLike | None = None,
            on_eval: Callable[[dict, Any], None] | None = None) -> "Predictor":
        """Train on ``graphs`` with labels ``y``; validation graphs pick the best EMA weights (``select``).

        ``checkpoint``: a training checkpoint, written at every validation and resumed from when it exists.
        ``on_eval(record, ema_model)``: called at every validation (its time is not counted as training time).
        At least :data:`~nnformer.protocols.MIN_TRAIN` training graphs, and no validation graph or at least
        :data:`~nnformer.protocols.MIN_VALIDATION`, else a :class:`DataError` before any work.
        """
        y = _labels(y, len(graphs), "training set")
        if len(graphs) < MIN_TRAIN:
            raise DataError(f"need at least {MIN_TRAIN} training graphs, got {len(graphs)}")
        if val_graphs is not None and 0 < len(val_graphs) < MIN_VALIDATION:
            raise DataError(f"need no validation graph or at least {MIN_VALIDATION}, got {len(val_graphs)} (one graph "
                            f"cannot be ranked to pick the best weights)")
        vocab = self.vocab or vocab_for(g.ops for g in graphs)
        target = Target.for_labels(self.task, y, self.target_scale)
        data = EncodedGraphs(graphs, vocab)
        plan, model_cfg, train_cfg = self.plan(data)
        if train_cfg.loss == "relative":
            if target.kind != "log":
                raise RecipeError("loss=relative is for latency predictors (task='latency'), whose targets are logs")
            train_cfg = dataclasses.replace(train_cfg, relative_scale=target.std)
        norm = _graph_norm(data)
        _apply_norm(data, norm)
        val = yv = None
        if val_graphs is not None and len(val_graphs) > 1:
            yv = target.forward(_labels(val_y, len(val_graphs), "validation set"))
            val = _apply_norm(EncodedGraphs(val_graphs, vocab), norm)
        header = checkpoint_header(model_cfg, train_cfg, recipe=plan.to_dict(), vocab=vocab.to_dict(),
                                   task=self.task, target=target.to_dict(), data=_fingerprint(data, y, val, yv),
                                   seen_ops=_op_counts(graphs), train_ranges=_size_ranges(graphs),
                                   **({"graph_features_norm": norm} if norm else {}),
                                   **({"train_op_mix": mix} if (mix := mix_record(graphs)) else {}))
        self.result_: TrainResult = fit(model_cfg, train_cfg, data, target.forward(y), val, yv,
                                        checkpoint=checkpoint, progress=self.progress, on_eval=on_eval,
                                        header=header)
        self.network_ = self.result_.model
        self.model_config_, self.train_config_, self.recipe_ = model_cfg, train_cfg, plan
        self.vocab_, self.target_, self.header_ = vocab, target, header
        self.history_ = self.result_.history
        return self

    def finetune(self, graphs: Sequence[ArchGraph], y, *, steps: int = 100, lr: float | None = None,
                 seed: int | None = None) -> "Predictor":
        """A new predictor: these weights trained further on ``graphs`` / ``y`` (e.g. a few measurements of a new
        device) for ``steps`` optimizer steps, with the same network, op vocabulary and target transform.

        No warm-up; the learning rate (default: the training's) decays by the cosine schedule and the last EMA
        weights are kept (there is no validation set). ``self`` is left as it is.
        """
        import copy
        import math

        self._check_fitted()
        if steps < 1:
            raise DataError(f"steps must be at least 1, got {steps}")
        y = _labels(y, len(graphs), "fine-tuning set")
        if len(graphs) < MIN_TRAIN:
            raise DataError(f"need at least {MIN_TRAIN} fine-tuning graphs, got {len(graphs)}")
        data = self.encode(graphs)
        self._check_graph_features(data)
        tc = self.train_config_
        per_epoch = len(data.batches(tc.batch_size, tc.bucket, size_sorted=tc.size_sorted, max_cells=tc.max_cells))
        epochs = math.ceil(steps / per_epoch)
        device = str(next(self.network_.parameters()).device)
        cfg = dataclasses.replace(tc, epochs=epochs, lr=float(lr or tc.lr), warmup=0.0, select="last",
                                  eval_every=epochs, seed=tc.seed if seed is None else int(seed), device=device)
        seen = dict(self.header_.get("seen_ops") or {})
        for op, k in _op_counts(graphs).items():
            seen[op] = seen.get(op, 0) + k
        header = {**self.header_, "train_config": dataclasses.asdict(cfg), "seen_ops": seen,
                  "train_ranges": _size_ranges(graphs, self.header_.get("train_ranges")),
                  "finetuned": {"steps": epochs * per_epoch, "n": len(graphs),
                                "data": _fingerprint(data, y, None, None), "from": self.header_.get("data")}}
        if self.header_.get("train_op_mix"):  # widened; a predictor saved without one does not get one from these few
            header["train_op_mix"] = mix_record(graphs, self.header_["train_op_mix"])
        result = fit(self.model_config_, cfg, data, self.target_.forward(y), progress=False, header=header,
                     init_state=self.network_.state_dict())
        out = copy.copy(self)
        out.result_, out.network_, out.train_config_, out.header_ = result, result.model, cfg, header
        out.history_ = [*self.history_, *({**h, "finetune": True} for h in result.history)]
        return out

    def _check_graph_features(self, data: EncodedGraphs) -> None:
        want = getattr(self.model_config_, "n_graph_features", None)
        have = 0 if data.graph_features is None else data.graph_features.shape[1]
        if want is not None and want != have:
            raise DataError(f"this predictor reads {want} graph features per graph, the graphs carry {have}")

    def _check_fitted(self):
        if not hasattr(self, "network_"):
            raise RuntimeError("this Predictor is not fitted yet: call fit() or Predictor.load()")

    def encode(self, graphs: Sequence[ArchGraph]) -> EncodedGraphs:
        """``graphs`` padded and encoded with this predictor's op vocabulary (for repeated :meth:`predict` calls)."""
        self._check_fitted()
        return _apply_norm(EncodedGraphs(graphs, self.vocab_), self.header_.get("graph_features_norm"))

    def predict(self, graphs: Sequence[ArchGraph] | EncodedGraphs, batch_size: int = 2048,
                progress: bool = False) -> np.ndarray:
        """Predicted labels, in the units of the training labels."""
        self._check_fitted()
        if isinstance(graphs, EncodedGraphs):
            if graphs.vocab is not None and graphs.vocab != self.vocab_:
                raise DataError(f"graphs were encoded with the {graphs.vocab.name!r} op vocabulary, this predictor "
                                f"uses {self.vocab_.name!r}: encode them with Predictor.encode")
            data = graphs
        else:
            data = self.encode(graphs)
        self._check_graph_features(data)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(data), desc="predict", unit="arch")
        device = next(self.network_.parameters()).device
        out = predict_encoded(self.network_, data, batch_size, device=str(device), progress=bar.update if bar else None)
        if bar:
            bar.close()
        return self.target_.inverse(out)

    def calibrate(self, graphs: Sequence[ArchGraph] | EncodedGraphs, y, level: float = 0.9,
                  unfamiliar: bool = False, note: str = "") -> "Predictor":
        """Fit the prediction interval on graphs the predictor was not trained on (split conformal prediction).

        The interval's half-width is the ``level`` quantile (with the finite-sample correction ``ceil((n + 1)
        level) / n``) of the absolute errors on these graphs, measured in log latency for a latency predictor (the
        interval is then ``prediction * exp(+-q)``, as wide in ratio at every latency) and in label units for
        accuracy. Saved with the predictor; :meth:`predict_interval` uses it. Returns ``self``.

        ``unfamiliar=True`` fits the second, wider interval, for models unlike the training graphs: ``graphs``
        are then models of families held out of training that the coverage verdict flags for their operator mix
        (:attr:`nnformer.latency.coverage.Coverage.mix_only`), and ``note`` says which; kept apart as
        ``interval_unfamiliar``, used by ``predict_interval(..., unfamiliar=True)``.
        """
        self._check_fitted()
        if not 0 < level < 1:
            raise DataError(f"level must be between 0 and 1, got {level}")
        n = len(graphs)
        y = _labels(y, n, "calibration set")
        if n < MIN_CALIBRATION:
            raise DataError(f"need at least {MIN_CALIBRATION} calibration graphs, got {n}")
        pred = self.predict(graphs)
        err = np.abs(np.log(pred) - np.log(y)) if self.target_.kind == "log" else np.abs(pred - y)
        q = conformal_quantile(err, level) * (1 + 1e-9) + 1e-12  # its own point stays inside after exp/log
        record = {"method": "conformal", "level": float(level), "q": q, "n": n,
                  "space": "log" if self.target_.kind == "log" else "label"}
        self.header_ = {**self.header_, ("interval_unfamiliar" if unfamiliar else "interval"):
                        {**record, "note": note} if note else record}
        return self

    def interval_bounds(self, pred, unfamiliar: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of the calibrated conformal interval around the predictions ``pred`` (``unfamiliar``:
        the wider one for models unlike the training graphs)."""
        key = "interval_unfamiliar" if unfamiliar else "interval"
        iv = self.header_.get(key)
        if not iv:
            raise DataError("this predictor has no calibrated interval: call calibrate() on held-out graphs "
                            "(nnformer train calibrates on a held-out share of the training data)" if not unfamiliar
                            else "this predictor has no interval for unfamiliar models: call calibrate(..., "
                                 "unfamiliar=True) on models of families it never trained on")
        pred, q = np.asarray(pred, dtype=np.float64), iv["q"]
        if iv.get("space") == "log":
            return pred * np.exp(-q), pred * np.exp(q)
        return pred - q, pred + q

    def predict_interval(self, graphs: Sequence[ArchGraph] | EncodedGraphs, method: str = "conformal",
                         level: float = 0.9, samples: int = 30, seed: int = 0, batch_size: int = 2048,
                         unfamiliar: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prediction, low, high)``: the point prediction and an interval meant to hold the true label with
        probability ``level``.

        ``method="conformal"`` (default) uses the error quantile fitted by :meth:`calibrate` (its level, not
        ``level``); ``"mc-dropout"`` runs the network ``samples`` times with dropout on and takes the
        ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those predictions (no calibration needed; measured
        to cover less than its nominal level: docs/latency-product.md). ``unfamiliar=True``: the wider conformal
        interval for models unlike the training graphs (:meth:`calibrate` with ``unfamiliar=True``).
        """
        self._check_fitted()
        pred = self.predict(graphs, batch_size=batch_size)
        if method == "conformal":
            return (pred, *self.interval_bounds(pred, unfamiliar))
        if method != "mc-dropout":
            raise DataError(f"unknown interval method {method!r}; methods: conformal, mc-dropout")
        import torch

        data = graphs if isinstance(graphs, EncodedGraphs) else self.encode(graphs)
        device = str(next(self.network_.parameters()).device)
        draws = np.empty((samples, len(data)))
        cuda = torch.device(device).type == "cuda"
        with torch.random.fork_rng(devices=[torch.device(device).index or 0] if cuda else [],
                                   device_type="cuda"):  # the caller's random state is left as it was
            torch.manual_seed(seed)  # dropout masks draw from torch's generator (model.Dropout)
            try:
                self.network_.train()  # dropout on; the network has no other train-mode behaviour
                with torch.no_grad():
                    for t in range(samples):
                        for idx in data.batches(batch_size, bucket=True):
                            draws[t, idx] = self.network_(data.batch(idx).to(device)).double().cpu().numpy()
            finally:
                self.network_.eval()
        draws = self.target_.inverse(draws)
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return pred, lo, hi

    @property
    def model(self):
        """Deprecated name of ``network`` (the network config given to the constructor)."""
        warnings.warn("Predictor.model is renamed Predictor.network", DeprecationWarning, stacklevel=2)
        return self.network

    @property
    def model_(self):
        """Deprecated name of ``network_`` (the fitted torch network)."""
        warnings.warn("Predictor.model_ is renamed Predictor.network_", DeprecationWarning, stacklevel=2)
        return self.network_

    @property
    def scale_(self) -> float:
        """The factor accuracy labels were multiplied by (1 for a latency predictor)."""
        return self.target_.factor

    def to(self, device) -> "Predictor":
        """Run the network on ``device`` (e.g. ``"cuda"``) from now on; predictions come back as NumPy either way."""
        self._check_fitted()
        self.network_.to(device)
        return self

    def save(self, path: str | os.PathLike, card: Mapping[str, Any] | None = None) -> Path:
        """Write the fitted predictor atomically.

        A path ending in ``.pt`` gets one PyTorch file (recipe, vocabulary, EMA weights, target transform, history;
        read back with ``torch.load(weights_only=True)``; every member of the archive, settings and weights alike,
        carries a CRC-32 that is checked before it is read). Any other path is a directory in the portable form that
        shipped predictors use: ``weights.safetensors`` and ``config.json`` (everything else, plain JSON, with the
        weights' sha256, the sha256 of the config itself, and ``card``: a name, version and description, for
        predictors meant to be shared).
        """
        self._check_fitted()
        if Path(path).suffix == ".pt":
            return atomic_torch_save({**self.header_, "model": self.network_.state_dict(), "history": self.history_},
                                     path)
        return _save_dir(self, Path(path), dict(card or {}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Predictor":
        """Rebuild a predictor saved by :meth:`save` (a ``.pt`` file, the predictor inside a training checkpoint,
        or a predictor directory); never executes code. A directory's ``config.json`` must match the sha256 it
        records of itself, and its weights the sha256 it records of them."""
        ck = _load_dir(Path(path)) if Path(path).is_dir() else load_checkpoint(path)
        return cls._from_checkpoint(ck, path)

    @classmethod
    def _from_checkpoint(cls, ck: dict, path) -> "Predictor":
        try:
            return cls._rebuild(ck, path)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            # a checkpoint or config whose digests hold but whose structure does not (written by other code)
            raise CheckpointError(f"{path}: not a predictor this nnformer can rebuild ({type(e).__name__}: "
                                  f"{one_line(e)})") from None

    @classmethod
    def _rebuild(cls, ck: dict, path) -> "Predictor":
        kind = ck.get("model_type", "nnformer")
        if kind not in model_types():
            raise CheckpointError(f"{path}: unknown network type {kind!r}")
        mc = _dataclass_from(model_types()[kind][0], ck["model_config"], path)
        tc = _dataclass_from(TrainConfig, ck.get("train_config", {}), path)
        _check_header(ck, mc, path)
        vocab = OpVocab.from_dict(ck.get("vocab"), str(path))
        if vocab.width > getattr(mc, "n_op_types", vocab.width):
            raise CheckpointError(f"{path}: op vocabulary {vocab.name!r} is wider than the network's op types")
        model = build_model(mc)
        try:
            model.load_state_dict(ck["model"])
        except (RuntimeError, KeyError) as e:
            raise CheckpointError(f"{path}: weights do not match the saved config: {str(e).splitlines()[0]}") from None
        model.eval()
        rec = ck.get("recipe") or {}
        task = ck.get("task", "accuracy")
        if task not in TASKS:
            raise CheckpointError(f"{path}: unknown task {task!r}")
        p = cls(progress=False, vocab=vocab, task=task)
        p.recipe = rec.get("name", DEFAULT_RECIPE)
        p.network_, p.model_config_, p.train_config_, p.vocab_ = model, mc, tc, vocab
        p.target_ = Target.from_dict(ck.get("target"), str(path))
        p.header_ = {k: ck[k] for k in ck if k not in ("model", "history", "train_state", "weights", "card",
                                                       CONFIG_DIGEST)}
        p.header_["format"] = CHECKPOINT_FORMAT  # a directory's config says its own format: saved as .pt, it is this
        p.history_ = ck.get("history") or []
        p.card_ = dict(ck.get("card") or {})
        return p


DIR_FORMAT = "nnformer-predictor-dir-1"
WEIGHTS_FILE, CONFIG_FILE = "weights.safetensors", "config.json"
CONFIG_DIGEST = "config_sha256"  # the key of config.json that holds the sha256 of the rest of it


def config_digest(config: Mapping[str, Any]) -> str:
    """The sha256 of a predictor directory's config without its :data:`CONFIG_DIGEST` key, in canonical JSON (keys
    sorted, no spaces): a changed value changes it; a changed layout of the file does not."""
    import hashlib
    import json

    rest = {k: v for k, v in config.items() if k != CONFIG_DIGEST}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_predictor_dir(path: Path, what: str = "") -> None:
    """Refuse a path where a predictor directory cannot be written whole: a file, or a non-empty directory that is
    not a predictor directory (one is replaced whole)."""
    from .errors import NNFormerError

    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / CONFIG_FILE).is_file())):
        raise NNFormerError(f"{what}{path} exists and is not a predictor directory; name a new or empty directory")


def _save_dir(p: Predictor, path: Path, card: dict) -> Path:
    """weights.safetensors + config.json, written in a temporary directory beside ``path`` and renamed into place
    (an older predictor directory there is replaced whole; any other non-empty directory is refused)."""
    import json
    import shutil
    import tempfile

    from safetensors.torch import save_file

    check_predictor_dir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    try:
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in p.network_.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": DIR_FORMAT})
        config = {**p.header_, "format": DIR_FORMAT, "card": card, "history": p.history_,
                  "weights": {"file": WEIGHTS_FILE, "sha256": sha256_of(tmp / WEIGHTS_FILE)}}
        config = json.loads(json.dumps(config))  # as it will be read back (tuples as lists, keys as strings)
        config[CONFIG_DIGEST] = config_digest(config)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it private; a predictor directory is as readable as any folder
        for f in (WEIGHTS_FILE, CONFIG_FILE):
            (tmp / f).chmod(0o666 & ~umask)
        old = None
        if path.exists():
            old = path.with_name(f".tmp-{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _load_dir(path: Path) -> dict:
    """A predictor directory's config.json and weights, checked: the config must match the sha256 it records of
    itself, and the weights file the sha256 the config names, before the weights are parsed."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path = path / CONFIG_FILE
    try:
        config = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is a directory without {CONFIG_FILE}: not a predictor directory") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"cannot read {cfg_path}: {one_line(e)}") from None
    if not isinstance(config, dict) or config.get("format") != DIR_FORMAT:
        raise CheckpointError(f"{cfg_path}: not a predictor config (format {DIR_FORMAT!r} expected)")
    if CONFIG_DIGEST not in config:
        raise CheckpointError(f"{cfg_path} records no sha256 of itself ({CONFIG_DIGEST!r}), so its settings cannot "
                              f"be checked: restore the file, or save the predictor again with this nnformer "
                              f"(`Predictor.save(DIR)`, `nnformer adapt --out DIR`)")
    if config[CONFIG_DIGEST] != config_digest(config):
        raise CheckpointError(f"{cfg_path} does not match the sha256 it records of itself (edited or damaged: its "
                              f"settings change the predictions); restore it or save the predictor again")
    weights = config.get("weights") or {}
    if not isinstance(weights, dict):
        raise CheckpointError(f"{cfg_path}: 'weights' must name the weights file and its sha256")
    w_path = path / str(weights.get("file", WEIGHTS_FILE))
    if w_path.parent != path:
        raise CheckpointError(f"{cfg_path}: the weights file must lie in the predictor directory")
    try:
        digest = sha256_of(w_path)
    except OSError as e:
        raise CheckpointError(f"cannot read {w_path}: {e.strerror}") from None
    if digest != weights.get("sha256"):
        raise CheckpointError(f"{w_path} does not match the sha256 in {CONFIG_FILE} (tampered with or truncated)")
    try:
        state = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {w_path}: {one_line(e)}") from None
    return {**config, "model": state}
