import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from nnformer.batching import EncodedGraphs  # noqa: E402
from nnformer.errors import OnnxError, UnknownOpError  # noqa: E402
from nnformer.graph import MAX_NODES, ArchGraph  # noqa: E402
from nnformer.latency.onnx_graph import (FEATURE_NAMES, STATIC_NAMES, from_compact, onnx_to_graph,  # noqa: E402
                                         static_vector, to_compact)
from nnformer.vocab import ONNX, ONNX_OPS, OpVocab  # noqa: E402

F = {name: i for i, name in enumerate(FEATURE_NAMES)}


pytestmark = pytest.mark.usefixtures("one_thread")


def export(model, shape) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(shape),), f, dynamo=False, opset_version=17)
    return f.getvalue()


class Residual(nn.Module):
    """x -> conv1 -> relu -> conv2, plus conv1's output: a diamond conv1 -> {relu -> conv2, add}."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv1(x)
        return self.conv2(torch.relu(y)) + y


def test_residual_block_is_a_diamond():
    g, _ = onnx_to_graph(export(Residual(), (1, 3, 16, 16)))
    assert g.ops == ("input", "onnx:Conv", "onnx:Relu", "onnx:Conv", "onnx:Add", "output")
    edges = {(int(i), int(j)) for i, j in zip(*np.nonzero(g.adj))}
    assert edges == {(0, 1), (1, 2), (2, 3), (3, 4), (1, 4), (4, 5)}
    # Relu and Add share their parent conv1: NN-Former's sibling head (I + A^T A) links them
    sib = g.asma_masks()[2]
    assert sib[2, 4] and sib[4, 2] and not sib[2, 3]


def test_conv_features_and_flops():
    g, static = onnx_to_graph(export(Residual(), (1, 3, 16, 16)))
    conv1 = g.features[1]
    assert conv1.shape == (len(FEATURE_NAMES),)
    expect = {"kernel_h": 3, "kernel_w": 3, "stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1, "dilation_h": 1,
              "groups": 1, "c_in": 3, "c_out": 8, "out_h": 16, "out_w": 16}
    assert {k: conv1[F[k]] for k in expect} == expect
    flops1 = 2 * 8 * 16 * 16 * 3 * 9 + 8 * 16 * 16  # multiply-adds x 2, plus the bias
    assert conv1[F["log_flops"]] == pytest.approx(math.log1p(flops1), rel=1e-6)
    assert conv1[F["log_params"]] == pytest.approx(math.log1p(8 * 3 * 9 + 8), rel=1e-6)
    relu = g.features[2]
    assert relu[F["kernel_h"]] == 0 and relu[F["c_out"]] == 8
    assert relu[F["log_flops"]] == pytest.approx(math.log1p(8 * 16 * 16), rel=1e-6)
    flops2 = 2 * 8 * 16 * 16 * 8 * 9 + 8 * 16 * 16
    assert static["flops"] == flops1 + 8 * 16 * 16 + flops2 + 8 * 16 * 16
    assert static["params"] == sum(p.numel() for p in Residual().parameters())
    assert static["batch"] == 1 and static["num_ops"] == 4
    assert static["memory_access"] > 4 * (3 + 8 * 4) * 16 * 16  # at least every activation read/written once
    assert set(static) == {*STATIC_NAMES, "unknown_shapes"} and static_vector(static).shape == (len(STATIC_NAMES),)
    assert static["unknown_shapes"] == 0  # every shape inferred


def test_strided_depthwise_conv_and_batchnorm_folding():
    m = nn.Sequential(nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
    g, _ = onnx_to_graph(export(m, (2, 8, 32, 32)))
    assert g.ops == ("input", "onnx:Conv", "onnx:Clip", "output")  # BN folded into the conv; ReLU6 is Clip
    conv = g.features[1]
    assert (conv[F["groups"]], conv[F["stride_h"]], conv[F["kernel_w"]], conv[F["out_h"]]) == (8, 2, 5, 16)
    assert conv[F["log_out_numel"]] == pytest.approx(math.log1p(2 * 8 * 16 * 16), rel=1e-6)


def _handmade(nodes, inits, x_shape, y_shape, y_name="y"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, y_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _init(name, *shape):
    return helper.make_tensor(name, TensorProto.FLOAT, shape, np.zeros(shape, np.float32).ravel().tolist())


def test_weights_identity_and_dropout_are_not_nodes():
    """An Identity copy of a weight (the legacy exporter makes one per shared initializer), a Constant and a
    Dropout on the data path are not operators of the network."""
    nodes = [helper.make_node("Identity", ["w0"], ["w"]),
             helper.make_node("Constant", [], ["lo"], value=helper.make_tensor("c", TensorProto.FLOAT, [], [0.0])),
             helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Dropout", ["c"], ["d"]),
             helper.make_node("Clip", ["d", "lo"], ["y"])]
    g, static = onnx_to_graph(_handmade(nodes, [_init("w0", 4, 2, 1, 1)], [1, 2, 5, 5], [1, 4, 5, 5]))
    assert g.ops == ("input", "onnx:Conv", "onnx:Clip", "output")
    assert g.adj[1, 2] == 1 and g.num_edges == 3
    assert static["params"] == 8 and static["num_ops"] == 2
    assert g.features[1][F["kernel_h"]] == 1  # from kernel_shape; the weight comes through the Identity


def test_gemm_features_and_dynamic_batch():
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    model = _handmade(nodes, [_init("w", 10, 6), _init("b", 10)], ["N", 6], ["N", 10])
    g1, s1 = onnx_to_graph(model)
    _, s4 = onnx_to_graph(model, batch=4)
    gemm = g1.features[1]
    assert (gemm[F["c_in"]], gemm[F["c_out"]], gemm[F["out_h"]]) == (6, 10, 1)
    assert s1["flops"] == 2 * 6 * 10 + 10 and s1["params"] == 70 and s1["batch"] == 1
    assert s4["flops"] == 4 * s1["flops"] and s4["batch"] == 4


def test_unseen_op_converts_and_is_the_onnx_vocabularys_other_op():
    nodes = [helper.make_node("Celu", ["x"], ["y"])]
    g, _ = onnx_to_graph(_handmade(nodes, [], [1, 3], [1, 3]))
    assert g.ops == ("input", "onnx:Celu", "output") and "onnx:Celu" not in ONNX
    assert EncodedGraphs([g], ONNX).ops[0].tolist() == [0, ONNX.ids["onnx:other"], 6]
    closed = OpVocab("closed", dict(ONNX.ids))  # without an "other" op, an unknown op stays an error
    with pytest.raises(UnknownOpError, match="onnx:Celu") as e:
        EncodedGraphs([g], closed)
    assert "\n" not in str(e.value)


def test_common_ops_fit_the_one_hot_width():
    # fixed ids in an immutable vocabulary: the same op has the same id whatever model was converted first
    assert all(ONNX.ids["onnx:" + op] < 32 for op in ONNX_OPS)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage\xff" * 50, b"not an onnx file at all"])
def test_corrupt_file_raises_onnx_error(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxError) as e:
        onnx_to_graph(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_truncated_and_missing_files_raise_onnx_error(tmp_path):
    data = export(Residual(), (1, 3, 8, 8))
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxError, match="cannot read"):
        onnx_to_graph(path)
    with pytest.raises(OnnxError, match="no ONNX file"):
        onnx_to_graph(tmp_path / "missing.onnx")


def test_compact_form_round_trips_through_json():
    g, static = onnx_to_graph(export(Residual(), (1, 3, 16, 16)))
    c = to_compact(g, static)
    assert len(c["edges"]) == g.num_edges and "adj" not in c
    g2, static2 = from_compact(json.loads(json.dumps(c)))
    assert g2.ops == g.ops and np.array_equal(g2.adj, g.adj) and static2 == static
    assert np.allclose(g2.features, g.features, atol=1e-4)
    assert to_compact(g2, static2) == c
    assert c["format"] == "nnformer-graph-1" and g2 == ArchGraph.from_dict(c)
    with pytest.raises(OnnxError, match="not a compact ONNX graph") as e:
        from_compact({"ops": ["input", "output"], "edges": []})
    assert "\n" not in str(e.value)


def test_compact_reads_the_older_format():
    # datasets/latency-cpu-b1 was written as "nnformer-onnx-graph/1", with the same keys
    old = {"format": "nnformer-onnx-graph/1", "ops": ["input", "onnx:Relu", "output"], "edges": [[0, 1], [1, 2]],
           "features": [[0.0], [1.5], [0.0]], "static": {"flops": 3.0}}
    g, static = from_compact(old)
    assert g.ops == ("input", "onnx:Relu", "output") and g.num_edges == 2 and static == {"flops": 3.0}
    assert EncodedGraphs([g], ONNX).n == 1


def test_family_graphs_fit_and_flops_agree_with_torch_count():
    """One network of a few families: under the node limit, and the ONNX FLOPs of Conv/Gemm match the MACs that
    nnformer.latency.families.cost counts in PyTorch (element-wise ops add a few percent)."""
    from nnformer.latency.families import build, cost, sample

    for family in ("mobilenetv3", "nb201", "squeezenet"):
        spec = sample(family, seed=0, index=1)
        g, static = onnx_to_graph(export(build(spec), spec.input_shape))
        assert g.num_nodes <= MAX_NODES and g.ops[0] == "input" and g.ops[-1] == "output"
        macs = cost(spec)[0]
        assert 2 * macs <= static["flops"] <= 2 * macs * 1.15


@pytest.mark.slow
def test_every_family_converts_under_the_node_limit():
    from nnformer.latency.families import HAND_WRITTEN, build, sample

    for family in HAND_WRITTEN:
        for index in range(3):
            spec = sample(family, seed=0, index=index)
            g, static = onnx_to_graph(export(build(spec), spec.input_shape))
            assert g.num_nodes <= MAX_NODES and static["flops"] > 0


def test_a_stock_transformer_encoder_exports_with_its_fast_path_off_and_back_on_after():
    """nn.TransformerEncoder in eval mode runs a fused kernel with no ONNX export; export shows the exporter the
    plain layers (attention's MatMul/Softmax, LayerNormalization) and leaves PyTorch's setting as it was."""
    import torch
    from torch import nn

    from nnformer.latency.onnx_graph import torch_to_graph

    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, batch_first=True), 2)
    assert torch.backends.mha.get_fastpath_enabled()
    g = torch_to_graph(model, (1, 10, 32)).graph
    ops = set(g.ops)
    assert {"onnx:MatMul", "onnx:Softmax", "onnx:LayerNormalization"} <= ops and "onnx:other" not in ops
    assert g.ops.count("onnx:Softmax") == 2  # one attention per layer
    assert torch.backends.mha.get_fastpath_enabled()


def test_a_stock_transformer_encoder_has_every_shape_and_its_matmul_flops(monkeypatch):
    """ONNX's shape inference leaves the attention's reshapes unknown and ONNX Runtime's symbolic inference gives
    up on them; one ONNX Runtime run finds the rest, so every operator has a shape and the FLOPs hold at least the
    linear layers' 2 * tokens * weights. Without that run some shapes stay unknown (and are counted)."""
    import torch
    from torch import nn

    import nnformer.latency.runtimes as runtimes
    from nnformer.latency.onnx_graph import torch_to_graph

    torch.manual_seed(0)
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, batch_first=True), 2)
    linear = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    _, static = torch_to_graph(model, (1, 10, 32))
    assert static["unknown_shapes"] == 0
    assert 2 * 10 * linear <= static["flops"] <= 1.2 * 2 * 10 * linear

    def no_runtime(*args, **kwargs):
        raise RuntimeError("ONNX Runtime cannot run it")

    monkeypatch.setattr(runtimes, "session", no_runtime)
    _, blind = torch_to_graph(model, (1, 10, 32))
    assert blind["unknown_shapes"] > 0 and blind["memory_access"] < static["memory_access"]
