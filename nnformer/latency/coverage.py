"""Which operators of a model a latency predictor has seen in training, and how much of the model the rest is.

A predictor remembers the op types of its training graphs (``seen_ops`` in its header, with node counts) and their
sizes (``train_ranges``: nodes, depth and each graph-level feature, smallest and largest). For a model it has not
seen, :func:`coverage` names the op types it never met and their share of the model's nodes, FLOPs and memory
traffic, and any size beyond those trained on (by :data:`SIZE_MARGIN`); above any of the ``THRESHOLDS``, or outside
the sizes, the prediction is called unreliable (and :func:`~nnformer.latency.predict.predict_graphs` gives it no
interval). An op type outside the predictor's vocabulary is read as the one ``onnx:other`` token, never dropped: it
still counts in the graph, but the predictor cannot know its cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..graph import ArchGraph
from ..vocab import ONNX_PREFIX

# share of the model (0-1) above which a prediction is flagged as unreliable
THRESHOLDS = {"flops": 0.10, "memory": 0.10, "nodes": 0.20}
# a model this many times larger than the largest trained on (or smaller than the smallest), in nodes, FLOPs,
# parameters or memory traffic, is outside the training data: its prediction is flagged and given no interval
SIZE_MARGIN = 1.25
_SIZES = (("flops", "FLOPs"), ("params", "parameters"), ("memory_access", "memory traffic"))


@dataclass(frozen=True)
class Coverage:
    seen: tuple[str, ...]  # op types of the model that the predictor trained on
    unseen: tuple[str, ...]  # op types of the model that it never trained on
    nodes: int
    unseen_nodes: int
    unseen_flops_share: float  # 0-1
    unseen_memory_share: float  # 0-1
    outside: tuple[str, ...] = ()  # sizes beyond those of the training graphs, described

    @property
    def unseen_node_share(self) -> float:
        return self.unseen_nodes / max(self.nodes, 1)

    @property
    def reliable(self) -> bool:
        return (self.unseen_flops_share <= THRESHOLDS["flops"] and self.unseen_memory_share <= THRESHOLDS["memory"]
                and self.unseen_node_share <= THRESHOLDS["nodes"] and not self.outside)

    def to_dict(self) -> dict:
        return {**asdict(self), "unseen_node_share": self.unseen_node_share, "reliable": self.reliable}

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
        if self.outside:
            line += " - UNRELIABLE: outside the sizes it trained on (" + "; ".join(self.outside) + ")"
        elif not self.reliable:
            line += " - UNRELIABLE: too much of the model is operators this predictor never trained on"
        return line


def _share(values: np.ndarray, mask: np.ndarray) -> float:
    total = values.sum()
    return float(values[mask].sum() / total) if total > 0 else 0.0


def coverage(predictor, graph: ArchGraph) -> Coverage:
    """What ``predictor`` (a fitted :class:`~nnformer.Predictor`) has seen of ``graph`` (an ONNX model's graph from
    :func:`~nnformer.latency.onnx_graph.onnx_to_graph`). A predictor saved before op counts were kept falls back to
    its vocabulary: an op type outside it counts as unseen."""
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
    return Coverage(tuple(o for o in ops if o not in unseen), tuple(unseen), len(all_ops), int(mask.sum()),
                    _share(flops, mask), _share(mem, mask), _outside(predictor.header_.get("train_ranges"), graph))


def _outside(ranges: dict | None, graph: ArchGraph) -> tuple[str, ...]:
    """How ``graph`` lies beyond the sizes the predictor trained on (``train_ranges`` of its header; a predictor
    saved without them checks nothing here), by more than :data:`SIZE_MARGIN`."""
    from .onnx_graph import STATIC_NAMES

    if not ranges:
        return ()
    out = []

    def check(what: str, value: float, lo: float, hi: float) -> None:
        if value > hi * SIZE_MARGIN:
            out.append(f"{what} {_amount(value)}, the largest trained on {_amount(hi)}")
        elif value < lo / SIZE_MARGIN:
            out.append(f"{what} {_amount(value)}, the smallest trained on {_amount(lo)}")

    check("nodes", graph.num_nodes, *ranges["nodes"])
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
