"""ONNX model -> :class:`~nnformer.graph.ArchGraph` with per-node features (whole-network latency, NNLQ-style).

Nodes are ONNX operators (op names ``onnx:<OpType>``), plus a virtual ``input`` node per graph input and an
``output`` node per graph output, so a network has one source like the cell graphs; ``adj[i, j] = 1`` when node ``j``
reads a tensor that node ``i`` writes. Any operator converts; the op vocabulary :data:`nnformer.vocab.ONNX` holds
those of the ten model families and encodes every other one as ``onnx:other``. Weight-stripped files (initializers
with dims and no values) and files with external data import without their weights: only shapes are read. What is
left out, and why:

* weights: initializers, ``Constant`` nodes and nodes that only transform constants (the legacy exporter emits an
  ``Identity`` per shared initializer, hundreds for a MobileNet) are data, not computation;
* ``Identity`` and ``Dropout`` on the activation path are inference no-ops (ONNX Runtime removes them); edges pass
  through them.

Per-node features (:data:`FEATURE_NAMES`) are raw numbers for attributes and shapes (an encoder can apply sinusoidal
encodings as NAR-Former does) and ``log1p`` of FLOPs, parameters and memory traffic, which span six decades. Shapes
come from ONNX shape inference. FLOPs count a multiply-add as 2, an element-wise op as 1 per output element; ops
without a formula (reshapes, concatenation, unknown ops) count 0. Graph-level static features come separately.

Example:
    >>> g, static = onnx_to_graph("model.onnx")  # doctest: +SKIP
    >>> g.ops[:3], static["flops"]  # doctest: +SKIP
    (('input', 'onnx:Conv', 'onnx:Relu'), 3637.0e6)
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import warnings
from pathlib import Path
from typing import NamedTuple, get_type_hints

import numpy as np

from ..errors import OnnxError, one_line
from ..graph import FORMAT as GRAPH_FORMAT
from ..graph import ArchGraph
from ..vocab import ONNX_PREFIX

OPSET = 17  # the ONNX opset models are exported at
# the converter's version, raised when a change of the conversion changes the graphs it makes (2: ONNX's own shape
# inference runs again, and one ONNX Runtime run finds the shapes it leaves unknown): a device profile written by an
# older one has its reference graphs converted again when it is loaded (nnformer.latency.probe.load_profile)
CONVERTER = 2

FEATURE_NAMES = ("kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w", "dilation_h", "dilation_w",
                 "groups", "c_in", "c_out", "out_h", "out_w", "log_out_numel", "log_flops", "log_params", "log_mem")
STATIC_NAMES = ("flops", "params", "memory_access", "batch", "num_ops", "input_numel")
COMPACT_FORMAT = GRAPH_FORMAT  # what to_compact writes: ArchGraph.to_dict's format
LEGACY_COMPACT_FORMAT = "nnformer-onnx-graph/1"  # same keys; the committed datasets/latency-cpu-b1 was written so
_COMPACT_FORMATS = (COMPACT_FORMAT, LEGACY_COMPACT_FORMAT)

_WINDOWED = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "ConvInteger", "QLinearConv"}
_GLOBAL_POOL = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}
_PASS_THROUGH = {"Identity", "Dropout"}
# FLOPs per output element of element-wise ops
_ELEMENTWISE = {**dict.fromkeys(["Relu", "Add", "Sub", "Mul", "Div", "Sigmoid", "Clip", "HardSigmoid", "Tanh",
                                 "LeakyRelu", "Elu", "Selu", "Exp", "Log", "Sqrt", "Neg", "Abs", "Max", "Min", "Sum",
                                 "PRelu", "Erf", "Pow", "Reciprocal", "Floor", "Ceil", "Mean", "Where", "Resize",
                                 "Upsample", "Cast"], 1),
                "HardSwish": 3, "Softmax": 3, "LogSoftmax": 3, "Gelu": 8, "BatchNormalization": 2,
                "InstanceNormalization": 5, "LayerNormalization": 5, "Mish": 4, "Softplus": 2}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceProd"}
_ELEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}
_FLOAT_TYPES = {1, 10, 11, 16}


class ConvertedGraph(NamedTuple):
    """The node graph of an ONNX model and its graph-level static features (:data:`STATIC_NAMES`)."""

    graph: ArchGraph
    static: dict


# This module defers annotations, so NamedTuple gives the generated __new__ the unresolved names: resolve them here,
# or the constructor's signature (help(), the API reference) cannot name ArchGraph.
ConvertedGraph.__new__.__annotations__ = get_type_hints(ConvertedGraph)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxError("reading ONNX models needs the 'onnx' package: pip install 'nnformer[latency]'") from None
    return onnx


def load_model(model, batch: int | None = None):
    """An ``onnx.ModelProto`` from a path, bytes or a model, checked and with inferred shapes.

    A symbolic or unknown first dimension of each graph input is set to ``batch`` (default 1) so that FLOPs and
    shapes are concrete. Raises :class:`OnnxError` for anything that is not a valid ONNX model.
    """
    onnx = _onnx()
    where = str(model) if isinstance(model, (str, os.PathLike)) else "ONNX model"
    try:
        if isinstance(model, (str, os.PathLike)):
            if os.path.isdir(model):
                raise OnnxError(f"{where} is a directory, not an ONNX file")
            m = onnx.load(os.fspath(model), load_external_data=False)  # weights are not needed, only their shapes
        elif isinstance(model, (bytes, bytearray)):
            m = onnx.load_from_string(bytes(model))
        elif isinstance(model, onnx.ModelProto):
            m = model
        else:
            raise OnnxError(f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}")
        if not m.graph.node:
            raise OnnxError(f"{where} has no operators (empty or not an ONNX file)")
        onnx.checker.check_model(_checkable(m))
    except FileNotFoundError:
        raise OnnxError(f"no ONNX file at {where}") from None
    except OnnxError:
        raise
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError, checker ValidationError, OSError ...
        raise OnnxError(f"cannot read {where}: {one_line(e)}") from None
    inits = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name not in inits and len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = int(batch or 1)
    return _infer_shapes(m)


def _infer_shapes(m):
    """``m`` with the shapes of its values: ONNX's shape inference (with data propagation); when that leaves some
    unknown (a shape computed through Div, Range or Where, as attention masks and window partitions do) and ONNX
    Runtime is installed, its symbolic shape inference, and for what is still unknown, the shapes of one ONNX Runtime
    run of the model without graph optimisations (random weights where the file has none). Models ONNX resolves
    fully (every CNN of the datasets) keep exactly ONNX's shapes. Failures are not fatal: unknown shapes count as 0."""
    onnx = _onnx()
    try:
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001
        inferred = m
    if not _unknown_outputs(inferred):
        return inferred
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return inferred
    try:
        with _quiet_stdout(), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inferred = SymbolicShapeInference.infer_shapes(m, auto_merge=True) or inferred
    except Exception:  # noqa: BLE001 - its own assertion errors on unusual graphs
        pass
    return _run_shapes(inferred)


