"""Which operators of a model a latency predictor has seen in training, and how much of the model the rest is.

A predictor remembers the op types of its training graphs (``seen_ops`` in its header, with node counts), their
sizes (``train_ranges``: nodes, depth and each graph-level feature, smallest and largest) and their operator mixes
(``train_op_mix``: the share of each op type among a graph's operators, as the distinct mixes rounded, and how far
each training graph lies from its nearest other, :func:`mix_record`). For a model it has not seen, :func:`coverage`
names the op types it never met and their share of the model's nodes, FLOPs and memory traffic, any size beyond
those trained on (by :data:`SIZE_MARGIN`), and its operator mix's distance to the nearest training graph's (the L1
distance of the shares: 0 the same mix, 2 no op type in common); above any of the ``THRESHOLDS``, outside the
sizes, or farther than the training graphs lie from one another (by :data:`MIX_MARGIN`), the prediction is called
unreliable: :func:`~nnformer.latency.predict.predict_graphs` gives it no interval, or, flagged for its operator mix
alone (:attr:`Coverage.mix_only`), the wider one a predictor may carry calibrated on families it never trained on.
So is a model most of whose
operators have an output that shape inference left unknown (``unknown_shapes`` of the converted graph: those
operators' FLOPs and bytes count as 0, so the model looks smaller than it is). A predictor saved without
one of these records checks nothing for it. An op type outside the predictor's vocabulary is read as the one
``onnx:other`` token, never dropped: it still counts in the graph, but the predictor cannot know its cost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..graph import ArchGraph
from ..vocab import ONNX_PREFIX

# share of the model (0-1) above which a prediction is flagged as unreliable
THRESHOLDS = {"flops": 0.10, "memory": 0.10, "nodes": 0.20, "unknown_shapes": 0.20}
# a model this many times larger than the largest trained on (or smaller than the smallest), in nodes, FLOPs,
# parameters or memory traffic, is outside the training data: its prediction is flagged and given no interval
SIZE_MARGIN = 1.25
_SIZES = (("flops", "FLOPs"), ("params", "parameters"), ("memory_access", "memory traffic"))
# a model whose operator mix lies this many times farther from the nearest training graph's than any training graph
# from its nearest other (and at least MIX_FLOOR: 5% of its operators of other types) is flagged. On the zoo
# (datasets/zoo-ort-t1-b1, 41 families), 1.5 flags no model of a family the predictor trained on (80/20 splits, and
# 10 training models a family, where 1.25 flags 0.2%), and 64% of the models of a family it did not train on
MIX_MARGIN = 1.5
MIX_FLOOR = 0.1
# the mixes are kept rounded to the first of these steps that leaves at most MAX_MIXES distinct ones (then the most
# common): the 1,479 zoo graphs make 185 mixes at 0.01, 50 kB of config.json
MIX_STEPS = (0.01, 0.02, 0.05, 0.1)
MAX_MIXES = 2000


@dataclass(frozen=True)
class Coverage:
    seen: tuple[str, ...]  # op types of the model that the predictor trained on
    unseen: tuple[str, ...]  # op types of the model that it never trained on
    nodes: int
    unseen_nodes: int
    unseen_flops_share: float  # 0-1
    unseen_memory_share: float  # 0-1
    outside: tuple[str, ...] = ()  # sizes (and an operator mix) beyond those of the training graphs, described
    mix_distance: float | None = None  # L1 distance of its operator mix to the nearest training graph's (0-2)
    mix_limit: float | None = None  # the distance above which the mix is outside (None: no record to check)
    unknown_shapes: int = 0  # operators whose output shape could not be inferred (FLOPs and bytes counted as 0)

    @property
    def mix_outside(self) -> bool:
        return self.mix_distance is not None and self.mix_limit is not None and self.mix_distance > self.mix_limit

    @property
    def unseen_node_share(self) -> float:
        return self.unseen_nodes / max(self.nodes, 1)

    @property
    def unknown_shape_share(self) -> float:
        return self.unknown_shapes / max(self.nodes, 1)

    @property
    def _shares_known(self) -> bool:  # its operators seen in training and its shapes inferred, in the main
        return (self.unseen_flops_share <= THRESHOLDS["flops"] and self.unseen_memory_share <= THRESHOLDS["memory"]
                and self.unseen_node_share <= THRESHOLDS["nodes"]
                and self.unknown_shape_share <= THRESHOLDS["unknown_shapes"])

    @property
    def reliable(self) -> bool:
        return self._shares_known and not self.outside

    @property
    def mix_only(self) -> bool:
        """Flagged for its operator mix alone: operators and sizes the predictor trained on, put together unlike any
        training graph. Such a model gets the wider interval calibrated on models of families held out of training
        (``interval_unfamiliar`` of the predictor's header, :meth:`nnformer.Predictor.calibrate`), where the
        predictor has one; every other flagged model gets none."""
        return self._shares_known and self.mix_outside and len(self.outside) == 1

    def to_dict(self) -> dict:
        return {**asdict(self), "unseen_node_share": self.unseen_node_share,
                "unknown_shape_share": self.unknown_shape_share, "reliable": self.reliable, "mix_only": self.mix_only}

    def describe(self) -> str:
        """One line: what the predictor knows of this model."""
        strip = lambda ops: ", ".join(o.removeprefix("onnx:") for o in ops)  # noqa: E731
        line = f"{len(self.seen)} operator types seen in training ({strip(self.seen)})"
        if not self.unseen:
            line += "; none unseen"
        else:
            line += (f"; {len(self.unseen)} unseen ({strip(self.unseen)}): {self.unseen_nodes} of {self.nodes} "
                     f"nodes ({100 * self.unseen_node_share:.1f}%), {100 * self.unseen_flops_share:.1f}% of the "
                     f"FLOPs, {100 * self.unseen_memory_share:.1f}% of the memory traffic")
        if self.unknown_shapes:
            line += (f"; output shapes of {self.unknown_shapes} of {self.nodes} operators unknown (their FLOPs and "
                     f"memory traffic count as 0)")
        if self.unknown_shape_share > THRESHOLDS["unknown_shapes"]:
            line += (" - UNRELIABLE: shape inference failed on too much of the model, so its size is undercounted "
                     "(export with static input shapes, or at another opset)")
        elif self.outside:
            what = "operator mixes" if len(self.outside) == 1 and self.mix_outside else \
                "sizes and operator mixes" if self.mix_outside else "sizes"
            line += f" - UNRELIABLE: outside the {what} it trained on (" + "; ".join(self.outside) + ")"
        elif not self.reliable:
            line += " - UNRELIABLE: too much of the model is operators this predictor never trained on"
        return line


def _share(values: np.ndarray, mask: np.ndarray) -> float:
    total = values.sum()
    return float(values[mask].sum() / total) if total > 0 else 0.0


def coverage(predictor, graph: ArchGraph, unknown_shapes: int = 0) -> Coverage:
    """What ``predictor`` (a fitted :class:`~nnformer.Predictor`) has seen of ``graph`` (an ONNX model's graph from
    :func:`~nnformer.latency.onnx_graph.onnx_to_graph`; ``unknown_shapes``: its static ``unknown_shapes``). A
    predictor saved before op counts were kept falls back to its vocabulary: an op type outside it counts as
    unseen."""
    from .onnx_graph import FEATURE_NAMES

    seen_ops = predictor.header_.get("seen_ops")
    real = np.array([o.startswith(ONNX_PREFIX) for o in graph.ops])  # not the virtual input / output nodes
    all_ops = np.asarray(graph.ops)[real]
    ops = list(dict.fromkeys(all_ops.tolist()))
    if seen_ops is None:
        unknown = set(predictor.vocab_.unseen(ops))
        unseen = [o for o in ops if o in unknown]
    else:
        unseen = [o for o in ops if o not in seen_ops]
    mask = np.isin(all_ops, unseen)
    flops = mem = np.zeros(len(all_ops))
    if graph.features is not None and graph.features.shape[1] == len(FEATURE_NAMES):
        f = graph.features[real].astype(np.float64)
        flops = np.expm1(f[:, FEATURE_NAMES.index("log_flops")])
        mem = np.expm1(f[:, FEATURE_NAMES.index("log_mem")])
    outside = _outside(predictor.header_.get("train_ranges"), graph)
    record = predictor.header_.get("train_op_mix")
    distance = mix_distance(record, graph)
    limit = None if distance is None else max(MIX_MARGIN * record["within"], MIX_FLOOR)
    if distance is not None and distance > limit:
        outside += (f"operator mix {distance:.2f} from the nearest training graph's, each training graph's within "
                    f"{record['within']:.2f} of another's"),
    return Coverage(tuple(o for o in ops if o not in unseen), tuple(unseen), len(all_ops), int(mask.sum()),
                    _share(flops, mask), _share(mem, mask), outside, distance, limit, int(unknown_shapes))


def _outside(ranges: dict | None, graph: ArchGraph) -> tuple[str, ...]:
    """How ``graph`` lies beyond the sizes the predictor trained on (``train_ranges`` of its header: nodes, depth,
    FLOPs, parameters, memory traffic; a predictor saved without them checks nothing here), by more than
    :data:`SIZE_MARGIN`."""
    from .onnx_graph import STATIC_NAMES

    if not ranges:
        return ()
    out = []

    def check(what: str, value: float, lo: float, hi: float, words=("largest", "smallest")) -> None:
        if value > hi * SIZE_MARGIN:
            out.append(f"{what} {_amount(value)}, the {words[0]} trained on {_amount(hi)}")
        elif value < lo / SIZE_MARGIN:
            out.append(f"{what} {_amount(value)}, the {words[1]} trained on {_amount(lo)}")

    check("nodes", graph.num_nodes, *ranges["nodes"])
    # the [DEPTH] token's value; unless it is the node count here and in training alike (checked just above)
    if ranges.get("depth") and not (graph.depth_value == graph.num_nodes and ranges["depth"] == ranges["nodes"]):
        check("depth", graph.depth_value, *ranges["depth"], words=("deepest", "shallowest"))
    spans = ranges.get("graph_features")
    gf = graph.graph_features
    if spans and gf is not None and len(spans) == len(gf) == len(STATIC_NAMES):
        for key, what in _SIZES:
            j = STATIC_NAMES.index(key)  # stored as log1p
            check(what, float(np.expm1(gf[j])), float(np.expm1(spans[j][0])), float(np.expm1(spans[j][1])))
    return tuple(out)


def _amount(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def op_mix(graph: ArchGraph) -> dict[str, float]:
    """The share of each op type among ``graph``'s operators (not the virtual input / output nodes); ``{}`` for a
    graph without ONNX operators (e.g. a NAS-Bench-201 cell)."""
    ops = [o for o in graph.ops if o.startswith(ONNX_PREFIX)]
    return {o: k / len(ops) for o, k in sorted(Counter(ops).items())}


def _matrix(mixes: Sequence[dict], ops: list[str], step: float) -> np.ndarray:
    """One row per mix over ``ops``, each share rounded to a multiple of ``step`` (the same way for a stored mix and
    a model's: a training graph is exactly at its own)."""
    col = {o: j for j, o in enumerate(ops)}
    m = np.zeros((len(mixes), len(ops)))
    for i, mix in enumerate(mixes):
        for o, share in mix.items():
            m[i, col[o]] = share
    return np.round(np.round(m / step) * step, 4)


def _nearest(a: np.ndarray, b: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    """The L1 distance of each row of ``a`` to its nearest row of ``b``, not counting row ``own[i]`` of ``b`` (the
    row itself; inf when nothing else is left), in blocks that keep thousands of rows small."""
    out = np.full(len(a), np.inf)
    for i in range(0, len(a), 64):
        d = np.abs(a[i:i + 64, None, :] - b[None, :, :]).sum(-1)
        if own is not None:
            d[np.arange(len(d)), own[i:i + 64]] = np.inf
        out[i:i + 64] = d.min(1)
    return out


def mix_record(graphs: Sequence[ArchGraph], before: dict | None = None) -> dict | None:
    """The operator mixes of the training ``graphs`` (saved with the predictor as ``train_op_mix``; ``before``, a
    record to widen, e.g. by fine-tuning graphs): ``mixes``, the distinct ones as ``{op: share}`` rounded to
    ``step`` (the first of :data:`MIX_STEPS` that leaves at most :data:`MAX_MIXES`), and ``within``, the largest
    distance of a training graph's mix to its nearest other graph's (leave-one-out; a graph sharing its mix with
    another is at 0), never less than ``before``'s. None when no graph has an ONNX operator and there is nothing to
    widen."""
    new = [m for m in (op_mix(g) for g in graphs) if m]
    if not new:
        return before
    old = before["mixes"] if before else []
    ops = sorted({o for m in [*new, *old] for o in m})
    for step in [s for s in MIX_STEPS if not before or s >= before["step"]]:
        rows = np.concatenate([_matrix(new, ops, step), _matrix(old, ops, step)])
        uniq, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        if len(uniq) <= MAX_MIXES:
            break
    inverse = inverse.ravel()
    # a new graph alone with its mix (no other graph's, no kept one's) is as far as the nearest other mix; the rest 0
    alone = np.flatnonzero(counts[inverse[:len(new)]] == 1)
    nearest = _nearest(uniq[inverse[alone]], uniq, own=inverse[alone]) if len(uniq) > 1 else np.zeros(0)
    within = max([*nearest.tolist(), before["within"] if before else 0.0])
    keep = np.sort(np.argsort(-counts, kind="stable")[:MAX_MIXES])  # the most common when still too many
    mixes = [{o: float(v) for o, v in zip(ops, row) if v > 0} for row in uniq[keep]]
    return {"step": step, "within": round(within, 4), "mixes": mixes}


def mix_distance(record: dict | None, graph: ArchGraph) -> float | None:
    """The L1 distance of ``graph``'s operator mix to the nearest of ``record``'s (``train_op_mix`` of a predictor's
    header), both rounded alike; None without a record or without ONNX operators in ``graph``."""
    mix = op_mix(graph)
    if not record or not mix or not record["mixes"]:
        return None
    ops = sorted(set(mix).union(*record["mixes"]))
    stored = _matrix(record["mixes"], ops, record["step"])
    return float(_nearest(_matrix([mix], ops, record["step"]), stored)[0])
