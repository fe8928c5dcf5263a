"""The reliability verdict beyond unseen operators: depth outside the trained range, and an operator mix far from
every training graph's (``train_op_mix``), recorded at fit time, kept by save / load and widened by fine-tuning."""

import json

import numpy as np
import pytest

pytest.importorskip("onnx")

from nnformer import Predictor  # noqa: E402
from nnformer.graph import ArchGraph  # noqa: E402
from nnformer.latency import coverage as cov  # noqa: E402
from nnformer.latency.coverage import MIX_FLOOR, MIX_MARGIN, coverage, mix_distance, mix_record, op_mix  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"steps": 1, "evals": 1, "batch_size": 4}


def _chain(ops, depth=None):
    """input -> ops... -> output, a path."""
    names = ["input", *ops, "output"]
    return ArchGraph(names, np.eye(len(names), k=1), depth=depth)


@pytest.fixture(scope="module")
def zoo():
    """The smallest graphs of the committed HERE dataset, by family."""
    from nnformer.latency.dataset import load_training_set

    _, graphs, ms, fam = load_training_set("datasets/here-ort-t1-b1")
    order = sorted(range(len(graphs)), key=lambda i: graphs[i].num_nodes)
    by = {}
    for i in order:
        by.setdefault(fam[i], []).append((graphs[i], float(ms[i])))
    return by


@pytest.fixture(scope="module")
def fitted(zoo):
    """A tiny predictor trained on four AlexNets and four VGGs (Conv, Relu, MaxPool, Flatten, Gemm)."""
    pairs = zoo["alexnet"][:4] + zoo["vgg"][:4]
    graphs, ms = [g for g, _ in pairs], [m for _, m in pairs]
    p = Predictor("networks", settings=FAST, task="latency", progress=False).fit(graphs, ms)
    return p, graphs


def test_depth_outside_the_trained_range_is_flagged_and_not_twice_when_it_is_the_node_count():
    ranges = {"nodes": [4.0, 12.0], "depth": [5.0, 8.0]}
    deep, shallow, inside = (_chain(["onnx:Conv"] * 6, depth=d) for d in (11, 3, 6))
    assert cov._outside(ranges, deep) == ("depth 11, the deepest trained on 8",)
    assert cov._outside(ranges, shallow) == ("depth 3, the shallowest trained on 5",)
    assert cov._outside(ranges, inside) == ()
    assert cov._outside(ranges, _chain(["onnx:Conv"] * 6, depth=10)) == ()  # within SIZE_MARGIN (8 x 1.25)
    # an ONNX graph's depth is its node count: with the same span in training, only the nodes are named
    same = {"nodes": [4.0, 12.0], "depth": [4.0, 12.0]}
    assert cov._outside(same, _chain(["onnx:Conv"] * 30)) == ("nodes 32, the largest trained on 12",)
    assert cov._outside({"nodes": [4.0, 12.0]}, deep) == ()  # a predictor saved without a depth span


def test_mix_record_keeps_distinct_mixes_and_the_leave_one_out_spread():
    a, b = ["onnx:Conv", "onnx:Relu"] * 5, ["onnx:Conv"] * 6 + ["onnx:Relu"] * 4
    assert op_mix(_chain(a)) == {"onnx:Conv": 0.5, "onnx:Relu": 0.5}  # input / output are not operators
    rec = mix_record([_chain(a), _chain(a), _chain(b)])
    assert rec["step"] == 0.01 and len(rec["mixes"]) == 2
    assert rec["within"] == pytest.approx(0.2)  # b's nearest other is a, at |0.6 - 0.5| + |0.4 - 0.5|; a's is a
    assert mix_record([_chain(a), _chain(a)])["within"] == 0  # the same mix twice: no spread
    assert mix_distance(rec, _chain(b)) == 0 and mix_distance(rec, _chain(["onnx:Gemm"] * 4)) == pytest.approx(2)
    assert mix_record([ArchGraph(["a", "b"], [[0, 1], [0, 0]])]) is None  # no ONNX operator: nothing to record
    wider = mix_record([_chain(["onnx:Gemm"] * 3)], rec)
    assert wider["within"] == pytest.approx(2)  # Gemm alone has no op type in common with a or b
    assert len(wider["mixes"]) == 3 and all(m in wider["mixes"] for m in rec["mixes"])
    assert mix_record([_chain(a)], {**rec, "within": 1.7})["within"] == 1.7  # never narrower than before
    assert json.loads(json.dumps(rec)) == rec


