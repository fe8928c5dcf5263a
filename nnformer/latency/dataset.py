"""Read a latency dataset directory (what :func:`~nnformer.latency.profiler.profile_dataset` writes, the format its
module describes) back, checked, into models and labels to train and score on.

* :func:`load_dataset`: the measured models, in measurement order, each with its spec, graph and latency fields;
* :func:`load_training_set`: the same as ``(rows, graphs, latency_ms, families)``, each graph carrying its static
  features, the labels optionally corrected for the host's drift (what
  :func:`~nnformer.latency.sources.load_latency_data` reads for a dataset directory).

A damaged file (a torn or invalid line, a model without its graph, a graph without its features) is a
:class:`~nnformer.errors.DataError` naming the file, line and field.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import DataError, NNFormerError, one_line
from ..io import read_jsonl_numbered
from .profiler import _graph_records, drift_factors, latency_row_problem


def _graph_record_problem(raw: dict, graph) -> str | None:
    """What is wrong with a graph record that :func:`~nnformer.latency.onnx_graph.from_compact` read (``raw``, its
    ``graph``) for a latency dataset, or None: every model's nodes carry the ONNX node features
    (:data:`~nnformer.latency.onnx_graph.FEATURE_NAMES`, one width for all) and its ``static`` is an object of finite
    numbers >= 0 with the graph-level features a profile run records (:data:`~nnformer.latency.onnx_graph.STATIC_NAMES`;
    ``input_numel`` may be missing, as in datasets written before it was recorded)."""
    from .onnx_graph import FEATURE_NAMES, STATIC_NAMES

    if graph.features is None:
        return "field 'graph.features' is missing (no node features)"
    if graph.features.shape[1] != len(FEATURE_NAMES):
        return (f"field 'graph.features' has {graph.features.shape[1]} values a node, expected {len(FEATURE_NAMES)} "
                f"(the ONNX node features)")
    static = raw.get("static")
    if not isinstance(static, dict):
        return "field 'graph.static' is missing or not an object"
    for k in STATIC_NAMES:
        if k not in static:
            if k == "input_numel":
                continue
            return f"field 'graph.static.{k}' is missing"
        v = static[k]
        try:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        except OverflowError:  # an integer too large for a float
            ok = False
        if not ok:
            return f"field 'graph.static.{k}' is not a finite number >= 0"
    return None


def load_dataset(out_dir: str | os.PathLike) -> list[dict]:
    """The measured models of a dataset directory, in measurement order: dicts with ``id``, ``family``, ``spec``
    (:class:`~nnformer.latency.families.ModelSpec`), ``graph`` (:class:`~nnformer.graph.ArchGraph`), ``static`` and the
    latency fields. Failed models are left out; a graph written twice (a run killed between its two lines) counts
    once. Every line of ``latency.jsonl`` must be whole and valid
    (:func:`~nnformer.latency.profiler.latency_row_problem`) and every measured model must have its graph: anything
    else is a :class:`DataError` naming the file, line and field."""
    from .families import ModelSpec
    from .onnx_graph import from_compact

    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(f"no latency dataset directory at {out}")
    lat_path = out / "latency.jsonl"
    if not lat_path.is_file():
        raise DataError(f"no latency dataset in {out} (latency.jsonl missing: no labels)")
    again = "; rerunning the `nnformer profile` command that wrote it measures that model again"
    try:
        lines = read_jsonl_numbered(lat_path, strict=True)
    except DataError as e:
        raise DataError(f"{e}{again}") from None
    graphs = _graph_records(out)
    rows, seen = [], set()
    for line, lat in lines:
        problem = latency_row_problem(lat)
        if problem:
            raise DataError(f"{lat_path}: line {line}: {problem}{again}")
        uid = lat["id"]
        if lat["status"] != "ok" or uid in seen:
            continue
        if uid not in graphs:
            raise DataError(f"{lat_path}: line {line}: model {uid} has no graph record in {out / 'graphs.jsonl.gz'}")
        seen.add(uid)
        g_path, g_line, g = graphs[uid]
        try:
            spec = ModelSpec.from_dict(g["spec"])
            graph, static = from_compact(g["graph"])
        except (NNFormerError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"{g_path}: line {g_line}: the graph record of {uid} is invalid: "
                            f"{type(e).__name__}: {one_line(e)}") from None
        problem = _graph_record_problem(g["graph"], graph)
        if problem:
            raise DataError(f"{g_path}: line {g_line}: the graph record of {uid} is invalid: {problem}")
        if "input_numel" not in static and lat.get("input_shape"):  # datasets written before it was recorded
            static["input_numel"] = float(math.prod(lat["input_shape"][1:]))
        rows.append({**lat, "spec": spec, "graph": graph, "static": static})
    if not rows:
        raise DataError(f"{out}: no measured model (every latency.jsonl entry failed)")
    return rows


def load_training_set(out_dir: str | os.PathLike, correct_drift: bool = False
                      ) -> tuple[list[dict], list, np.ndarray, list[str]]:
    """``(rows, graphs, latency_ms, families)`` of a dataset directory, ready to train on: :func:`load_dataset`'s rows
    and each model's graph carrying its static features (:func:`~nnformer.latency.onnx_graph.with_static`).
    ``correct_drift``: each latency divided by its :func:`~nnformer.latency.profiler.drift_factors` (a
    :class:`DataError` for a dataset without reference timings)."""
    from .onnx_graph import with_static

    rows = load_dataset(out_dir)
    ms = np.array([r["latency_ms"] for r in rows], dtype=np.float64)
    if correct_drift:
        f = drift_factors(out_dir, rows)
        if f is None:
            raise DataError(f"{out_dir}: no reference timings (reference.jsonl) to correct the drift with; "
                            f"profile with --reference-every N (N > 0)")
        ms = ms / f
    return rows, [with_static(r["graph"], r["static"]) for r in rows], ms, [r["family"] for r in rows]
