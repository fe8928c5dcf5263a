import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnformer.batching import EncodedGraphs
from nnformer.errors import CycleError, GraphError, GraphSizeError, NonBinaryError, NotSquareError, UnknownOpError
from nnformer.graph import MAX_NODES, ArchGraph
from nnformer.model import token_masks


def graph(n, edges, ops=None):
    a = np.zeros((n, n), dtype=int)
    for i, j in edges:
        a[i, j] = 1
    return ArchGraph(ops or ["input"] + ["nor_conv_3x3"] * (n - 2) + ["output"], a)


CHAIN = graph(4, [(0, 1), (1, 2), (2, 3)])
DIAMOND = graph(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
FAN_OUT = graph(4, [(0, 1), (0, 2), (0, 3)])
FAN_IN = graph(4, [(0, 3), (1, 3), (2, 3)])


def M(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_chain_masks():
    succ, pred, sib_in, sib_out = CHAIN.asma_masks()
    assert torch.equal(succ, M([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]]))
    assert torch.equal(pred, succ.T)
    # a chain has no two nodes sharing a parent or a child: sibling masks are the identity
    assert torch.equal(sib_in, torch.eye(4, dtype=torch.bool))
    assert torch.equal(sib_out, torch.eye(4, dtype=torch.bool))


def test_diamond_masks():
    succ, pred, sib_in, sib_out = DIAMOND.asma_masks()
    assert torch.equal(succ, M([[1, 1, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1], [0, 0, 0, 1]]))
    assert torch.equal(pred, succ.T)
    # 1 and 2 share parent 0 and child 3
    assert torch.equal(sib_in, M([[1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]]))
    assert torch.equal(sib_out, sib_in)


def test_fan_out_and_fan_in_masks():
    _, _, sib_in, sib_out = FAN_OUT.asma_masks()
    assert torch.equal(sib_in, M([[1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]]))
    assert torch.equal(sib_out, torch.eye(4, dtype=torch.bool))
    _, _, sib_in, sib_out = FAN_IN.asma_masks()
    assert torch.equal(sib_in, torch.eye(4, dtype=torch.bool))
    assert torch.equal(sib_out, M([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]]))


def test_token_masks_paper_mode_diamond():
    m = token_masks(EncodedGraphs([DIAMOND]).batch([0]), "paper")[0]  # tokens: CLS, 4 nodes, DEPTH
    assert m.shape == (4, 6, 6)
    node = DIAMOND.asma_masks()
    for h in range(4):
        assert torch.equal(m[h, 1:5, 1:5], node[h])
        assert m[h, 0].all() and m[h, 5].all() and m[h, :, 0].all() and m[h, :, 5].all()


def test_token_masks_released_mode_diamond():
    m = token_masks(EncodedGraphs([DIAMOND]).batch([0]), "released")[0]
    # heads 1-2: I+A (resp. A^T) with CLS/DEPTH rows and columns of ones
    exp = torch.ones(6, 6, dtype=torch.bool)
    exp[1:5, 1:5] = DIAMOND.asma_masks()[0]
    assert torch.equal(m[0], exp)
    assert torch.equal(m[1], exp.T)
    # heads 3-4 collapse to global attention: the CLS row of ones makes A^T A all ones
    assert m[2].all() and m[3].all()


def test_token_masks_modes_and_padding():
    b = EncodedGraphs([DIAMOND, graph(2, [(0, 1)], ["input", "output"])]).batch([0, 1])
    for mode in ("paper", "released", "global", "adjacency"):
        m = token_masks(b, mode)
        assert m.shape == (2, 4, 6, 6)
        # graph 1 has 2 nodes: node tokens 3 and 4 are padding, never attended to by real tokens
        real = [0, 1, 2, 5]
        assert not m[1][:, real][:, :, [3, 4]].any()
        assert m[1, :, 3, 3].all() and m[1, :, 4, 4].all()  # padding sees itself, so softmax stays finite
    assert token_masks(b, "global")[0].all()
    adj = token_masks(b, "adjacency")[0]
    assert torch.equal(adj[2], adj[0]) and torch.equal(adj[3], adj[1])


