"""NAS-Bench-201 cells: arch string <-> node-op DAG.

A cell string ``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` puts an op on each edge of a 4-node cell. NN-Former turns it into
an 8-node node-op graph ``[input, a, b, c, d, e, f, output]`` with a fixed adjacency, then removes the ``none``
nodes and every node not on an input->output path (docs/method.md section 1). The result has 2 to 8 nodes; the
all-``none`` cell is ``input, output`` with no edge.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from ..errors import ArchStringError
from ..graph import ArchGraph, reachability

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_CELLS = len(OPS) ** 6  # 15,625

# The 8-node graph (0 = input, 1..6 = the edge ops in arch-string order, 7 = output).
EDGES_8 = ((0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7))
ADJ_8 = np.zeros((8, 8), dtype=np.uint8)
for _i, _j in EDGES_8:
    ADJ_8[_i, _j] = 1
# input index of each edge op, in arch-string order: |a~0|+|b~0|c~1|+|d~0|e~1|f~2|
_INPUTS = (0, 0, 1, 0, 1, 2)
_NODE = re.compile(r"([a-z0-9_]+)~([0-9])", re.ASCII)  # only what the format defines: ASCII names, one digit


def _quoted(arch: str, limit: int = 100) -> str:
    """``arch`` as an error message quotes it: at most ``limit`` characters."""
    return repr(arch) if len(arch) <= limit else f"{arch[:limit]!r}... ({len(arch):,} characters)"


def parse_arch_str(arch: str) -> tuple[str, ...]:
    """The six edge ops of a cell string, in arch-string order; raises :class:`ArchStringError`."""
    if not isinstance(arch, str):
        raise ArchStringError(f"arch string must be a str, got {type(arch).__name__}")
    quoted = _quoted(arch)
    s = arch.strip()
    steps = s.split("+")
    if len(steps) != 3:
        raise ArchStringError(f"malformed NAS-Bench-201 arch string {quoted}: expected 3 '+'-separated nodes")
    ops: list[str] = []
    for k, step in enumerate(steps, start=1):
        if len(step) < 2 or not (step.startswith("|") and step.endswith("|")):
            raise ArchStringError(f"malformed NAS-Bench-201 arch string {quoted}: node {k} must be '|op~i|...|'")
        items = step[1:-1].split("|")
        if len(items) != k:
            raise ArchStringError(f"malformed NAS-Bench-201 arch string {quoted}: node {k} needs {k} inputs")
        for j, item in enumerate(items):
            m = _NODE.fullmatch(item)
            if not m:
                raise ArchStringError(f"malformed NAS-Bench-201 arch string {quoted}: bad edge {_quoted(item, 40)}")
            op, src = m.group(1), int(m.group(2))
            if src != j:
                raise ArchStringError(f"malformed NAS-Bench-201 arch string {quoted}: edge {_quoted(item, 40)} "
                                      f"must read ~{j}")
            if op not in OPS:
                raise ArchStringError(f"unknown NAS-Bench-201 op {_quoted(op, 40)} in {quoted}; "
                                      f"ops: {', '.join(OPS)}")
            ops.append(op)
    return tuple(ops)


def ops_to_arch_str(ops) -> str:
    """Inverse of :func:`parse_arch_str`."""
    ops = tuple(ops)
    if len(ops) != 6 or any(o not in OPS for o in ops):
        raise ArchStringError(f"need 6 ops from {OPS}, got {ops}")
    it = iter(zip(ops, _INPUTS))
    return "+".join("|" + "|".join(f"{o}~{i}" for o, i in itertools.islice(it, k)) + "|" for k in (1, 2, 3))


def prune(ops: list[str], adj: np.ndarray, dead=frozenset()) -> tuple[list[str], np.ndarray]:
    """Drop the nodes in ``dead`` and every node not on a path from node 0 (input) to the last node (output).

    Input and output are always kept, so a cell whose input cannot reach its output becomes two unconnected nodes.
    """
    n = len(ops)
    alive = np.ones(n, dtype=bool)
    alive[list(dead)] = False
    a = adj.astype(bool) & alive[:, None] & alive[None, :]
    r = reachability(a)
    keep = r[0] & r[:, n - 1] & alive
    keep[0] = keep[n - 1] = True
    idx = np.flatnonzero(keep)
    return [ops[i] for i in idx], a[np.ix_(idx, idx)].astype(np.uint8)


def arch_to_graph(arch: str, prune_none: bool = True) -> ArchGraph:
    """NAS-Bench-201 arch string -> pruned node-op :class:`ArchGraph`.

    ``prune_none=False`` keeps the fixed 8-node graph with ``none`` nodes as tokens of their own, as the authors'
    released preprocessing (``preprocessing/gen_json_201.py``) does: every cell then has 8 nodes and the same
    adjacency, and size-bucketed batches hold all cells in one bucket.

    Example:
        >>> arch_to_graph('|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|').ops
        ('input', 'skip_connect', 'output')
        >>> arch_to_graph('|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|', prune_none=False).num_nodes
        8
    """
    edge_ops = parse_arch_str(arch)
    ops = ["input", *edge_ops, "output"]
    dead = {i for i, o in enumerate(ops) if o == "none"}
    depth = len(ops) - len(dead)  # non-`none` nodes of the unpruned cell, as in the released code
    if not prune_none:
        return ArchGraph(ops, ADJ_8.copy(), depth=depth)
    pops, padj = prune(ops, ADJ_8, dead)
    return ArchGraph(pops, padj, depth=depth)


def all_arch_strs():
    """All 15,625 cell strings (in lexicographic op order, not the benchmark index order)."""
    for ops in itertools.product(OPS, repeat=6):
        yield ops_to_arch_str(ops)