def _unknown_outputs(m) -> list[str]:
    """Operator outputs of ``m`` whose shape is not known in every dimension, in graph order."""
    known = {v.name for v in [*m.graph.value_info, *m.graph.output]
             if v.type.tensor_type.HasField("shape")
             and all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)}
    return [o for node in m.graph.node for o in node.output if o and o not in known]


def _run_shapes(m):
    """``m`` with the shapes of its still-unknown operator outputs taken from one ONNX Runtime run (no graph
    optimisations, so every output of the file is computed; random inputs, and random weights where the file was
    stripped of them). ``m`` unchanged when ONNX Runtime is missing or cannot run it."""
    unknown = _unknown_outputs(m)
    if not unknown:
        return m
    try:
        import onnx
        from onnx import helper

        from .runtimes import feeds, session

        c = type(m)()
        c.CopyFrom(m)
        outputs = {o.name for o in c.graph.output}
        c.graph.output.extend(onnx.ValueInfoProto(name=t) for t in unknown if t not in outputs)
        sess = session(_with_weights(c) or c.SerializeToString(), threads=1, optimize=False)
        values = sess.run(unknown, feeds(sess))
    except Exception:  # noqa: BLE001 - onnxruntime missing, a model it cannot load or run, out of memory
        return m
    found = {t: v for t, v in zip(unknown, values) if isinstance(v, np.ndarray)}
    kept = [v for v in m.graph.value_info if v.name not in found]
    del m.graph.value_info[:]
    m.graph.value_info.extend(kept)
    m.graph.value_info.extend(helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                              for t, v in found.items())
    for o in m.graph.output:  # a graph output whose shape was unknown
        if o.name in found:
            o.CopyFrom(helper.make_tensor_value_info(o.name, helper.np_dtype_to_tensor_dtype(found[o.name].dtype),
                                                     found[o.name].shape))
    return m


