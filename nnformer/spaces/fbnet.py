"""FBNet networks (HELP's FBNet space): 22 searchable layers, each one of 9 blocks, as a chain graph.

An architecture is 22 block indices (HELP's ``arch.pt``; names from its ``metainfo.pt``): ``k{3,5}_e{1,3,6}`` is an
inverted-residual block (1x1 expansion by ``e``, ``k``x``k`` depthwise convolution, 1x1 projection), ``_g2`` a
grouped one (2 groups in the 1x1 convolutions), ``skip`` no block. The graph is ``input -> layer 1 -> ... -> layer 22
-> output`` (24 nodes, a chain: the macro network is sequential); a node's op is its block (``fbnet:k3_e6``), and its
features are the block's kernel, expansion and groups and the layer's input channels, output channels, stride and
input resolution.

Channels and strides follow the macro-architecture of FBNet's paper (Wu et al., CVPR 2019, Table 1: stages of
1/4/4/4/4/4/1 layers with 16/24/32/64/112/184/352 channels, strides 1/2/2/2/1/2/1, a 16-channel stem), at the 32x32
resolution of CIFAR-100, the data set of HELP's FBNet measurements; HELP's files do not record them. FLOPs and
parameters (:func:`fbnet_cost`) are computed on that network: estimates, the same for every device.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArchStringError
from ..graph import ArchGraph

BLOCKS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")  # HELP's indices
N_LAYERS = 22
PREFIX = "fbnet:"
_STAGES = ((1, 16, 1), (4, 24, 2), (4, 32, 2), (4, 64, 2), (4, 112, 1), (4, 184, 2), (1, 352, 1))  # (layers, c, s)
STEM_CHANNELS, RESOLUTION, CLASSES, HEAD_CHANNELS = 16, 32, 100, 1504
FEATURE_NAMES = ("kernel", "expansion", "groups", "c_in", "c_out", "stride", "resolution")


def _layers() -> list[tuple[int, int, int, int]]:
    """(c_in, c_out, stride, input resolution) of each of the 22 layers."""
    out, c, r = [], STEM_CHANNELS, RESOLUTION
    for n, c_out, s in _STAGES:
        for i in range(n):
            stride = s if i == 0 else 1
            out.append((c, c_out, stride, r))
            c, r = c_out, (r + stride - 1) // stride
    return out


LAYERS = tuple(_layers())


def _block(name: str) -> tuple[int, int, int]:
    """(kernel, expansion, groups) of a block; ``skip`` is (0, 0, 0)."""
    if name == "skip":
        return 0, 0, 0
    parts = name.split("_")
    return int(parts[0][1:]), int(parts[1][1:]), int(parts[2][1:]) if len(parts) > 2 else 1


def check_arch(arch) -> tuple[int, ...]:
    """``arch`` as 22 block indices; raises :class:`ArchStringError` naming what is wrong."""
    try:
        a = tuple(int(v) for v in arch)
    except (TypeError, ValueError):
        raise ArchStringError(f"an FBNet architecture is {N_LAYERS} block indices, got {str(arch)[:100]!r}") from None
    if len(a) != N_LAYERS or any(not 0 <= v < len(BLOCKS) for v in a):
        raise ArchStringError(f"an FBNet architecture is {N_LAYERS} block indices in 0..{len(BLOCKS) - 1}, got "
                              f"{str(list(a))[:100]}")
    return a


def arch_to_graph(arch) -> ArchGraph:
    """The chain graph of an FBNet architecture, with per-node :data:`FEATURE_NAMES`."""
    a = check_arch(arch)
    n = N_LAYERS + 2
    adj = np.eye(n, k=1, dtype=np.uint8)
    feats = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    feats[0, 3:5] = 3, 3
    feats[0, 6] = RESOLUTION
    for i, (b, (c_in, c_out, s, r)) in enumerate(zip(a, LAYERS), start=1):
        feats[i] = (*_block(BLOCKS[b]), c_in, c_out, s, r)
    feats[-1, 3:5] = LAYERS[-1][1], CLASSES
    ops = ["input", *(PREFIX + BLOCKS[b] for b in a), "output"]
    return ArchGraph(ops, adj, feats)


def fbnet_cost(arch) -> tuple[float, float]:
    """(FLOPs, parameters) of the network: stem, the 22 layers, a 1x1 head to 1504 channels, pooling and the
    classifier. A multiply-add counts 2; a ``skip`` layer that changes shape is a 1x1 convolution (as FBNet's
    implementation makes it); batch norms are folded."""
    a = check_arch(arch)
    flops = 2.0 * 3 * STEM_CHANNELS * 9 * RESOLUTION ** 2
    params = 3 * STEM_CHANNELS * 9
    for b, (c_in, c_out, s, r) in zip(a, LAYERS):
        k, e, g = _block(BLOCKS[b])
        r_out = (r + s - 1) // s
        if k == 0:
            if c_in != c_out or s != 1:
                flops += 2.0 * c_in * c_out * r_out ** 2
                params += c_in * c_out
            continue
        mid = c_in * e
        expand = c_in * mid // g if e > 1 else 0
        flops += 2.0 * expand * r ** 2 + 2.0 * mid * k * k * r_out ** 2 + 2.0 * mid * c_out // g * r_out ** 2
        params += expand + mid * k * k + mid * c_out // g
    r = LAYERS[-1][3]
    flops += 2.0 * LAYERS[-1][1] * HEAD_CHANNELS * r ** 2 + 2.0 * HEAD_CHANNELS * CLASSES
    params += LAYERS[-1][1] * HEAD_CHANNELS + HEAD_CHANNELS * CLASSES
    return flops, float(params)
