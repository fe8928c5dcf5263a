"""The latency task: positive labels learnt as standardised logs, HELP's device data, the latency sweep."""

import numpy as np
import pytest

from nnformer import Predictor
from nnformer.errors import DataError
from nnformer.spaces.nb201 import all_arch_strs, arch_to_graph
from nnformer.targets import Target

GRAPHS = [arch_to_graph(s) for s in list(all_arch_strs())[::61]][:200]
# a latency-like label: a cost per convolution, spanning a decade
LAT = np.array([0.5 + 2.0 * sum(op == "nor_conv_3x3" for op in g.ops) + 0.7 * sum(op == "nor_conv_1x1" for op in g.ops)
                for g in GRAPHS])


def test_log_target_round_trips_and_refuses_non_positive_labels():
    t = Target.for_labels("latency", LAT)
    assert t.kind == "log" and abs(t.forward(LAT).mean()) < 1e-9 and abs(t.forward(LAT).std() - 1) < 1e-9
    assert np.allclose(t.inverse(t.forward(LAT)), LAT)
    with pytest.raises(DataError, match="latency label 2 is 0.0: latencies must be positive"):
        Target.for_labels("latency", np.array([1.0, 2.0, 0.0]))
    assert Target.for_labels("accuracy", np.array([50.0, 90.0])).factor == 0.01


@pytest.mark.slow
def test_a_latency_predictor_learns_and_answers_in_milliseconds(tmp_path):
    p = Predictor(task="latency", settings={"n_layers": 1, "dim": 32, "steps": 1000, "lr": 3e-3}, progress=False)
    p.fit(GRAPHS[:150], LAT[:150])
    pred = p.predict(GRAPHS[150:])
    err = np.abs(pred - LAT[150:]) / LAT[150:]
    assert np.median(err) < 0.10 and (pred > 0).all()  # milliseconds, not logs (the mean alone: 0.60)
    q = Predictor.load(p.save(tmp_path / "lat.pt"))
    assert q.task == "latency" and np.array_equal(q.predict(GRAPHS[150:]), pred)
    with pytest.raises(DataError, match="latencies must be positive"):
        Predictor(task="latency", progress=False).fit(GRAPHS[:3], [1.0, -2.0, 3.0])


def test_unknown_task_is_refused():
    from nnformer.recipes import RecipeError

    with pytest.raises(RecipeError, match="unknown task 'speed'"):
        Predictor(task="speed")


def test_help_latency_is_aligned_with_the_nb201_index(data_dir):
    import torch

    from nnformer.data.help import help_devices, load_help_latency
    from nnformer.data.nb201 import load_nb201

    assert len(help_devices("nb201")) == 23 and "fpga" in help_devices("nb201")
    ms = load_help_latency("nb201", "fpga", data_dir)
    assert ms.shape == (15625,) and ms.min() > 0
    index = torch.load(data_dir / "latency/help/nasbench201/str_arch2idx.pt", weights_only=True)
    strs = load_nb201(data_dir).arch_strs
    assert all(strs[i] == s for s, i in index.items())  # position in a device file = row of the NB201 table
    with pytest.raises(DataError, match="unknown HELP device 'tpu'"):
        load_help_latency("nb201", "tpu", data_dir)


@pytest.mark.slow
def test_latency_sweep_stores_runs_and_writes_its_table(data_dir, tmp_path):
    from nnformer.cli import main
    from nnformer.harness import sweep

    args = ["reproduce", "latency", "--devices", "fpga", "--ns", "60", "--seeds", "2", "--methods",
            "flops-linear,gcn", "--set", "steps=20", "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet",
            "--threads", "1"]
    assert main(args) == 0
    runs = sweep.stored_runs(tmp_path / "help-nb201-fpga" / "scaled-steps20")
    assert sorted(runs) == [(m, 60, s) for m in ("flops-linear", "gcn") for s in (0, 1)]
    r = runs["flops-linear", 60, 0]
    assert r["n_test"] == 15625 - 60 and 0 < r["mape"] < 100 and 0 <= r["acc10"] <= 100 and r["spearman_test"] > 0.8
    assert runs["flops-linear", 60, 0]["mape"] != runs["flops-linear", 60, 1]["mape"]  # seeds draw other cells
    md = (tmp_path / "help-nb201" / "scaled-steps20" / "table.md").read_text()
    assert "| fpga | linear regression on log FLOPs + log params (`flops-linear`) | 60 |" in md
    assert (tmp_path / "help-nb201" / "scaled-steps20" / "table_mape.png").stat().st_size > 5000


@pytest.mark.slow
def test_static_ablations_switch_only_masks_and_ffn_and_run_in_a_sweep(data_dir, tmp_path):
    from nnformer.cli import main
    from nnformer.harness import methods as hm
    from nnformer.harness import sweep

    base = hm.LATENCY_METHODS["nnformer-static"][1]
    for method, switches in {"transformer-static": ("global", "ffn"), "global-bgiffn-static": ("global", "bgiffn"),
                             "asma-ffn-static": ("paper", "ffn")}.items():
        over = hm.LATENCY_METHODS[method][1]
        assert (over["mask_mode"], over["ffn_mode"]) == switches
        assert {k: v for k, v in over.items() if k not in ("mask_mode", "ffn_mode")} == \
            {k: v for k, v in base.items() if k not in ("mask_mode", "ffn_mode")}
        p = hm.predictor_for(method, "scaled", {}, 0, 10, task="latency")
        assert (p.settings["mask_mode"], p.settings["ffn_mode"]) == switches
    assert main(["reproduce", "latency", "--devices", "fpga", "--ns", "60", "--seeds", "1", "--methods",
                 "transformer-static", "--set", "steps=3", "--out", str(tmp_path), "--data-dir", str(data_dir),
                 "--quiet", "--threads", "1"]) == 0
    runs = sweep.stored_runs(tmp_path / "help-nb201-fpga" / "scaled-steps3")
    assert sorted(runs) == [("transformer-static", 60, 0)] and runs["transformer-static", 60, 0]["n_test"] == 15565
    md = (tmp_path / "help-nb201" / "scaled-steps3" / "table.md").read_text()
    assert "plain transformer + log FLOPs and params into [CLS] (`transformer-static`) | 60 |" in md


