"""benchmarks/unfamiliar.py (the wider interval for models unlike the training graphs) and benchmarks/hosts.py (the
same models on two hosts) on the committed datasets of two hosts: the tables they write, and the refusals."""

import csv
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
HERE, XEON = ROOT / "datasets/here-ort-t1-b1", ROOT / "datasets/here-ort-t1-b1-xeon"


def test_unfamiliar_calibrates_on_flagged_models_of_unseen_families_and_scores_each_family_held_out(tmp_path,
                                                                                                  monkeypatch):
    from benchmarks import unfamiliar

    monkeypatch.setattr(unfamiliar, "OUT", tmp_path)
    xeon = f"{XEON}:{ROOT / 'benchmarks/results/probe/xeon-ort-t1-b1.json'}"
    assert unfamiliar.main(["--predictor", "cpu-zoo-ort-b1@2", "--data", str(HERE), "--check", xeon,
                            "--name", "t"]) == 0
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    by = {(r["group"], r["interval"]): r for r in rows}
    mixed = by[("operator mix alone", "calibrated")]
    known = by[("known", "calibrated")]
    assert int(mixed["n"]) + int(known["n"]) <= 100 and int(mixed["n"]) >= 20
    # the mix-flagged models of unseen families err more than the known ones: the calibrated interval holds fewer
    assert float(mixed["mape"]) > float(known["mape"]) and float(mixed["holds"]) < 90
    held_out = float(by[("operator mix alone", "unfamiliar (each family held out)")]["holds"])
    assert 0 <= held_out <= 100
    md = (tmp_path / "t.md").read_text()
    assert "| held-out family |" in md and "Intel(R) Xeon(R) Processor" in md
    assert sum(r["group"].startswith("check ") for r in rows) == 3
    # a dataset of families the predictor trained on cannot calibrate it
    with pytest.raises(SystemExit, match="families cpu-zoo-ort-b1@2 trained on"):
        unfamiliar.main(["--predictor", "cpu-zoo-ort-b1@2", "--data", str(ROOT / "datasets/zoo-ort-t1-b8"),
                         "--name", "u"])


def test_hosts_compares_the_same_models_family_by_family(tmp_path, monkeypatch):
    from benchmarks import hosts

    monkeypatch.setattr(hosts, "OUT", tmp_path)
    assert hosts.main(["--a", str(HERE), "--b", str(XEON), "--name", "t"]) == 0
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    fams = json.loads((HERE / "meta.json").read_text())["families"]
    assert sorted(r["family"] for r in rows) == sorted(fams)
    assert all(float(r["p10"]) <= float(r["median_ratio"]) <= float(r["p90"]) for r in rows)
    assert sum(int(r["n"]) for r in rows) == 100
    assert "MAPE" in (tmp_path / "t.md").read_text() and (tmp_path / "t.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="differ in runtime, threads, batch or seed"):
        hosts.main(["--a", str(HERE), "--b", str(ROOT / "datasets/zoo-ort-t1-b8"), "--name", "u"])
