"""NAS-Bench-101 cells: (adjacency matrix, op list) specs, their pruning and their official module hash.

A cell is a DAG of at most 7 nodes and 9 edges. Node 0 is ``input``, the last node ``output``; every other node is one
of :data:`OPS`. ``matrix[i][j] = 1`` is an edge ``i -> j`` and the matrix must be strictly upper-triangular, so node
order is a topological order and no cycle check is needed.

Semantics follow google-research/nasbench (``ModelSpec`` and ``NASBench._check_spec``):

* **Pruning.** A node that is not on some input->output path (not reachable from the input, or unable to reach the
  output) computes nothing that reaches the output; it is deleted with its edges. If the input cannot reach the
  output at all, the spec is invalid.
* **Limits.** The 7-node and 9-edge limits apply to the *pruned* spec, as the official query does: a spec with a
  dangling tenth edge is the same network as the pruned one.
* **Ops.** Checked on the *unpruned* spec, which is stricter than the official API (it only checks surviving nodes):
  an unknown op name is almost always a typo, and silently pruning it away would hide that.
* **Module hash.** :func:`module_hash` reproduces ``graph_util.hash_module`` of the pruned spec, so the result is the
  key of the official data files (``"00005c142e6f48ac74fdcf73e3439874"`` for the first cell of the benchmark). Two
  cells get the same hash when they are isomorphic (same graph up to a renumbering of the interior nodes).

Example:
    >>> m = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]  # node 2 is a dead end
    >>> spec_to_graph(m, ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]).ops
    ('input', 'conv3x3-bn-relu', 'output')
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from ..errors import SpecError
from ..graph import ArchGraph, reachability

INPUT, OUTPUT = "input", "output"
# Interior ops in the order of the official config['available_ops']. The module hash labels an interior node by its
# index in this tuple (input -1, output -2), so this order is part of the hash and must not change.
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
# Node-op ids of the NAR-Former / NN-Former preprocessing (``nasbench101.json`` stores ops as these ids). This is a
# different order from OPS: the two must not be mixed up.
NODE_OPS = (INPUT, "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", OUTPUT)
MAX_VERTICES = 7
MAX_EDGES = 9
NUM_CELLS = 423_624  # unique (non-isomorphic) cells in the benchmark

_HASH_LABEL = {INPUT: -1, OUTPUT: -2, **{op: i for i, op in enumerate(OPS)}}


def _fail(problem: str) -> SpecError:
    return SpecError(f"invalid NAS-Bench-101 spec: {problem}")


def check_spec(matrix, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Validate the form of a spec (before pruning) and return it as a ``uint8`` matrix and a list of op names.

    Raises:
        SpecError: the matrix is not a square numeric 2-D matrix matching the op count, holds a value other than
            0/1, is not strictly upper-triangular, or an op is unknown / the first op is not ``input`` / the last
            op is not ``output``.
    """
    try:
        a = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _fail(f"adjacency is not a numeric matrix ({e})") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise _fail(f"adjacency must be a square matrix, got shape {a.shape}")
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise _fail(f"ops must be a list of op names, got {type(ops).__name__}")
    ops = list(ops)
    n = a.shape[0]
    if len(ops) != n:
        raise _fail(f"adjacency is {n}x{n} but there are {len(ops)} ops")
    if n < 2:
        raise _fail(f"a cell needs at least an input and an output node, got {n} node(s)")
    bad = ~np.isin(a, (0.0, 1.0))
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise _fail(f"adjacency must hold only 0 and 1, found {a[i, j]!r} at [{i}, {j}]")
    low = np.tril(a)  # diagonal and below: a self-loop or a backward edge
    if low.any():
        i, j = map(int, np.argwhere(low)[0])
        raise _fail(f"adjacency is not strictly upper-triangular: entry [{i}, {j}] is 1 "
                    f"(node order must be a topological order)")
    for k, op in enumerate(ops):
        if not isinstance(op, str):
            raise _fail(f"op {k} is {op!r}, not an op name")
    if ops[0] != INPUT:
        raise _fail(f"first op must be {INPUT!r}, got {ops[0]!r}")
    if ops[-1] != OUTPUT:
        raise _fail(f"last op must be {OUTPUT!r}, got {ops[-1]!r}")
    for k, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise _fail(f"unknown op {op!r} at node {k}; interior ops: {', '.join(OPS)}")
    return a.astype(np.uint8), ops


