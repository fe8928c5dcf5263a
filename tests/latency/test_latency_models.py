"""Latency of whole networks: ONNX import (weight-stripped, unknown operators, large graphs), node and graph
features in the networks, the dataset-directory road through `nnformer train / evaluate / predict`, fine-tuning."""

import io
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")

from nnformer import Predictor  # noqa: E402
from nnformer.baselines import GCNConfig, GCNRegressor  # noqa: E402
from nnformer.batching import EncodedGraphs  # noqa: E402
from nnformer.cli import main  # noqa: E402
from nnformer.errors import DataError, OnnxError, UnknownOpError  # noqa: E402
from nnformer.graph import ArchGraph, is_acyclic, reachability  # noqa: E402
from nnformer.latency.onnx_graph import FEATURE_NAMES, onnx_to_graph, with_static  # noqa: E402
from nnformer.model import number_encoding  # noqa: E402
from nnformer.protocols import family_split, leave_family_out  # noqa: E402
from nnformer.spaces.nb201 import all_arch_strs, arch_to_graph  # noqa: E402
from nnformer.vocab import NB201, ONNX, ONNX_OTHER, OpVocab, vocab_for  # noqa: E402

REPO_DATASET = __import__("pathlib").Path(__file__).resolve().parents[2] / "datasets" / "latency-cpu-b1"
pytestmark = pytest.mark.usefixtures("one_thread")


def export(model, shape, opset=17) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(shape),), f, dynamo=False, opset_version=opset)
    return f.getvalue()


def strip(blob: bytes) -> bytes:
    """The weight-stripped form of a model: every initializer keeps its dims and type, loses its values."""
    m = onnx.load_from_string(blob)
    for t in m.graph.initializer:
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
            t.ClearField(field)
    return m.SerializeToString()


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


CNN = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(16, 8, 2, 2),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.mark.parametrize("opset", [13, 17])
def test_weight_stripped_models_import_like_the_full_ones(opset):
    full = export(CNN, (1, 3, 32, 32), opset)
    with pytest.raises(Exception, match="one and only one value field"):  # what the checker says of them
        onnx.checker.check_model(onnx.load_from_string(strip(full)))
    g_full, s_full = onnx_to_graph(full)
    g, s = onnx_to_graph(strip(full))
    assert g == g_full and np.array_equal(g.features, g_full.features) and s == s_full
    assert s["params"] == sum(p.numel() for p in CNN.parameters()) and s["input_numel"] == 3 * 32 * 32


def test_unknown_operators_are_other_and_counted():
    g, s = onnx_to_graph(strip(export(LSTMNet(), (1, 10, 16))))
    assert "onnx:LSTM" in g.ops
    lstm = g.ops.index("onnx:LSTM")
    # 2 x seq x (W + R elements): 2 * 10 * (4*32*16 + 4*32*32)
    assert np.expm1(g.features[lstm, FEATURE_NAMES.index("log_flops")]) == pytest.approx(2 * 10 * (2048 + 4096),
                                                                                          rel=1e-3)
    ids = ONNX.encode(g.ops)
    assert ids[lstm] == ONNX.ids[ONNX_OTHER] and "onnx:LSTM" in ONNX.unseen(g.ops)
    assert "onnx:Conv" not in ONNX.unseen(["onnx:Conv"])


def test_the_other_class_stays_within_its_family():
    assert ONNX.covers("onnx:Whatever") and not ONNX.covers("nor_conv_3x3")
    with pytest.raises(UnknownOpError, match="nor_conv_3x3"):
        ONNX.encode(["input", "nor_conv_3x3"])
    assert vocab_for([["input", "onnx:LSTM", "output"]]) is ONNX
    with pytest.raises(UnknownOpError):
        vocab_for([["input", "mystery", "output"]])  # not silently the ONNX vocabulary's "other"
    assert OpVocab.from_dict(ONNX.to_dict()) == ONNX and OpVocab.from_dict(NB201.to_dict()).other is None
    with pytest.raises(ValueError, match="must be one of its ops"):
        OpVocab("x", {"a": 0}, other="x:b")


def test_broken_and_odd_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OnnxError, match="cannot read"):
        onnx_to_graph(bad)
    with pytest.raises(OnnxError, match="is a directory"):
        onnx_to_graph(tmp_path)
    with pytest.raises(OnnxError, match="no ONNX file"):
        onnx_to_graph(tmp_path / "missing.onnx")


def test_a_thousand_node_graph_imports_and_predicts():
    net = nn.Sequential(*[m for _ in range(500) for m in (nn.Conv2d(4, 4, 1), nn.ReLU())])
    g, s = onnx_to_graph(export(net, (1, 4, 8, 8)))
    assert g.num_nodes == 1002 and s["num_ops"] == 1000 and g.depth_value == 1002
    p = Predictor("networks", task="latency", settings={"n_layers": 1, "dim": 16, "epochs": 1}, progress=False)
    gs = [with_static(g, s), with_static(*onnx_to_graph(export(net[:20], (1, 4, 8, 8))))]
    pred = p.fit(gs, [5.0, 0.5]).predict(gs)
    assert pred.shape == (2,) and np.isfinite(pred).all()


