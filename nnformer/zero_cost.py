"""Zero-cost ranking baselines: the parameter count and the FLOPs of the full CIFAR-10 network a cell defines.

Accuracy-predictor tables compare a trained predictor with two free proxies, "rank by #params" and "rank by FLOPs".
Both are computed here analytically (no torch, no weights), from the network each benchmark trains:

**NAS-Bench-201** (``TinyNetwork`` of the benchmark, C=16, N=5, 3x32x32 input, 10 classes)::

    conv3x3(3->C) + BN                                   stem, no ReLU
    N cells at C   | reduction C->2C   | N cells at 2C | reduction 2C->4C | N cells at 4C
    BN + ReLU, global average pool, Linear(4C -> classes)

A cell sums ``op(i -> j)`` over its 6 edges; the ops are ``none`` (zero), ``skip_connect`` (identity),
``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU, Conv without bias, BN) and ``avg_pool_3x3`` (stride 1). The reduction is
a ResNet basic block: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a shortcut AvgPool(2) + conv1x1 (no bias,
no BN).

**NAS-Bench-101** (google-research/nasbench ``model_builder``, 3x32x32 input, 10 classes)::

    conv3x3(3->128)-BN-ReLU | 3 modules at 128 | maxpool 2x2 | 3 modules at 256 | maxpool 2x2 | 3 modules at 512
    global average pool, Dense(512 -> 10)

Inside a module each vertex has a channel count from :func:`nb101_vertex_channels`; an edge from the module input to a
vertex (or to the output) is a conv1x1-BN-ReLU projection; every conv is conv-BN-ReLU without bias.

**Conventions** (chosen so the numbers equal what the benchmarks publish, see the tests):

* *params*: every trainable parameter: conv weights, BN ``gamma`` and ``beta`` (2 per channel; the running
  statistics are buffers, not parameters), the classifier's weight and bias.
* *FLOPs*: multiply-accumulates of every conv and of the classifier, plus the classifier's bias additions (one per
  class). Nothing else is counted: no BN, ReLU, pooling, or tensor additions. This is exactly the counter of
  NAS-Bench-201 (AutoDL ``flop_benchmark``); e.g. the all-``nor_conv_3x3`` cell gives 220,119,690, published as
  220.11969 MFLOPs. For the family MACs of :func:`nnformer.latency.families.cost` subtract the ``num_classes``
  bias adds.
* Costs are of the network as *built*, not of the pruned graph: an NB201 conv whose output reaches no cell output
  (``|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|``) still has weights and still runs, and the
  benchmark counts it. NB101 is built from the pruned spec (the official builder prunes first), so dead vertices cost
  nothing there.
* NB101 costs follow the vertex *order* of the spec, as the official builder does: when the output's fan-in does not
  divide the channel count (fan-in 3 or 5), the first feeding vertices get one extra channel each, so two isomorphic
  specs (same module hash) can differ slightly, e.g. by 16,137 params when a conv3x3 gets 43 rather than 42 channels.
  Pass the spec in the order the benchmark stores it to get its ``trainable_parameters``; with a fan-in of 1, 2 or 4
  the numbers are order-free.

Example:
    >>> nb201_params("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    1531546
    >>> nb201_flops("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    7783050
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import numpy as np

from .spaces import nb101 as s101
from .spaces.nb201 import OPS as NB201_OPS
from .spaces.nb201 import parse_arch_str

SPACES = ("nb201", "nb101")
PROXIES = ("params", "flops")

# --------------------------------------------------------------------------------------------------- shared pieces


def conv_params(k: int, cin: int, cout: int, bn: bool = True) -> int:
    """Weights of a bias-free ``k x k`` conv, plus BN ``gamma, beta`` when ``bn``."""
    return k * k * cin * cout + (2 * cout if bn else 0)


def conv_flops(k: int, cin: int, cout: int, h: int, w: int) -> int:
    """Multiply-accumulates of a ``k x k`` conv with an ``h x w`` *output*."""
    return k * k * cin * cout * h * w


def _linear(cin: int, classes: int) -> tuple[int, int]:
    """(params, FLOPs) of the classifier: weight + bias; MACs + one bias add per class."""
    return cin * classes + classes, cin * classes + classes


def _check_resolution(resolution: int, halvings: int) -> None:
    # Stride-2 convs (pad 1) round up and AvgPool(2) rounds down: with an odd size the two branches of the NB201
    # reduction would not even have the same shape, so odd intermediate sizes are refused rather than guessed.
    if resolution <= 0 or resolution % (2 ** halvings):
        raise ValueError(f"input resolution must be a positive multiple of {2 ** halvings}, got {resolution}")


# --------------------------------------------------------------------------------------------------- NAS-Bench-201


@functools.lru_cache(maxsize=64)
def _nb201_tables(C: int, N: int, num_classes: int, resolution: int) -> tuple[tuple[int, int], dict[str, tuple]]:
    """``(skeleton (params, flops), {op: (params, flops)})`` where an op's cost is summed over the 3N cells it
    appears in (one edge position). A cell string's cost is then the skeleton plus 6 table look-ups."""
    _check_resolution(resolution, 2)
    p = conv_params(3, 3, C)  # stem conv3x3 + BN
    f = conv_flops(3, 3, C, resolution, resolution)
    op_p = dict.fromkeys(NB201_OPS, 0)
    op_f = dict.fromkeys(NB201_OPS, 0)
    c, r = C, resolution
    for stage in range(3):
        if stage:  # residual reduction c -> 2c, output at r/2
            r //= 2
            p += conv_params(3, c, 2 * c) + conv_params(3, 2 * c, 2 * c) + conv_params(1, c, 2 * c, bn=False)
            f += conv_flops(3, c, 2 * c, r, r) + conv_flops(3, 2 * c, 2 * c, r, r) + conv_flops(1, c, 2 * c, r, r)
            c *= 2
        for k, op in ((1, "nor_conv_1x1"), (3, "nor_conv_3x3")):
            op_p[op] += N * conv_params(k, c, c)
            op_f[op] += N * conv_flops(k, c, c, r, r)
    p += 2 * c  # final BN
    lp, lf = _linear(c, num_classes)
    return (p + lp, f + lf), {op: (op_p[op], op_f[op]) for op in NB201_OPS}


