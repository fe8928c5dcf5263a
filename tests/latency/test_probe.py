"""The device probe, device profiles, predictions put on a probed device, runtimes, and the zoo's plain-PyTorch
families (the timm and transformers families: tests/latency/test_zoo.py, in the zoo environment)."""

import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from nnformer.cli import main  # noqa: E402
from nnformer.errors import DataError, FamilyError, NNFormerError, OnnxError  # noqa: E402
from nnformer.latency import probe as probe_mod  # noqa: E402
from nnformer.latency import runtimes, zoo  # noqa: E402
from nnformer.latency.families import build, sample  # noqa: E402
from nnformer.latency.profiler import measure  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# six small networks the shipped predictor knows, and two outside the operator mixes it trained on (its verdict
# flags them, and the probe's line is fitted without them)
SMALL = (("mobilenetv2", 3), ("mnasnet", 0), ("resnet", 1), ("torch-gru", 0), ("torch-mlp", 0), ("torch-mlp", 1),
         ("mobilenetv3", 1), ("vgg", 2))


@pytest.fixture(scope="module")
def small_refs():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(probe_mod, "REFERENCES", SMALL)
        yield


@pytest.fixture(scope="module")
def probed(small_refs):
    """One real probe of the small reference set (timed briefly), shared by the tests that need a profile."""
    t0 = time.perf_counter()
    prof = probe_mod.probe("onnxruntime", 1, 1, budget_s=0.02)
    return prof, time.perf_counter() - t0


@pytest.fixture(scope="module")
def shipped():
    from nnformer.latency.predict import resolve_predictor

    return resolve_predictor(None)


def test_fit_recovers_a_line_and_clips_the_slope():
    rng = np.random.default_rng(0)
    pred = np.exp(rng.uniform(-3, 3, 16))
    m = probe_mod.fit_device_map(pred, 2.0 * pred ** 0.9 * np.exp(rng.normal(0, 0.01, 16)))
    assert m.b == pytest.approx(0.9, abs=0.02) and math.exp(m.a) == pytest.approx(2.0, rel=0.05)
    assert m.widen < 0.05 and m.n == 16
    assert m.apply(1.0) == pytest.approx(2.0, rel=0.05)
    steep = probe_mod.fit_device_map(pred, pred ** 3)
    assert steep.b == 1.5  # a slope of 3 says more about the points than about a device
    scale = probe_mod.DeviceMap(math.log(2.0), 1.0, 0.0, 16, "x")
    assert scale.interval(10.0, 8.0, 12.5) == pytest.approx((16.0, 25.0))  # a scale moves the interval along
    wide = probe_mod.DeviceMap(math.log(2.0), 1.0, 0.3, 16, "x").interval(10.0, 8.0, 12.5)
    assert wide[0] < 16.0 and wide[1] > 25.0 and wide[1] < 25.0 * math.exp(0.3)  # in quadrature, not added
    with pytest.raises(NNFormerError, match="at least 5"):
        probe_mod.fit_device_map(pred, pred, usable=np.arange(16) < 4)


def test_probe_times_every_reference_and_round_trips(probed, tmp_path):
    prof, seconds = probed
    assert seconds < 60
    assert [r["id"] for r in prof.references] == [f"{f}-{i}" for f, i in SMALL]
    assert all(r["latency_ms"] > 0 and r["graph"] for r in prof.references)
    assert prof.runtime == "onnxruntime" and prof.environment["runtime"] == "onnxruntime"
    path = probe_mod.save_profile(prof, tmp_path / "dev.json")
    back = probe_mod.load_profile(path)
    assert back.latencies().tolist() == prof.latencies().tolist() and back.name == prof.name


def test_a_profile_gets_the_reference_graphs_this_version_converts(probed):
    """A profile written by a converter that found fewer shapes carries smaller graphs: with_current_graphs converts
    each reference again, replaces the graphs that differ and keeps every latency."""
    import copy

    prof = copy.deepcopy(probed[0])
    same, changed = probe_mod.with_current_graphs(prof)
    assert changed == [] and same.references == prof.references
    old = prof.references[2]["graph"]
    prof.references[2]["graph"] = {**old, "static": {**old["static"], "flops": old["static"]["flops"] / 100}}
    back, changed = probe_mod.with_current_graphs(prof)
    assert changed == [prof.references[2]["id"]]
    assert back.references[2]["graph"]["static"]["flops"] == old["static"]["flops"]
    assert back.latencies().tolist() == prof.latencies().tolist()


