"""Measure inference latency with ONNX Runtime on the CPU, and build latency datasets (NNLQ-style).

One measurement: export the network to ONNX (random weights: latency does not depend on their values; the file is
deleted afterwards), open an ONNX Runtime session with a fixed number of threads, ``warmup`` runs, then ``rounds``
rounds of ``runs`` timed runs. Each round gives its median; rounds outside 1.5 IQR of the round medians (a burst of
background load, a frequency change) are dropped, and the latency is the median of the rest. ``spread`` is the IQR of
the kept rounds over that median: a noisy machine shows up there instead of silently in the labels.

A dataset directory holds::

    meta.json       settings (must match to resume), environment (CPU, cores, threads, versions), feature names
    graphs.jsonl.gz one line per model: id, family, spec, compact ONNX graph (nnformer.latency.onnx_graph.to_compact)
    latency.jsonl   one line per model: id, status "ok" with latency_ms / spread / ..., or "error" with the error

A result is appended as soon as it is measured (latency line last: it marks the model done), so an interrupted run
resumes where it stopped; models that failed are recorded once and not retried. Graph lines are appended to a plain
``graphs.jsonl`` while a run measures and packed into ``graphs.jsonl.gz`` (about 15x smaller) when it ends; a run
killed before packing leaves the plain file, which readers merge and the next run packs. A dataset is read back,
checked, to train and score on by :mod:`nnformer.latency.dataset`.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import DataError, FamilyError, NNFormerError, OnnxError, one_line
from ..graph import ArchGraph
from ..io import (JsonlAppender, atomic_open, atomic_path, atomic_write_json, exclusive_lock, read_jsonl,
                  read_jsonl_numbered, remove_stale_temporaries)
from ..machine import cpu_model
from .onnx_graph import OPSET, _with_weights, export_onnx  # noqa: F401  (export_onnx: part of this module's API)
from .runtimes import _ort, feeds, session  # noqa: F401  (session, feeds: part of this module's API)

DEFAULTS = {"threads": 1, "batch": 1, "rounds": 5, "runs": 20, "warmup": 10}
# settings a resumed dataset must share with the run that started it: mixing them would mix label distributions
_SETTING_KEYS = ("seed", "threads", "batch", "rounds", "runs", "warmup", "opset", "runtime", "budget_s")
_ENV_MUST_MATCH = ("cpu", "onnxruntime", "openvino")  # and the runtime's version (what the runtime recorded)


# ---------------------------------------------------------------------------------------------------- environment

def environment(threads: int, batch: int | None = None) -> dict:
    """Where a latency was measured: CPU, cores, threads and versions (latency labels mean nothing without it)."""
    import onnx

    ort = _ort()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    env = {"cpu": cpu_model(), "cpu_count": os.cpu_count() or 0, "cpu_usable": usable, "threads": int(threads),
           "onnxruntime": ort.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
           "python": platform.python_version(), "platform": platform.platform(), "provider": "CPUExecutionProvider"}
    try:
        env["governor"] = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        pass
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:
        pass
    if batch is not None:
        env["batch"] = int(batch)
    return env


# ---------------------------------------------------------------------------------------------------- timing

@dataclass(frozen=True)
class Timing:
    """Result of :func:`measure`: robust median latency, relative spread, and every round's median."""

    latency_ms: float
    spread: float
    round_ms: tuple[float, ...]
    rounds_kept: int

    def to_dict(self) -> dict:
        return {"latency_ms": round(self.latency_ms, 5), "spread": round(self.spread, 5),
                "round_ms": [round(v, 5) for v in self.round_ms], "rounds_kept": self.rounds_kept}


def robust_summary(round_ms: Iterable[float]) -> Timing:
    """Drop rounds outside ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]``; latency = median, spread = IQR / median of the rest."""
    v = np.asarray(list(round_ms), dtype=np.float64)
    if v.size == 0:
        raise ValueError("no timing rounds")
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    kept = v[(v >= q1 - 1.5 * iqr) & (v <= q3 + 1.5 * iqr)]
    med = float(np.median(kept))
    k1, k3 = np.percentile(kept, [25, 75])
    return Timing(med, float((k3 - k1) / med) if med > 0 else 0.0, tuple(float(x) for x in v), int(kept.size))


