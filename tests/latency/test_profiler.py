import argparse
import gzip
import json
import subprocess
import sys
import time
import warnings

import pytest
import torch
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from nnformer.latency import dataset, families, profiler  # noqa: E402
from nnformer.errors import DataError, FamilyError, NNFormerError, OnnxError  # noqa: E402
from nnformer.latency.families import ModelSpec  # noqa: E402
from nnformer.graph import ArchGraph  # noqa: E402
from nnformer.latency.cli import add_parser  # noqa: E402
from nnformer.cli import main as profile_main  # noqa: E402

FAST = {"rounds": 2, "runs": 2, "warmup": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


class _FFT(nn.Module):
    def forward(self, x):
        return torch.fft.fft2(x).real  # no ONNX export for aten::fft_fft2 at opset 17


@pytest.fixture
def tiny(monkeypatch):
    """Families 'tiny_a', 'tiny_b' (a few ops on 16x16 inputs) and 'broken' (cannot be exported to ONNX)."""
    def sampler(name):
        return lambda rng: ModelSpec(name, {"c": int(rng.integers(2, 64))}, (1, 3, 16, 16))

    def conv_relu_conv(p, shape):
        return nn.Sequential(nn.Conv2d(3, p["c"], 3, padding=1), nn.ReLU(), nn.Conv2d(p["c"], 4, 1))

    for name, builder in [("tiny_a", conv_relu_conv), ("tiny_b", lambda p, s: nn.Sequential(conv_relu_conv(p, s),
                                                                                             nn.Sigmoid())),
                          ("broken", lambda p, s: _FFT())]:
        monkeypatch.setitem(families.FAMILIES, name, sampler(name))
        monkeypatch.setitem(families.BUILDERS, name, builder)
    monkeypatch.setattr(profiler, "REFERENCE", ("tiny_a", 0, 0))  # the reference network: tiny too


@pytest.fixture
def spy(monkeypatch):
    """Records the ids of the specs that profile_dataset actually measures."""
    seen = []
    real = profiler.profile_spec

    def wrapped(spec, **kw):
        seen.append((spec.family, spec.params["c"]))
        return real(spec, **kw)

    monkeypatch.setattr(profiler, "profile_spec", wrapped)
    return seen


def lines(path):
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode().splitlines()
    return path.read_text().splitlines()


def test_robust_summary_drops_outlier_rounds():
    t = profiler.robust_summary([10.0, 10.2, 9.8, 10.1, 30.0])
    assert t.rounds_kept == 4 and t.latency_ms == pytest.approx(10.05)
    assert len(t.round_ms) == 5 and 0 < t.spread < 0.05
    assert profiler.robust_summary([5.0, 5.0, 5.0]).spread == 0.0


def test_measure_counts_runs_and_times_them():
    calls = []
    t = profiler.measure(lambda: calls.append(1), warmup=3, runs=4, rounds=2)
    assert len(calls) == 3 + 4 * 2 and len(t.round_ms) == 2
    t = profiler.measure(lambda: time.sleep(0.002), warmup=0, runs=2, rounds=2)
    assert 2.0 <= t.latency_ms < 50
    with pytest.raises(NNFormerError, match="runs >= 1"):
        profiler.measure(lambda: None, runs=0)


def _export(model, shape, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return path


def test_profile_onnx(tmp_path):
    path = _export(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), (1, 3, 16, 16), tmp_path / "m.onnx")
    r = profiler.profile_onnx(path, threads=1, batch=2, **FAST)
    assert r["latency_ms"] > 0 and r["rounds_kept"] >= 1 and len(r["round_ms"]) == 2
    assert r["batch"] == 2 and r["flops"] == 2 * (2 * 8 * 14 * 14 * 27 + 8 * 14 * 14) + 2 * 8 * 14 * 14
    env = r["environment"]
    assert env["threads"] == 1 and env["onnxruntime"] and env["cpu"] and env["cpu_count"] >= 1
    json.dumps(r)


def test_profile_onnx_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(OnnxError):
        profiler.profile_onnx(bad, **FAST)
    dyn = tmp_path / "dyn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.ReLU(), (torch.zeros(1, 3, 8, 8),), str(dyn), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n", 2: "h"}})
    with pytest.raises(OnnxError, match="dynamic dimension 'h' on axis 2"):
        profiler.profile_onnx(dyn, **FAST)


