"""What `nnformer train` trains on, as Python users call it (nnformer.training_sets)."""

import json
from pathlib import Path

import numpy as np
import pytest

from nnformer.errors import NNFormerError
from nnformer.training_sets import latency_training_set, nb201_training_set

REPO_DATASET = Path(__file__).resolve().parents[1] / "datasets" / "latency-cpu-b1"


def test_nb201_tnasp_split_and_its_metrics(data_dir):
    ts = nb201_training_set(100, 200, data_dir=data_dir)
    assert list(ts.split.train) == list(range(100)) and list(ts.split.val) == list(range(100, 300))
    assert len(ts.graphs) == len(ts.y) == 15_625 and ts.record["train_label"] == "val"
    m = ts.evaluate(ts.plot["true"])  # the test label predicts itself perfectly
    assert m["tau_test"] == pytest.approx(1.0) and 0 < m["tau_val"] < 1
    assert ts.summary(m).startswith("Kendall tau over all 15,625 cells: 1.0000")
    with pytest.raises(NNFormerError, match="--n-val can be at most"):
        nb201_training_set(15_000, 1024, data_dir=data_dir)


def test_help_latency_set_calibrates_apart_from_the_test(data_dir):
    ts = latency_training_set("help-nb201:fpga", n_train=100, seed=3, data_dir=data_dir)
    parts = [ts.split.train, ts.split.cal, ts.split.test]
    assert [len(p) for p in parts] == [100, 20, 15_505] and len(np.unique(np.concatenate(parts))) == 15_625
    m = ts.evaluate(ts.y * 1.1, (ts.y * 0.9, ts.y * 1.2, 0.9))
    assert m["mape"] == pytest.approx(10.0) and m["n_test"] == 15_505 and m["interval"]["coverage"] == 100.0
    assert ts.record == {"space": "help-nb201-fpga", "split": "random", "n_train": 100, "n_val": 0,
                         "n_calibration": 20}
    with pytest.raises(NNFormerError, match="--n-train must be at least 2"):
        latency_training_set("help-nb201:fpga", n_train=1, data_dir=data_dir)


@pytest.mark.slow
def test_a_dataset_directory_splits_per_family_and_scores_each():
    ts = latency_training_set(str(REPO_DATASET))
    assert ts.record["split"] == "family-80/10/10" and len(ts.record["families"]) == 10
    assert (len(ts.split.train), len(ts.split.cal), len(ts.split.test)) == (800, 100, 100)
    m = ts.evaluate(ts.y)
    assert m["mape"] == 0 and m["unit"] == "models" and set(m["per_family_mape"]) == set(ts.record["families"])


def test_train_run_writes_the_results_and_a_rerun_keeps_them(data_dir, tmp_path):
    """`nnformer train` as a library call: progress lines go to ``log``, a rerun finds the finished run."""
    from nnformer.training_sets import train_run

    lines = []
    kw = dict(settings={"epochs": "1", "n_layers": "1", "dim": "16"}, n_train=60, n_val=40, data_dir=data_dir,
              progress=False, log=lines.append)
    run = train_run(tmp_path / "run", **kw)
    assert not run.finished and (tmp_path / "run" / "metrics.json").is_file() and run.result["n_train"] == 60
    assert lines[0].startswith("nnformer train: NB201, 60 train / 40 val cells (tnasp), recipe scaled: 1 blocks")
    report = run.report()
    assert report[0] == run.job.summary(run.result) and report[1].startswith("time: ") and len(report) == 2
    again = train_run(tmp_path / "run", **kw)
    assert again.finished and again.result == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert again.report() == report[:1] and "holds this run, finished" in lines[-1]
    with pytest.raises(NNFormerError, match="--data names latency data"):
        train_run(tmp_path / "x", data="help-nb201:fpga", **kw)
