"""A one-minute device probe: time a fixed set of reference networks on the user's machine and runtime.

A latency predictor learns the speed of the machine its labels were measured on. Machines that share a CPU name
still differ (by 2x and more: memory, clocks, neighbours on a shared host), and runtimes differ more. The probe
measures that difference where the user is: :func:`probe` exports and times :data:`REFERENCES` (16 small networks
built with PyTorch alone: convolutions of several kinds, attention, recurrent cells, MLPs, a U-Net) with the chosen
runtime, threads and batch, in well under a minute on 2 cores, and returns a :class:`DeviceProfile` that
:func:`save_profile` writes as JSON (with the references' graphs, so predicting needs no export).

:func:`conditioned` then puts a latency predictor's numbers on the probed device: the predictor predicts the
references, and a line in log space (``log measured = a + b log predicted``, fitted robustly over the references
the predictor knows) maps every prediction; the interval's log half-widths combine with the references' 90%
residual in quadrature. This is the
probe-calibrated form of the method (docs/method.md section 11); a predictor meta-trained over many devices and
conditioned on the probe is the next step it leads to.

Example:
    >>> from nnformer.latency.probe import probe, save_profile   # doctest: +SKIP
    >>> save_profile(probe(runtime="onnxruntime", threads=1), "mylaptop.json")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, NNFormerError, one_line

FORMAT = "nnformer-device-profile/1"
PROBE_SEED = 7
# (family, index) sampled with PROBE_SEED: chosen to span operator kinds and 5-800 MFLOPs (0.01-30 ms on one server core)
REFERENCES: tuple[tuple[str, int], ...] = (
    ("resnet", 3), ("resnet", 5), ("mobilenetv2", 0), ("mobilenetv3", 1), ("efficientnet", 0), ("vgg", 2),
    ("squeezenet", 1), ("googlenet", 0), ("mnasnet", 1), ("torch-mlp", 6), ("torch-mlp", 1), ("torch-lstm", 2),
    ("torch-gru", 7), ("torch-transformer", 1), ("torch-conv1d", 2), ("torch-unet", 6),
)
TIME_BUDGET_S = 2.0  # timed seconds per reference at most (fewer runs for a slow one)
MAX_PROBE_S = 60.0
MIN_FIT = 5  # references the predictor must know to fit the line


def probe_set_digest() -> str:
    """sha256 of the reference specs: a profile is usable only with the probe set it was measured with."""
    from . import zoo  # noqa: F401  (registers the torch-* families)
    from .families import sample

    keys = [sample(f, PROBE_SEED, i).key for f, i in REFERENCES]
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _converter() -> int:
    from .onnx_graph import CONVERTER

    return CONVERTER


@dataclass
class DeviceProfile:
    """What the probe measured: the runtime and its settings, the host, and each reference's latency and graph."""

    runtime: str
    threads: int
    batch: int
    environment: dict
    references: list[dict]  # {"id", "latency_ms", "spread", "graph"}
    probe_s: float
    probe_set: str = field(default_factory=probe_set_digest)
    created: str = field(default_factory=lambda: datetime.datetime.now().isoformat(timespec="seconds"))
    converter: int = field(default_factory=_converter)  # the converter version of the references' graphs
    refreshed: tuple[str, ...] = ()  # references whose stored graph was older than this converter's, on loading

    @property
    def name(self) -> str:
        return f"{self.environment.get('cpu', '?')}, {self.runtime} {self.threads} thread" \
               f"{'s' if self.threads > 1 else ''}, batch {self.batch}"

    def to_dict(self) -> dict:
        return {"format": FORMAT, "runtime": self.runtime, "threads": self.threads, "batch": self.batch,
                "environment": self.environment, "probe_set": self.probe_set, "probe_s": round(self.probe_s, 2),
                "created": self.created, "converter": self.converter, "references": self.references}

    def latencies(self) -> np.ndarray:
        return np.array([r["latency_ms"] for r in self.references], dtype=np.float64)


