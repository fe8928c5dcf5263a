import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnformer.errors import NNFormerError, SpecError
from nnformer.spaces.nb101 import (MAX_EDGES, MAX_VERTICES, OPS, canonical_spec, labeled_dag_hash, module_hash,
                                   spec_to_graph)

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

# First cell of the official benchmark with its official hash (hash_iterator()[0]; quoted with this matrix by
# several independent projects that read nasbench_only108.tfrecord).
FIRST = ([[0, 1, 0, 0, 1, 1, 0],
          [0, 0, 1, 0, 0, 0, 0],
          [0, 0, 0, 1, 0, 0, 1],
          [0, 0, 0, 0, 0, 1, 0],
          [0, 0, 0, 0, 0, 1, 0],
          [0, 0, 0, 0, 0, 0, 1],
          [0, 0, 0, 0, 0, 0, 0]],
         ["input", C3, MP, C3, C3, C1, "output"])
FIRST_HASH = "00005c142e6f48ac74fdcf73e3439874"

# The Inception-like cell of the nasbench README as queried, and the isomorphic form the official API returned for
# it as module_adjacency / module_operations (the stored canonical cell): same network, different node numbering.
INCEPTION_QUERY = ([[0, 1, 1, 1, 0, 1, 0],
                    [0, 0, 0, 0, 0, 0, 1],
                    [0, 0, 0, 0, 0, 0, 1],
                    [0, 0, 0, 0, 1, 0, 0],
                    [0, 0, 0, 0, 0, 0, 1],
                    [0, 0, 0, 0, 0, 0, 1],
                    [0, 0, 0, 0, 0, 0, 0]],
                   ["input", C1, C3, C3, C3, MP, "output"])
INCEPTION_STORED = ([[0, 1, 1, 1, 1, 0, 0],
                     [0, 0, 0, 0, 0, 0, 1],
                     [0, 0, 0, 0, 0, 0, 1],
                     [0, 0, 0, 0, 0, 0, 1],
                     [0, 0, 0, 0, 0, 1, 0],
                     [0, 0, 0, 0, 0, 0, 1],
                     [0, 0, 0, 0, 0, 0, 0]],
                    ["input", C3, C1, MP, C3, C3, "output"])


def test_official_hash_of_first_benchmark_cell():
    assert module_hash(*FIRST) == FIRST_HASH


def test_official_isomorphic_pair_hashes_equal():
    assert not np.array_equal(INCEPTION_QUERY[0], INCEPTION_STORED[0])
    assert module_hash(*INCEPTION_QUERY) == module_hash(*INCEPTION_STORED)


def test_hash_sees_ops_and_edges():
    base = module_hash(*FIRST)
    ops = list(FIRST[1])
    ops[2] = C1  # the maxpool on the path 0->1->2->output becomes a 1x1 conv
    assert module_hash(FIRST[0], ops) != base
    m = np.array(FIRST[0])
    m[4, 5], m[4, 6] = 0, 1  # node 4 now feeds the output instead of node 5: same ops and edge count
    assert module_hash(m, FIRST[1]) != base


# --- pruning, hand-checked ---------------------------------------------------------------------------------------

def test_full_cell_is_kept():
    g = spec_to_graph(*FIRST)
    assert g.ops == tuple(FIRST[1])
    assert g.adj.tolist() == FIRST[0]


def test_dead_end_node_is_pruned():
    # node 2 is reached from the input but feeds nothing
    m = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    g = spec_to_graph(m, ["input", C3, MP, "output"])
    assert g.ops == ("input", C3, "output")
    assert g.adj.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_node_unreachable_from_input_is_pruned():
    # node 1 feeds the output but nothing feeds node 1; its edge 1->3 goes with it
    m = [[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    g = spec_to_graph(m, ["input", MP, C1, "output"])
    assert g.ops == ("input", C1, "output")
    assert g.adj.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_chain_through_pruned_island_and_renumbering():
    # 0->2->4->6 survives; 1 (no input), 3 (dead end fed by 2) and 5 (isolated) go; survivors renumber 0..3
    m = np.zeros((7, 7), dtype=int)
    for i, j in [(0, 2), (2, 4), (4, 6), (1, 4), (2, 3)]:
        m[i, j] = 1
    g = spec_to_graph(m, ["input", C1, C3, MP, C1, MP, "output"])
    assert g.ops == ("input", C3, C1, "output")
    assert g.adj.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]


def test_direct_input_output_edge_only():
    m = np.zeros((5, 5), dtype=int)
    m[0, 4] = 1
    m[1, 2] = 1
    g = spec_to_graph(m, ["input", C3, C3, MP, "output"])
    assert g.ops == ("input", "output")
    assert g.adj.tolist() == [[0, 1], [0, 0]]
    assert module_hash(m, ["input", C3, C3, MP, "output"]) == module_hash([[0, 1], [0, 0]], ["input", "output"])


def test_limits_apply_after_pruning():
    # 8 nodes and 10 edges before pruning; node 6 is a dead end carrying 3 of the edges
    m = np.zeros((8, 8), dtype=int)
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 7), (0, 6), (1, 6), (2, 6), (0, 7)]:
        m[i, j] = 1
    a, ops = canonical_spec(m, ["input", C3, C3, C3, C3, C3, MP, "output"])
    assert len(ops) == MAX_VERTICES and MP not in ops
    assert int(a.sum()) == 7