@pytest.mark.parametrize("adj, ops, err", [
    ([[0, 1, 0], [0, 0, 1]], ["input", "none", "output"], NotSquareError),
    ([[0, 1], [0, 0]], ["input", "none", "output"], NotSquareError),
    ([[0, 2], [0, 0]], ["input", "output"], NonBinaryError),
    ([[0, 0.5], [0, 0]], ["input", "output"], NonBinaryError),
    ([[0, 1], [1, 0]], ["input", "output"], CycleError),
    ([[1, 1], [0, 0]], ["input", "output"], CycleError),
    ([[0]], ["input"], GraphSizeError),
    ([[0, 1], [0, 0]], ["input", ""], UnknownOpError),  # any name is a graph's; a vocabulary decides at encoding
    ("abc", ["input", "output"], NotSquareError),
])
def test_invalid_graphs_raise_specific_errors(adj, ops, err):
    with pytest.raises(err):
        ArchGraph(ops, adj)


def test_size_limit():
    n = MAX_NODES + 1
    with pytest.raises(GraphSizeError, match="limit"):
        ArchGraph(["none"] * n, np.zeros((n, n)))


def test_three_cycle_detected():
    with pytest.raises(CycleError, match="cycle"):
        graph(4, [(0, 1), (1, 2), (2, 1), (2, 3)])


def test_dict_round_trip():
    g = ArchGraph(["input", "output"], [[0, 1], [0, 0]], features=[[1.0], [2.0]], depth=5)
    assert ArchGraph.from_dict(g.to_dict()) == g


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.sampled_from([0, 1, 2, 0.5, -1]), min_size=n * n, max_size=n * n))))
def test_random_matrices_convert_or_raise_graph_error(case):
    n, vals = case
    a = np.array(vals, dtype=float).reshape(n, n)
    try:
        g = ArchGraph(["nor_conv_3x3"] * n, a)
    except GraphError as e:
        assert str(e)
        return
    # accepted: it really is a 0/1 DAG with n >= 2 nodes
    assert n >= 2 and set(np.unique(g.adj)) <= {0, 1}
    assert np.array_equal(g.adj, a)
    reach = g.adj.astype(int)
    for _ in range(n):
        reach = ((reach + reach @ g.adj) > 0).astype(int)
    assert np.trace(reach) == 0


def test_a_batch_holds_each_graphs_adjacency_padded_to_the_batchs_largest():
    """EncodedGraphs keeps edge lists (a padded adjacency of every graph would be n * N^2 bytes): a batch of any
    graphs, in any order, repeated or not, is their adjacency matrices zero-padded to the batch's largest graph."""
    rng = np.random.default_rng(0)
    graphs = []
    for n in rng.integers(2, 12, size=20):
        a = np.triu(rng.random((n, n)) < 0.4, 1).astype(int)
        a[np.arange(n - 1), np.arange(1, n)] = 1  # a chain, so each node is reached
        graphs.append(ArchGraph(["input"] + ["nor_conv_3x3"] * (n - 2) + ["output"], a))
    enc = EncodedGraphs(graphs)
    for idx in ([0], [3, 1, 3], list(range(20)), [19, 0, 7]):
        b = enc.batch(idx)
        k = max(graphs[i].num_nodes for i in idx)
        assert b.adj.shape == (len(idx), k, k) and b.adj.dtype == torch.float32
        for row, i in enumerate(idx):
            want = np.zeros((k, k), np.float32)
            n = graphs[i].num_nodes
            want[:n, :n] = graphs[i].adj
            assert np.array_equal(b.adj[row].numpy(), want)
    assert len(enc.edges()) == sum(int(g.adj.sum()) for g in graphs)