def _digest(d: dict) -> str:
    body = {k: v for k, v in d.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def probe(runtime: str = "onnxruntime", threads: int = 1, batch: int = 1, *, progress: bool = False,
          budget_s: float | None = None) -> DeviceProfile:
    """Time every reference network with ``runtime`` (see :mod:`nnformer.latency.runtimes`) on this machine.

    Raises:
        OnnxError: the runtime is missing or cannot run a reference (one line naming it).
    """
    from tqdm.auto import tqdm

    from . import runtimes
    from .profiler import environment, measure

    runtimes.check_runtime(runtime)
    budget_s = TIME_BUDGET_S if budget_s is None else budget_s
    if threads < 1 or batch < 1:
        raise NNFormerError(f"threads and batch must be >= 1, got threads={threads}, batch={batch}")
    t0 = time.perf_counter()
    env = {**environment(threads, batch), **runtimes.versions(runtime)}
    refs = []
    for family, index in tqdm(REFERENCES, desc="probe", unit="net", disable=not progress):
        module, example, onnx_bytes, graph = _reference(family, index, batch)
        try:
            run = runtimes.runner(runtime, onnx_bytes, threads=threads, batch=batch, module=module, example=example)
        except NNFormerError as e:
            raise type(e)(f"the probe cannot run reference {family}-{index}: {e}") from None
        t = measure(run, warmup=5, runs=20, rounds=5, budget_s=budget_s)
        refs.append({"id": f"{family}-{index}", "latency_ms": round(t.latency_ms, 5), "spread": round(t.spread, 5),
                     "graph": graph})
    return DeviceProfile(runtime, int(threads), int(batch), env, refs, time.perf_counter() - t0)


def _reference(family: str, index: int, batch: int):
    """A reference network of the probe set: its module, example input, ONNX bytes and compact graph."""
    from . import zoo  # noqa: F401  (registers the torch-* families)
    from .families import sample
    from .profiler import export_spec

    ex = export_spec(sample(family, PROBE_SEED, index), batch=batch)
    return ex.module, ex.example, ex.onnx, ex.compact()


def with_current_graphs(profile: DeviceProfile) -> tuple[DeviceProfile, list[str]]:
    """``profile`` with each reference's graph converted again by this version of nnformer (the latencies are
    measurements and stay), and the ids of the references whose graph changed: a profile written before the
    converter found more shapes carries the older graphs."""
    from .onnx_graph import compact_difference

    refs, changed = [], []
    for ref, (family, index) in zip(profile.references, REFERENCES):
        graph = _reference(family, index, profile.batch)[3]
        if compact_difference(ref["graph"], graph):
            changed.append(ref["id"])
            ref = {**ref, "graph": graph}
        refs.append(ref)
    return dataclasses.replace(profile, references=refs, converter=_converter()), changed


def save_profile(profile: DeviceProfile, path: str | os.PathLike) -> Path:
    """Write the profile as JSON with its own sha256 (written whole, or not at all)."""
    from ..io import atomic_write_json

    d = profile.to_dict()
    d["sha256"] = _digest(d)
    path = Path(path)
    atomic_write_json(path, d)
    return path


def load_profile(path: str | os.PathLike) -> DeviceProfile:
    """Read and check a profile written by :func:`save_profile`: one-line :class:`DataError` for a file that is not
    one, is damaged or edited, or was measured with another probe set (another version of nnformer).

    A profile whose reference graphs an older converter made (its ``converter`` below
    :data:`~nnformer.latency.onnx_graph.CONVERTER`) gets them converted again (:func:`with_current_graphs`: an
    export of the 16 references, a few seconds; the measured latencies stay), and names those that changed in
    ``refreshed``: the predictor must read the references as it reads the user's models. ``nnformer device
    probe`` again, or saving the returned profile, makes it current."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"device profile {path} is a directory; give the JSON file `nnformer device probe --out` "
                        f"wrote")
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise DataError(f"device profile {path} does not exist; make one with: nnformer device probe --out "
                        f"{path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"cannot read device profile {path}: {type(e).__name__}: {one_line(e)}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise DataError(f"{path} is not a device profile (format {FORMAT!r}); make one with `nnformer device probe`")
    if d.get("sha256") != _digest(d):
        raise DataError(f"{path} does not match the sha256 it records of itself (edited or damaged); probe again")
    if d.get("probe_set") != probe_set_digest():
        raise DataError(f"{path} was measured with another probe set (another version of nnformer); probe again")
    refs = d.get("references")
    if not isinstance(refs, list) or len(refs) != len(REFERENCES) or not all(
            isinstance(r, dict) and isinstance(r.get("latency_ms"), (int, float)) and r["latency_ms"] > 0
            and math.isfinite(r["latency_ms"]) for r in refs):
        raise DataError(f"{path}: references are missing or not positive latencies (file damaged?)")
    prof = DeviceProfile(d["runtime"], int(d["threads"]), int(d["batch"]), d.get("environment", {}), refs,
                         float(d.get("probe_s", 0.0)), d["probe_set"], d.get("created", ""), int(d.get("converter", 1)))
    if prof.converter < _converter():
        prof, changed = with_current_graphs(prof)
        prof = dataclasses.replace(prof, refreshed=tuple(changed))
    return prof


# ------------------------------------------------------------------------------------------------ conditioning

@dataclass(frozen=True)
class DeviceMap:
    """``ms_on_device = exp(a) * predicted_ms ** b``, fitted on ``n`` references; ``widen`` is the 90% absolute
    log residual of the references (how far the line misses them)."""

    a: float
    b: float
    widen: float
    n: int
    device: str

    def apply(self, ms: float) -> float:
        return float(math.exp(self.a + self.b * math.log(ms)))

    def interval(self, ms: float, low: float, high: float) -> tuple[float, float]:
        """The interval ``[low, high]`` around ``ms`` on the probed device: each side's log half-width, mapped by
        the slope, combined with :attr:`widen` in quadrature (the predictor's error and the line's are taken as
        independent)."""
        centre = self.apply(ms)
        down = math.hypot(self.b * math.log(ms / low), self.widen)
        up = math.hypot(self.b * math.log(high / ms), self.widen)
        return centre * math.exp(-down), centre * math.exp(up)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "widen": self.widen, "n": self.n, "device": self.device}


def fit_device_map(predicted: np.ndarray, measured: np.ndarray, usable: np.ndarray | None = None,
                   device: str = "", slope: bool = True) -> DeviceMap:
    """Theil-Sen line through ``(log predicted, log measured)`` over the ``usable`` references (slope kept within
    [0.5, 1.5]: a slope outside that range would say more about too few points than about the device).
    ``slope=False``: the slope is 1, a scale factor alone (the median ratio measured / predicted)."""
    x, y = np.log(np.asarray(predicted, float)), np.log(np.asarray(measured, float))
    use = np.ones(x.size, bool) if usable is None else np.asarray(usable, bool)
    x, y = x[use], y[use]
    if x.size < MIN_FIT:
        raise NNFormerError(f"the predictor knows {x.size} of the probe's {len(REFERENCES)} reference networks; "
                            f"at least {MIN_FIT} are needed to put its numbers on the probed device")
    i, j = np.triu_indices(x.size, 1)
    dx = x[j] - x[i]
    keep = np.abs(dx) > 1e-6
    b = float(np.clip(np.median((y[j] - y[i])[keep] / dx[keep]), 0.5, 1.5)) if keep.any() and slope else 1.0
    a = float(np.median(y - b * x))
    resid = np.abs(y - (a + b * x))
    # the 90% quantile of n residuals, one rank up (a small sample under-covers otherwise)
    k = min(resid.size - 1, int(math.ceil(0.9 * (resid.size + 1))) - 1)
    return DeviceMap(a, b, float(np.sort(resid)[k]), int(x.size), device)


HOME_KEY = "home_probe"  # a predictor header's record of its own device's reference latencies


def home_record(profile: DeviceProfile) -> dict:
    """What a predictor keeps of the probe of its own device (the one its training latencies were measured on):
    the probe set, the device and each reference's latency, for :func:`conditioned` (``nnformer.shipped.publish``
    writes it into the header of a shipped predictor)."""
    return {"probe_set": profile.probe_set, "device": profile.name, "runtime": profile.runtime,
            "threads": profile.threads, "batch": profile.batch, "latency_ms": profile.latencies().tolist()}


def conditioned(predictor, profile: DeviceProfile, slope: bool = True,
                home: DeviceProfile | dict | bool | None = None):
    """The :class:`DeviceMap` that puts ``predictor``'s latencies on the probed device (references the predictor
    does not know, by :func:`nnformer.latency.coverage.coverage`, are left out of the fit; ``slope=False``: a scale
    factor alone).

    With the probe of the predictor's own device (``home``: a profile or a :func:`home_record`; by default the
    predictor header's ``home_probe`` where it has one of the same probe set and batch), the map is fitted from the
    references' latencies measured there to those measured on the probed device, a scale factor alone: the probed
    device's speed against the predictor's own, measured on the same networks, so the predictor's own errors on the
    references do not enter it. Without one (or with ``home=False``), from the predictor's predictions of the
    references to their measurements (a line, or a scale factor with ``slope=False``)."""
    from .coverage import coverage
    from .onnx_graph import from_compact, with_static

    graphs = [with_static(*from_compact(r["graph"])) for r in profile.references]
    usable = np.array([coverage(predictor, g).reliable for g in graphs])
    if home is None:
        rec = (getattr(predictor, "header_", None) or {}).get(HOME_KEY)
        if rec and rec.get("probe_set") == profile.probe_set and int(rec.get("batch", 1)) == profile.batch:
            home = rec
    if home is not None and home is not False:
        rec = home_record(home) if isinstance(home, DeviceProfile) else home
        if rec.get("probe_set") != profile.probe_set or int(rec.get("batch", 1)) != profile.batch:
            raise NNFormerError(f"the home probe ({rec.get('device', '?')}, batch {rec.get('batch', 1)}) and the "
                                f"probe of {profile.name} differ in their reference set or batch")
        return fit_device_map(np.asarray(rec["latency_ms"], dtype=np.float64), profile.latencies(), usable,
                              profile.name, slope=False)
    pred = np.asarray(predictor.predict(graphs), dtype=np.float64)
    return fit_device_map(pred, profile.latencies(), usable, profile.name, slope)