# --- invalid specs -------------------------------------------------------------------------------------------------

GOOD_M = [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
GOOD_OPS = ["input", C3, "output"]


@pytest.mark.parametrize("matrix, ops, message", [
    ([[0, 1, 0], [0, 0, 1]], GOOD_OPS, "square"),
    ([[0, 1], [0, 0, 1], [0, 0]], GOOD_OPS, "numeric matrix|square"),
    ([[[0]]], ["input"], "square"),
    (GOOD_M, ["input", "output"], "2 ops|3x3 but there are 2"),
    ([[0, 2, 0], [0, 0, 1], [0, 0, 0]], GOOD_OPS, "only 0 and 1.*2"),
    ([[0, 0.5, 0], [0, 0, 1], [0, 0, 0]], GOOD_OPS, "only 0 and 1"),
    ([[0, float("nan"), 0], [0, 0, 1], [0, 0, 0]], GOOD_OPS, "only 0 and 1"),
    ([[0, 1, 0], [0, 0, 1], [0, 1, 0]], GOOD_OPS, r"upper-triangular: entry \[2, 1\]"),
    ([[0, 1, 0], [0, 1, 1], [0, 0, 0]], GOOD_OPS, r"upper-triangular: entry \[1, 1\]"),
    (GOOD_M, [C3, C3, "output"], "first op must be 'input'"),
    (GOOD_M, ["input", C3, MP], "last op must be 'output'"),
    (GOOD_M, ["input", "conv5x5-bn-relu", "output"], "unknown op 'conv5x5-bn-relu' at node 1"),
    (GOOD_M, ["input", "input", "output"], "unknown op 'input' at node 1"),
    (GOOD_M, ["input", 7, "output"], "op 1 is 7"),
    (GOOD_M, "input,conv3x3-bn-relu,output", "list of op names"),
    ([[0]], ["input"], "at least an input and an output"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], GOOD_OPS, "input is not connected to the output"),
    ([[0, 0], [0, 0]], ["input", "output"], "input is not connected to the output"),
    (np.triu(np.ones((8, 8), dtype=int), 1) * np.eye(8, k=1, dtype=int), ["input"] + [C3] * 6 + ["output"],
     "too many nodes: 8"),
    (np.triu(np.ones((6, 6), dtype=int), 1), ["input"] + [C1] * 4 + ["output"], "too many edges: 15"),
])
def test_invalid_spec_raises(matrix, ops, message):
    with pytest.raises(SpecError, match=message) as info:
        module_hash(matrix, ops)
    assert str(info.value).startswith("invalid NAS-Bench-101 spec: ")
    with pytest.raises(SpecError):
        spec_to_graph(matrix, ops)


def test_spec_error_is_a_user_error():
    assert issubclass(SpecError, NNFormerError) and issubclass(SpecError, ValueError)


def test_ten_edges_on_seven_nodes_is_too_many():
    m = np.zeros((7, 7), dtype=int)
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 2), (0, 3), (0, 6), (1, 6)]:
        m[i, j] = 1
    with pytest.raises(SpecError, match=f"too many edges: 10 after pruning, the limit is {MAX_EDGES}"):
        canonical_spec(m, ["input"] + [C3] * 5 + ["output"])
    m[1, 6] = 0
    assert int(canonical_spec(m, ["input"] + [C3] * 5 + ["output"])[0].sum()) == 9


# --- hash = isomorphism class ----------------------------------------------------------------------------------

def _canonical_form(matrix, ops):
    """Brute force: the smallest (matrix, ops) over all renumberings of the interior nodes."""
    a, ops = canonical_spec(matrix, ops)
    n = len(ops)
    best = None
    for perm in itertools.permutations(range(1, n - 1)):
        p = [0, *perm, n - 1]
        key = (a[np.ix_(p, p)].tobytes(), tuple(ops[i] for i in p))
        best = key if best is None or key < best else best
    return best