def prune(matrix: np.ndarray, ops: list[str]) -> tuple[np.ndarray, list[str]]:
    """Delete every node that is not on an input->output path (the official ``ModelSpec._prune``).

    Raises:
        SpecError: the input cannot reach the output (the official spec would be ``valid_spec = False``).
    """
    n = len(ops)
    r = reachability(matrix)
    from_input = r[0].copy()
    from_input[0] = True
    to_output = r[:, n - 1].copy()
    to_output[n - 1] = True
    # A node in both sets lies on an input->output path; if input cannot reach output, no node is in both.
    keep = from_input & to_output
    if not keep[n - 1]:
        raise _fail("the input is not connected to the output (no input->output path)")
    idx = np.flatnonzero(keep)
    return matrix[np.ix_(idx, idx)].copy(), [ops[i] for i in idx]


def canonical_spec(matrix, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Validate, prune, and check the pruned spec against the search-space limits (7 nodes, 9 edges).

    Returns:
        The pruned ``(uint8 matrix, op names)``: what the benchmark stores and hashes.

    Raises:
        SpecError: naming the first problem found (see :func:`check_spec`, :func:`prune`).
    """
    a, ops = check_spec(matrix, ops)
    a, ops = prune(a, ops)
    if len(ops) > MAX_VERTICES:
        raise _fail(f"too many nodes: {len(ops)} after pruning, the limit is {MAX_VERTICES}")
    if int(a.sum()) > MAX_EDGES:
        raise _fail(f"too many edges: {int(a.sum())} after pruning, the limit is {MAX_EDGES}")
    return a, ops


def spec_to_graph(matrix, ops: Sequence[str]) -> ArchGraph:
    """NAS-Bench-101 spec -> pruned :class:`ArchGraph` (2 to 7 nodes); raises :class:`SpecError`."""
    a, ops = canonical_spec(matrix, ops)
    return ArchGraph(ops, a)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def labeled_dag_hash(matrix: np.ndarray, labels: Sequence[int]) -> str:
    """The isomorphism-invariant MD5 fingerprint of ``graph_util.hash_module`` (no validation, no pruning).

    Each node starts from the md5 of the text ``"(out_degree, in_degree, label)"``; then, once per node, every node's
    hash becomes the md5 of ``sorted predecessor hashes + "|" + sorted successor hashes + "|" + own hash`` (a
    Weisfeiler-Lehman refinement). The fingerprint is the md5 of the sorted final hashes, written as a Python list
    of quoted strings. The exact text formats matter: they are what makes the result equal the official hashes.
    """
    rows = (np.asarray(matrix) != 0).tolist()  # plain lists: this runs once per cell of a 423k-cell file
    n = len(rows)
    preds = [[u for u in range(n) if rows[u][v]] for v in range(n)]
    succs = [[w for w in range(n) if rows[v][w]] for v in range(n)]
    hashes = [_md5(f"({len(succs[v])}, {len(preds[v])}, {int(labels[v])})") for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5("".join(sorted([hashes[u] for u in preds[v]])) + "|"
                 + "".join(sorted([hashes[w] for w in succs[v]])) + "|" + hashes[v])
            for v in range(n)
        ]
    return _md5("[" + ", ".join(f"'{h}'" for h in sorted(hashes)) + "]")


def module_hash(matrix, ops: Sequence[str]) -> str:
    """The official NAS-Bench-101 module hash of a spec (validated and pruned first); raises :class:`SpecError`.

    Example:
        >>> module_hash([[0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 1],
        ...              [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1],
        ...              [0, 0, 0, 0, 0, 0, 0]],
        ...             ["input", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu",
        ...              "conv1x1-bn-relu", "output"])
        '00005c142e6f48ac74fdcf73e3439874'
    """
    return canonical_hash(*canonical_spec(matrix, ops))


def canonical_hash(matrix: np.ndarray, ops: Sequence[str]) -> str:
    """:func:`module_hash` of a spec that :func:`canonical_spec` already returned (no checks, no pruning)."""
    return labeled_dag_hash(matrix, [_HASH_LABEL[o] for o in ops])