_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def _has_data(t) -> bool:
    """Whether an initializer carries its values (a weight-stripped or external-data file keeps only dims)."""
    if t.data_location == 1:  # TensorProto.EXTERNAL: values in another file, not read here
        return False
    return _numel(list(t.dims)) == 0 or any(len(getattr(t, f)) for f in _DATA_FIELDS)


def _with_weights(m) -> bytes | None:
    """A weight-stripped model (float initializers with dims and no values) as bytes with seeded random weights,
    which time the same as trained ones; ``None`` when every initializer has its values (or lives in an external
    file, which ONNX Runtime reads itself)."""
    from onnx import numpy_helper

    stripped = [t for t in m.graph.initializer if not _has_data(t) and t.data_location != 1]
    if not stripped:
        return None
    rng = np.random.default_rng(0)
    c = type(m)()
    c.CopyFrom(m)
    by_name = {t.name: t for t in c.graph.initializer}
    for t in stripped:
        if t.data_type not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            raise OnnxError(f"initializer {t.name!r} (an integer tensor, e.g. a shape) has no values: ONNX Runtime "
                            f"needs them; only float weights may be stripped")
        dtype = {1: np.float32, 10: np.float16, 11: np.float64, 16: np.float32}[t.data_type]
        arr = (0.02 * rng.standard_normal(list(t.dims))).astype(dtype)
        filled = numpy_helper.from_array(arr, t.name)
        if t.data_type == 16:
            filled.data_type = 16
            filled.raw_data = (arr.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        by_name[t.name].CopyFrom(filled)
    return c.SerializeToString()


def _checkable(m):
    """``m`` as the ONNX checker accepts it: initializers without values (weight-stripped files, the usual way models
    are shared for latency work, or external data) become typed graph inputs of a copy; ``m`` itself is returned
    when every initializer has its values."""
    stripped = [t for t in m.graph.initializer if not _has_data(t)]
    if not stripped:
        return m
    from onnx import helper

    c = type(m)()
    c.CopyFrom(m)  # cheap: the stripped weights hold no values
    names = {t.name for t in stripped}
    kept = [t for t in c.graph.initializer if t.name not in names]
    del c.graph.initializer[:]
    c.graph.initializer.extend(kept)
    have = {i.name for i in c.graph.input}
    c.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in stripped
                         if t.name not in have)
    return c


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _numel(dims) -> int:
    return int(np.prod(dims)) if dims is not None and all(d > 0 for d in dims) else 0


def _tensor_infos(m) -> dict[str, tuple[list[int] | None, int]]:
    """name -> (dims or None if unknown rank, elem_type) for every typed tensor; unknown dims are 0."""
    out: dict[str, tuple[list[int] | None, int]] = {}
    for vi in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim] if tt.HasField("shape") else None
        out[vi.name] = (dims, tt.elem_type)
    for init in m.graph.initializer:
        out[init.name] = (list(init.dims), init.data_type)
    for node in m.graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = (list(a.t.dims), a.t.data_type)
    return out


