"""A predictor meta-trained over devices and conditioned on their probes (nnformer.latency.devices)."""

from pathlib import Path

import numpy as np
import pytest

from nnformer.errors import NNFormerError
from nnformer.latency import devices

ROOT = Path(__file__).resolve().parents[2]


def test_embedding_is_the_same_for_a_device_twice_as_fast():
    refs = np.array([0.1, 1.0, 3.0, 20.0])
    hw, mean, std = devices.embedding(refs)
    hw2, mean2, std2 = devices.embedding(refs / 2)
    assert np.allclose(hw, hw2) and mean2 == pytest.approx(mean - np.log(2)) and std2 == pytest.approx(std)
    assert abs(float(hw.mean())) < 1e-6 and float(hw.std()) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(NNFormerError):
        devices.embedding([1.0])


@pytest.fixture(scope="module")
def meta():
    """NN-Former meta-trained briefly on two devices made from one host's labels (the second 1.7x slower on
    small models than on large ones), with the host's probe scaled to match."""
    pytest.importorskip("onnx")
    from nnformer.latency.dataset import load_training_set
    from nnformer.latency.probe import load_profile

    _, graphs, ms, _ = load_training_set(ROOT / "datasets/here-ort-t1-b1")
    prof = load_profile(ROOT / "benchmarks/results/probe/here-ort-t1-b1.json")
    refs = prof.latencies()
    slow = lambda x: 1.7 * x ** 0.9  # noqa: E731
    p = devices.meta_fit([(graphs[:80], ms[:80], refs), (graphs[:80], slow(ms[:80]), slow(refs))],
                         settings={"steps": 30, "evals": 1, "seed": 0, "batch_size": 16})
    return p, graphs[80:], refs


@pytest.mark.slow
def test_a_device_twice_as_slow_gets_twice_the_milliseconds(meta):
    p, test, refs = meta
    a = devices.predict_on(p, test, refs)
    b = devices.predict_on(p, test, 2 * refs)
    assert np.all(a > 0) and np.allclose(b, 2 * a, rtol=1e-5)
    assert p.header_[devices.KEY]["devices"] == 2


@pytest.mark.slow
def test_predict_on_refuses_what_does_not_fit(meta, tmp_path):
    p, test, refs = meta
    with pytest.raises(NNFormerError, match="16 reference networks"):
        devices.predict_on(p, test, refs[:10])
    from nnformer.predictor import Predictor

    back = Predictor.load(p.save(tmp_path / "meta"))  # the conditioning survives a save
    assert np.allclose(devices.predict_on(back, test, refs), devices.predict_on(p, test, refs), rtol=1e-5)
    from nnformer.latency.predict import resolve_predictor

    shipped, _ = resolve_predictor(None)
    with pytest.raises(NNFormerError, match="not meta-trained"):
        devices.predict_on(shipped, test, refs)


@pytest.mark.slow
def test_predict_latency_reads_the_profile_through_the_embedding(meta, tmp_path):
    from nnformer.latency.families import build, sample
    from nnformer.latency.predict import predict_latency
    from nnformer.latency.probe import load_profile, save_profile

    p, _, _ = meta
    prof = load_profile(ROOT / "benchmarks/results/probe/here-ort-t1-b1.json")
    model = build(sample("resnet", 0, 1))
    r = predict_latency(model, (1, 3, 64, 64), predictor=p, device=prof)
    assert r.ms > 0 and r.probed and r.low is None
    for ref in prof.references:
        ref["latency_ms"] *= 3
    slower = predict_latency(model, (1, 3, 64, 64), predictor=p, device=save_profile(prof, tmp_path / "x.json"))
    assert slower.ms == pytest.approx(3 * r.ms, rel=1e-4)
    with pytest.raises(NNFormerError, match="give a device profile"):
        predict_latency(model, (1, 3, 64, 64), predictor=p)


@pytest.mark.slow
def test_home_device_and_interval_of_a_meta_trained_predictor(tmp_path):
    """Without a profile a meta-trained predictor predicts for its home device (its own reference latencies), and
    its calibrated interval is the conformal quantile of the held-out errors, saved with it."""
    pytest.importorskip("onnx")
    from nnformer.latency.dataset import load_training_set
    from nnformer.latency.probe import load_profile
    from nnformer.predictor import Predictor

    _, graphs, ms, _ = load_training_set(ROOT / "datasets/here-ort-t1-b1")
    small = np.argsort([g.num_nodes for g in graphs], kind="stable")[:70]  # the smallest: fast steps
    graphs, ms = [graphs[i] for i in small], ms[small]
    prof = load_profile(ROOT / "benchmarks/results/probe/here-ort-t1-b1.json")
    refs = prof.latencies()
    settings = {"steps": 1, "evals": 1, "seed": 0, "batch_size": 4}
    bare = devices.meta_fit([(graphs[:30], ms[:30], refs)], settings=settings)
    with pytest.raises(NNFormerError, match="give a device profile"):
        devices.predict_on(bare, graphs[:2])
    assert devices.interval_on(bare, graphs[:2], refs)[1] is None and devices.home_device(bare) is None
    p = devices.meta_fit([(graphs[:30], ms[:30], refs), (graphs[:30], 2 * ms[:30], 2 * refs)], settings=settings,
                         home=prof)
    assert devices.home_device(p) == prof.name
    assert np.allclose(devices.predict_on(p, graphs[30:35]), devices.predict_on(p, graphs[30:35], refs))
    devices.calibrate_on(p, [(graphs[30:60], ms[30:60], refs), (graphs[30:60], 2 * ms[30:60], 2 * refs)])
    iv = p.header_[devices.KEY]["interval"]
    err = np.abs(np.log(devices.predict_on(p, graphs[30:60], refs)) - np.log(ms[30:60]))
    assert iv["n"] == 60 and iv["level"] == 0.9 and float(np.quantile(err, 0.8)) <= iv["q"] <= float(err.max()) + 1e-6
    mid, lo, hi, level = devices.interval_on(p, graphs[60:70], 2 * refs)
    assert level == 0.9 and np.allclose(hi / mid, np.exp(iv["q"])) and np.allclose(mid / lo, np.exp(iv["q"]))
    back = Predictor.load(p.save(tmp_path / "meta"))
    assert back.header_[devices.KEY]["interval"] == iv and devices.home_device(back) == prof.name
    with pytest.raises(NNFormerError, match="at least 5"):
        devices.calibrate_on(p, [(graphs[:2], ms[:2], refs)])
