"""Architectures as directed acyclic graphs, and the ASMA attention masks of NN-Former.

A node is an operation, an edge is data flow: ``adj[i, j] = 1`` means an edge ``i -> j``. The four ASMA masks
(NN-Former, docs/method.md section 3) are built from the node graph alone::

    I + A       a node sees itself and its successors
    I + A^T     ... its predecessors
    I + A^T A   ... the nodes sharing a parent with it (siblings by a common input)
    I + A A^T   ... the nodes sharing a child with it (siblings by a common output)

Example:
    >>> g = ArchGraph(["input", "nor_conv_3x3", "skip_connect", "output"],
    ...               [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    >>> g.num_nodes, g.num_edges
    (4, 4)
    >>> g.asma_masks()[2].int().tolist()[1]  # node 1 shares parent 0 with node 2
    [0, 1, 1, 0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .errors import CycleError, GraphSizeError, NonBinaryError, NotSquareError, UnknownOpError

FORMAT = "nnformer-graph-1"

MAX_NODES = 2048  # size limit of one graph (attention memory grows with its square)


def asma_masks(adj: torch.Tensor) -> torch.Tensor:
    """The four ASMA masks of a (batch of) node adjacency matrices.

    Args:
        adj: ``(..., n, n)`` 0/1 tensor, ``adj[..., i, j] = 1`` for an edge ``i -> j``.

    Returns:
        ``(..., 4, n, n)`` bool tensor: ``I + A``, ``I + A^T``, ``I + A^T A``, ``I + A A^T``, binarised.
    """
    a = adj.float()
    at = a.transpose(-1, -2)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    masks = torch.stack([a, at, at @ a, a @ at], dim=-3) + eye
    return masks > 0


def reachability(adj: np.ndarray) -> np.ndarray:
    """``R[i, j]`` is True when a path of length >= 1 leads from ``i`` to ``j`` (repeated squaring, log2 n products)."""
    r = np.asarray(adj, dtype=np.float32) > 0
    for _ in range(max(1, int(np.ceil(np.log2(max(len(r), 2)))))):
        r = r | ((r.astype(np.float32) @ r.astype(np.float32)) > 0)
    return r


def is_acyclic(adj: np.ndarray) -> bool:
    """Whether the 0/1 adjacency ``adj`` is a DAG: Kahn's peeling of sources, one level at a time (O(n^2) for a
    chain of n nodes, against O(n^3 log n) for :func:`reachability`)."""
    a = np.asarray(adj) > 0
    indeg = a.sum(0).astype(np.int64)
    alive = np.ones(len(a), dtype=bool)
    frontier = np.flatnonzero(indeg == 0)
    while len(frontier):
        alive[frontier] = False
        indeg -= a[frontier].sum(0)
        frontier = np.flatnonzero(alive & (indeg == 0))
    return not alive.any()


@dataclass(frozen=True, eq=False)
class ArchGraph:
    """One architecture: op names, a 0/1 DAG adjacency and optional per-node features.

    Args:
        ops: op name of each node, in node order (non-empty strings). Which names a predictor knows is its op
            vocabulary's business (:mod:`nnformer.vocab`), checked when graphs are encoded.
        adj: ``(n, n)`` 0/1 matrix, ``adj[i, j] = 1`` for an edge ``i -> j``; must be acyclic.
        features: optional ``(n, F)`` float per-node features (e.g. shapes and kernel sizes of ONNX nodes).
        graph_features: optional ``(S,)`` float features of the whole network (e.g. its log FLOPs and parameters),
            which NN-Former adds to its [CLS] token (``NNFormerConfig.n_graph_features``).
        depth: the value of NN-Former's [DEPTH] token (default: the node count). NAS-Bench-201 uses the number of
            non-``none`` nodes of the unpruned cell, as the released code does.

    Raises:
        GraphSizeError, NotSquareError, NonBinaryError, CycleError, UnknownOpError: each names what is wrong.
    """

    ops: tuple[str, ...]
    adj: np.ndarray
    features: np.ndarray | None = None
    depth: int | None = field(default=None)
    graph_features: np.ndarray | None = None

    def __init__(self, ops: Sequence[str], adj, features=None, depth: int | None = None, graph_features=None):
        ops = tuple(str(o) for o in ops)
        try:
            a = np.asarray(adj, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise NotSquareError(f"adjacency is not a numeric matrix: {e}") from None
        n = len(ops)
        if n < 2:
            raise GraphSizeError(f"a graph needs at least 2 nodes, got {n}")
        if n > MAX_NODES:
            raise GraphSizeError(f"graph has {n} nodes, more than the limit of {MAX_NODES}")
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise NotSquareError(f"adjacency must be a square matrix, got shape {a.shape}")
        if a.shape[0] != n:
            raise NotSquareError(f"adjacency is {a.shape[0]}x{a.shape[1]} but there are {n} ops")
        if not np.isin(a, (0.0, 1.0)).all():
            bad = a[~np.isin(a, (0.0, 1.0))].flat[0]
            raise NonBinaryError(f"adjacency must hold only 0 and 1, found {bad!r}")
        a = a.astype(np.uint8)
        if np.trace(a):
            i = int(np.flatnonzero(np.diag(a))[0])
            raise CycleError(f"node {i} has a self-loop; the graph must be a DAG")
        if not is_acyclic(a):
            raise CycleError("the graph has a directed cycle; it must be a DAG")
        if not all(ops):
            raise UnknownOpError("an op name is empty")
        if features is not None:
            features = np.asarray(features, dtype=np.float32)
            if features.ndim != 2 or features.shape[0] != n:
                raise NotSquareError(f"features must have shape ({n}, F), got {features.shape}")
            if not np.isfinite(features).all():
                raise NonBinaryError("node features contain NaN or infinity")
        if graph_features is not None:
            graph_features = np.asarray(graph_features, dtype=np.float32)
            if graph_features.ndim != 1 or not np.isfinite(graph_features).all():
                raise NonBinaryError(f"graph features must be a finite vector, got shape {graph_features.shape}")
        if depth is not None and not 0 <= int(depth):
            raise GraphSizeError(f"depth must be non-negative, got {depth}")
        a.setflags(write=False)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "adj", a)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "graph_features", graph_features)
        object.__setattr__(self, "depth", None if depth is None else int(depth))

    @property
    def num_nodes(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return int(self.adj.sum())

    @property
    def depth_value(self) -> int:
        return self.num_nodes if self.depth is None else self.depth

    def asma_masks(self) -> torch.Tensor:
        """``(4, n, n)`` bool masks ``I+A, I+A^T, I+A^T A, I+A A^T`` of this graph."""
        return asma_masks(torch.from_numpy(self.adj.astype(np.float32)))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ArchGraph)
            and self.ops == other.ops
            and np.array_equal(self.adj, other.adj)
            and self.depth == other.depth
            and (self.features is None) == (other.features is None)
            and (self.features is None or np.array_equal(self.features, other.features))
            and (self.graph_features is None) == (other.graph_features is None)
            and (self.graph_features is None or np.array_equal(self.graph_features, other.graph_features))
        )

    def __hash__(self) -> int:
        return hash((self.ops, self.adj.tobytes(), self.depth))

    def __repr__(self) -> str:
        return f"ArchGraph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, ops={list(self.ops)})"

    def to_dict(self, digits: int | None = None) -> dict:
        """The JSON form, the one serialisation of a graph: ops, an edge list (not the ``n x n`` matrix), and the
        features (rounded to ``digits`` decimals when given) and depth when set. Read back by :meth:`from_dict`."""
        d = {"format": FORMAT, "ops": list(self.ops),
             "edges": [[int(i), int(j)] for i, j in zip(*np.nonzero(self.adj))]}
        if self.features is not None:
            d["features"] = (self.features.tolist() if digits is None else
                             [[round(float(v), digits) for v in row] for row in self.features])
        if self.depth is not None:
            d["depth"] = self.depth
        if self.graph_features is not None:
            d["graph_features"] = self.graph_features.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArchGraph":
        """Inverse of :meth:`to_dict` (other keys, e.g. a record's ``static`` features, are ignored)."""
        if not isinstance(d, dict) or not isinstance(d.get("ops"), list) or not isinstance(d.get("edges"), list):
            raise NotSquareError("not a serialised graph: expected a dict with 'ops' and 'edges' lists")
        n = len(d["ops"])
        adj = np.zeros((n, n), dtype=np.uint8)
        for e in d["edges"]:
            try:
                i, j = (int(v) for v in e)
            except (TypeError, ValueError):
                raise NotSquareError(f"bad edge {e!r}: expected [i, j]") from None
            if not (0 <= i < n and 0 <= j < n):
                raise NotSquareError(f"edge {e!r} names a node outside 0..{n - 1}")
            adj[i, j] = 1
        return cls(d["ops"], adj, d.get("features"), d.get("depth"), d.get("graph_features"))