def _check_counts(warmup: int, runs: int, rounds: int) -> None:
    if runs < 1 or rounds < 1 or warmup < 0:
        raise NNFormerError(f"need runs >= 1, rounds >= 1 and warmup >= 0, got runs={runs}, rounds={rounds}, "
                            f"warmup={warmup}")


def measure(run: Callable[[], object], *, warmup: int = 10, runs: int = 20, rounds: int = 5,
            budget_s: float | None = None) -> Timing:
    """Time ``run()``: ``warmup`` untimed calls, then ``rounds`` rounds of ``runs`` timed calls (median per round).

    ``budget_s``: spend about that many seconds on the timed calls at most. The untimed calls (at least one) give an
    estimate of one call, and ``runs`` (and ``warmup``) shrink so that ``rounds * runs`` calls fit in the budget:
    a 100 ms model is timed in 5 rounds of 4 calls instead of 5 of 20. ``None``: exactly the counts given."""
    _check_counts(warmup, runs, rounds)
    if budget_s is not None:
        t0 = time.perf_counter()
        run()
        one = time.perf_counter() - t0
        warmup = min(warmup - 1, int(0.25 * budget_s / max(one, 1e-9)))
        runs = max(1, min(runs, int(budget_s / rounds / max(one, 1e-9))))
    for _ in range(warmup):
        run()
    medians = []
    times = np.empty(runs, dtype=np.float64)
    for _ in range(rounds):
        for k in range(runs):
            t0 = time.perf_counter_ns()
            run()
            times[k] = time.perf_counter_ns() - t0
        medians.append(float(np.median(times)) / 1e6)
    return robust_summary(medians)


def _ready(model, threads: int, batch: int | None):
    """A session and its inputs, after one checked run (the first run allocates; errors surface here)."""
    sess = session(model, threads)
    x = feeds(sess, batch)
    try:
        sess.run(None, x)
    except Exception as e:  # noqa: BLE001 - onnxruntime's runtime errors
        raise OnnxError(f"ONNX Runtime failed to run the model: {one_line(e)}") from None
    return sess, x


def time_onnx(model, *, threads: int = 1, batch: int | None = None, warmup: int = 10, runs: int = 20,
              rounds: int = 5, runtime: str = "onnxruntime", module=None, example=None,
              budget_s: float | None = None) -> Timing:
    """Latency of an ONNX model (path or bytes) with ONNX Runtime, or another of
    :data:`nnformer.latency.runtimes.RUNTIMES` (``torch`` times ``module`` on ``example`` instead);
    :class:`OnnxError` if it cannot run."""
    from .runtimes import runner

    run = runner(runtime, model, threads=threads, batch=batch, module=module, example=example)
    return measure(run, warmup=warmup, runs=runs, rounds=rounds, budget_s=budget_s)


# ---------------------------------------------------------------------------------------------------- one model

@contextlib.contextmanager
def _stage(name: str):
    """Tag a failure inside the block with the step it happened in (``e.stage``), as an :class:`NNFormerError`
    with a one-line message: a dataset run records the step and goes on with the next model."""
    try:
        yield
    except NNFormerError as e:
        e.stage = name
        raise
    except Exception as e:  # noqa: BLE001 - one broken model must not stop a dataset run
        err = OnnxError(f"{type(e).__name__}: {one_line(e)}")
        err.stage = name
        raise err from None


@dataclass
class Exported:
    """A sampled network built, exported to ONNX and converted (what :func:`export_spec` returns)."""

    module: object  # the torch module; None when not kept
    example: object  # the input tensor it was exported with
    onnx: bytes | Path  # the ONNX model: its bytes, or the path it was written to
    graph: ArchGraph  # the converted graph
    static: dict  # its static features (flops, params, memory_access, num_ops, ...)
    export_s: float  # seconds the ONNX export took

    def compact(self) -> dict:
        """The graph as stored in a dataset or a device profile (:func:`nnformer.latency.onnx_graph.to_compact`)."""
        from .onnx_graph import to_compact

        return to_compact(self.graph, self.static)