def test_cycle_check_agrees_with_reachability():
    rng = np.random.default_rng(0)
    for n in (2, 4, 9):
        for _ in range(200):
            a = (rng.random((n, n)) < 0.25).astype(np.uint8)
            np.fill_diagonal(a, 0)
            assert is_acyclic(a) == (not reachability(a).diagonal().any())


def test_number_encoding_and_feature_widths():
    x = torch.tensor([[0.0, 3.0], [1e9, 64.0]])
    enc = number_encoding(x, 4)
    assert enc.shape == (2, 2 * 9) and torch.allclose(enc[:, :2], torch.log1p(x))
    assert torch.equal(number_encoding(x, 0), torch.log1p(x))


def _nb201_with_features(k: int, width: int = 3):
    rng = np.random.default_rng(0)
    out = []
    for s in list(all_arch_strs())[:k]:
        g = arch_to_graph(s)
        out.append(ArchGraph(g.ops, g.adj, rng.random((g.num_nodes, 2)).astype(np.float32) * 10, g.depth,
                             rng.standard_normal(width)))
    return out


def test_networks_read_node_and_graph_features_whose_widths_come_from_the_graphs():
    gs = _nb201_with_features(8)
    for model in (None, GCNConfig(n_layers=1, dim=16)):
        p = Predictor(network=model, settings={"epochs": 1, **({} if model else {"n_layers": 1, "dim": 16})},
                      progress=False).fit(gs, np.linspace(80, 90, 8))
        assert (p.model_config_.n_features, p.model_config_.n_graph_features) == (2, 3)
        # graph features are standardised with the training graphs' statistics, saved with the predictor
        assert len(p.header_["graph_features_norm"]["mean"]) == 3
    # without features a GCN is the network it was: same parameters, drawn in the same order
    torch.manual_seed(0)
    plain = GCNRegressor(GCNConfig())
    assert plain.graph_proj is None and plain.feat_proj is None


def test_finetune_moves_a_copy_towards_new_labels_and_keeps_the_original():
    gs = [arch_to_graph(s) for s in list(all_arch_strs())[::400]][:30]
    y = np.linspace(1.0, 4.0, len(gs))
    p = Predictor(task="latency", settings={"n_layers": 1, "dim": 16, "steps": 60}, progress=False).fit(gs, y)
    before = p.predict(gs)
    new_y = 3.0 * y  # the same ranking on a slower device
    q = p.finetune(gs[:10], new_y[:10], steps=300, lr=5e-3)  # the EMA (decay 0.99) follows within ~300 steps
    assert np.array_equal(p.predict(gs), before)  # the original predictor is untouched
    err = lambda pred: np.mean(np.abs(pred - new_y) / new_y)  # noqa: E731
    assert err(q.predict(gs)) < err(before)
    tuned = np.abs(q.predict(gs[:10]) - new_y[:10]) / new_y[:10]
    assert tuned.mean() < 0.5 * (np.abs(before[:10] - new_y[:10]) / new_y[:10]).mean()
    assert q.header_["finetuned"]["n"] == 10 and q.target_ == p.target_
    with pytest.raises(DataError, match="steps must be at least 1"):
        p.finetune(gs[:3], y[:3], steps=0)


def test_size_sorted_batches_cover_every_graph_once_with_neighbouring_sizes():
    sizes = [2, 9, 3, 9, 5, 2, 7, 3, 8, 4]
    gs = [ArchGraph(["input"] + ["nor_conv_3x3"] * (k - 2) + ["output"], np.eye(k, k=1)) for k in sizes]
    data = EncodedGraphs(gs, NB201)
    bs = data.batches(3, bucket=False, generator=torch.Generator().manual_seed(0), size_sorted=True)
    assert sorted(np.concatenate(bs).tolist()) == list(range(10)) and [len(b) for b in bs].count(3) == 3
    spans = sorted((min(sizes[i] for i in b), max(sizes[i] for i in b)) for b in bs)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))  # batches do not interleave sizes


def test_a_cell_budget_splits_batches_of_large_graphs():
    """With ``max_cells``, no batch holds more than ``max_cells`` attention cells unless it is a single graph, small
    graphs still fill whole batches, and every graph comes exactly once."""
    sizes = [3, 4, 4, 5, 5, 6, 20, 22, 30, 40, 41, 60]
    gs = [ArchGraph(["input"] + ["nor_conv_3x3"] * (k - 2) + ["output"], np.eye(k, k=1)) for k in sizes]
    data = EncodedGraphs(gs, NB201)
    bs = data.batches(4, bucket=False, generator=torch.Generator().manual_seed(0), size_sorted=True,
                      max_cells=4 * 10 * 10)
    assert sorted(np.concatenate(bs).tolist()) == list(range(len(sizes)))
    for b in bs:
        big = max(sizes[i] for i in b)
        assert len(b) <= 4 and (len(b) == 1 or len(b) * big * big <= 400), [sizes[i] for i in b]
    assert any(len(b) == 4 for b in bs)  # the small graphs still make full batches
    assert len(data.batches(4, bucket=False, size_sorted=True)) < len(bs)  # the budget made more batches


