"""One latency predictor for many devices, conditioned on each device's probe (HELP's hardware embedding, carried
from NAS-Bench-201 cells to whole networks).

A device enters the network through its probe (:mod:`nnformer.latency.probe`): the log latencies of the reference
networks, z-scored over the references, are its **hardware embedding**, appended to every graph's static features
(into NN-Former's [CLS] token). The label is the model's log latency z-scored with the same references' mean and
standard deviation on that device, so every device has one scale, and a prediction turns back into milliseconds
with the target device's reference latencies alone. A predictor meta-trained this way over several devices
predicts a device it never trained on from its probe: no measurement of the user's own models is needed.

:func:`embedding` is the one implementation of the embedding (``nnformer reproduce fewshot`` uses it for HELP's
cells too); :func:`meta_fit` trains; :func:`calibrate_on` fits its 90% interval on held-out models of the training
devices, each through its own probe; :func:`predict_on` and :func:`interval_on` predict for a profile (or, without
one, for the predictor's home device). The predictor records the probe set
it was trained with, and a profile of another probe set is refused.

Example:
    >>> p = meta_fit([(graphs_a, ms_a, profile_a), (graphs_b, ms_b, profile_b)])   # doctest: +SKIP
    >>> predict_on(p, graphs, profile_c)                                            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import NNFormerError
from ..graph import ArchGraph

KEY = "device_conditioning"  # the predictor header's record of how it was conditioned


def embedding(reference_ms) -> tuple[np.ndarray, float, float]:
    """``(hardware embedding, mean, std)`` of a device from its latencies on the reference networks: the z-scored
    log latencies, and the mean and standard deviation of the logs (what puts a z-scored prediction back in ms)."""
    logs = np.log(np.asarray(reference_ms, dtype=np.float64))
    if logs.size < 2 or not np.isfinite(logs).all():
        raise NNFormerError(f"a hardware embedding needs 2 or more positive reference latencies, got {logs.size}")
    mean, std = float(logs.mean()), float(logs.std()) or 1.0
    return ((logs - mean) / std).astype(np.float32), mean, std


def conditioned_graphs(graphs: Sequence[ArchGraph], hw: np.ndarray) -> list[ArchGraph]:
    """Each graph with ``hw`` appended to its graph-level (static) features."""
    out = []
    for g in graphs:
        base = g.graph_features if g.graph_features is not None else np.zeros(0, np.float32)
        out.append(ArchGraph(g.ops, g.adj, g.features, g.depth, np.concatenate([base, hw])))
    return out


def _references(profile) -> np.ndarray:
    return np.asarray(profile.latencies() if hasattr(profile, "latencies") else profile, dtype=np.float64)


def meta_fit(devices, *, recipe: str = "networks", settings: dict | None = None, validation=None, network=None,
             home=None):
    """A :class:`~nnformer.Predictor` meta-trained on ``devices``: a list of ``(graphs, ms, profile)`` (graphs with
    their static features, latencies in ms measured on that device, and its probe: a
    :class:`~nnformer.latency.probe.DeviceProfile` or the reference latencies). ``validation``: the same for the
    devices that pick the weights (default: none, the recipe's own split). ``network``: another network config than
    the recipe's (e.g. :class:`~nnformer.baselines.GCNConfig`). ``home``: the profile of the device a prediction
    without a profile is for (kept in the predictor, with its name)."""
    from ..predictor import Predictor
    from .probe import probe_set_digest

    def pairs(devs):
        graphs, y = [], []
        for gs, ms, prof in devs:
            hw, mean, std = embedding(_references(prof))
            ms = np.asarray(ms, dtype=np.float64)
            if len(gs) != len(ms):
                raise NNFormerError(f"{len(gs)} graphs but {len(ms)} latencies for one device")
            graphs += conditioned_graphs(gs, hw)
            y.append((np.log(ms) - mean) / std)
        return graphs, np.concatenate(y)

    if len(devices) < 1:
        raise NNFormerError("meta-training needs at least one device")
    sizes = {len(_references(d[2])) for d in [*devices, *(validation or [])]}
    if len(sizes) != 1:
        raise NNFormerError(f"every device needs the same reference networks, got {sorted(sizes)} references")
    p = Predictor(recipe, network=network, settings=dict(settings or {}), task="score", progress=False)
    train = pairs(devices)
    p.fit(*train, *(pairs(validation) if validation else ()))
    info = {"references": sizes.pop(), "probe_set": probe_set_digest(), "devices": len(devices)}
    if home is not None:
        info["home"] = {"name": getattr(home, "name", "the first training device"),
                        "references": [float(v) for v in _references(home)]}
    p.header_ = {**p.header_, KEY: info}
    return p


def calibrate_on(predictor, devices, level: float = 0.9):
    """Fit the 90% interval of a :func:`meta_fit` predictor on ``devices`` (``(graphs, ms, profile)`` of models it
    did not train on, each device through its own probe): split-conformal on the absolute log errors pooled over
    the devices, kept in the predictor (:func:`interval_on` applies it). Returns the predictor."""
    from ..metrics import conformal_quantile

    info = _info(predictor)
    err = np.concatenate([np.abs(np.log(predict_on(predictor, gs, prof)) - np.log(np.asarray(ms, float)))
                          for gs, ms, prof in devices])
    if err.size < 5:
        raise NNFormerError(f"need at least 5 calibration models, got {err.size}")
    predictor.header_ = {**predictor.header_, KEY: {**info, "interval": {
        "method": "conformal", "level": float(level), "q": conformal_quantile(err, level) * (1 + 1e-9),
        "n": int(err.size)}}}
    return predictor


def interval_on(predictor, graphs: Sequence[ArchGraph], profile=None):
    """``(ms, low, high, level)`` on the probed device (``profile`` None: the predictor's home device); low and high
    are None without a calibrated interval (:func:`calibrate_on`)."""
    ms = predict_on(predictor, graphs, profile)
    iv = _info(predictor).get("interval")
    if not iv:
        return ms, None, None, None
    return ms, ms * np.exp(-iv["q"]), ms * np.exp(iv["q"]), iv["level"]


def _info(predictor) -> dict:
    info = predictor.header_.get(KEY)
    if not info:
        raise NNFormerError("this predictor was not meta-trained over devices (no hardware embedding); put it on a "
                            "device with nnformer.latency.probe.conditioned instead")
    return info


def home_device(predictor) -> str | None:
    """The name of the device a meta-trained predictor predicts for without a profile, or None."""
    home = predictor.header_.get(KEY, {}).get("home")
    return home["name"] if home else None


def predict_on(predictor, graphs: Sequence[ArchGraph], profile=None) -> np.ndarray:
    """Milliseconds of ``graphs`` on the probed device, from a :func:`meta_fit` predictor (``profile`` None: its
    home device, when it has one)."""
    info = _info(predictor)
    if profile is None:
        if "home" not in info:
            raise NNFormerError("this predictor predicts for a probed device: give a device profile (nnformer device "
                                "probe --out DEV.json, then --device DEV.json)")
        profile = info["home"]["references"]
    refs = _references(profile)
    if len(refs) != info["references"]:
        raise NNFormerError(f"the predictor was meta-trained with {info['references']} reference networks, the "
                            f"profile has {len(refs)}")
    if getattr(profile, "probe_set", info["probe_set"]) != info["probe_set"]:
        raise NNFormerError("the profile was probed with another probe set than the predictor was meta-trained on")
    hw, mean, std = embedding(refs)
    z = np.asarray(predictor.predict(conditioned_graphs(graphs, hw)), dtype=np.float64)
    return np.exp(z * std + mean)