def export_spec(spec, *, batch: int | None = None, path: str | os.PathLike | None = None, opset: int = OPSET,
                keep_module: bool = True) -> Exported:
    """Build a sampled network, export it to ONNX and convert the ONNX graph: the one way profiling, the probe and
    the shape check make a spec's graph, so their graphs agree.

    Args:
        spec: the :class:`nnformer.latency.families.ModelSpec` (its family registered: torch-* and zoo families
            register when :mod:`nnformer.latency.zoo` is imported, which this does).
        batch: the batch size to build at; None keeps the spec's.
        path: where to write the ONNX file; None exports in memory (``onnx`` is then the bytes).
        keep_module: False drops the module after the export (a large one need not stay in memory while converting).

    Raises:
        NNFormerError (with a ``stage`` attribute: build, export or convert) when a step fails.
    """
    from .families import build
    from .onnx_graph import onnx_to_graph
    from .zoo import example_input

    if batch is not None:
        spec = spec.with_batch(batch)
    with _stage("build"):
        module = build(spec)
        example = example_input(module, spec.input_shape)
    with _stage("export"):
        t0 = time.perf_counter()
        onnx = export_onnx(module, example, path, opset)
        export_s = time.perf_counter() - t0
    if not keep_module:
        module = None
    with _stage("convert"):
        graph, static = onnx_to_graph(onnx)
    return Exported(module, example, onnx, graph, static, export_s)


def profile_spec(spec, *, threads: int = 1, batch: int = 1, warmup: int = 10, runs: int = 20, rounds: int = 5,
                 opset: int = OPSET, workdir: str | os.PathLike | None = None, runtime: str = "onnxruntime",
                 budget_s: float | None = None) -> tuple[dict, dict]:
    """Build, export, convert (:func:`export_spec`) and time one sampled network (with ``runtime``; see
    :func:`time_onnx`).

    Returns:
        ``(latency_fields, graph_fields)``: ``latency_fields`` has ``latency_ms``, ``spread``, ``round_ms``,
        ``rounds_kept``, the static features and ``export_s``; ``graph_fields`` has the compact ``graph``.

    Raises:
        NNFormerError (with a ``stage`` attribute: build, export, convert or run) when any step fails.
    """
    spec = spec.with_batch(batch)
    with tempfile.TemporaryDirectory(prefix="nnformer-", dir=workdir) as tmp:
        ex = export_spec(spec, path=Path(tmp) / "model.onnx", opset=opset, keep_module=runtime == "torch")
        with _stage("run"):
            timing = time_onnx(ex.onnx, threads=threads, batch=batch, warmup=warmup, runs=runs, rounds=rounds,
                               runtime=runtime, module=ex.module, example=ex.example, budget_s=budget_s)
    lat = {**timing.to_dict(), "input_shape": list(spec.input_shape), "batch": batch,
           **{k: ex.static[k] for k in ("flops", "params", "memory_access", "num_ops")},
           "export_s": round(ex.export_s, 3)}
    return lat, {"graph": ex.compact()}


def profile_onnx(path: str | os.PathLike, *, threads: int = 1, batch: int | None = None, warmup: int = 10,
                 runs: int = 20, rounds: int = 5) -> dict:
    """Time a user's ONNX model. Returns latency fields, static features (when the model converts), environment.

    Raises :class:`OnnxError` for a file that is missing, not ONNX, or that ONNX Runtime cannot run.
    """
    from ..errors import GraphSizeError
    from .onnx_graph import load_model, onnx_to_graph

    m = load_model(path, batch)  # validates first: a clear message instead of an ONNX Runtime stack
    _check_counts(warmup, runs, rounds)
    sess, x = _ready(_with_weights(m) or path, threads, batch)
    timing = measure(lambda: sess.run(None, x), warmup=warmup, runs=runs, rounds=rounds)
    out: dict = {"path": str(path), **timing.to_dict(), "inputs": {k: list(v.shape) for k, v in x.items()}}
    try:
        graph, static = onnx_to_graph(path, batch)
        out.update(static)
        out["num_nodes"] = graph.num_nodes
    except GraphSizeError as e:  # too big for a predictor graph, still timed
        out["graph_error"] = str(e)
    out["environment"] = environment(threads, batch)
    return out