def _node_features(op: str, attrs: dict, ins: list, outs: list, weights: list) -> tuple[list[float], float, int, int]:
    """(feature row, FLOPs, params, bytes moved) of one operator. ``ins``/``outs`` are (dims, elem_type) pairs of
    its activation inputs and outputs; ``weights`` those of its constant inputs."""
    x = ins[0][0] if ins and ins[0][0] is not None else []
    y = outs[0][0] if outs and outs[0][0] is not None else []
    n_out = _numel(y)
    kernel = stride = pads = dil = (0, 0)
    groups = 0
    c_in = x[1] if len(x) >= 2 else 0
    c_out = y[1] if len(y) >= 2 else 0
    flops = 0.0
    w0 = weights[0][0] if weights and weights[0][0] is not None else []
    if op in _WINDOWED:
        ks = list(attrs.get("kernel_shape") or (w0[2:] if len(w0) > 2 else []))
        nsp = max(len(ks), 1)
        ks = (ks + [1, 1])[:2]
        kernel = tuple(ks)
        stride = tuple((list(attrs.get("strides") or [1] * nsp) + [1, 1])[:2])
        p = list(attrs.get("pads") or [0] * (2 * nsp))
        pads = tuple((p[:nsp] + [0, 0])[:2])
        dil = tuple((list(attrs.get("dilations") or [1] * nsp) + [1, 1])[:2])
        groups = int(attrs.get("group", 1))
        if op == "Conv" and c_in:
            flops = 2.0 * n_out * (c_in / groups) * kernel[0] * kernel[1] + (n_out if len(weights) > 1 else 0)
        elif op == "ConvTranspose" and c_out:
            flops = 2.0 * _numel(x) * (c_out / groups) * kernel[0] * kernel[1]
        elif op in ("MaxPool", "AveragePool", "LpPool"):
            flops = float(n_out * kernel[0] * kernel[1])
    elif op in _GLOBAL_POOL:
        kernel = tuple((list(x[2:]) + [1, 1])[:2]) if len(x) > 2 else (0, 0)
        flops = float(_numel(x))
    elif op == "Gemm":
        k_dim = (x[0] if attrs.get("transA") else x[-1]) if x else 0
        c_in, c_out = k_dim, (y[-1] if y else 0)
        flops = 2.0 * n_out * k_dim + (n_out if len(weights) + len(ins) > 2 else 0)
    elif op == "MatMul":
        k_dim = x[-1] if x else 0
        c_in, c_out = k_dim, (y[-1] if y else 0)
        flops = 2.0 * n_out * k_dim
    elif op in ("LSTM", "GRU", "RNN") and len(x) == 3 and len(weights) >= 2 and weights[1][0]:
        # x: (seq, batch, in) (layout 0); W: (dirs, gates * hidden, in), R: (dirs, gates * hidden, hidden)
        w, r = weights[0][0], weights[1][0]
        seq_batch = x[0] * x[1]
        c_in, c_out = x[2], r[-1] if r else 0
        flops = 2.0 * seq_batch * ((_numel(w) if w else 0) + _numel(r))
    elif op in _REDUCE:
        flops = float(_numel(x))
    elif op in _ELEMENTWISE:
        flops = float(_ELEMENTWISE[op] * n_out)
    if len(y) >= 4:
        out_h, out_w = y[2], y[3]
    elif len(y) == 3:
        out_h, out_w = y[2], 1
    else:
        out_h, out_w = (1, 1) if y else (0, 0)
    params = sum(_numel(d) for d, t in weights if d is not None and t in _FLOAT_TYPES and _numel(d) > 1)
    mem = sum(_numel(d) * _ELEM_BYTES.get(t, 4) for d, t in [*ins, *outs, *weights] if d is not None)
    row = [*kernel, *stride, *pads, *dil, groups, c_in, c_out, out_h, out_w, math.log1p(n_out), math.log1p(flops),
           math.log1p(params), math.log1p(mem)]
    return [float(v) for v in row], flops, params, mem


