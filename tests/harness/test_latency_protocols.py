"""HELP's few-shot protocol, the FBNet space and NNLQ's multi-family protocols, on tiny budgets."""

import json
import shutil

import numpy as np
import pytest

from nnformer.cli import main
from nnformer.errors import ArchStringError
from nnformer.harness import fewshot, networks
from nnformer.spaces.fbnet import BLOCKS, LAYERS, N_LAYERS, arch_to_graph, check_arch, fbnet_cost
from nnformer.vocab import FBNET, vocab_for

REPO_DATASET = __import__("pathlib").Path(__file__).resolve().parents[2] / "datasets" / "latency-cpu-b1"
pytestmark = pytest.mark.usefixtures("one_thread")


def test_fbnet_graphs_costs_and_errors():
    arch = [BLOCKS.index("k3_e6")] * N_LAYERS
    g = arch_to_graph(arch)
    assert g.num_nodes == 24 and g.num_edges == 23 and vocab_for([g.ops]) is FBNET
    assert g.ops[1] == "fbnet:k3_e6" and g.features[1].tolist()[:6] == [3, 6, 1, 16, 16, 1]
    assert [c for _, c, _, _ in LAYERS][-1] == 352 and sum(s == 2 for _, _, s, _ in LAYERS) == 4
    skip = [BLOCKS.index("skip")] * N_LAYERS
    big = [BLOCKS.index("k5_e6")] * N_LAYERS
    f_skip, p_skip = fbnet_cost(skip)
    f_big, p_big = fbnet_cost(big)
    f_mid, _ = fbnet_cost(arch)
    assert f_skip < f_mid < f_big and p_skip < p_big
    for bad in ([0] * 21, [9] + [0] * 21, "k3_e6"):
        with pytest.raises(ArchStringError):
            check_arch(bad)


def test_device_view_is_scale_free():
    ms = np.exp(np.random.default_rng(0).normal(size=50))
    refs = np.arange(10)
    hw, mean, std = fewshot.device_view(ms, refs)
    hw2, mean2, std2 = fewshot.device_view(7.0 * ms, refs)  # a device 7x slower, same ranking
    assert np.allclose(hw, hw2, atol=1e-6) and np.isclose(mean2 - mean, np.log(7.0)) and np.isclose(std, std2)
    assert abs(hw.mean()) < 1e-6 and abs(hw.std() - 1) < 1e-5


def test_jobs_and_targets():
    assert fewshot.jobs_for(["nnformer-hw", "nnformer-hw-ft", "flops"]) == ["nnformer", "flops"]
    with pytest.raises(Exception, match="unknown few-shot method"):
        fewshot.jobs_for(["nope"])
    recs = [{"method": "nnformer-hw", "n_train": 10, "space": f"help-nb201-{d}", "spearman_test": v}
            for d, v in (("titan_rtx_256", 0.99), ("gold_6226", 0.95), ("fpga", 0.98), ("pixel2", 0.80))]
    lines = fewshot.targets(recs, "help-nb201", "nnformer-hw")
    assert "0.930 vs HELP's 0.941" in lines[0] and "**missed**" in lines[0]
    assert any("pixel2: 0.800 vs FLOPs 0.865" in ln and "**missed**" in ln for ln in lines)
    assert any("fpga: 0.980 vs FLOPs 0.938" in ln and "**met**" in ln for ln in lines)


@pytest.mark.slow
def test_fewshot_sweep_runs_stores_and_resumes(data_dir, tmp_path, monkeypatch, capsys):
    args = ["reproduce", "fewshot", "--devices", "fpga", "--ns", "10,12", "--seeds", "1", "--methods",
            "nnformer-hw,nnformer-hw-ft,flops-linear,flops", "--set", "steps=3", "--set", "n_layers=1",
            "--set", "dim=16", "--out", str(tmp_path), "--data-dir", str(data_dir), "--quiet"]
    monkeypatch.setattr(fewshot, "META_PER_DEVICE", {"help-nb201": 20, "help-fbnet": 20})
    monkeypatch.setattr(fewshot, "VAL_PER_DEVICE", 5)
    monkeypatch.setattr(fewshot, "FINETUNE_STEPS", 2)
    assert main(args) == 0
    d = tmp_path / "help-nb201-fewshot" / "scaled-dim16-nlayers1-steps3"
    runs = [json.loads(ln) for ln in (d / "runs.jsonl").read_text().splitlines()]
    keys = sorted((r["method"], r["n_train"]) for r in runs)
    assert keys == [("flops", 10), ("flops-linear", 10), ("flops-linear", 12), ("nnformer-hw", 10),
                    ("nnformer-hw", 12), ("nnformer-hw-ft", 10), ("nnformer-hw-ft", 12)]
    assert all(r["n_test"] == 15625 - 12 for r in runs)  # one test set for every N
    hw = {r["n_train"]: r for r in runs if r["method"] == "nnformer-hw"}
    assert hw[10]["spearman_test"] == hw[12]["spearman_test"]  # no fine-tuning: N beyond the references is unused
    md = (d / "table.md").read_text()
    assert "Few-shot latency on a new device" in md and "| fpga |" in md and (d / "table_spearman.png").is_file()
    monkeypatch.setattr(fewshot, "run_job", lambda *a, **k: pytest.fail("a stored job ran again"))
    assert main(args) == 0
    capsys.readouterr()
    for bad, msg in ((["--devices", "1080ti_1"], "meta-training or meta-validation device"),
                     (["--ns", "5"], "at least 10"), (["--devices", "nope"], "unknown HELP device")):
        assert main(["reproduce", "fewshot", *bad, "--out", str(tmp_path), "--data-dir", str(data_dir)]) == 2
        assert msg in capsys.readouterr().err