def _nb201_cost(arch: str, which: int, C: int, N: int, num_classes: int, resolution: int) -> int:
    skeleton, table = _nb201_tables(int(C), int(N), int(num_classes), int(resolution))
    return skeleton[which] + sum(table[op][which] for op in parse_arch_str(arch))


def nb201_params(arch: str, *, C: int = 16, N: int = 5, num_classes: int = 10) -> int:
    """Trainable parameters of the NAS-Bench-201 network of a cell string (BN affine included).

    The defaults are the benchmark's CIFAR-10 network; ``num_classes=100`` gives CIFAR-100 and ``120``
    ImageNet16-120. Raises :class:`~nnformer.errors.ArchStringError` for a malformed string.
    """
    # the parameter count does not depend on the resolution; 32 only satisfies the table's shape check
    return _nb201_cost(arch, 0, C, N, num_classes, 32)


def nb201_flops(arch: str, *, C: int = 16, N: int = 5, num_classes: int = 10, resolution: int = 32) -> int:
    """FLOPs (conv and classifier multiply-accumulates + classifier bias adds) of the NAS-Bench-201 network of a cell
    string at batch 1; see the module docstring for what is not counted. ImageNet16-120 is ``resolution=16,
    num_classes=120``."""
    return _nb201_cost(arch, 1, C, N, num_classes, resolution)


# --------------------------------------------------------------------------------------------------- NAS-Bench-101

NB101_STEM = 128
NB101_STACKS = 3
NB101_MODULES = 3


def nb101_vertex_channels(in_channels: int, out_channels: int, matrix) -> list[int]:
    """Output channels of every vertex of a (pruned) module, as the official ``compute_vertex_channels``.

    The output's channels are split as evenly as possible among the vertices that feed it (the first ones in vertex
    order take the remainder); every other interior vertex gets the max over the vertices it feeds, so channels
    never grow along an edge (a larger tensor is truncated on the way in). The input keeps ``in_channels``.
    """
    a = np.asarray(matrix).astype(bool)
    n = len(a)
    ch = [0] * n
    ch[0], ch[-1] = int(in_channels), int(out_channels)
    if n == 2:
        return ch
    feeders = [v for v in range(1, n - 1) if a[v, n - 1]]
    base, extra = divmod(int(out_channels), len(feeders))
    for i, v in enumerate(feeders):
        ch[v] = base + (1 if i < extra else 0)
    for v in range(n - 2, 0, -1):  # backwards, so every successor is already set
        if not a[v, n - 1]:
            ch[v] = max(ch[d] for d in range(v + 1, n - 1) if a[v, d])
    return ch


