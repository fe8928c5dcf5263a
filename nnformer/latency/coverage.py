"""Which operators of a model a latency predictor has seen in training, and how much of the model the rest is.

A predictor remembers the op types of its training graphs (``seen_ops`` in its header, with node counts). For a
model it has not seen, :func:`coverage` names the op types it never met and their share of the model's nodes, FLOPs
and memory traffic; above any of the ``THRESHOLDS`` the prediction is called unreliable. An op type outside the
predictor's vocabulary is read as the one ``onnx:other`` token, never dropped: it still counts in the graph, but
the predictor cannot know its cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..graph import ArchGraph
from ..vocab import ONNX_PREFIX

# share of the model (0-1) above which a prediction is flagged as unreliable
THRESHOLDS = {"flops": 0.10, "memory": 0.10, "nodes": 0.20}


@dataclass(frozen=True)
class Coverage:
    seen: tuple[str, ...]  # op types of the model that the predictor trained on
    unseen: tuple[str, ...]  # op types of the model that it never trained on
    nodes: int
    unseen_nodes: int
    unseen_flops_share: float  # 0-1
    unseen_memory_share: float  # 0-1

    @property
    def unseen_node_share(self) -> float:
        return self.unseen_nodes / max(self.nodes, 1)

    @property
    def reliable(self) -> bool:
        return (self.unseen_flops_share <= THRESHOLDS["flops"] and self.unseen_memory_share <= THRESHOLDS["memory"]
                and self.unseen_node_share <= THRESHOLDS["nodes"])

    def to_dict(self) -> dict:
        return {**asdict(self), "unseen_node_share": self.unseen_node_share, "reliable": self.reliable}

    def describe(self) -> str:
        """One line: what the predictor knows of this model."""
        strip = lambda ops: ", ".join(o.removeprefix("onnx:") for o in ops)  # noqa: E731
        line = f"{len(self.seen)} operator types seen in training ({strip(self.seen)})"
        if not self.unseen:
            return line + "; none unseen"
        line += (f"; {len(self.unseen)} unseen ({strip(self.unseen)}): {self.unseen_nodes} of {self.nodes} nodes "
                 f"({100 * self.unseen_node_share:.1f}%), {100 * self.unseen_flops_share:.1f}% of the FLOPs, "
                 f"{100 * self.unseen_memory_share:.1f}% of the memory traffic")
        if not self.reliable:
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
                    _share(flops, mask), _share(mem, mask))