def test_fbnet_latency_train_on_help(data_dir, tmp_path):
    out = tmp_path / "fb"
    assert main(["train", "--task", "latency", "--data", "help-fbnet:fpga", "--n-train", "50", "--set", "steps=3",
                 "--set", "n_layers=1", "--set", "dim=16", "--out", str(out), "--data-dir", str(data_dir),
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["space"] == "help-fbnet-fpga" and m["n_test"] == 5000 - 50 - 20 and m["n_calibration"] == 20
    assert m["model_config"]["n_features"] == 7


@pytest.fixture(scope="module")
def two_families(tmp_path_factory):
    from tests.test_small_data import subset

    return subset(tmp_path_factory.mktemp("nets") / "three-families", {"vgg": 10, "mnasnet": 10, "nb201": 10})


def test_networks_protocols_table(two_families, tmp_path, capsys):
    args = ["reproduce", "networks", "--data", str(two_families), "--methods", "flops-linear,nnformer", "--seeds",
            "1", "--families", "vgg", "--set", "steps=2", "--set", "n_layers=1", "--set", "dim=16",
            "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    d = next((tmp_path / f"networks-{two_families.name}").iterdir())
    runs = [json.loads(ln) for ln in (d / "runs.jsonl").read_text().splitlines()]
    by = {(r["method"], r["protocol"], r["held"]): r for r in runs}
    assert set(by) == {(m, p, h) for m in ("flops-linear", "nnformer") for p, h in (("in-domain", "all"),
                                                                                    ("ood", "vgg"))}
    assert by["nnformer", "in-domain", "all"]["n_test"] == 3 and by["nnformer", "ood", "vgg"]["n_test"] == 10
    assert set(by["flops-linear", "in-domain", "all"]["per_family_mape"]) == {"vgg", "mnasnet", "nb201"}
    md = (d / "table.md").read_text()
    assert "Out of domain" in md and "(incomplete)" in md  # ood ran one of three families
    assert main([*args, "--families", "nope"]) == 2
    assert "no model of family 'nope'" in capsys.readouterr().err
    assert networks.PAPER == {"in-domain": 1.11, "ood": 8.39}


def test_networks_protocols_on_drift_corrected_labels(two_families, tmp_path, capsys):
    import datetime

    from nnformer.latency.dataset import load_training_set

    data = tmp_path / "ds"
    shutil.copytree(two_families, data)
    args = ["reproduce", "networks", "--data", str(data), "--methods", "flops-linear", "--protocols", "in-domain",
            "--correct-drift", "--out", str(tmp_path / "res"), "--quiet"]
    assert main(args) == 2  # no reference timings: refused, one line
    assert "no reference timings" in capsys.readouterr().err
    for other in (["reproduce", "latency", "--correct-drift"], ["train", "--task", "latency", "--data",
                                                                 "help-nb201:fpga", "--out", str(tmp_path / "t"),
                                                                 "--correct-drift"]):
        assert main(other) == 2  # HELP's labels have no reference timings: refused before any work
        assert "--correct-drift needs a latency dataset directory" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    # the models measured ten minutes apart, the host twice as slow at the end of the run as at its start
    rows = [json.loads(ln) for ln in (data / "latency.jsonl").read_text().splitlines()]
    t0 = datetime.datetime(2026, 1, 1)
    (data / "latency.jsonl").write_text("".join(json.dumps({**r, "measured_at": (t0 + datetime.timedelta(
        minutes=10 * i)).isoformat()}) + "\n" for i, r in enumerate(rows)))
    t1 = t0 + datetime.timedelta(minutes=10 * (len(rows) - 1))
    (data / "reference.jsonl").write_text("".join(json.dumps({"latency_ms": v, "measured_at": t.isoformat()}) + "\n"
                                                  for t, v in ((t0, 1.0), (t0 + (t1 - t0) / 2, 1.5), (t1, 2.0))))
    assert main(args) == 0
    d = next((tmp_path / "res" / f"networks-{data.name}-drift-corrected").iterdir())
    run = json.loads((d / "runs.jsonl").read_text())
    fixed = load_training_set(data, correct_drift=True)
    assert run["correct_drift"] is True and not np.allclose(fixed[2], load_training_set(data)[2])
    assert run["mape"] == pytest.approx(networks.run_one(fixed, "flops-linear", "in-domain", "all", 0, "networks",
                                                         {})["mape"])
    assert "divided by the host's speed" in (d / "table.md").read_text()