def _nb101_module(matrix: np.ndarray, ops: Sequence[str], cin: int, cout: int, hw: int) -> tuple[int, int]:
    """(params, FLOPs) of one module with ``cin`` input and ``cout`` output channels at ``hw`` pixels."""
    n = len(ops)
    ch = nb101_vertex_channels(cin, cout, matrix)
    p = f = 0
    for t in range(1, n - 1):
        if matrix[0, t]:  # projection of the module input to vertex t
            p += conv_params(1, cin, ch[t])
            f += conv_flops(1, cin, ch[t], 1, 1) * hw
        k = {"conv3x3-bn-relu": 3, "conv1x1-bn-relu": 1}.get(ops[t])
        if k:  # the op sees a ch[t]-channel sum (truncated interior inputs + projected input)
            p += conv_params(k, ch[t], ch[t])
            f += conv_flops(k, ch[t], ch[t], 1, 1) * hw
    if matrix[0, n - 1]:  # the input is projected to the output (added, or alone when no vertex feeds the output)
        p += conv_params(1, cin, cout)
        f += conv_flops(1, cin, cout, 1, 1) * hw
    return p, f


def _nb101_cost(matrix, ops, num_classes: int, resolution: int) -> tuple[int, int]:
    _check_resolution(resolution, 0)
    a, names = s101.canonical_spec(matrix, ops)  # validates; the network is built from the pruned spec
    p = conv_params(3, 3, NB101_STEM)
    f = conv_flops(3, 3, NB101_STEM, resolution, resolution)
    c, r = NB101_STEM, resolution
    for stack in range(NB101_STACKS):
        cin = c
        if stack:
            r = (r + 1) // 2  # max-pool 2x2 stride 2, 'same' padding
            c *= 2
        for _ in range(NB101_MODULES):
            mp, mf = _nb101_module(a, names, cin, c, r * r)
            p, f, cin = p + mp, f + mf, c
    lp, lf = _linear(c, num_classes)
    return p + lp, f + lf


def nb101_params(matrix, ops: Sequence[str], *, num_classes: int = 10) -> int:
    """Trainable parameters of the NAS-Bench-101 network of a cell spec (what the benchmark stores as
    ``trainable_parameters``). Raises :class:`~nnformer.errors.SpecError` for a spec outside the space."""
    return _nb101_cost(matrix, ops, num_classes, 32)[0]


def nb101_flops(matrix, ops: Sequence[str], *, num_classes: int = 10, resolution: int = 32) -> int:
    """FLOPs (conv and classifier multiply-accumulates + classifier bias adds) of the NAS-Bench-101 network of a
    cell spec at batch 1 (NAS-Bench-101 publishes no FLOPs; this is the NAS-Bench-201 convention)."""
    return _nb101_cost(matrix, ops, num_classes, resolution)[1]


# --------------------------------------------------------------------------------------------------- batch scoring


def proxy_scores(space: str, proxy: str, items: Iterable) -> np.ndarray:
    """One proxy value per architecture, as a float64 array (higher = larger network).

    Args:
        space: ``"nb201"`` (items are cell strings) or ``"nb101"`` (items are ``(matrix, ops)`` pairs).
        proxy: ``"params"`` or ``"flops"``.
        items: the architectures, in the order of the returned scores.

    Raises:
        ValueError: unknown space or proxy; :class:`ArchStringError` / :class:`SpecError` for a bad item.

    Example:
        >>> proxy_scores("nb201", "params", ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]).tolist()
        [73306.0]
    """
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}; known: {', '.join(SPACES)}")
    if proxy not in PROXIES:
        raise ValueError(f"unknown proxy {proxy!r}; known: {', '.join(PROXIES)}")
    if space == "nb201":
        # benchmark-default network: skeleton + 6 look-ups per cell (15,625 cells take well under a second)
        skeleton, table = _nb201_tables(16, 5, 10, 32)
        which = PROXIES.index(proxy)
        col = {op: v[which] for op, v in table.items()}
        return np.fromiter((skeleton[which] + sum(col[o] for o in parse_arch_str(s)) for s in items),
                           dtype=np.float64)
    fn = nb101_params if proxy == "params" else nb101_flops
    return np.fromiter((fn(m, o) for m, o in items), dtype=np.float64)
