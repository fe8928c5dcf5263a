"""Baseline predictors trained by the same loop and loss as NN-Former (only the network differs).

* :class:`GCNRegressor`: Neural Predictor (Wen et al., ECCV 2020) style bidirectional GCN: every layer mixes the
  row-normalised forward and backward adjacencies with separate weights, ``h' = ReLU(LN((Af h Wf + Ab h Wb) / 2))``,
  then a mean over the nodes and a linear head; graph-level features (``n_graph_features``), when given, are
  projected and added to the mean, as NNLP feeds static features to its head.
* :class:`MLPRegressor`: an MLP on the one-hot ops and the flattened adjacency, padded to ``max_nodes``.
* :class:`FlopsLinear`: no network: least squares of log latency on log static costs (FLOPs, parameters, memory
  traffic), what a FLOPs count can do once fitted to a device.
* :class:`Roofline`: no network: each operator costs ``max(FLOPs / peak, bytes / bandwidth)`` plus a fixed
  overhead, summed over the graph; the device's three constants fitted to a few measured networks (a probe).
* :class:`OperatorSum`: no network: a cost per operator type (constant, per FLOP, per byte), summed over the graph
  (nn-Meter's kernel sum), fitted on measured networks.

Zero-cost rankings (parameter count, FLOPs) live in :mod:`nnformer.zero_cost`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .batching import GraphBatch
from .model import number_encoding


@dataclass(frozen=True)
class GCNConfig:
    n_layers: int = 3
    dim: int = 144
    n_op_types: int = 32
    dropout: float = 0.1
    head_offset: float = 0.5
    n_graph_features: int = 0  # graph-level features (e.g. log FLOPs) added to the pooled nodes through a Linear
    n_features: int = 0  # per-node features (e.g. ONNX attributes), encoded as NN-Former does, added to the op's
    feature_freqs: int = 4


@dataclass(frozen=True)
class MLPConfig:
    max_nodes: int = 8  # graphs are zero-padded to this many nodes (NB201: 8, NB101: 7)
    hidden: int = 256
    n_layers: int = 3
    n_op_types: int = 32
    dropout: float = 0.1
    head_offset: float = 0.5


def _normalise(a: torch.Tensor) -> torch.Tensor:
    """Row-normalised ``A + I`` (mean over a node and its neighbours in one direction)."""
    a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return a / a.sum(-1, keepdim=True)


class GCNRegressor(nn.Module):
    def __init__(self, cfg: GCNConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_op_types, cfg.dim)
        self.fwd = nn.ModuleList(nn.Linear(cfg.dim, cfg.dim) for _ in range(cfg.n_layers))
        self.bwd = nn.ModuleList(nn.Linear(cfg.dim, cfg.dim) for _ in range(cfg.n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.dim) for _ in range(cfg.n_layers))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.dim, 1)
        # created last, so that a GCN without graph features draws the same initial weights as before
        self.graph_proj = nn.Linear(cfg.n_graph_features, cfg.dim) if cfg.n_graph_features else None
        self.feat_proj = (nn.Linear(cfg.n_features * (1 + 2 * cfg.feature_freqs), cfg.dim, bias=False)
                          if cfg.n_features else None)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        B, N = batch.ops.shape
        valid = (torch.arange(N, device=batch.ops.device) < batch.n_nodes[:, None]).to(batch.adj.dtype)
        af, ab = _normalise(batch.adj), _normalise(batch.adj.transpose(1, 2))
        h = self.embed(batch.ops)
        if self.feat_proj is not None:
            h = h + self.feat_proj(number_encoding(batch.features, self.cfg.feature_freqs))
        for wf, wb, ln in zip(self.fwd, self.bwd, self.norms):
            h = self.drop(F.relu(ln((af @ wf(h) + ab @ wb(h)) / 2)))
        pooled = (h * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
        if self.graph_proj is not None:
            pooled = pooled + self.graph_proj(batch.graph_features.to(pooled.dtype))
        return self.head(pooled).squeeze(-1) + self.cfg.head_offset


class MLPRegressor(nn.Module):
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        n = cfg.max_nodes
        layers, width = [], n * cfg.n_op_types + n * n
        for _ in range(cfg.n_layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        B, N = batch.ops.shape
        n = self.cfg.max_nodes
        if N > n:
            raise ValueError(f"MLPRegressor was built for at most {n} nodes, got a graph with {N}")
        valid = torch.arange(N, device=batch.ops.device) < batch.n_nodes[:, None]
        ops = F.one_hot(batch.ops, self.cfg.n_op_types).to(batch.adj.dtype) * valid[..., None]
        ops = F.pad(ops, (0, 0, 0, n - N))
        adj = F.pad(batch.adj, (0, n - N, 0, n - N))
        x = torch.cat([ops.flatten(1), adj.flatten(1)], dim=1)
        return self.head(self.body(x)).squeeze(-1) + self.cfg.head_offset


class FlopsLinear:
    """Latency as a power law of static costs: ``log y = w . log_costs + b``, fitted by least squares.

    ``log_costs`` is an (n, k) array of costs already on a log scale (each caller knows whether its costs are raw
    counts, ``log1p``'d, or stored as logs); labels are positive latencies.

    >>> import numpy as np
    >>> x = np.log([[1e6], [2e6], [4e6]])
    >>> round(float(FlopsLinear().fit(x, [1.0, 2.0, 4.0]).predict(np.log([[8e6]]))[0]), 6)
    8.0
    """

    def fit(self, log_costs, y) -> "FlopsLinear":
        x = self._design(log_costs)
        self.coef_, *_ = np.linalg.lstsq(x, np.log(np.asarray(y, dtype=np.float64)), rcond=None)
        return self

    def predict(self, log_costs) -> np.ndarray:
        return np.exp(self._design(log_costs) @ self.coef_)

    @staticmethod
    def _design(log_costs) -> np.ndarray:
        x = np.asarray(log_costs, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        return np.column_stack([x, np.ones(len(x))])


class Roofline:
    """Latency as a roofline sum: ``ms = sum over operators of max(flops / peak, bytes / bandwidth) + overhead``.

    ``fit`` takes, per network, the arrays of its operators' FLOPs and bytes moved, and its measured latency; the
    three constants (FLOPs and bytes per millisecond, milliseconds per operator) are fitted by least squares on log
    latency, from a start at the median network. A handful of networks is enough: a device probe's references.

    >>> import numpy as np
    >>> nets = [(np.array([f, 1e3]), np.array([1e3, b])) for f, b in [(1e6, 1e3), (1e7, 1e3), (1e3, 1e8), (1e5, 1e7)]]
    >>> ms = [max(f / 1e6, b / 1e5) + 1e-3 + max(1e3 / 1e6, 1e3 / 1e5) + 1e-3 for (f, _), (_, b) in nets]
    >>> r = Roofline().fit(nets, ms)
    >>> bool(np.allclose(r.predict(nets), ms, rtol=1e-3))
    True
    """

    def fit(self, nets, y) -> "Roofline":
        from scipy.optimize import least_squares

        y = np.log(np.asarray(y, dtype=np.float64))
        tot_f = np.array([f.sum() for f, _ in nets])
        tot_b = np.array([b.sum() for _, b in nets])
        n_ops = np.array([len(f) for f, _ in nets])
        med = float(np.exp(np.median(y)))
        x0 = np.log([np.median(tot_f) / med + 1.0, np.median(tot_b) / med + 1.0, med / np.median(n_ops) / 10])

        def resid(theta):
            return np.log(self._ms(nets, np.exp(theta)) + 1e-12) - y

        self.constants_ = np.exp(least_squares(resid, x0, method="trf").x)
        return self

    def predict(self, nets) -> np.ndarray:
        return self._ms(nets, self.constants_)

    @staticmethod
    def _ms(nets, constants) -> np.ndarray:
        peak, bandwidth, overhead = constants
        return np.array([np.maximum(f / peak, b / bandwidth).sum() + overhead * len(f) for f, b in nets])



class OperatorSum:
    """Latency as a sum of per-operator costs: ``ms = sum over operators of (t_op + f_op * FLOPs + b_op * bytes)``,
    one non-negative triple per operator type, fitted on measured networks.

    nn-Meter's kernel-sum idea, with each operator type's cost learnt from whole networks' latencies (non-negative
    least squares on relative error) instead of micro-benchmarks of single kernels. An operator type the fit never
    met costs what one shared triple, fitted alongside over all operators, says. ``fit`` and ``predict`` take, per
    network, ``(op types, FLOPs, bytes)`` of its operators (:func:`nnformer.latency.onnx_graph.node_costs`).

    >>> import numpy as np
    >>> nets = [(["conv"] * k + ["add"] * j, np.r_[np.full(k, 2e6), np.zeros(j)], np.full(k + j, 1e3))
    ...         for k, j in [(1, 1), (2, 5), (4, 2), (3, 3), (5, 0)]]
    >>> ms = [1e-6 * f.sum() + 0.01 * j for (ops, f, _), j in zip(nets, [1, 5, 2, 3, 0])]
    >>> r = OperatorSum().fit(nets, ms)
    >>> bool(np.allclose(r.predict(nets), ms, rtol=1e-3))
    True
    """

    def fit(self, nets, y) -> "OperatorSum":
        from scipy.optimize import nnls

        y = np.asarray(y, dtype=np.float64)
        self.types_ = sorted({t for ops, _, _ in nets for t in ops})
        shared = self._columns(nets, [None])
        typed = self._columns(nets, self.types_)
        self.shared_ = self._nnls(nnls, shared, y)
        self.coef_ = self._nnls(nnls, typed, y)
        return self

    def predict(self, nets) -> np.ndarray:
        known = set(self.types_)
        typed = self._columns(nets, self.types_) @ self.coef_
        unknown = self._columns([(["?"] * int(np.sum(m := [t not in known for t in ops])),
                                  np.asarray(f)[m], np.asarray(b)[m]) for ops, f, b in nets], [None])
        return typed + unknown @ self.shared_

    @staticmethod
    def _nnls(nnls, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        scale = np.maximum(np.abs(x).max(axis=0), 1e-300)  # columns of one magnitude; rows on relative error
        w, _ = nnls(x / scale / y[:, None], np.ones_like(y), maxiter=50 * x.shape[1])
        return w / scale

    @staticmethod
    def _columns(nets, types) -> np.ndarray:
        """Per network and type: operator count, summed FLOPs, summed bytes (``None``: all operators)."""
        out = np.zeros((len(nets), 3 * len(types)))
        col = {t: 3 * k for k, t in enumerate(types)}
        for i, (ops, f, b) in enumerate(nets):
            f, b = np.asarray(f, dtype=np.float64), np.asarray(b, dtype=np.float64)
            for k, t in enumerate(ops):
                c = col.get(None if None in col else t)
                if c is not None:
                    out[i, c:c + 3] += (1.0, f[k], b[k])
        return out