# ---------------------------------------------------------------------------------------------------- datasets

def read_graphs(out: Path) -> dict[str, dict]:
    """id -> graph record of a dataset directory: the packed ``graphs.jsonl.gz`` plus any unpacked ``graphs.jsonl``."""
    return {uid: rec for uid, (_, _, rec) in _graph_records(out).items()}


def _graph_records(out: Path) -> dict[str, tuple[Path, int, dict]]:
    """id -> (file, line, record) of the graph records; a later record of an id replaces an earlier one. The plain
    ``graphs.jsonl`` is the journal of a run that was not packed: its torn last line, if any, is a model whose
    latency line was never written (the graph line comes first), so it is skipped even when reading to train."""
    out_recs = {}
    for path in (out / "graphs.jsonl.gz", out / "graphs.jsonl"):
        for line, r in read_jsonl_numbered(path):
            if isinstance(r, dict) and isinstance(r.get("id"), str):
                out_recs[r["id"]] = (path, line, r)
    return out_recs


def pack_graphs(out: Path) -> None:
    """Merge ``graphs.jsonl`` into ``graphs.jsonl.gz`` (atomically, one line per id, byte-stable output) and remove
    the plain file. Nothing to do without a plain file."""
    plain = out / "graphs.jsonl"
    if not plain.is_file():
        return
    recs = read_graphs(out)
    with atomic_path(out / "graphs.jsonl.gz") as tmp:
        # no file name in the gzip header (it would be the random temporary name) and mtime 0: the same records
        # give the same bytes
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0,
                                                   compresslevel=9) as f:
            for r in recs.values():
                f.write((json.dumps(r, separators=(",", ":")) + "\n").encode("utf-8"))
        os.chmod(tmp, 0o644)
    plain.unlink()


def _write_meta(out: Path, meta: dict) -> None:
    atomic_write_json(out / "meta.json", meta, indent=2)


def _check_meta(out: Path, settings: dict, env: dict) -> dict:
    """The merged meta of an existing dataset, or a :class:`DataError` if this run would measure differently (or
    ``meta.json`` is damaged: not UTF-8 JSON, not an object, a field of the wrong type)."""
    from .onnx_graph import FEATURE_NAMES

    path = out / "meta.json"
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {one_line(e)}") from None
    if not isinstance(old, dict):
        raise DataError(f"{path}: not a JSON object (file damaged?)")
    for key, kind, what in (("settings", dict, "an object"), ("environment", dict, "an object"),
                            ("families", list, "a list")):
        if key in old and not isinstance(old[key], kind):
            raise DataError(f"{path}: field {key!r} is not {what} (file damaged?)")
    if not all(isinstance(f, str) for f in old.get("families", [])):
        raise DataError(f"{path}: field 'families' is not a list of names (file damaged?)")
    if "feature_names" in old and old["feature_names"] != list(FEATURE_NAMES):
        raise DataError(f"{path}: field 'feature_names' lists other node features than this version of nnformer "
                        f"measures: use another --out")
    for k in _SETTING_KEYS:
        if k in old.get("settings", {}) and old["settings"][k] != settings[k]:
            raise DataError(f"{out} was measured with {k}={old['settings'][k]!r}, not {settings[k]}: "
                            f"use the same settings to resume, or another --out")
    for k in _ENV_MUST_MATCH:
        was = old.get("environment", {}).get(k)
        if was is not None and env.get(k) is not None and was != env[k]:
            raise DataError(f"{out} was measured with {k} {was!r}, this machine has {env[k]!r}: use another --out")
    return old


# the reference network a profile run times every so often (`sample("resnet", 0, 0)`: the same for every dataset)
REFERENCE = ("resnet", 0, 0)
REFERENCE_EVERY = 50


