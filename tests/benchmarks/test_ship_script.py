"""benchmarks/ship.py --base: a shipped predictor published again with its device's probe in its header, the
network and registry entry unchanged; a probe of another device is refused."""

import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_republishing_adds_the_home_probe_and_keeps_the_network(tmp_path, monkeypatch):
    from benchmarks import ship
    from nnformer import shipped
    from nnformer.latency.probe import HOME_KEY, load_profile

    root = tmp_path / "predictors"
    shutil.copytree(shipped.ROOT, root)
    monkeypatch.setattr(shipped, "ROOT", root)
    base = shipped.resolve("cpu-zoo-ort-b1@3", root)
    home = ROOT / "datasets/zoo-ort-t1-b1/probe.json"
    monkeypatch.setattr(sys, "argv", ["ship.py", "--base", "cpu-zoo-ort-b1@3", "--version", "9",
                                      "--home-probe", str(home)])
    ship.main()
    new = shipped.resolve("cpu-zoo-ort-b1@9", root)
    assert new.files["weights.safetensors"] == base.files["weights.safetensors"]
    assert (new.metrics, new.data, new.device) == (base.metrics, base.data, base.device)
    assert new.extra["republished_from"] == "cpu-zoo-ort-b1@3" and new.extra["home_probe"] == str(home)
    p = shipped.load("cpu-zoo-ort-b1@9", root)
    assert p.header_[HOME_KEY]["latency_ms"] == load_profile(home).latencies().tolist()
    assert "keeps the probe of its own device" in new.describe()
    # the Intel host's probe is not of the device the predictor learnt (an AMD EPYC host)
    xeon = ROOT / "benchmarks/results/probe/xeon-ort-t1-b1.json"
    monkeypatch.setattr(sys, "argv", ["ship.py", "--base", "cpu-zoo-ort-b1@3", "--version", "10",
                                      "--home-probe", str(xeon)])
    with pytest.raises(SystemExit, match="is not a probe of the predictor's device"):
        ship.main()
    from nnformer.errors import NNFormerError

    with pytest.raises(NNFormerError):  # nothing was published
        shipped.resolve("cpu-zoo-ort-b1@10", root)
