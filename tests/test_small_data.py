"""Too little data is refused in one line, before any work and before anything is written; the least each split
accepts is stated once (nnformer.protocols) and a dataset at that least trains."""

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnformer import Predictor
from nnformer.cli import main
from nnformer.errors import DataError
from nnformer.protocols import (MIN_CALIBRATION, MIN_TEST, MIN_TRAIN, MIN_VALIDATION, family_minimum, family_split,
                                leave_family_out)
from nnformer.spaces.nb201 import all_arch_strs, arch_to_graph

REPO_DATASET = Path(__file__).resolve().parents[1] / "datasets" / "latency-cpu-b1"
TINY = ["--quiet", "--set", "n_layers=1", "--set", "dim=16", "--set", "steps=2"]
pytestmark = pytest.mark.usefixtures("one_thread")


def subset(out: Path, per_family: dict[str, int]) -> Path:
    """A dataset directory holding the first models of the committed dataset's families."""
    keep = {f"{f}-{i:05d}" for f, n in per_family.items() for i in range(n)}
    out.mkdir(parents=True)
    with gzip.open(REPO_DATASET / "graphs.jsonl.gz", "rt") as f:
        (out / "graphs.jsonl").write_text("".join(ln for ln in f if json.loads(ln)["id"] in keep))
    lat = [ln for ln in (REPO_DATASET / "latency.jsonl").read_text().splitlines() if json.loads(ln)["id"] in keep]
    (out / "latency.jsonl").write_text("\n".join(lat) + "\n")
    shutil.copy(REPO_DATASET / "meta.json", out / "meta.json")
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nnformer: error: ") and "Traceback" not in err, err
    return err


def test_the_least_per_family_is_what_the_split_gives_and_less_is_refused():
    for k in (1, 2, 3):
        for cal_share in (0.0, 0.1):
            least = sum(family_minimum(k, cal_share))
            for n in range(least, 40):
                fam = [f"f{j}" for j in range(k) for _ in range(n)]
                s = family_split(fam, list(range(len(fam))), cal_share=cal_share)
                assert len(s.train) >= MIN_TRAIN and len(s.test) >= MIN_TEST
                assert len(s.cal) >= (MIN_CALIBRATION if cal_share else 0)
                assert {fam[i] for i in s.test} == set(fam)  # every family is scored
                assert sorted(np.concatenate([s.train, s.cal, s.test]).tolist()) == list(range(len(fam)))
            fam = ["big"] * 50 * (k > 1) + ["small"] * (least - 1)
            with pytest.raises(DataError, match=f"ds has {least - 1} models? of family small: the split needs at "
                                                f"least {sum(family_minimum(len(set(fam)), cal_share))} per family"):
                family_split(fam, list(range(len(fam))), cal_share=cal_share, what="ds")
    # families large enough for their shares split as before: 80 / 10 / 10
    s = family_split(["a"] * 100 + ["b"] * 30, list(range(100)) + list(range(30)), cal_share=0.1)
    assert (len(s.train), len(s.cal), len(s.test)) == (80 + 24, 10 + 3, 10 + 3)
    with pytest.raises(DataError, match="holding a out needs at least 2 of it to test and 2 of the others"):
        leave_family_out(["a", "a", "b"], "a")
    with pytest.raises(DataError, match="1 model of family b"):
        leave_family_out(["a", "a", "b"], "b")


@pytest.mark.parametrize("per_family, least", [({"resnet": 5}, 6), ({"resnet": 3}, 6),
                                               ({"alexnet": 4, "squeezenet": 3}, 4)])
def test_train_refuses_a_dataset_too_small_for_its_split(per_family, least, tmp_path, capsys):
    data = subset(tmp_path / "ds", per_family)
    out = tmp_path / "run"
    assert main(["train", "--task", "latency", "--data", str(data), "--out", str(out), *TINY]) == 2
    err = one_error_line(capsys)
    small = min(per_family, key=per_family.get)
    assert (f"latency dataset {data} has {per_family[small]} models of family {small}: the split needs at least "
            f"{least} per family") in err and "train" in err and "calibrate" in err and "test" in err
    assert not (out / "predictor.pt").exists() and not (out / "checkpoint.pt").exists()
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("per_family", [{"alexnet": sum(family_minimum(1, 0.1))},
                                        {"alexnet": sum(family_minimum(2, 0.1)),
                                         "squeezenet": sum(family_minimum(2, 0.1))}])