def onnx_to_graph(model, batch: int | None = None, io_nodes: bool = True) -> ConvertedGraph:
    """Convert an ONNX model (path, bytes or ``onnx.ModelProto``) to its operator graph and static features.

    Args:
        model: the ONNX model.
        batch: value for a symbolic batch dimension of the inputs (default 1); a static one is kept.
        io_nodes: add the virtual ``input`` / ``output`` nodes.

    Returns:
        ``(graph, static)``: ``graph.features`` has one row of :data:`FEATURE_NAMES` per node; ``static`` holds
        total ``flops``, ``params`` (unique float weights), ``memory_access`` (bytes read and written, summed over
        operators), ``batch``, ``num_ops`` (operators kept) and ``input_numel`` (elements of one sample of the
        first input: the input resolution), and, not a feature, ``unknown_shapes``: operators with an output whose
        shape inference could not find (their FLOPs and bytes count as 0, so the totals undercount).

    Raises:
        OnnxError: the model cannot be read; GraphSizeError: more operators than ``nnformer.graph.MAX_NODES``.
    """
    m = load_model(model, batch)
    g = m.graph
    info = _tensor_infos(m)
    const = {i.name for i in g.initializer}
    alias: dict[str, str] = {}  # tensor -> the tensor it is a pass-through copy of
    graph_inputs = [i for i in g.input if i.name not in const]
    kept = []  # ONNX nodes that become graph nodes
    for node in g.node:
        ins = [t for t in node.input if t]
        if node.op_type == "Constant" or (ins and all(alias.get(t, t) in const for t in ins)):
            const.update(node.output)  # folds to weights: a constant subgraph
            if node.op_type in _PASS_THROUGH and ins:
                alias[node.output[0]] = alias.get(ins[0], ins[0])
            continue
        if node.op_type in _PASS_THROUGH and ins:
            alias[node.output[0]] = alias.get(ins[0], ins[0])
            continue
        kept.append(node)

    ops: list[str] = []
    rows: list[list[float]] = []
    producer: dict[str, int] = {}
    edges: set[tuple[int, int]] = set()
    if io_nodes:
        for inp in graph_inputs:
            producer[inp.name] = len(ops)
            d = info.get(inp.name, (None, 1))
            rows.append(_node_features("input", {}, [d], [d], [])[0])
            ops.append("input")
    tot_flops = tot_mem = 0.0
    unknown = 0  # operators with an output whose shape inference left unknown: their FLOPs and bytes count as 0
    unknown_names = set(_unknown_outputs(m))  # (an empty tensor's known 0 is not unknown)
    weight_names: set[str] = set()
    for node in kept:
        idx = len(ops)
        for t in node.output:
            producer[t] = idx
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        name = ONNX_PREFIX + op
        srcs = [alias.get(t, t) for t in node.input if t]
        acts = [info.get(t, (None, 1)) for t in srcs if t not in const]
        wts = [info.get(t, (None, 1)) for t in srcs if t in const]
        weight_names.update(t for t in srcs if t in const and info.get(t, (None, 0))[1] in _FLOAT_TYPES
                            and _numel(info.get(t, (None, 0))[0]) > 1)
        row, flops, _, mem = _node_features(node.op_type, _attrs(node), acts, [info.get(t, (None, 1))
                                                                             for t in node.output if t], wts)
        rows.append(row)
        ops.append(name)
        unknown += any(t in unknown_names for t in node.output if t)
        tot_flops += flops
        tot_mem += mem
    first_op = len(ops) - len(kept)  # kept[k] is node first_op + k (after the virtual input nodes)
    for j, node in enumerate(kept, start=first_op):
        for t in node.input:
            src = producer.get(alias.get(t, t)) if t else None
            if src is not None and src != j:
                edges.add((src, j))
    if io_nodes:
        for out in g.output:
            src = producer.get(alias.get(out.name, out.name))
            if src is not None:
                edges.add((src, len(ops)))
            d = info.get(out.name, (None, 1))
            rows.append(_node_features("output", {}, [d], [d], [])[0])
            ops.append("output")
    adj = np.zeros((len(ops), len(ops)), dtype=np.uint8)
    for i, j in edges:
        adj[i, j] = 1
    first = info.get(graph_inputs[0].name, (None, 1))[0] if graph_inputs else None
    static = {"flops": float(tot_flops), "params": float(sum(_numel(info[t][0]) for t in weight_names)),
              "memory_access": float(tot_mem), "batch": float(first[0] if first else 0), "num_ops": float(len(kept)),
              "input_numel": float(_numel(first[1:]) if first and len(first) > 1 else 0),
              "unknown_shapes": float(unknown)}
    return ConvertedGraph(ArchGraph(ops, adj, np.asarray(rows, dtype=np.float32)), static)


def torch_to_graph(model, example_input, opset: int = 17) -> ConvertedGraph:
    """A PyTorch module's graph: exported in memory through the ONNX exporter with ``example_input`` (a tensor or a
    shape), then converted as :func:`onnx_to_graph` does. Raises :class:`OnnxError` when the export fails."""
    return onnx_to_graph(export_onnx(model, example_input, None, opset))


def static_vector(static: dict) -> np.ndarray:
    """The graph-level features in :data:`STATIC_NAMES` order, log1p-scaled (a model input of fixed width)."""
    return np.log1p(np.array([float(static.get(k, 0.0)) for k in STATIC_NAMES], dtype=np.float64)).astype(np.float32)


def with_static(graph: ArchGraph, static: dict) -> ArchGraph:
    """``graph`` carrying :func:`static_vector` of ``static`` as its graph-level features (what a latency predictor
    reads beside the nodes)."""
    return ArchGraph(graph.ops, graph.adj, graph.features, graph.depth, static_vector(static))


def node_costs(graph: ArchGraph) -> tuple[np.ndarray, np.ndarray]:
    """``(FLOPs, bytes moved)`` of each operator of a converted graph (from its ``log_flops`` and ``log_mem``
    features; the virtual input and output nodes cost 0): what :class:`nnformer.baselines.Roofline` sums."""
    f = np.asarray(graph.features, dtype=np.float64)
    return (np.expm1(f[:, FEATURE_NAMES.index("log_flops")]), np.expm1(f[:, FEATURE_NAMES.index("log_mem")]))