def test_export_failure_is_an_onnx_error_and_prints_nothing(tmp_path, capfd):
    with pytest.raises(OnnxError, match="fft") as e:
        profiler.export_onnx(_FFT(), (1, 3, 8, 8), tmp_path / "x.onnx")
    assert "\n" not in str(e.value)
    assert capfd.readouterr().out == ""  # the exporter's C++ dump of the IR graph is silenced


def test_dataset_resumes_without_remeasuring(tmp_path, tiny, spy):
    out = tmp_path / "ds"
    r1 = profiler.profile_dataset(["tiny_a", "tiny_b"], 1, out, progress=False, **FAST)
    assert r1 == {"out": str(out), "measured": 2, "failed": 0, "skipped": 0}
    first = lines(out / "latency.jsonl")
    assert [json.loads(s)["id"] for s in first] == ["tiny_a-00000", "tiny_b-00000"]
    spy.clear()
    # "interrupted" run resumed with more models: only index 1 of each family is measured
    r2 = profiler.profile_dataset(["tiny_a", "tiny_b"], 2, out, progress=False, **FAST)
    assert r2["measured"] == 2 and r2["skipped"] == 2
    assert spy == [(f, families.sample(f, 0, 1).params["c"]) for f in ("tiny_a", "tiny_b")]
    after = lines(out / "latency.jsonl")
    assert after[:2] == first and len(after) == 4 and len(lines(out / "graphs.jsonl.gz")) == 4
    assert not (out / "graphs.jsonl").exists()  # packed when the run ended
    spy.clear()
    assert profiler.profile_dataset(["tiny_a", "tiny_b"], 2, out, progress=False, **FAST)["measured"] == 0
    assert spy == []

    rows = dataset.load_dataset(out)
    assert [r["id"] for r in rows] == ["tiny_a-00000", "tiny_b-00000", "tiny_a-00001", "tiny_b-00001"]
    for r in rows:
        assert isinstance(r["graph"], ArchGraph) and r["latency_ms"] > 0 and r["spec"].family == r["family"]
        assert r["graph"].ops[:4] == ("input", "onnx:Conv", "onnx:Relu", "onnx:Conv")
        assert r["spec"] == families.sample(r["family"], 0, r["index"])
    assert rows[1]["graph"].ops[-2] == "onnx:Sigmoid"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["rounds"] == 2 and meta["environment"]["threads"] == 1
    assert meta["feature_names"][0] == "kernel_h" and meta["families"] == ["tiny_a", "tiny_b"]


def test_failed_model_is_recorded_and_skipped(tmp_path, tiny, spy):
    out = tmp_path / "ds"
    r = profiler.profile_dataset(["broken", "tiny_a"], 1, out, progress=False, **FAST)
    assert r["measured"] == 1 and r["failed"] == 1
    recs = [json.loads(s) for s in lines(out / "latency.jsonl")]
    assert recs[0]["id"] == "broken-00000" and recs[0]["status"] == "error" and recs[0]["stage"] == "export"
    assert "fft" in recs[0]["error"] and recs[1]["status"] == "ok"
    assert [json.loads(s)["id"] for s in lines(out / "graphs.jsonl.gz")] == ["tiny_a-00000"]
    spy.clear()
    assert profiler.profile_dataset(["broken", "tiny_a"], 1, out, progress=False, **FAST)["failed"] == 0
    assert spy == []  # not retried
    assert [x["id"] for x in dataset.load_dataset(out)] == ["tiny_a-00000"]


