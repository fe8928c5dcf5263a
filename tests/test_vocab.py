"""Op vocabularies are explicit, immutable values; ids never depend on what the process did before."""

import numpy as np
import pytest

from nnformer import ArchGraph, Predictor
from nnformer.batching import EncodedGraphs
from nnformer.errors import CheckpointError, UnknownOpError
from nnformer.spaces.nb201 import arch_to_graph
from nnformer.vocab import NB101, NB201, ONNX, VOCABS, OpVocab, vocab_for

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_ids_are_the_released_ones_and_fit_the_one_hot():
    assert NB201.encode(["input", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none",
                         "output"]) == list(range(7))
    assert NB101.encode(["input", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output"]) == [0, 7, 8, 9, 6]
    assert all(v.width <= 32 for v in VOCABS.values())
    with pytest.raises(TypeError):
        NB201.ids["new"] = 7  # immutable


def test_unknown_op_is_one_line_at_encoding():
    g = ArchGraph(["input", "conv7x7", "output"], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # a graph may name any op
    with pytest.raises(UnknownOpError, match="unknown op 'conv7x7' for the 'nb201' op vocabulary") as e:
        EncodedGraphs([g], NB201)
    assert "\n" not in str(e.value)
    with pytest.raises(UnknownOpError, match="no op vocabulary holds every op"):
        vocab_for([g.ops])


def test_a_33rd_op_is_refused_instead_of_overflowing_the_embedding():
    wide = OpVocab.of("wide", [f"op{i}" for i in range(33)])
    g = ArchGraph(["op0", "op32"], [[0, 1], [0, 0]])
    with pytest.raises(Exception, match="needs 33 op types, the network has 32"):
        Predictor(settings={"n_layers": 1, "dim": 16, "epochs": 1}, vocab=wide, progress=False).fit([g, g], [0.1, 0.2])


def test_vocab_is_inferred_in_a_fixed_order_and_never_grows():
    before = {k: dict(v.ids) for k, v in VOCABS.items()}
    assert vocab_for([arch_to_graph(CELL).ops]) is NB201
    assert vocab_for([["input", "maxpool3x3", "output"]]) is NB101
    assert vocab_for([["input", "onnx:Conv", "output"]]) is ONNX
    EncodedGraphs([ArchGraph(["input", "onnx:Conv", "output"], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])])
    assert {k: dict(v.ids) for k, v in VOCABS.items()} == before


def test_a_predictor_encodes_with_its_own_vocabulary(tmp_path):
    gs = [arch_to_graph(CELL), arch_to_graph("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")]
    p = Predictor(settings={"n_layers": 1, "dim": 16, "epochs": 2}, progress=False).fit(gs, [0.9, 0.1])
    q = Predictor.load(p.save(tmp_path / "p.pt"))
    assert q.vocab_ == NB201 and np.array_equal(q.predict(gs), p.predict(gs))
    nb101 = ArchGraph(["input", "maxpool3x3", "output"], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(UnknownOpError, match="'maxpool3x3' for the 'nb201' op vocabulary"):
        q.predict([nb101])


def test_vocab_round_trip_and_bad_records():
    assert OpVocab.from_dict(NB101.to_dict()) == NB101
    for bad in (None, {"format": "x"}, {"format": "nnformer-vocab-1", "name": "v", "ids": {"a": 0, "b": 0}}):
        with pytest.raises(CheckpointError):
            OpVocab.from_dict(bad)
