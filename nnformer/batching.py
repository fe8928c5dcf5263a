"""Graphs -> padded tensors, and size-bucketed batches.

A batch of ``B`` graphs with at most ``N`` nodes is ``ops (B, N)``, ``adj (B, N, N)``, ``n_nodes (B,)``,
``depth (B,)`` and optional ``features (B, N, F)``; node ``i >= n_nodes[b]`` is padding. :class:`EncodedGraphs`
pads a whole list once so that a batch is a slice, which keeps data loading off the training profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .errors import FeatureWidthError
from .graph import ArchGraph
from .vocab import OpVocab, vocab_for


@dataclass
class GraphBatch:
    ops: torch.Tensor  # (B, N) long op ids, 0 on padding
    adj: torch.Tensor  # (B, N, N) float 0/1
    n_nodes: torch.Tensor  # (B,) long
    depth: torch.Tensor  # (B,) long, value of the [DEPTH] token
    features: torch.Tensor | None = None  # (B, N, F) float
    graph_features: torch.Tensor | None = None  # (B, S) float

    def __len__(self) -> int:
        return self.ops.shape[0]

    def to(self, device) -> "GraphBatch":
        f = None if self.features is None else self.features.to(device)
        s = None if self.graph_features is None else self.graph_features.to(device)
        return GraphBatch(self.ops.to(device), self.adj.to(device), self.n_nodes.to(device), self.depth.to(device), f,
                          s)

    def slice(self, start: int, stop: int) -> "GraphBatch":
        """Graphs ``start:stop`` (views, no copy)."""
        f = None if self.features is None else self.features[start:stop]
        s = None if self.graph_features is None else self.graph_features[start:stop]
        return GraphBatch(self.ops[start:stop], self.adj[start:stop], self.n_nodes[start:stop],
                          self.depth[start:stop], f, s)

    def repeat(self, k: int) -> "GraphBatch":
        """Each graph ``k`` times, as blocks ``[batch, batch, ...]`` (NN-Former's consistency copy)."""
        f = None if self.features is None else self.features.repeat(k, 1, 1)
        s = None if self.graph_features is None else self.graph_features.repeat(k, 1)
        return GraphBatch(self.ops.repeat(k, 1), self.adj.repeat(k, 1, 1), self.n_nodes.repeat(k),
                          self.depth.repeat(k), f, s)


class EncodedGraphs:
    """A list of :class:`ArchGraph` padded once into arrays; ``batch(idx)`` slices and trims to the batch's size.

    Op names become ids through ``vocab`` (default: the first built-in vocabulary holding every op, see
    :func:`~nnformer.vocab.vocab_for`); an op outside it is an :class:`~nnformer.errors.UnknownOpError`.
    """

    def __init__(self, graphs: Sequence[ArchGraph], vocab: OpVocab | None = None):
        self.vocab = vocab if vocab is not None else vocab_for(g.ops for g in graphs) if graphs else None
        self.n = len(graphs)
        sizes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
        nmax = int(sizes.max()) if self.n else 2
        self.sizes = sizes
        self.ops = np.zeros((self.n, nmax), dtype=np.int64)
        # edges as one list (graph b's are edge_src/edge_dst[edge_ptr[b]:edge_ptr[b + 1]]): a padded (n, N, N)
        # adjacency would take n * N^2 bytes, 12 GB for 4,000 networks of up to 1,800 operators; a batch is dense
        nz = [np.nonzero(g.adj) for g in graphs]
        self.edge_ptr = np.concatenate([[0], np.cumsum([len(i) for i, _ in nz])]).astype(np.int64)
        self.edge_src = np.concatenate([i for i, _ in nz]).astype(np.int32) if nz else np.zeros(0, np.int32)
        self.edge_dst = np.concatenate([j for _, j in nz]).astype(np.int32) if nz else np.zeros(0, np.int32)
        self.depth = np.array([g.depth_value for g in graphs], dtype=np.int64)
        nfeat = {0 if g.features is None else g.features.shape[1] for g in graphs}
        if len(nfeat) > 1:
            raise FeatureWidthError(f"all graphs must have the same number of node features, found {sorted(nfeat)}")
        f = nfeat.pop() if nfeat else 0
        self.features = np.zeros((self.n, nmax, f), dtype=np.float32) if f else None
        widths = {None if g.graph_features is None else len(g.graph_features) for g in graphs}
        if len(widths) > 1:
            raise FeatureWidthError(f"all graphs must have graph features of one width, or none; found "
                                    f"{sorted(widths, key=str)}")
        self.graph_features = (np.stack([g.graph_features for g in graphs]).astype(np.float32)
                               if graphs and widths != {None} else None)
        for b, g in enumerate(graphs):
            k = g.num_nodes
            self.ops[b, :k] = self.vocab.encode(g.ops)
            if self.features is not None:
                self.features[b, :k] = g.features

    def __len__(self) -> int:
        return self.n

    def edges(self) -> np.ndarray:
        """Every graph's edges, as rows ``(graph, source, target)`` (what identifies the adjacency of the list)."""
        graph = np.repeat(np.arange(self.n), np.diff(self.edge_ptr))
        return np.stack([graph, self.edge_src, self.edge_dst], axis=1).astype(np.int64)

    def batch(self, idx) -> GraphBatch:
        idx = np.asarray(idx)
        k = int(self.sizes[idx].max())
        f = None if self.features is None else torch.from_numpy(self.features[idx, :k])
        s = None if self.graph_features is None else torch.from_numpy(self.graph_features[idx])
        adj = np.zeros((len(idx), k, k), dtype=np.float32)
        lo, hi = self.edge_ptr[idx], self.edge_ptr[idx + 1]
        rows = np.repeat(np.arange(len(idx)), hi - lo)
        take = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(idx) else np.zeros(0, np.int64)
        adj[rows, self.edge_src[take], self.edge_dst[take]] = 1.0
        adj = torch.from_numpy(adj)
        return GraphBatch(torch.from_numpy(self.ops[idx, :k]), adj,
                          torch.from_numpy(self.sizes[idx]), torch.from_numpy(self.depth[idx]), f, s)

    def batches(self, batch_size: int, bucket: bool = True, generator: torch.Generator | None = None,
                drop_last: bool = False, size_sorted: bool = False, max_cells: int = 0) -> list[np.ndarray]:
        """Index arrays of the batches of one epoch.

        ``bucket=True`` groups graphs of equal size (no padding, as the released code does); ``size_sorted=True``
        cuts the graphs, ordered by size, into batches of neighbouring sizes (little padding, full batches: for
        whole networks, whose sizes rarely repeat); with a generator the order inside each bucket (among equal
        sizes) and the order of the batches are shuffled. ``max_cells > 0`` (with ``size_sorted``): a batch also
        ends before ``graphs x largest size^2`` would pass ``max_cells`` (the attention's cells: the memory and time
        of a step), so large graphs come a few at a time (at least one).
        """
        order = np.arange(self.n)
        if generator is not None:
            order = torch.randperm(self.n, generator=generator).numpy()
        if size_sorted:
            groups = [order[np.argsort(self.sizes[order], kind="stable")]]
        else:
            groups = [order[self.sizes[order] == s] for s in np.unique(self.sizes)] if bucket else [order]
        if size_sorted and max_cells > 0:
            out = []
            for g in groups:
                start = 0
                for i in range(1, len(g) + 1):
                    n = int(self.sizes[g[i - 1]])  # sorted ascending: the last graph is the largest
                    if i - start > 1 and ((i - start) * n * n > max_cells or i - start > batch_size):
                        out.append(g[start:i - 1])
                        start = i - 1
                out.append(g[start:])
        else:
            out = [g[i:i + batch_size] for g in groups for i in range(0, len(g), batch_size)]
        if drop_last:
            out = [b for b in out if len(b) == batch_size] or out[:1]
        if generator is not None:
            out = [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]
        return out