def test_unpacked_graphs_of_a_killed_run_are_merged_then_packed(tmp_path, tiny):
    out = tmp_path / "ds"
    profiler.profile_dataset(["tiny_a"], 2, out, progress=False, **FAST)
    packed = (out / "graphs.jsonl.gz").read_bytes()
    recs = [json.loads(s) for s in lines(out / "graphs.jsonl.gz")]
    # a run killed before packing: one graph written again, plus a torn line
    (out / "graphs.jsonl").write_text(json.dumps(recs[1]) + "\n" + '{"id": "tiny_a-0')
    assert [r["id"] for r in dataset.load_dataset(out)] == ["tiny_a-00000", "tiny_a-00001"]
    profiler.pack_graphs(out)
    assert not (out / "graphs.jsonl").exists()
    assert (out / "graphs.jsonl.gz").read_bytes() == packed  # same records -> the same bytes (no timestamp)
    (out / "graphs.jsonl.gz").write_bytes(packed[: len(packed) // 2])  # damaged
    with pytest.raises(DataError, match="graphs.jsonl.gz"):
        dataset.load_dataset(out)


def test_torn_last_line_is_dropped_and_run_continues(tmp_path, tiny):
    out = tmp_path / "ds"
    profiler.profile_dataset(["tiny_a"], 1, out, progress=False, **FAST)
    with open(out / "latency.jsonl", "a") as f:
        f.write('{"id": "tiny_a-00001", "status": "o')  # killed mid-write
    profiler.profile_dataset(["tiny_a"], 2, out, progress=False, **FAST)
    recs = [json.loads(s) for s in lines(out / "latency.jsonl")]  # every line parses
    assert [x["id"] for x in recs] == ["tiny_a-00000", "tiny_a-00001"] and recs[1]["status"] == "ok"


def test_resume_measures_invalid_rows_again(tmp_path, tiny, spy, capsys):
    out = tmp_path / "ds"
    profiler.profile_dataset(["tiny_a"], 4, out, progress=False, reference_every=0, **FAST)
    recs = [json.loads(s) for s in lines(out / "latency.jsonl")]
    recs[1]["latency_ms"] = float("nan")
    recs[2]["latency_ms"] = -1.0
    del recs[3]["family"]
    (out / "latency.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(DataError, match=r"latency.jsonl: line 2: field 'latency_ms' is nan"):
        dataset.load_dataset(out)
    spy.clear()
    args = ["profile", "--families", "tiny_a", "--per-family", "4", "--out", str(out), "--rounds", "2", "--runs",
            "2", "--warmup", "1", "--reference-every", "0", "--quiet"]
    assert profile_main(args) == 0
    said = capsys.readouterr().out
    assert "3 measured, 0 failed, 1 already" in said and "3 invalid lines of latency.jsonl removed" in said
    assert spy == [("tiny_a", families.sample("tiny_a", 0, i).params["c"]) for i in (1, 2, 3)]
    after = [json.loads(s) for s in lines(out / "latency.jsonl")]
    assert after[0] == recs[0] and sorted(r["id"] for r in after) == [f"tiny_a-{i:05d}" for i in range(4)]
    assert [r["id"] for r in dataset.load_dataset(out)] == [r["id"] for r in after]  # valid again
    spy.clear()
    assert profile_main(args) == 0 and spy == []


def test_resume_with_other_settings_is_refused(tmp_path, tiny):
    out = tmp_path / "ds"
    profiler.profile_dataset(["tiny_a"], 1, out, progress=False, **FAST)
    with pytest.raises(DataError, match="threads=1, not 2"):
        profiler.profile_dataset(["tiny_a"], 2, out, threads=2, progress=False, **FAST)
    with pytest.raises(FamilyError, match="unknown model family 'nope'"):
        profiler.profile_dataset(["nope"], 1, out, progress=False, **FAST)


@pytest.mark.parametrize("content, needle", [
    (b"\xff", "cannot read {meta}: UnicodeDecodeError"),
    (b"{", "cannot read {meta}: JSONDecodeError"),
    (b"[]", "{meta}: not a JSON object"),
    (b'"x"', "{meta}: not a JSON object"),
    (b'{"settings": 5}', "{meta}: field 'settings' is not an object"),
    (b'{"settings": "seed"}', "{meta}: field 'settings' is not an object"),
    (b'{"environment": []}', "{meta}: field 'environment' is not an object"),
    (b'{"families": 3}', "{meta}: field 'families' is not a list"),
    (b'{"families": [[1]]}', "{meta}: field 'families' is not a list of names"),
    (b'{"feature_names": ["kernel_h"]}', "{meta}: field 'feature_names' lists other node features"),
])
def test_resume_with_a_damaged_meta_is_refused_naming_it(tmp_path, tiny, spy, content, needle, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    meta = out / "meta.json"
    meta.write_bytes(content)
    with pytest.raises(DataError) as e:
        profiler.profile_dataset(["tiny_a"], 1, out, progress=False, **FAST)
    assert needle.format(meta=meta) in str(e.value) and "\n" not in str(e.value)
    assert spy == [] and meta.read_bytes() == content and sorted(p.name for p in out.iterdir()) == ["meta.json"]
    assert profile_main(["profile", "--families", "tiny_a", "--per-family", "1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nnformer: error: ") and needle.format(meta=meta) in err


def test_reference_network_is_timed_through_the_run(tmp_path, tiny, spy):
    out = tmp_path / "ds"
    profiler.profile_dataset(["tiny_a"], 3, out, progress=False, reference_every=2, **FAST)
    refs = [json.loads(s) for s in lines(out / "reference.jsonl")]
    # at the start, after every 2 models and at the end; the reference is not a model of the dataset
    assert [r["after"] for r in refs] == [0, 2, 3] and len(spy) == 3
    assert all(r["reference"] == "tiny_a-seed0-00000" and r["latency_ms"] > 0 and r["measured_at"] for r in refs)
    profiler.profile_dataset(["tiny_a"], 3, out, progress=False, reference_every=2, **FAST)  # nothing to measure
    assert len(lines(out / "reference.jsonl")) == 3
    profiler.profile_dataset(["tiny_a"], 4, out, progress=False, reference_every=2, **FAST)  # one more model
    assert [json.loads(s)["after"] for s in lines(out / "reference.jsonl")][3:] == [0, 1]
    off = tmp_path / "off"
    profiler.profile_dataset(["tiny_a"], 1, off, progress=False, reference_every=0, **FAST)
    assert not (off / "reference.jsonl").exists()
    with pytest.raises(NNFormerError, match="reference_every must be >= 0"):
        profiler.profile_dataset(["tiny_a"], 1, off, progress=False, reference_every=-1, **FAST)


def test_drift_factors_put_labels_on_one_scale(tmp_path, tiny):
    import datetime

    out = tmp_path / "ds"
    profiler.profile_dataset(["tiny_a", "tiny_b"], 1, out, progress=False, reference_every=0, **FAST)
    with pytest.raises(DataError, match="no reference timings"):
        dataset.load_training_set(out, correct_drift=True)
    rows, _, ms, _ = dataset.load_training_set(out)
    t = datetime.datetime.fromisoformat(rows[0]["measured_at"])
    # the host ran at half its usual latency around the rows' time, at its usual latency (median 2 ms) later
    refs = [(-60, 1.0), (60, 1.0), (3600, 2.0), (7200, 2.0), (9000, 2.0)]
    (out / "reference.jsonl").write_text("".join(json.dumps(
        {"latency_ms": v, "measured_at": (t + datetime.timedelta(seconds=dt)).isoformat(timespec="seconds")}) + "\n"
        for dt, v in refs))
    assert profiler.drift_factors(out, rows).tolist() == [0.5, 0.5]
    assert dataset.load_training_set(out, correct_drift=True)[2] == pytest.approx(ms * 2)
    late = {"measured_at": (t + datetime.timedelta(seconds=1830)).isoformat()}  # halfway from 1.0 to 2.0 ms
    assert profiler.drift_factors(out, [late, {}]).tolist() == pytest.approx([0.75, 1.0])  # no timestamp: 1
    # another run's timings (a re-measurement) on this run's scale: its own median would hide that it ran slower
    (out / "again.jsonl").write_text((out / "reference.jsonl").read_text().replace('"latency_ms": 1.0',
                                                                                  '"latency_ms": 3.0'))
    assert profiler.drift_factors(out, rows, reference="again.jsonl").tolist() == [1.5, 1.5]
    assert profiler.drift_factors(out, rows, reference="again.jsonl", scale=2.0).tolist() == [1.5, 1.5]
    assert profiler.drift_factors(out, rows, reference="again.jsonl", scale=1.0).tolist() == [3.0, 3.0]
    # one timing far off (the host busy for a second) is outvoted by its neighbours within the window
    (out / "spike.jsonl").write_text("".join(json.dumps({"latency_ms": v, "measured_at": (t + datetime.timedelta(
        seconds=dt)).isoformat()}) + "\n" for dt, v in ((-120, 1.0), (-60, 1.0), (0, 9.0), (60, 1.0), (120, 1.0))))
    assert profiler.drift_factors(out, rows, reference="spike.jsonl").tolist() == [1.0, 1.0]
    assert profiler.drift_factors(out, rows[:1], reference="spike.jsonl", window_s=0).tolist() == [9.0]


def test_cli_builds_a_dataset(tmp_path, tiny, capsys):
    out = tmp_path / "ds"
    args = ["profile", "--families", "tiny_a,tiny_b", "--per-family", "1", "--out", str(out), "--rounds", "2",
            "--runs", "2", "--warmup", "0", "--quiet"]
    assert profile_main(args) == 0
    assert "2 measured, 0 failed, 0 already" in capsys.readouterr().out
    assert [json.loads(s)["after"] for s in lines(out / "reference.jsonl")] == [0, 2]  # default: every 50, and the end
    assert profile_main(args) == 0
    assert "0 measured, 0 failed, 2 already" in capsys.readouterr().out
    assert profile_main(args[:-1] + ["--per-family", "2", "--reference-every", "1", "--quiet"]) == 0
    assert [json.loads(s)["after"] for s in lines(out / "reference.jsonl")] == [0, 2, 0, 1, 2]


def test_the_command_line_loads_no_onnx_until_a_profile_runs(capsys):
    """`nnformer profile --help` takes its defaults from the profiler itself, without loading ONNX or ONNX Runtime."""
    import subprocess
    import sys

    code = ("import sys\nfrom nnformer.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert probe.stdout.strip() == "[]", probe.stderr
    assert profile_main(["profile", "--help"]) == 0
    assert f"(default {profiler.REFERENCE_EVERY}; 0: off)" in " ".join(capsys.readouterr().out.split())


def test_cli_registers_on_any_subparsers():
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    a = p.parse_args(["profile", "m.onnx", "--threads", "4"])
    assert a.model == "m.onnx" and a.threads == 4 and a.batch is None and callable(a.func)


@pytest.mark.parametrize("args, needle", [
    (["profile", "missing.onnx", "--runs", "1", "--rounds", "1"], "no ONNX file at missing.onnx"),
    (["profile", "--per-family", "1"], "profile needs an ONNX file"),
    (["profile", "--families", "lenet", "--per-family", "1", "--out", "o"], "unknown model family 'lenet'"),
])
def test_cli_errors_are_one_line_exit_2(args, needle, tmp_path):
    r = subprocess.run([sys.executable, "-m", "nnformer", *args], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr


def test_without_onnx_runtime_nothing_is_left_behind(tmp_path, tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails, as when not installed
    out = tmp_path / "sub" / "ds"
    assert profile_main(["profile", "--families", "tiny_a", "--per-family", "1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "timing needs the 'onnxruntime' package" in err
    with pytest.raises(OnnxError, match="onnxruntime"):
        profiler.profile_dataset(["tiny_a"], 1, out, progress=False, **FAST)
    assert list(tmp_path.iterdir()) == []  # no --out directory, nor its parent