class _Reference:
    """Times one fixed network, with the dataset's settings, whenever :func:`profile_dataset` asks (at the start of
    a run, every ``reference_every`` models and at its end), into ``reference.jsonl``: how the host's speed moved
    while the dataset was measured (:func:`drift_factors`). Its ONNX file is exported once, into ``tmp``."""

    def __init__(self, out: Path, tmp: str, *, batch: int, opset: int, timing: dict, name: str = "reference.jsonl"):
        import torch

        from .families import build, sample

        spec = sample(*REFERENCE).with_batch(batch)
        self.path = Path(tmp) / "reference.onnx"
        self.module = build(spec)
        self.example = torch.zeros(spec.input_shape)
        export_onnx(self.module, self.example, self.path, opset)
        self.id, self.timing = "{}-seed{}-{:05d}".format(*REFERENCE), timing
        self.store = JsonlAppender(out / name)

    def time(self, after: int) -> None:
        t = time_onnx(self.path, module=self.module, example=self.example, **self.timing)
        self.store.write({"reference": self.id, "after": after, **t.to_dict(),
                          "measured_at": datetime.datetime.now().isoformat(timespec="seconds")})

    def close(self) -> None:
        self.store.close()


# half-width of the rolling median over the reference timings (seconds): one timing is as noisy as a label, and a
# correction by single timings made a re-measurement's labels agree less (9.2% MAPE against 5.7% uncorrected on
# datasets/latency-cpu-t2-ref); over +-300 s they agree more (4.7%), any half-width from 60 s to 20 min within 0.3
DRIFT_WINDOW_S = 300.0


def drift_factors(out_dir: str | os.PathLike, rows: list[dict], reference: str = "reference.jsonl",
                  scale: float | None = None, window_s: float = DRIFT_WINDOW_S) -> np.ndarray | None:
    """Per row of a dataset, the host's speed when it was measured relative to the whole run: the reference
    network's latency at the row's ``measured_at`` (the median of its timings within ``window_s`` seconds,
    interpolated in time), over the median of every reference timing (> 1: the host was slower than usual). A label
    divided by its factor is on the run's common scale. ``None`` without two reference timings (a dataset profiled
    with ``--reference-every 0``, or before it existed); rows without a timestamp get 1. ``reference``: the
    timings' file in ``out_dir``; ``scale``: the latency that counts as the usual speed instead of their median
    (another run's, to put a re-measurement on that run's scale). A torn last line, or a timing without a finite
    positive ``latency_ms`` or an ISO ``measured_at``, is a :class:`DataError` naming the file, line and field."""
    path = Path(out_dir) / reference
    refs = []
    for line, r in read_jsonl_numbered(path, strict=True):
        for key, ok, want in (("latency_ms", lambda v: _number(v) and math.isfinite(v) and v > 0,
                               "a finite number above 0"), ("measured_at", _iso_time, "an ISO time")):
            if not ok(r.get(key)):
                raise DataError(f"{path}: line {line}: field {key!r} is "
                                f"{'missing' if key not in r else repr(r[key])}, not {want}")
        refs.append(r)
    if len(refs) < 2:
        return None
    refs.sort(key=lambda r: r["measured_at"])
    t = np.array([datetime.datetime.fromisoformat(r["measured_at"]).timestamp() for r in refs])
    lat = np.array([r["latency_ms"] for r in refs], dtype=np.float64)
    smooth = np.array([np.median(lat[np.abs(t - x) <= window_s]) for x in t])
    at = np.array([datetime.datetime.fromisoformat(r["measured_at"]).timestamp() if r.get("measured_at") else np.nan
                   for r in rows])
    f = np.interp(np.nan_to_num(at, nan=t[0]), t, smooth) / (np.median(lat) if scale is None else scale)
    return np.where(np.isnan(at), 1.0, f)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def latency_row_problem(rec) -> str | None:
    """What is wrong with one record of ``latency.jsonl`` (the field and why), or ``None`` for a valid one: ``id``
    and ``family`` strings, ``index`` a count, ``status`` ``ok`` or ``error``; an ``ok`` record's ``latency_ms``
    finite and positive and, where present, ``spread`` finite and not negative, ``input_shape`` positive sizes and
    ``measured_at`` an ISO time."""
    if not isinstance(rec, dict):
        return f"a {type(rec).__name__}, not a JSON object"
    for key, ok, want in (("id", lambda v: isinstance(v, str) and v, "a non-empty string"),
                          ("family", lambda v: isinstance(v, str) and v, "a non-empty string"),
                          ("index", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                           "an integer >= 0"),
                          ("status", lambda v: v in ("ok", "error"), "'ok' or 'error'")):
        if key not in rec:
            return f"field {key!r} is missing"
        if not ok(rec[key]):
            return f"field {key!r} is {rec[key]!r}, not {want}"
    if rec["status"] != "ok":
        return None
    ms = rec.get("latency_ms")
    if "latency_ms" not in rec:
        return "field 'latency_ms' is missing"
    if not _number(ms) or not math.isfinite(ms) or ms <= 0:
        return f"field 'latency_ms' is {ms!r}; a latency must be a finite number above 0"
    checks = (("spread", lambda v: _number(v) and math.isfinite(v) and v >= 0, "a finite number >= 0"),
              ("input_shape", lambda v: isinstance(v, list) and v and all(
                  isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v), "a list of positive sizes"),
              ("measured_at", _iso_time, "an ISO time"))
    for key, ok, want in checks:
        if key in rec and not ok(rec[key]):
            return f"field {key!r} is {rec[key]!r}, not {want}"
    return None


