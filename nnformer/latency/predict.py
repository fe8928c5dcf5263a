"""Latency of a model file or a PyTorch module in one call: milliseconds, a prediction interval, and what the
predictor knows of the model's operators.

    >>> from nnformer.latency.predict import predict_latency
    >>> r = predict_latency("model.onnx")  # the shipped CPU predictor  # doctest: +SKIP
    >>> r.ms, r.low, r.high, r.coverage.reliable  # doctest: +SKIP
    >>> predict_latency(torch_module, (1, 3, 224, 224), predictor="cpu-ort-b1@1")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import NNFormerError
from .coverage import Coverage, coverage


@dataclass(frozen=True)
class LatencyPrediction:
    ms: float
    low: float | None  # the interval (None when the predictor has no calibrated interval, or the model is mostly
    # operators it never trained on: then no interval can be trusted)
    high: float | None
    level: float | None  # nominal coverage of the interval
    coverage: Coverage
    predictor: str  # which predictor made it

    def to_dict(self) -> dict:
        return {"ms": self.ms, "low": self.low, "high": self.high, "level": self.level,
                "coverage": self.coverage.to_dict(), "predictor": self.predictor}


def resolve_predictor(predictor=None):
    """``(Predictor, label)``: a fitted predictor as given, a path or registry name, or (None) the shipped CPU one."""
    from .. import shipped
    from ..predictor import Predictor

    if isinstance(predictor, Predictor):
        card = getattr(predictor, "card_", {})
        return predictor, f"{card.get('name', 'predictor')}@{card.get('version', '-')}"
    spec = shipped.DEFAULT_LATENCY if predictor is None else predictor
    p = shipped.load_any(spec)
    card = getattr(p, "card_", {})
    label = f"{card['name']}@{card.get('version', '-')}" if card.get("name") else str(spec)
    if p.task != "latency":
        raise NNFormerError(f"{label} predicts accuracy of NB201 cells; models need a latency predictor")
    if p.vocab_.name != "onnx":
        raise NNFormerError(f"{label} was trained on {p.vocab_.name!r} graphs, not on ONNX models")
    return p, label


def predict_graphs(p, label: str, converted) -> list[LatencyPrediction]:
    """Predictions for ``converted`` (``ConvertedGraph`` s of :mod:`~nnformer.latency.onnx_graph`) with ``p``."""
    from .onnx_graph import with_static

    graphs = [with_static(g, s) for g, s in converted]
    iv = p.header_.get("interval")
    if iv:
        pred, lo, hi = p.predict_interval(graphs)
    else:
        pred = p.predict(graphs)
        lo = hi = [None] * len(graphs)
    out = []
    for g, m, a, b in zip(graphs, pred, lo, hi):
        cov = coverage(p, g)
        if not cov.reliable:  # the interval was calibrated on models like the training set, not on this one
            a = b = None
        out.append(LatencyPrediction(float(m), None if a is None else float(a), None if b is None else float(b),
                                     iv["level"] if iv else None, cov, label))
    return out


def to_graph(model, example_input=None, *, batch: int | None = None):
    """The graph and static features (a :class:`~nnformer.latency.onnx_graph.ConvertedGraph`) of an ONNX file
    (path or bytes; ``batch`` fills a symbolic batch dimension) or of a ``torch.nn.Module`` run on
    ``example_input`` (a tensor or a shape) through the ONNX exporter in memory."""
    from .onnx_graph import onnx_to_graph, torch_to_graph

    try:
        import torch

        is_module = isinstance(model, torch.nn.Module)
    except ImportError:  # pragma: no cover - torch is a dependency
        is_module = False
    if is_module:
        if example_input is None:
            raise NNFormerError("a PyTorch module needs an example input (a tensor or a shape such as (1, 3, 224, "
                                "224))")
        return torch_to_graph(model, example_input)
    if isinstance(model, (str, os.PathLike, bytes)):
        return onnx_to_graph(model, batch)
    raise NNFormerError(f"model must be an ONNX file or a torch.nn.Module, got {type(model).__name__}")


def predict_latency(model, example_input=None, *, predictor=None, batch: int | None = None) -> LatencyPrediction:
    """Predicted latency of ``model``: an ONNX file (path or bytes), or a ``torch.nn.Module`` with
    ``example_input`` (a tensor or a shape), exported through the ONNX exporter in memory.

    ``predictor``: a fitted :class:`~nnformer.Predictor`, a path, a registry name ``NAME[@VERSION]``, or None for
    the shipped CPU predictor (:data:`nnformer.shipped.DEFAULT_LATENCY`). ``batch`` fills a symbolic batch
    dimension of an ONNX file's inputs.
    """
    converted = to_graph(model, example_input, batch=batch)
    p, label = resolve_predictor(predictor)
    return predict_graphs(p, label, [converted])[0]