@pytest.mark.parametrize("args, needle", [
    (["--devices", "tpu"], "unknown HELP device 'tpu'"),
    (["--methods", "mlp"], "unknown method 'mlp'"),
    (["--ns", "0"], "every N must be at least 1 and below 15625"),
])
def test_latency_sweep_refuses_bad_arguments(args, needle, tmp_path, capsys):
    from nnformer.cli import main

    assert main(["reproduce", "latency", "--out", str(tmp_path), *args]) == 2
    assert needle in capsys.readouterr().err


def test_train_latency_end_to_end(data_dir, tmp_path, capsys):
    import json

    from nnformer.cli import main

    out = tmp_path / "run"
    assert main(["train", "--task", "latency", "--data", "help-nb201:pixel2", "--n-train", "50", "--set", "steps=20",
                 "--set", "n_layers=1", "--set", "dim=16", "--out", str(out), "--data-dir", str(data_dir),
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "latency" and m["space"] == "help-nb201-pixel2" and m["n_test"] == 15625 - 50 - 20
    assert 0 < m["mape"] and 0 <= m["acc10"] <= 100 and "on the 15,555 cells not trained on: MAPE" in \
        capsys.readouterr().out
    pred = np.load(out / "predictions.npy")
    assert pred.min() > 0  # milliseconds


@pytest.mark.parametrize("args, needle", [
    (["--task", "latency", "--data", "help-nb201:tpu"], "unknown HELP device 'tpu'"),
    (["--task", "latency"], "--data must be help-nb201:DEVICE or help-fbnet:DEVICE"),
    (["--task", "latency", "--data", "help-fbnet:tpu"], "unknown HELP device 'tpu' for fbnet"),
    (["--task", "latency", "--data", "somewhere:fpga"], "or a latency dataset directory"),
    (["--data", "help-nb201:fpga"], "--data names latency data"),
])
def test_train_latency_refuses_bad_data(args, needle, data_dir, tmp_path, capsys):
    from nnformer.cli import main

    assert main(["train", "--n-train", "50", "--out", str(tmp_path / "o"), "--data-dir", str(data_dir), *args]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_graph_features_reach_the_cls_token_and_are_checked(tmp_path):
    from nnformer import ArchGraph
    from nnformer.batching import EncodedGraphs

    feats = np.column_stack([np.log(LAT), np.ones(len(LAT))])  # a feature that carries the label
    gs = [ArchGraph(g.ops, g.adj, graph_features=f) for g, f in zip(GRAPHS, feats)]
    assert ArchGraph.from_dict(gs[0].to_dict()) == gs[0] and gs[0] != GRAPHS[0]
    assert EncodedGraphs(gs[:4]).batch([0, 2]).graph_features.shape == (2, 2)
    p = Predictor(task="latency", settings={"n_layers": 1, "dim": 32, "steps": 300, "lr": 3e-3}, progress=False)
    p.fit(gs[:150], LAT[:150])
    assert p.model_config_.n_graph_features == 2  # the width follows the graphs
    err = np.abs(p.predict(gs[150:]) - LAT[150:]) / LAT[150:]
    assert np.median(err) < 0.10  # 300 steps without the features: 0.16
    with pytest.raises(DataError, match="reads 2 graph features per graph, the graphs carry 0"):
        p.predict(GRAPHS[:3])
    q = Predictor.load(p.save(tmp_path / "g.pt"))
    assert np.array_equal(q.predict(gs[150:]), p.predict(gs[150:]))
    with pytest.raises(ValueError, match="graph features of one width"):
        EncodedGraphs([gs[0], GRAPHS[1]])


def test_layer_lut_is_exact_on_an_additive_latency():
    from nnformer.harness.benchmark_data import BenchmarkData, _one_hot
    from nnformer.harness.sweep import run_one

    rng = np.random.default_rng(0)
    choices = rng.integers(0, 5, size=(400, 6))
    cost = rng.uniform(0.1, 2.0, size=(6, 5))
    ms = 0.3 + cost[np.arange(6), choices].sum(1)  # a sum of one cost per (position, op)
    graphs = [arch_to_graph(s) for s in list(all_arch_strs())[:400]]
    space = BenchmarkData("additive", graphs, ms, {"test": ms}, (50,), 0, lut=_one_hot(choices, 5), task="latency")
    r = run_one(space, "layer-lut", 50, 0, "scaled")
    assert r["mape"] < 1e-6 and r["spearman_test"] > 0.9999 and r["n_test"] == 350
    space.lut = None
    with pytest.raises(Exception, match="no per-layer encoding"):
        run_one(space, "layer-lut", 50, 0, "scaled")