def _iso_time(v) -> bool:
    try:
        datetime.datetime.fromisoformat(v)
    except (TypeError, ValueError):
        return False
    return True


def completed_ids(records: Iterable) -> set[str]:
    """The ids a resumed :func:`profile_dataset` skips: those of valid records (:func:`latency_row_problem`), a
    measured model or a failure that is not retried. An invalid record (a NaN or negative latency, a missing field)
    does not count: its model is measured again."""
    return {r["id"] for r in records if latency_row_problem(r) is None}


def _drop_invalid_rows(path: Path) -> int:
    """Rewrite ``latency.jsonl`` (atomically) without its invalid records, so that the models measured again replace
    them; returns how many were dropped. A torn last line is left to :class:`JsonlAppender`."""
    rows = read_jsonl_numbered(path)
    keep = [r for _, r in rows if latency_row_problem(r) is None]
    if len(keep) < len(rows):
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in keep)
    return len(rows) - len(keep)


def profile_dataset(families: Iterable[str], per_family: int, out_dir: str | os.PathLike, *, seed: int = 0,
                    threads: int = 1, batch: int = 1, rounds: int = 5, runs: int = 20, warmup: int = 10,
                    opset: int = OPSET, progress: bool = True, reference_every: int = REFERENCE_EVERY,
                    runtime: str = "onnxruntime", budget_s: float | None = None) -> dict:
    """Sample ``per_family`` networks of each family, measure them and append the results to ``out_dir``.

    ``runtime`` (:data:`nnformer.latency.runtimes.RUNTIMES`) and ``threads`` / ``batch`` make the device the labels
    are for; ``budget_s`` caps the timed seconds per model (see :func:`measure`; zoo models reach 10 GFLOPs).
    The zoo's families (:mod:`nnformer.latency.zoo`) are known here; a family whose library is not installed is
    refused before anything is measured.

    Models are visited index-major (model 0 of every family, then model 1, ...) so a partial dataset is balanced
    across families and slow drifts of the machine are spread over all of them. Ids are ``<family>-<index:05d>``;
    the spec of an id depends only on (seed, family, index), so rerunning with a larger ``per_family`` or more
    families measures only the new ids. A failure is recorded (``status: "error"``, ``stage``, ``error``) and the
    run goes on; a record that is not valid (:func:`latency_row_problem`: a NaN or negative latency, a missing field)
    is removed and its model measured again. With ``reference_every > 0`` one fixed network (:data:`REFERENCE`) is
    timed at the start, after every ``reference_every`` models and at the end, into ``reference.jsonl`` (a shared
    host's speed drifts by several percent within an hour: :func:`drift_factors` puts the labels back on one scale).

    Returns:
        ``{"out": dir, "measured": n, "failed": n, "skipped": n}`` (skipped = ids already in the dataset), and
        ``"invalid": n`` when that many invalid records were removed.
    """
    from tqdm.auto import tqdm

    from . import runtimes, zoo
    from .families import FAMILIES, sample
    from .onnx_graph import FEATURE_NAMES, STATIC_NAMES

    families = [f.strip() for f in families if f.strip()]
    if not families:
        raise FamilyError("no model family given")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise FamilyError(f"unknown model family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
    if per_family < 0:
        raise NNFormerError(f"per_family must be >= 0, got {per_family}")
    for f in families:
        library = zoo.ZOO_FAMILIES.get(f)
        if library and library != "torch":
            zoo.need(library)
    settings = {"seed": int(seed), "threads": int(threads), "batch": int(batch), "rounds": int(rounds),
                "runs": int(runs), "warmup": int(warmup), "opset": int(opset), "runtime": runtime,
                "budget_s": budget_s}
    _check_counts(warmup, runs, rounds)
    if threads < 1 or batch < 1:
        raise NNFormerError(f"threads and batch must be >= 1, got threads={threads}, batch={batch}")
    if reference_every < 0:
        raise NNFormerError(f"reference_every must be >= 0, got {reference_every}")
    # before the directory is made: without ONNX Runtime or the runtime asked for, nothing is left behind
    env = {**environment(threads, batch), **runtimes.versions(runtimes.check_runtime(runtime)), **zoo.versions()}
    if runtime != "onnxruntime":
        env.pop("provider", None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out, "profiling run"):
        remove_stale_temporaries(out, whole_directory=True)  # left by a run killed mid-write (the lock is ours)
        old = _check_meta(out, settings, env)
        invalid = _drop_invalid_rows(out / "latency.jsonl")
        done = completed_ids(read_jsonl(out / "latency.jsonl"))
        meta = {"format": "nnformer-latency/1", "settings": settings, "environment": old.get("environment", env),
                "families": sorted(set(old.get("families", [])) | set(families)),
                "feature_names": list(FEATURE_NAMES), "static_names": list(STATIC_NAMES),
                "created": old.get("created", datetime.datetime.now().isoformat(timespec="seconds"))}
        _write_meta(out, meta)
        todo = [(f, i) for i in range(per_family) for f in families if f"{f}-{i:05d}" not in done]
        counts = {"out": str(out), "measured": 0, "failed": 0, "skipped": per_family * len(families) - len(todo),
                  **({"invalid": invalid} if invalid else {})}
        graphs, lats = JsonlAppender(out / "graphs.jsonl"), JsonlAppender(out / "latency.jsonl")
        bar = tqdm(todo, desc="profile", unit="model", disable=not progress, dynamic_ncols=True, file=sys.stderr)
        stack = contextlib.ExitStack()
        ref = None
        try:
            if reference_every and todo:
                ref = _Reference(out, stack.enter_context(tempfile.TemporaryDirectory(prefix="nnformer-ref-")),
                                 batch=batch, opset=opset, timing={"threads": threads, "batch": batch,
                                                                   "warmup": warmup, "runs": runs, "rounds": rounds,
                                                                   "runtime": runtime, "budget_s": budget_s})
                stack.callback(ref.close)
                ref.time(0)
            for family, index in bar:
                uid = f"{family}-{index:05d}"
                head = {"id": uid, "family": family, "index": index}
                try:
                    spec = sample(family, seed, index)
                    lat, gr = profile_spec(spec, threads=threads, batch=batch, warmup=warmup, runs=runs,
                                           rounds=rounds, opset=opset, runtime=runtime, budget_s=budget_s)
                except NNFormerError as e:
                    lats.write({**head, "status": "error", "stage": getattr(e, "stage", "sample"),
                                "error": one_line(e)})
                    counts["failed"] += 1
                    bar.set_postfix_str(f"{uid}: failed ({counts['failed']})")
                    continue
                graphs.write({**head, "seed": seed, "spec": spec.to_dict(), **gr})
                lats.write({**head, "status": "ok", **lat,
                            "measured_at": datetime.datetime.now().isoformat(timespec="seconds")})
                counts["measured"] += 1
                bar.set_postfix_str(f"{uid}: {lat['latency_ms']:.2f} ms")
                if ref is not None and counts["measured"] % reference_every == 0:
                    ref.time(counts["measured"])
            if ref is not None and counts["measured"] % reference_every:
                ref.time(counts["measured"])
        finally:
            bar.close()
            graphs.close()
            lats.close()
            stack.close()
            pack_graphs(out)
    return counts