def test_too_many_mixes_are_rounded_coarser_then_cut_to_the_most_common(monkeypatch):
    graphs = [_chain(["onnx:Conv"] * k + ["onnx:Relu"] * (40 - k)) for k in range(41)]  # 41 mixes, 0.025 apart
    assert len(mix_record(graphs)["mixes"]) == 41
    monkeypatch.setattr(cov, "MAX_MIXES", 30)
    rec = mix_record(graphs)
    assert rec["step"] == 0.05 and len(rec["mixes"]) == 29  # 0.02 still leaves 41
    assert max(mix_distance(rec, g) for g in graphs) == 0  # a training graph is still at its own, rounded alike
    monkeypatch.setattr(cov, "MAX_MIXES", 5)
    rec = mix_record(graphs)
    assert rec["step"] == 0.1 and len(rec["mixes"]) == 5 and max(mix_distance(rec, g) for g in graphs) > 0


def test_a_far_operator_mix_is_flagged_and_a_training_graph_is_not(fitted):
    p, graphs = fitted
    rec = p.header_["train_op_mix"]
    assert rec["mixes"] and rec["within"] > 0
    for g in graphs:
        c = coverage(p, g)
        assert c.mix_distance == 0 and c.reliable and not c.outside
    # seen op types only, as many nodes as a training graph: only the mix is wrong (all Conv)
    far = _chain(["onnx:Conv"] * (graphs[0].num_nodes - 2))
    c = coverage(p, far)
    assert c.unseen == () and c.mix_limit == max(MIX_MARGIN * rec["within"], MIX_FLOOR)
    assert c.mix_distance > c.mix_limit and not c.reliable and len(c.outside) == 1
    assert c.outside[0].startswith(f"operator mix {c.mix_distance:.2f} from the nearest training graph's")
    assert "UNRELIABLE: outside the operator mixes it trained on (operator mix" in c.describe()
    d = json.loads(json.dumps(c.to_dict()))
    assert d["mix_distance"] == c.mix_distance and d["reliable"] is False


def test_the_record_survives_save_and_load_and_fine_tuning_widens_it(fitted, zoo, tmp_path):
    p, graphs = fitted
    for path in (tmp_path / "pred", tmp_path / "pred.pt"):
        q = Predictor.load(p.save(path))
        assert q.header_["train_op_mix"] == p.header_["train_op_mix"]
        assert coverage(q, graphs[0]) == coverage(p, graphs[0])
    resnets = [g for g, _ in zoo["resnet"][:4]]
    before = [mix_distance(p.header_["train_op_mix"], g) for g in resnets]
    assert min(before) > MIX_FLOOR  # Add and GlobalAveragePool: far from AlexNet and VGG
    tuned = p.finetune(resnets, [m for _, m in zoo["resnet"][:4]], steps=1)
    rec = tuned.header_["train_op_mix"]
    assert all(mix_distance(rec, g) == 0 for g in resnets + graphs)
    assert rec["within"] >= p.header_["train_op_mix"]["within"]
    assert p.header_["train_op_mix"]["mixes"] != rec["mixes"]  # the original is left as it was


def test_a_predictor_saved_without_the_record_checks_nothing_new(fitted):
    from nnformer.latency.predict import resolve_predictor

    shipped, _ = resolve_predictor("cpu-ort-b1")  # saved before predictors kept the record
    assert "train_op_mix" not in shipped.header_
    _, graphs = fitted
    far = _chain(["onnx:Conv"] * 60)  # inside the shipped sizes (21-241 nodes), a mix it never saw
    for g in (far, *graphs):
        c = coverage(shipped, g)
        assert c.mix_distance is None and c.mix_limit is None
        assert c.outside == cov._outside(shipped.header_["train_ranges"], g)
    assert coverage(shipped, far).reliable and not any("depth" in o for o in coverage(shipped, graphs[0]).outside)
    tuned = shipped.finetune(graphs, [1.0] * len(graphs), steps=1)
    assert "train_op_mix" not in tuned.header_  # a few fine-tuning graphs are not what it trained on


