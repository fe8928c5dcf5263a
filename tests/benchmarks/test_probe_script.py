"""benchmarks/probe.py on the committed dataset and probe of one host: the table it writes, and that the probe's
line brings the shipped predictor closer to that host's measurements than the predictor as shipped."""

import csv
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


@pytest.mark.slow
def test_probe_script_scores_the_four_ways(tmp_path, monkeypatch):
    from benchmarks import probe

    monkeypatch.setattr(probe, "OUT", tmp_path)
    data, prof = ROOT / "datasets/here-ort-t1-b1", ROOT / "benchmarks/results/probe/here-ort-t1-b1.json"
    assert probe.main(["--data", str(data), "--profile", str(prof), "--name", "t"]) == 0
    rows = {r["method"]: r for r in csv.DictReader((tmp_path / "t.csv").open())}
    assert set(rows) == {"as-is", "probe-scale", "probe-line", "roofline"}
    assert float(rows["probe-line"]["mape"]) < float(rows["as-is"]["mape"]) / 2
    assert (tmp_path / "t.png").stat().st_size > 0 and "| probe-line |" in (tmp_path / "t.md").read_text()
    # another device's profile is refused: the dataset and the probe must be of one device
    other = ROOT / "benchmarks/results/probe/here-openvino-t1-b1.json"
    with pytest.raises(SystemExit, match="is not the device of"):
        probe.main(["--data", str(data), "--profile", str(other), "--name", "u"])