def test_hash_classes_are_isomorphism_classes_on_all_4_node_cells():
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    classes: dict = {}
    for bits in range(1 << len(pairs)):
        m = np.zeros((4, 4), dtype=int)
        for k, (i, j) in enumerate(pairs):
            m[i, j] = bits >> k & 1
        for mid in itertools.product(OPS, repeat=2):
            ops = ["input", *mid, "output"]
            try:
                h = module_hash(m, ops)
            except SpecError:
                continue
            classes.setdefault(h, set()).add(_canonical_form(m, ops))
    assert all(len(forms) == 1 for forms in classes.values())  # no two non-isomorphic cells share a hash
    forms = [f for fs in classes.values() for f in fs]
    assert len(forms) == len(set(forms))  # isomorphic cells never get two hashes
    # counted by hand: 1 two-node cell; 3-node: 2 edge sets x 3 ops = 6; 4-node with parallel interior nodes:
    # 2 edge sets x 6 unordered op pairs = 12; 4-node with an edge a->b: 8 edge sets x 9 ordered op pairs = 72
    assert len(classes) == 1 + 6 + 12 + 72


@st.composite
def specs(draw):
    """Random cells of 3-7 nodes: a path through a random subset of the interior plus sparse random edges (drawn
    with numpy from a hypothesis seed, for variety); some are too dense or have dangling nodes, as real specs do."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(rng.integers(3, MAX_VERTICES + 1))
    m = np.triu(rng.random((n, n)) < rng.uniform(0.05, 0.35), 1).astype(int)
    path = [0, *(v for v in range(1, n - 1) if rng.random() < 0.7), n - 1]
    m[path[:-1], path[1:]] = 1
    ops = ["input", *(OPS[k] for k in rng.integers(0, len(OPS), n - 2)), "output"]
    return m, ops


def _random_topological_relabel(a, ops, rng):
    """An isomorphic copy: interior nodes renumbered along a random topological order (so still upper-triangular)."""
    n = len(ops)
    # Kahn's algorithm over the interior (edges from the input are already satisfied), input first, output last
    indeg = (a.sum(axis=0) - a[0]).tolist()
    order = [0]
    ready = [v for v in range(1, n - 1) if indeg[v] == 0]
    while ready:
        v = ready.pop(rng.randrange(len(ready)))
        order.append(v)
        for w in range(1, n - 1):
            if a[v, w]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    ready.append(w)
    order.append(n - 1)
    assert sorted(order) == list(range(n))
    return a[np.ix_(order, order)], [ops[i] for i in order]


@settings(max_examples=60, deadline=None)
@given(specs(), st.randoms(use_true_random=False))
def test_hash_is_invariant_under_isomorphism(spec, rng):
    m, ops = spec
    try:
        a, pops = canonical_spec(m, ops)
    except SpecError as e:
        assert "too many edges" in str(e)
        return
    m2, ops2 = _random_topological_relabel(a, pops, rng)
    assert np.array_equal(np.triu(m2, 1), m2)
    assert module_hash(m2, ops2) == module_hash(m, ops)
    # the raw fingerprint is invariant under any renumbering, topological or not
    labels = [-1] + [OPS.index(o) for o in pops[1:-1]] + [-2]
    perm = list(range(len(pops)))
    rng.shuffle(perm)
    assert labeled_dag_hash(a[np.ix_(perm, perm)], [labels[i] for i in perm]) == labeled_dag_hash(a, labels)


@settings(max_examples=60, deadline=None)
@given(specs())
def test_graph_is_pruned_and_in_space(spec):
    m, ops = spec
    try:
        g = spec_to_graph(m, ops)
    except SpecError:
        return
    assert 2 <= g.num_nodes <= MAX_VERTICES and g.num_edges <= MAX_EDGES
    assert g.ops[0] == "input" and g.ops[-1] == "output"
    # every node is on an input->output path: each interior node has a predecessor and a successor
    assert (g.adj[:, 1:].sum(axis=0) > 0).all() and (g.adj[:-1].sum(axis=1) > 0).all()


def test_random_relabel_helper_is_not_identity():
    rng = random.Random(0)
    a, ops = canonical_spec(*FIRST)
    seen = {_random_topological_relabel(a, ops, rng)[0].tobytes() for _ in range(30)}
    assert len(seen) > 1