def _reshaped_by_data(width: int = 64, known: bool = False):
    """x (1, width) reshaped to a 3-d shape that is itself an input (so no shape inference can know it, and a run on
    made-up inputs, a shape of zeros, fails), or a constant one (``known``), then MatMul and Relu: an ONNX model in
    memory."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((width, 8), np.float32), "w")
    inits = [w]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])]
    if known:
        inits.append(numpy_helper.from_array(np.array([1, 1, width], np.int64), "shape"))
    else:
        inputs.append(helper.make_tensor_value_info("shape", TensorProto.INT64, [3]))
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["m"]),
             helper.make_node("Relu", ["m"], ["y"])]
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "k"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_model_whose_shapes_cannot_be_inferred_is_flagged_and_gets_no_interval(fitted):
    """Shape inference cannot know a reshape to runtime data: the operators after it count 0 FLOPs, the totals
    undercount, and the verdict says so; the same model with a constant shape is read whole."""
    from nnformer.latency.onnx_graph import onnx_to_graph
    from nnformer.latency.predict import predict_graphs

    p, graphs = fitted
    p.calibrate(graphs, [1.0] * len(graphs), level=0.9)
    blind, whole = onnx_to_graph(_reshaped_by_data()), onnx_to_graph(_reshaped_by_data(known=True))
    assert blind.static["unknown_shapes"] == 3 and whole.static["unknown_shapes"] == 0
    assert blind.static["flops"] == 0 < whole.static["flops"]
    blind_r, whole_r = predict_graphs(p, "tiny", [blind, whole])
    assert blind_r.coverage.unknown_shapes == 3 and blind_r.coverage.unknown_shape_share == 1.0
    assert not blind_r.coverage.reliable and blind_r.low is None and blind_r.high is None
    assert "UNRELIABLE: shape inference failed" in blind_r.coverage.describe()
    assert blind_r.coverage.to_dict()["unknown_shapes"] == 3
    assert whole_r.coverage.unknown_shapes == 0 and "shapes of" not in whole_r.coverage.describe()
    # under the threshold the count is reported, and the verdict is what the rest says
    some = cov.Coverage(("onnx:Relu",), (), 10, 0, 0.0, 0.0, unknown_shapes=2)
    assert some.reliable and "output shapes of 2 of 10 operators unknown" in some.describe()
    assert not cov.Coverage(("onnx:Relu",), (), 10, 0, 0.0, 0.0, unknown_shapes=3).reliable


def test_a_model_flagged_for_its_mix_alone_gets_the_wider_interval_and_no_other_flagged_model_does(fitted,
                                                                                                   tmp_path):
    """With ``interval_unfamiliar`` calibrated, a model of seen operators and sizes in an unseen mix gets that wider
    interval (text and JSON say so); one with unseen operators still gets none; without the record, none either."""
    from nnformer.errors import DataError
    from nnformer.latency.predict import format_results, predict_graphs

    p, graphs = fitted
    p = Predictor.load(p.save(tmp_path / "a"))  # a copy: the module's fixture stays uncalibrated
    p.calibrate(graphs, [1.0] * len(graphs))
    with pytest.raises(DataError, match="no interval for unfamiliar models"):
        p.interval_bounds([1.0], unfamiliar=True)
    g0 = graphs[0]  # its nodes, edges and features under other op names: all Conv (a mix never seen), or Einsum

    def renamed(inner):
        return ArchGraph([g0.ops[0], *inner, g0.ops[-1]], g0.adj, g0.features, g0.depth)

    far = renamed(["onnx:Conv"] * (g0.num_nodes - 2))
    alien = renamed(["onnx:Conv"] + ["onnx:Einsum"] * (g0.num_nodes - 3))
    from nnformer.latency.onnx_graph import STATIC_NAMES

    static = dict(zip(STATIC_NAMES, np.expm1(np.asarray(g0.graph_features, np.float64)).tolist()))
    assert coverage(p, far).mix_only and not coverage(p, alien).mix_only and not coverage(p, graphs[0]).mix_only
    converted = [(g, static) for g in (graphs[0], far, alien)]
    before = predict_graphs(p, "tiny", converted)
    assert before[0].low is not None and before[1].low is None and before[2].low is None
    assert not any(r.unfamiliar for r in before)
    wider = Predictor.load(p.save(tmp_path / "b")).calibrate(graphs, np.linspace(0.2, 5.0, len(graphs)),
                                                             unfamiliar=True, note="test")
    assert wider.header_["interval"] == p.header_["interval"]  # the calibrated one is left as it was
    rec = wider.header_["interval_unfamiliar"]
    assert rec["note"] == "test" and rec["q"] > p.header_["interval"]["q"]
    known, mixed, unseen = predict_graphs(wider, "tiny", converted)
    assert (known.low, known.high, known.unfamiliar) == (before[0].low, before[0].high, False)
    assert mixed.unfamiliar and unseen.low is None and not unseen.unfamiliar
    assert mixed.low == pytest.approx(mixed.ms * np.exp(-rec["q"])) and mixed.high == pytest.approx(
        mixed.ms * np.exp(rec["q"]))
    assert mixed.to_dict()["interval"] == "unfamiliar" and known.to_dict()["interval"] == "calibrated"
    assert unseen.to_dict()["interval"] is None and unseen.to_dict()["low"] is None
    lines = format_results(["known", "mixed", "unseen"], [known, mixed, unseen])
    assert "widened: the model is unlike those this predictor trained on" in lines[2]
    assert "(no interval" in lines[4] and "widened" not in lines[0]
    again = Predictor.load(wider.save(tmp_path / "c"))  # kept by save / load
    assert again.header_["interval_unfamiliar"] == rec