def test_a_dataset_at_the_least_trains(per_family, tmp_path):
    data = subset(tmp_path / "ds", per_family)
    out = tmp_path / "run"
    assert main(["train", "--task", "latency", "--data", str(data), "--out", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    k = len(per_family)
    assert m["n_train"] == MIN_TRAIN * k and m["n_calibration"] == k * math.ceil(MIN_CALIBRATION / k)
    assert m["n_test"] == k * math.ceil(MIN_TEST / k) and set(m["per_family_mape"]) == set(per_family)
    assert (out / "predictor.pt").is_file() and "interval" in m


def test_reproduce_networks_refuses_too_small_a_dataset_before_any_run(tmp_path, capsys):
    data = subset(tmp_path / "ds", {"alexnet": 3})
    res = tmp_path / "res"
    args = ["reproduce", "networks", "--data", str(data), "--methods", "flops-linear", "--seeds", "1", "--out",
            str(res), "--quiet"]
    assert main([*args, "--protocols", "in-domain"]) == 2
    assert f"has 3 models of family alexnet: the split needs at least {MIN_TRAIN + MIN_TEST} per family" in \
        one_error_line(capsys)
    assert main([*args, "--protocols", "ood"]) == 2  # one family: nothing left to train on
    assert "holding alexnet out needs at least 2 of it to test and 2 of the others to train" in one_error_line(capsys)
    assert not res.exists()


def test_adapt_refuses_fewer_than_the_least_before_any_work(tmp_path, capsys):
    data = subset(tmp_path / "ds", {"alexnet": 1})
    out = tmp_path / "adapted"
    assert main(["adapt", "--profile", str(data), "--out", str(out)]) == 2
    assert f"adapting needs at least {MIN_TRAIN} measured models, found 1" in one_error_line(capsys)
    assert main(["adapt", "--profile", str(tmp_path / "nothing-read"), "--out", str(out), "--n", "1"]) == 2
    assert f"--n must be at least {MIN_TRAIN}" in one_error_line(capsys)
    assert not out.exists()


def test_evaluate_refuses_a_dataset_too_small_to_score(tmp_path, capsys):
    data = subset(tmp_path / "ds", {"alexnet": 1})
    assert main(["evaluate", "--checkpoint", "cpu-ort-b1", "--data", str(data), "--quiet"]) == 2
    assert f"holds 1 measured model; scoring a predictor ranks at least {MIN_TEST}" in one_error_line(capsys)


@pytest.mark.parametrize("args, needle", [
    (["--n-train", "1"], f"--n-train must be at least {MIN_TRAIN}, got 1"),
    (["--n-train", "10", "--n-val", "1"], f"--n-val must be 0 (no validation) or at least {MIN_VALIDATION}, got 1"),
    (["--task", "latency", "--data", "help-nb201:fpga", "--n-train", "1"], "--n-train must be at least 2"),
])
def test_train_refuses_too_few_cells_before_reading_data(args, needle, tmp_path, capsys, monkeypatch):
    from nnformer.data import benchmarks

    monkeypatch.setattr(benchmarks, "nb201_table",
                        lambda *a: pytest.fail("data read before the arguments were checked"))
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *args, *TINY]) == 2
    assert needle in one_error_line(capsys) and not out.exists()


def test_help_latency_leaves_enough_cells_to_calibrate_and_test(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "latency", "--data", "help-nb201:fpga", "--n-train", "15622", "--out", str(out),
                 "--data-dir", str(data_dir), *TINY]) == 2
    assert (f"--n-train 15622 leaves 3 of the 15,625 architectures out of training; at least "
            f"{MIN_CALIBRATION + MIN_TEST} must stay out") in one_error_line(capsys)
    assert not out.exists()


GRAPHS = [arch_to_graph(s) for s in list(all_arch_strs())[:6]]


def test_predictor_api_states_the_least_it_accepts():
    p = Predictor(settings={"n_layers": 1, "dim": 16, "steps": 2}, progress=False)
    with pytest.raises(DataError, match=f"need at least {MIN_TRAIN} training graphs, got 1"):
        p.fit(GRAPHS[:1], [0.5])
    with pytest.raises(DataError, match=f"need no validation graph or at least {MIN_VALIDATION}, got 1"):
        p.fit(GRAPHS[:3], [0.5, 0.6, 0.7], GRAPHS[3:4], [0.8])
    p.fit(GRAPHS[:3], [0.5, 0.6, 0.7], GRAPHS[3:5], [0.8, 0.9])  # at the least: fits
    for n in (0, 1):
        with pytest.raises(DataError, match=f"need at least {MIN_TRAIN} fine-tuning graphs, got {n}"):
            p.finetune(GRAPHS[:n], [0.5] * n, steps=2)
        with pytest.raises(DataError, match=f"need at least {MIN_CALIBRATION} calibration graphs, got {n}"):
            p.calibrate(GRAPHS[:n], [0.5] * n)
    assert p.finetune(GRAPHS[:2], [0.5, 0.6], steps=2).calibrate(GRAPHS[2:4], [0.7, 0.8]).header_["interval"]["n"] == 2
