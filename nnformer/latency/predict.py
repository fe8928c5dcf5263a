"""Latency of a model file or a PyTorch module in one call: milliseconds, a prediction interval, and what the
predictor knows of the model's operators.

    >>> from nnformer.latency.predict import predict_latency
    >>> r = predict_latency("model.onnx")  # the shipped CPU predictor  # doctest: +SKIP
    >>> r.ms, r.low, r.high, r.coverage.reliable  # doctest: +SKIP
    >>> predict_latency(torch_module, (1, 3, 224, 224), predictor="cpu-ort-b1@1")  # doctest: +SKIP
    >>> predict_latency("model.onnx", device="mylaptop.json")  # after `nnformer device probe`  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

from ..errors import NNFormerError
from .coverage import Coverage, coverage


@dataclass(frozen=True)
class LatencyPrediction:
    ms: float
    low: float | None  # the interval (None when the predictor has no calibrated interval, or the model is unlike
    # its training graphs in operators or sizes: then no interval can be trusted; see ``unfamiliar``)
    high: float | None
    level: float | None  # nominal coverage of the interval
    coverage: Coverage
    predictor: str  # which predictor made it
    device: str = ""  # the machine and runtime the milliseconds are for
    probed: bool = False  # True: put on a probed device (nnformer.latency.probe); False: the predictor's own device
    unfamiliar: bool = False  # True: the interval is the wider one for models unlike the training graphs

    def to_dict(self) -> dict:
        return {"ms": self.ms, "low": self.low, "high": self.high, "level": self.level,
                "interval": None if self.low is None else "unfamiliar" if self.unfamiliar else "calibrated",
                "coverage": self.coverage.to_dict(), "predictor": self.predictor, "device": self.device,
                "probed": self.probed}


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
    from .devices import KEY

    if p.task != "latency" and KEY not in p.header_:  # a meta-trained one learns z-scored log latency ("score")
        raise NNFormerError(f"{label} predicts accuracy of NB201 cells; models need a latency predictor")
    if p.vocab_.name != "onnx":
        raise NNFormerError(f"{label} was trained on {p.vocab_.name!r} graphs, not on ONNX models")
    return p, label


def trained_device(p) -> str:
    """The machine and runtime a predictor's latencies are for (its card's, when it has one)."""
    card = getattr(p, "card_", {}) or {}
    if card.get("device"):
        return f"{card['device']}, {card.get('runtime', 'runtime not recorded')}"
    return "the machine its training latencies were measured on"


def predict_graphs(p, label: str, converted, device=None) -> list[LatencyPrediction]:
    """Predictions for ``converted`` (``ConvertedGraph`` s of :mod:`~nnformer.latency.onnx_graph`) with ``p``.

    ``device``: a :class:`~nnformer.latency.probe.DeviceProfile` (or the path of one): the milliseconds and the
    interval are put on that device by :func:`nnformer.latency.probe.conditioned`; ``None``: they are for the
    device the predictor was trained on (:func:`trained_device`). A predictor meta-trained over devices
    (:func:`nnformer.latency.devices.meta_fit`) reads ``device`` through its hardware embedding; without one it
    predicts for its home device (or refuses when it has none)."""
    from .devices import KEY, home_device, interval_on
    from .onnx_graph import with_static

    meta = KEY in p.header_
    if meta and device is None and home_device(p) is None:
        raise NNFormerError(f"{label} predicts for a probed device: give a device profile (nnformer device probe "
                            f"--out DEV.json, then --device DEV.json)")
    if device is not None:
        device = _profile(device)
        for i, (_, s) in enumerate(converted):
            if int(s.get("batch", 1)) != device.batch:
                raise NNFormerError(f"model {i + 1} runs at batch {int(s.get('batch', 1))} but the device profile "
                                    f"was probed at batch {device.batch}: probe with --batch "
                                    f"{int(s.get('batch', 1))}, or export the model at batch {device.batch}")
    graphs = [with_static(g, s) for g, s in converted]
    iv = None if meta else p.header_.get("interval")
    if meta:
        pred, lo, hi, level = interval_on(p, graphs, device)
        iv = {"level": level} if level else None
        lo, hi = ([None] * len(graphs), [None] * len(graphs)) if lo is None else (lo, hi)
    elif iv:
        pred, lo, hi = p.predict_interval(graphs)
    else:
        pred = p.predict(graphs)
        lo = hi = [None] * len(graphs)
    wide = None if meta else p.header_.get("interval_unfamiliar")
    out = []
    for g, (_, s), m, a, b in zip(graphs, converted, pred, lo, hi):
        cov = coverage(p, g, int(s.get("unknown_shapes", 0)))
        unfamiliar = bool(iv and wide and cov.mix_only)
        if unfamiliar:  # operators and sizes it knows, mixed unlike its training graphs: the wider interval
            a, b = (v[0] for v in p.interval_bounds([m], unfamiliar=True))
        elif not cov.reliable:  # the interval was calibrated on models like the training set, not on this one
            a = b = None
        out.append(LatencyPrediction(float(m), None if a is None else float(a), None if b is None else float(b),
                                     iv["level"] if iv else None, cov, label, trained_device(p),
                                     unfamiliar=unfamiliar))
    if meta:
        import dataclasses

        return [dataclasses.replace(r, device=device.name if device is not None else home_device(p),
                                    probed=device is not None) for r in out]
    return out if device is None else _on_device(p, out, device)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def predict_models(converted, predictor=None, device=None, *,
                   log: Callable[[str], None] = _to_stderr) -> list[LatencyPrediction]:
    """:func:`predict_graphs` of ``converted`` with the predictor :func:`resolve_predictor` reads from
    ``predictor`` (None: the shipped default), as ``nnformer predict`` runs it: ``log`` (default: printed on
    stderr) is told which shipped predictor the default is, before any prediction, and which device the milliseconds
    are for. Raises :class:`~nnformer.errors.NNFormerError` as those two do."""
    p, label = resolve_predictor(predictor)
    if predictor is None:
        log(f"nnformer: using the shipped predictor {label} ({p.card_.get('description', '')}); --predictor picks "
            f"another (`nnformer predictors`)")
    profile = None if device is None else _profile(device)
    if profile is not None and profile.refreshed:
        log(f"nnformer: {device} was written by an older version: the graphs of {len(profile.refreshed)} of its "
            f"reference networks ({', '.join(profile.refreshed)}) were converted again, as this version converts "
            f"models (probe again to store them)")
    results = predict_graphs(p, label, converted, profile)
    if device:
        log(f"nnformer: milliseconds for the probed device {results[0].device} ({device})")
    else:
        log(f"nnformer: milliseconds for {results[0].device}; for your machine: nnformer device probe --out "
            f"DEV.json, then --device DEV.json")
    return results


def format_results(names, results: list[LatencyPrediction]) -> list[str]:
    """The lines ``nnformer predict`` prints for the models ``names`` and their :func:`predict_graphs` results: per
    model, milliseconds with the interval (or why there is none), a tab and the name, then an indented line of what
    the predictor knows of its operators (:meth:`~nnformer.latency.coverage.Coverage.describe`)."""
    lines = []
    for name, r in zip(names, results):
        interval = f" [{r.low:.3f}, {r.high:.3f}] ({100 * r.level:.0f}% interval)" if r.low is not None else ""
        if r.unfamiliar:
            interval = interval[:-1] + ", widened: the model is unlike those this predictor trained on)"
        elif r.level is not None and not r.coverage.reliable:  # predict_graphs withholds it, --json alike
            interval = " (no interval: the model is unlike those this predictor trained on)"
        lines += [f"{r.ms:.3f} ms{interval}\t{name}", f"  {r.coverage.describe()}"]
    return lines


def _profile(device):
    from .probe import DeviceProfile, load_profile

    return device if isinstance(device, DeviceProfile) else load_profile(device)


def _on_device(p, predictions: list[LatencyPrediction], device) -> list[LatencyPrediction]:
    import dataclasses

    from .probe import conditioned

    profile = _profile(device)
    fit = conditioned(p, profile)

    def bounds(r):
        return (None, None) if r.low is None else fit.interval(r.ms, r.low, r.high)

    return [dataclasses.replace(r, ms=fit.apply(r.ms), low=bounds(r)[0], high=bounds(r)[1], device=profile.name,
                                probed=True) for r in predictions]


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


def predict_latency(model, example_input=None, *, predictor=None, batch: int | None = None,
                    device=None) -> LatencyPrediction:
    """Predicted latency of ``model``: an ONNX file (path or bytes), or a ``torch.nn.Module`` with
    ``example_input`` (a tensor or a shape), exported through the ONNX exporter in memory.

    ``predictor``: a fitted :class:`~nnformer.Predictor`, a path, a registry name ``NAME[@VERSION]``, or None for
    the shipped CPU predictor (:data:`nnformer.shipped.DEFAULT_LATENCY`). ``batch`` fills a symbolic batch
    dimension of an ONNX file's inputs. ``device``: a device profile of `nnformer device probe` (a path or a
    :class:`~nnformer.latency.probe.DeviceProfile`): the prediction is for that machine and runtime.
    """
    converted = to_graph(model, example_input, batch=batch)
    p, label = resolve_predictor(predictor)
    return predict_graphs(p, label, [converted], device)[0]