def test_family_splits():
    fam = ["a"] * 10 + ["b"] * 20
    idx = list(range(10)) + list(range(20))[::-1]
    s = family_split(fam, idx)
    assert len(s.train) == 27 and len(s.test) == 3 and 9 in s.test and 10 in s.test and 11 in s.test
    o = leave_family_out(fam, "a")
    assert o.test.tolist() == list(range(10)) and len(o.train) == 20
    with pytest.raises(ValueError, match="no model of family 'c'"):
        leave_family_out(fam, "c")


def test_train_evaluate_and_predict_on_a_dataset_directory(small_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "latency", "--data", str(small_dataset), "--out", str(out), "--quiet",
                 "--set", "n_layers=1", "--set", "dim=16", "--set", "steps=4"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "family-80/10/10" and m["n_train"] == 8 and m["n_calibration"] == 2 and m["n_test"] == 2
    assert m["interval"]["level"] == 0.9 and 0 <= m["interval"]["coverage"] <= 100
    assert m["recipe"]["name"] == "networks" and set(m["per_family_mape"]) == {"resnet", "mobilenetv3"}
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "predictor.pt"), "--data", str(small_dataset),
                 "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["n_test"] == 12 and ev["mape"] > 0
    model = tmp_path / "lstm.onnx"
    model.write_bytes(strip(export(LSTMNet(), (1, 10, 16))))
    assert main(["predict", str(model), "--checkpoint", str(out / "predictor.pt")]) == 0
    cap = capsys.readouterr()
    ms = float(cap.out.split(" ms")[0])
    assert ms > 0 and str(model) in cap.out and "LSTM" in cap.out and "% of the FLOPs" in cap.out
    # errors: an accuracy checkpoint for an ONNX file, a mix of inputs, evaluate without --data, a broken file
    assert main(["evaluate", "--checkpoint", str(out / "predictor.pt")]) == 2
    assert main(["predict", str(model), "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
                 "--checkpoint", str(out / "predictor.pt")]) == 2
    (tmp_path / "broken.onnx").write_bytes(b"\x00\x01garbage")
    assert main(["predict", str(tmp_path / "broken.onnx"), "--checkpoint", str(out / "predictor.pt")]) == 2
    err = capsys.readouterr().err
    assert "is a latency predictor" in err and "not both" in err and "cannot read" in err
    assert all(len(line) < 400 for line in err.splitlines())


def test_bad_dataset_directories_are_one_line_errors(small_dataset, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--task", "latency", "--data", str(empty), "--out", str(tmp_path / "o1"), "--quiet"]) == 2
    assert "latency.jsonl missing: no labels" in capsys.readouterr().err
    bad = tmp_path / "bad"
    shutil.copytree(small_dataset, bad)
    rows = [json.loads(ln) for ln in (bad / "latency.jsonl").read_text().splitlines()]
    rows[3]["latency_ms"] = -1.0
    (bad / "latency.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["train", "--task", "latency", "--data", str(bad), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "latency.jsonl: line 4" in err and "field 'latency_ms' is -1.0" in err and err.count("\n") == 1
    assert not (tmp_path / "o2" / "predictor.pt").exists()


def test_profile_times_a_weight_stripped_model(tmp_path):
    pytest.importorskip("onnxruntime")
    from nnformer.latency.profiler import profile_onnx

    path = tmp_path / "cnn.onnx"
    path.write_bytes(strip(export(CNN, (1, 3, 32, 32))))
    r = profile_onnx(path, warmup=1, runs=2, rounds=1)
    assert r["latency_ms"] > 0 and r["num_nodes"] == onnx_to_graph(path)[0].num_nodes


def test_a_pytorch_module_imports_through_the_exporter():
    from nnformer.latency.onnx_graph import torch_to_graph

    g, s = torch_to_graph(CNN, torch.zeros(1, 3, 32, 32))
    assert g == onnx_to_graph(export(CNN, (1, 3, 32, 32)))[0] and s["input_numel"] == 3072
    with pytest.raises(OnnxError, match="expected a torch.nn.Module"):
        torch_to_graph("not a module", (1, 3))


def test_relative_error_loss_is_for_latency_and_uses_the_log_scale():
    gs = [arch_to_graph(s) for s in list(all_arch_strs())[::500]][:20]
    y = np.linspace(1.0, 9.0, 20)
    p = Predictor(task="latency", settings={"n_layers": 1, "dim": 16, "epochs": 2, "loss": "relative"},
                  progress=False).fit(gs, y)
    assert p.train_config_.loss == "relative" and p.train_config_.relative_scale == pytest.approx(np.log(y).std())
    from nnformer.recipes import RecipeError

    with pytest.raises(RecipeError, match="loss=relative is for latency"):
        Predictor(settings={"epochs": 1, "loss": "relative"}, progress=False).fit(gs, y * 10)
    from nnformer.train import nnformer_loss

    pred, t = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    loss, _ = nnformer_loss(pred, t, 0.0, 0.0, relative=0.5)
    assert float(loss) == pytest.approx(((np.exp(0.5) - 1) ** 2) / 2)