def test_loading_a_profile_of_an_older_converter_converts_its_references_again(probed, tmp_path, capsys):
    """A profile saved by an older converter (no ``converter`` field, or a lower one) is loaded with its reference
    graphs converted again and the changed ones named; ``nnformer predict --device`` says so; a current profile is
    loaded as saved, and re-saving the refreshed one makes it current."""
    import copy

    from nnformer.latency.onnx_graph import CONVERTER

    prof = copy.deepcopy(probed[0])
    assert prof.converter == CONVERTER and prof.to_dict()["converter"] == CONVERTER
    old = prof.references[2]["graph"]
    prof.references[2]["graph"] = {**old, "static": {**old["static"], "flops": old["static"]["flops"] / 100}}
    d = prof.to_dict()
    del d["converter"]  # as versions before the field wrote it
    d["sha256"] = probe_mod._digest(d)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    back = probe_mod.load_profile(path)
    assert back.refreshed == (prof.references[2]["id"],) and back.converter == CONVERTER
    assert back.references[2]["graph"]["static"]["flops"] == old["static"]["flops"]
    assert back.latencies().tolist() == prof.latencies().tolist()
    again = probe_mod.load_profile(probe_mod.save_profile(back, tmp_path / "new.json"))
    assert again.refreshed == () and again.references == back.references
    model = tmp_path / "m.onnx"
    model.write_bytes(probe_mod._reference(*SMALL[0], 1)[2])
    assert main(["predict", str(model), "--device", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"the graphs of 1 of its reference networks ({prof.references[2]['id']}) were converted again" in err


def _profile(probed, shipped, scale: float):
    """The probed profile, its reference latencies set to ``scale`` times what the shipped predictor predicts."""
    import copy

    from nnformer.latency.onnx_graph import from_compact, with_static

    p, _ = shipped
    refs = copy.deepcopy(probed[0].references)
    pred = p.predict([with_static(*from_compact(r["graph"])) for r in refs])
    for r, y in zip(refs, pred):
        r["latency_ms"] = float(scale * y)
    return probe_mod.DeviceProfile("onnxruntime", 1, 1, {"cpu": "Test CPU"}, refs, 1.0)


def test_predictions_follow_the_probed_device(probed, tmp_path, shipped):
    from nnformer.latency.predict import predict_latency

    path = probe_mod.save_profile(_profile(probed, shipped, 3.0), tmp_path / "dev.json")
    model = build(sample("resnet", 0, 1))
    base = predict_latency(model, (1, 3, 64, 64))
    on = predict_latency(model, (1, 3, 64, 64), device=path)
    assert on.ms == pytest.approx(3.0 * base.ms, rel=1e-3) and on.probed and not base.probed
    assert on.device.startswith("Test CPU, onnxruntime 1 thread") and "ONNX Runtime" in base.device
    assert on.low < on.ms < on.high  # the interval moves with the prediction (and keeps its order)
    with pytest.raises(NNFormerError, match="probed at batch 1"):  # a profile of another setting
        predict_latency(model, (4, 3, 64, 64), device=path)


def test_bad_profiles_are_one_line_errors(probed, tmp_path, shipped):
    good = probe_mod.save_profile(_profile(probed, shipped, 1.0), tmp_path / "dev.json")
    d = json.loads(good.read_text())
    cases = {
        "missing.json": None,
        "notjson.json": "{not json",
        "other.json": json.dumps({"format": "something-else/1"}),
        "edited.json": json.dumps({**d, "threads": 4}),
        "older.json": json.dumps({**d, "probe_set": "0" * 64, "sha256": probe_mod._digest({**d, "probe_set": "0" * 64})}),
    }
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(DataError) as e:
            probe_mod.load_profile(tmp_path / name)
        assert "\n" not in str(e.value)
    assert "another probe set" in _error(tmp_path / "older.json")
    assert "sha256" in _error(tmp_path / "edited.json")
    with pytest.raises(DataError, match="directory"):
        probe_mod.load_profile(tmp_path)


def _error(path):
    with pytest.raises(DataError) as e:
        probe_mod.load_profile(path)
    return str(e.value)


def test_cli_probe_show_predict(probed, tmp_path, capsys, monkeypatch):
    asked = []

    def probe(runtime, threads, batch, **kw):  # the real probe is timed above; here, what the CLI does with it
        asked.append((runtime, threads, batch))
        return probed[0]

    monkeypatch.setattr(probe_mod, "probe", probe)
    out = tmp_path / "dev.json"
    assert main(["device", "probe", "--out", str(out), "--quiet"]) == 0
    assert "8 reference networks" in capsys.readouterr().out and asked == [("onnxruntime", 1, 1)]
    assert main(["device", "show", str(out)]) == 0
    assert "vgg-2" in capsys.readouterr().out
    model = tmp_path / "m.onnx"
    from nnformer.latency.onnx_graph import export_onnx

    spec = sample("resnet", 0, 2)
    export_onnx(build(spec), spec.input_shape, model)
    assert main(["predict", str(model), "--device", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["probed"] is True and res[0]["ms"] > 0
    # bad inputs: an unreadable profile, --device for arch strings, --out over a foreign file, a runtime missing
    (tmp_path / "bad.json").write_text("nope")
    assert main(["predict", str(model), "--device", str(tmp_path / "bad.json")]) == 2
    assert main(["predict", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--device", str(out),
                 "--checkpoint", "help-nb201-fpga"]) == 2
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["device", "probe", "--out", str(notes)]) == 2 and notes.read_text() == "mine"
    err = capsys.readouterr().err
    assert "--device applies to latency predictions" in err and "not a device profile" in err


def test_a_probe_that_cannot_run_leaves_nothing(tmp_path, monkeypatch, capsys):
    def missing(runtime):
        raise OnnxError(f"timing with {runtime} needs the {runtime!r} package: pip install 'nnformer[zoo]'")

    monkeypatch.setattr(runtimes, "_module", missing)
    out = tmp_path / "dev.json"
    assert main(["device", "probe", "--out", str(out), "--runtime", "openvino", "--quiet"]) == 2
    assert not out.exists() and "needs the 'openvino' package" in capsys.readouterr().err


def test_runtimes_run_a_model_and_refuse_what_they_cannot():
    import torch

    spec = sample("torch-mlp", 0, 1)
    module = build(spec)
    x = torch.zeros(spec.input_shape)
    from nnformer.latency.onnx_graph import export_onnx

    onnx_bytes = export_onnx(module, x, None)
    for rt in ("onnxruntime", "torch"):
        t = measure(runtimes.runner(rt, onnx_bytes, module=module, example=x), warmup=1, runs=3, rounds=2)
        assert t.latency_ms > 0
    with pytest.raises(NNFormerError, match="unknown runtime"):
        runtimes.runner("tensorflow", onnx_bytes)
    with pytest.raises(NNFormerError, match="needs the PyTorch module"):
        runtimes.runner("torch", onnx_bytes)


def test_measure_budget_cuts_runs_for_a_slow_model():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.02)

    t = measure(slow, warmup=10, runs=20, rounds=2, budget_s=0.2)
    assert len(calls) <= 1 + 3 + 2 * 5 and t.latency_ms == pytest.approx(20, rel=0.5)
    calls.clear()
    measure(lambda: calls.append(1), warmup=2, runs=3, rounds=2)
    assert len(calls) == 2 + 6  # no budget: exactly the counts given


@pytest.mark.slow
def test_zoo_torch_families_sample_build_and_export():
    from nnformer.latency.onnx_graph import export_onnx, onnx_to_graph

    assert len(zoo.ZOO_FAMILIES) >= 30
    for family, library in zoo.ZOO_FAMILIES.items():
        if library != "torch":
            continue
        spec = sample(family, 0, 0)
        assert spec == sample(family, 0, 0) and spec != sample(family, 0, 1)
        m = build(spec)
        g, st = onnx_to_graph(export_onnx(m, zoo.example_input(m, spec.input_shape), None))
        assert g.num_nodes > 3 and st["flops"] > 0, family


def test_zoo_families_need_their_library_before_anything_is_written(tmp_path):
    import importlib.util

    if importlib.util.find_spec("timm") is not None:
        pytest.skip("timm is installed here")
    from nnformer.latency.profiler import profile_dataset

    with pytest.raises(FamilyError, match=r"nnformer\[zoo\]"):
        profile_dataset(["torch-mlp", "timm-resnet"], 1, tmp_path / "z", progress=False)
    assert not (tmp_path / "z").exists()


def test_with_the_home_probe_the_map_is_the_ratio_of_measured_references(probed, shipped):
    """Given the probe of the predictor's own device, the map is the median ratio of the references' measured
    latencies (the predictor's errors on them play no part), from an argument or from the header's home_probe; a
    home probe of another batch is refused, and without one the map is fitted to the predictions as before."""
    import copy

    p, _ = shipped
    home = probed[0]
    device = copy.deepcopy(home)
    factors = np.linspace(0.5, 0.7, len(device.references))  # the device is 0.5-0.7x the home device's times
    for r, f in zip(device.references, factors):
        r["latency_ms"] = float(r["latency_ms"] * f)
    m = probe_mod.conditioned(p, device, home=home)
    from nnformer.latency.coverage import coverage
    from nnformer.latency.onnx_graph import from_compact, with_static

    usable = [coverage(p, with_static(*from_compact(r["graph"]))).reliable for r in home.references]
    assert m.b == 1.0 and m.a == pytest.approx(np.median(np.log(factors[usable])), abs=1e-9)
    rec = probe_mod.home_record(home)
    assert rec["latency_ms"] == home.latencies().tolist() and rec["probe_set"] == home.probe_set
    assert probe_mod.conditioned(p, device, home=rec) == m
    # the header's record is used by default (as a shipped predictor carries it), and nnformer predict follows
    p.header_ = {**p.header_, probe_mod.HOME_KEY: rec}
    try:
        assert probe_mod.conditioned(p, device) == m
        other = {**rec, "batch": 8}
        with pytest.raises(NNFormerError, match="differ in their reference set or batch"):
            probe_mod.conditioned(p, device, home=other)
        p.header_ = {**p.header_, probe_mod.HOME_KEY: other}  # not of this batch: ignored, predictions used
        assert probe_mod.conditioned(p, device) != m
    finally:
        p.header_ = {k: v for k, v in p.header_.items() if k != probe_mod.HOME_KEY}
