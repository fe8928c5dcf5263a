import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnformer.errors import ArchStringError
from nnformer.spaces.nb201 import ADJ_8, OPS, all_arch_strs, arch_to_graph, ops_to_arch_str, parse_arch_str

FULL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_full_cell_keeps_all_eight_nodes():
    g = arch_to_graph(FULL)
    assert g.ops == ("input", "nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3",
                     "skip_connect", "output")
    assert np.array_equal(g.adj, ADJ_8)
    assert g.depth == 8


def test_fixed_adjacency_edges():
    # a=0->1 feeds c (1->2) and e (1->3); b, c feed f (2->3); d, e, f feed the output
    assert sorted(zip(*np.nonzero(ADJ_8))) == [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7),
                                               (5, 7), (6, 7)]


def test_all_none_cell_is_two_unconnected_nodes():
    g = arch_to_graph("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert g.ops == ("input", "output")
    assert g.adj.tolist() == [[0, 0], [0, 0]]
    assert g.depth == 2


def test_cell_pruned_to_chain():
    # only d (0->3) survives on a path: a feeds nothing alive, b/c/e/f are none
    g = arch_to_graph("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert g.ops == ("input", "skip_connect", "output")
    assert g.adj.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert g.depth == 4  # non-none nodes before pruning: input, a, d, output


def test_longest_chain_a_c_f():
    g = arch_to_graph("|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_3x3~2|")
    assert g.ops == ("input", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3", "output")
    assert g.adj.tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_dead_end_branch_is_pruned():
    # b (0->2) is alive but node 2 feeds only f = none, so b is not on an input->output path
    g = arch_to_graph("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|none~2|")
    assert g.ops == ("input", "skip_connect", "nor_conv_1x1", "output")
    assert g.adj.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]


def test_size_distribution_over_the_space():
    sizes = np.bincount([arch_to_graph(s).num_nodes for s in all_arch_strs()], minlength=9)
    assert sizes.sum() == 15625
    assert sizes[2] == 341  # 5^6 cells where input cannot reach output: all of a, d, b... combinations
    assert sizes[8] == 4 ** 6  # no `none` at all


@pytest.mark.parametrize("bad", [
    "", "|nor_conv_3x3~0|", "|nor_conv_3x3~0|+|none~0|none~1|", FULL.replace("~2", "~1"),
    FULL.replace("nor_conv_3x3", "conv_5x5", 1), FULL[1:], FULL + "+|none~0|", FULL.replace("|+|", "+"),
    FULL.replace("skip_connect~0", "skip_connect~0|none~1"), 42,
])
def test_malformed_strings_raise(bad):
    with pytest.raises(ArchStringError):
        arch_to_graph(bad)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(OPS), min_size=6, max_size=6))
def test_round_trip(ops):
    s = ops_to_arch_str(ops)
    assert parse_arch_str(s) == tuple(ops)
    g = arch_to_graph(s)
    assert 2 <= g.num_nodes <= 8 and "none" not in g.ops


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="|+~0123nonesk_ipcvat1x3ug", max_size=90))
def test_random_strings_convert_or_raise(s):
    try:
        g = arch_to_graph(s)
    except ArchStringError as e:
        assert "NAS-Bench-201" in str(e) or "arch string" in str(e)
        return
    assert ops_to_arch_str(parse_arch_str(s)) == s.strip()
    assert g.num_nodes >= 2


def test_unpruned_graphs_keep_none_nodes_as_the_released_preprocessing_does():
    s = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    g = arch_to_graph(s, prune_none=False)
    assert g.ops == ("input", "nor_conv_3x3", "none", "none", "skip_connect", "none", "none", "output")
    assert np.array_equal(g.adj, ADJ_8)
    assert g.depth_value == arch_to_graph(s).depth_value == 4  # input, two ops, output: the non-`none` nodes
    assert arch_to_graph(s).num_nodes == 3  # the default (paper) graph drops them


@pytest.mark.parametrize("digit", ["٠", "١", "０", "𝟎"])  # Arabic-Indic, full-width and mathematical zeros/ones
def test_only_ascii_input_indices_are_accepted(digit):
    with pytest.raises(ArchStringError, match="bad edge"):
        parse_arch_str(f"|nor_conv_3x3~{digit}|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")


def test_errors_quote_at_most_a_hundred_characters_of_a_long_string():
    with pytest.raises(ArchStringError) as e:
        parse_arch_str("|" + "x" * 10_000 + "\n|")
    msg = str(e.value)
    assert len(msg) < 250 and "(10,003 characters)" in msg and "\n" not in msg