def to_compact(graph: ArchGraph, static: dict | None = None, digits: int = 4) -> dict:
    """A small JSON-serialisable form: :meth:`ArchGraph.to_dict <nnformer.graph.ArchGraph.to_dict>` (an edge list,
    features rounded to ``digits`` decimals: raw attributes are integers, log features need no more) plus the
    static features under ``"static"``."""
    d = graph.to_dict(digits)
    if static is not None:
        d["static"] = {k: float(v) for k, v in static.items()}
    return d


def compact_difference(old: dict, new: dict, tol: float = 1e-3) -> str:
    """'' when two compact graphs (:func:`to_compact`) agree: the same operators and edges, node and static features
    within ``tol`` (relative for the static ones; the stored rounding is 1e-4); else what differs first (a record
    without ``unknown_shapes`` matches any count)."""
    if old.get("ops") != new.get("ops"):
        return "operators"
    if sorted(map(tuple, old.get("edges", []))) != sorted(map(tuple, new.get("edges", []))):
        return "edges"
    a, b = np.asarray(old.get("features", []), float), np.asarray(new.get("features", []), float)
    if a.shape != b.shape or (a.size and np.max(np.abs(a - b)) > tol):
        return "node features"
    so, sn = old.get("static", {}), new.get("static", {})
    for k in sorted(set(so) | set(sn)):
        if k == "unknown_shapes" and k not in so:  # older records do not carry it
            continue
        x, y = float(so.get(k, 0.0)), float(sn.get(k, 0.0))
        if abs(x - y) > tol * max(1.0, abs(x)):
            return f"static {k}"
    return ""


def from_compact(d: dict) -> ConvertedGraph:
    """Inverse of :func:`to_compact`; also reads records of the older format ``nnformer-onnx-graph/1`` (same keys).

    Op names are not checked here: an op outside :data:`nnformer.vocab.ONNX` is refused when the graph is encoded.
    """
    fmt = d.get("format") if isinstance(d, dict) else None
    if fmt not in _COMPACT_FORMATS:
        raise OnnxError(f"not a compact ONNX graph (format {fmt!r}, expected one of "
                        f"{', '.join(map(repr, _COMPACT_FORMATS))})")
    return ConvertedGraph(ArchGraph.from_dict(d), dict(d.get("static", {})))


# ---------------------------------------------------------------------------------------------------- export

@contextlib.contextmanager
def _quiet_stdout():
    """Silence file descriptor 1: on failure the TorchScript exporter prints the whole IR graph from C++."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def _no_fused_fast_paths():
    """PyTorch's fused inference kernels (``nn.TransformerEncoder`` and ``nn.MultiheadAttention`` in eval mode call
    ``aten::_transformer_encoder_layer_fwd``) have no ONNX export: the exporter is shown the plain layers instead,
    the same network as a deployment would run."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def export_onnx(model, input_shape, path: str | os.PathLike | None, opset: int = OPSET) -> Path | bytes:
    """Export a module to ONNX with the TorchScript exporter (``dynamo=False``: no onnxscript needed, and it folds
    BatchNorm into Conv as deployment does). ``input_shape``: a shape (zeros are fed) or an example tensor;
    ``path=None`` exports in memory and returns the bytes. Any failure becomes an :class:`OnnxError` with a one-line
    message."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise OnnxError(f"expected a torch.nn.Module, got {type(model).__name__}")
    try:
        x = input_shape if isinstance(input_shape, torch.Tensor) else torch.zeros(tuple(int(d) for d in input_shape))
    except (RuntimeError, MemoryError) as e:  # too large for this machine's memory
        raise OnnxError(f"cannot make an example input of shape {tuple(input_shape)}: {one_line(e)}") from None
    target = io.BytesIO() if path is None else str(path)
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_stdout(), _no_fused_fast_paths():
            warnings.simplefilter("ignore")
            if any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in model.parameters()):
                model.eval()(x)  # lazy modules (nn.LazyLinear, ...) take their shapes from a first call
            torch.onnx.export(model.eval(), (x,), target, dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["output"], do_constant_folding=True)
    except Exception as e:  # noqa: BLE001 - exporter errors are RuntimeError, OnnxExporterError, TypeError, ...
        memory = isinstance(e, MemoryError) or "allocate" in str(e)  # torch's allocator: "... tried to allocate ..."
        raise OnnxError(f"cannot export {type(model).__name__} to ONNX: "
                        + (f"not enough memory to run it once on an input of shape {tuple(x.shape)}: "
                           if memory else "") + one_line(e)) from None
    return target.getvalue() if path is None else Path(path)
