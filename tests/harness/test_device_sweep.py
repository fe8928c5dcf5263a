"""Leave one device out (nnformer reproduce devices): splits, the checks on the devices, the sweep's records."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnformer.errors import DataError, NNFormerError
from nnformer.harness import device_sweep

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "datasets" / "here-ort-t1-b1"
PROBE = ROOT / "benchmarks" / "results" / "probe" / "here-ort-t1-b1.json"

pytest.importorskip("onnx")


def _device(tmp_path, name: str, factor: float = 1.0, runtime: str | None = None, keep=None) -> Path:
    """The host's 100-model dataset and its probe as a device ``factor`` times slower (``keep``: the ids kept)."""
    from nnformer.latency.probe import load_profile, save_profile

    d = tmp_path / name
    d.mkdir()
    shutil.copy(HERE / "graphs.jsonl.gz", d)
    shutil.copy(HERE / "meta.json", d)
    rows = [json.loads(line) for line in (HERE / "latency.jsonl").read_text().splitlines()]
    with open(d / "latency.jsonl", "w") as f:
        for r in rows:
            if keep is not None and r["id"] not in keep:
                continue
            if r.get("status") == "ok":
                r = {**r, "latency_ms": r["latency_ms"] * factor, "round_ms": [v * factor for v in r["round_ms"]]}
            f.write(json.dumps(r) + "\n")
    prof = load_profile(PROBE)
    refs = [{**r, "latency_ms": r["latency_ms"] * factor} for r in prof.references]
    save_profile(dataclasses.replace(prof, references=refs, runtime=runtime or prof.runtime), d / "probe.json")
    return d


def test_family_holdout_is_a_partition_drawn_by_seed():
    fams = [f"f{i}" for i in range(10) for _ in range(5)]
    index = np.array([k for _ in range(10) for k in range(5)])
    train, cal, test = device_sweep.family_holdout(fams, index, 0)
    assert sorted(np.concatenate([train, cal, test]).tolist()) == list(range(50))
    held = {fams[i] for i in test}
    assert len(held) == 2 and not held & {fams[i] for i in train}
    assert all(index[i] == 4 for i in cal) and len(cal) == 8  # the last model of every training family
    again = device_sweep.family_holdout(fams, index, 0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, cal, test)))
    assert any({fams[i] for i in device_sweep.family_holdout(fams, index, s)[2]} != held for s in range(1, 5))
    with pytest.raises(DataError, match="2 or more"):
        device_sweep.family_holdout(["a", "b", "c", "d", "e"], np.zeros(5, int), 0)  # one model a family


def test_load_devices_refuses_what_cannot_be_compared(tmp_path):
    a = _device(tmp_path, "a")
    with pytest.raises(NNFormerError, match="at least 2 devices"):
        device_sweep.load_devices([a])
    b = _device(tmp_path, "b", 2.0)
    (b / "probe.json").unlink()
    with pytest.raises(DataError, match="no probe.json"):
        device_sweep.load_devices([a, b])
    (b / "probe.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read device profile"):
        device_sweep.load_devices([a, b])
    c = _device(tmp_path, "c", 2.0, runtime="openvino")
    with pytest.raises(DataError, match="is not the device of"):
        device_sweep.load_devices([a, c])
    rows = [json.loads(line) for line in (HERE / "latency.jsonl").read_text().splitlines()]
    d = _device(tmp_path, "d", 2.0, keep={rows[0]["id"], rows[1]["id"]})
    data = device_sweep.load_devices([a, d])
    assert data.ids == sorted([rows[0]["id"], rows[1]["id"]])  # only the models measured on both
    assert np.allclose(data.devices[1].ms, 2 * data.devices[0].ms)


def test_sweep_scores_each_held_out_device_and_resumes(tmp_path):
    """A device twice as slow, probe included, is predicted with the same relative error as the host itself by a
    fit of the host's labels put on it by the probe's scale factor; rerunning stores nothing new."""
    a, b = _device(tmp_path, "a"), _device(tmp_path, "b", 2.0)
    data = device_sweep.load_devices([a, b])
    out = tmp_path / "out"
    methods = ["flops-linear", "op-sum", "roofline", "flops-linear-own", "op-sum-own"]
    recs = device_sweep.sweep(data, [a, b], methods, [0], "networks", out, progress=False)
    assert [(r["method"], r["held"]) for r in recs] == [(m, h) for h in "ab" for m in methods]
    by = {(r["method"], r["held"]): r for r in recs}
    assert by["flops-linear", "a"]["source"] == "b" and by["flops-linear", "b"]["source"] == "a"
    assert by["flops-linear", "a"]["mape"] == pytest.approx(by["flops-linear", "b"]["mape"], rel=1e-6)
    assert by["op-sum", "a"]["mape"] == pytest.approx(by["op-sum", "b"]["mape"], rel=1e-4)
    assert by["op-sum", "a"]["mape"] != pytest.approx(by["flops-linear", "a"]["mape"], rel=1e-2)
    assert by["roofline", "a"]["mape"] == pytest.approx(by["roofline", "b"]["mape"], rel=1e-3)
    assert 0 < by["flops-linear", "a"]["interval"]["coverage"] <= 100
    # trained on the held-out device itself, no probe: a device twice as slow is fitted as well as the host
    assert by["flops-linear-own", "a"]["source"] == "a" and by["op-sum-own", "b"]["source"] == "b"
    assert by["flops-linear-own", "a"]["mape"] == pytest.approx(by["flops-linear-own", "b"]["mape"], rel=1e-6)
    assert by["flops-linear-own", "a"]["mape"] != pytest.approx(by["flops-linear", "a"]["mape"], rel=1e-3)
    assert by["op-sum-own", "a"]["mape"] == pytest.approx(by["op-sum-own", "b"]["mape"], rel=1e-4)
    assert 0 < by["op-sum-own", "a"]["interval"]["coverage"] <= 100
    assert len(by["flops-linear", "a"]["test_families"]) == 2  # a fifth of the 10 families
    lines = (out / "runs.jsonl").read_text().splitlines()
    again = device_sweep.sweep(data, [a, b], methods, [0], "networks", out, progress=False)
    assert again == recs and (out / "runs.jsonl").read_text().splitlines() == lines
    written = device_sweep.write_tables(recs, out / "table", "cmd")
    assert all(p.is_file() for p in written)
    md = (out / "table.md").read_text()
    assert "| a | roofline sum" in md and "Command: `cmd`" in md and "## Targets" not in md  # no meta-trained runs
    # the lowest MAPE per family is counted among methods of a kind: a transfer method and an own one each win some
    shares = {(row.split(",")[0], row.split(",")[1]): float(row.split(",")[-1])
              for row in (out / "table.csv").read_text().splitlines()[1:]}
    for h in "ab":
        assert sum(v for (m, hh), v in shares.items() if hh == h and m.endswith("-own")) == pytest.approx(1.0)
        assert sum(v for (m, hh), v in shares.items() if hh == h and not m.endswith("-own")) == pytest.approx(1.0)
    with pytest.raises(NNFormerError, match="not one of the devices"):
        device_sweep.sweep(data, [a, b], ["roofline"], [0], "networks", out, held=["c"], progress=False)
    # the runs hold for this list of devices: another list, or the same in another order, is refused in one line
    stored = json.loads((out / "devices.json").read_text())
    assert stored["devices"] == ["a", "b"] and stored["data"] == device_sweep.fingerprints(data)
    assert stored["data"]["a"] != stored["data"]["b"]  # b's latencies are twice a's
    for paths in ([b, a], [a, b, _device(tmp_path, "c", 0.5)]):
        with pytest.raises(NNFormerError, match="holds a sweep over the devices a, b") as e:
            device_sweep.sweep(device_sweep.load_devices(paths), paths, ["roofline"], [0], "networks", out,
                               progress=False)
        assert "\n" not in str(e.value)
    assert (out / "runs.jsonl").read_text().splitlines() == lines  # nothing written
    # ... and for their data: one latency of b changed since, and the store is refused, naming b
    lat = (b / "latency.jsonl").read_text().splitlines()
    first = json.loads(lat[0])
    (b / "latency.jsonl").write_text("\n".join([json.dumps({**first, "latency_ms": first["latency_ms"] * 1.5}),
                                                *lat[1:]]) + "\n")
    changed = device_sweep.load_devices([a, b])
    with pytest.raises(NNFormerError, match=r"runs made from other data of b \(") as e:
        device_sweep.sweep(changed, [a, b], ["roofline"], [0], "networks", out, progress=False)
    assert "\n" not in str(e.value) and (out / "runs.jsonl").read_text().splitlines() == lines
    # a store written before fingerprints takes those of the data at hand
    (out / "devices.json").write_text(json.dumps({"devices": ["a", "b"]}))
    device_sweep.sweep(changed, [a, b], ["roofline"], [0], "networks", out, progress=False)
    assert json.loads((out / "devices.json").read_text())["data"] == device_sweep.fingerprints(changed)
    (out / "devices.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="is not a device list"):
        device_sweep.sweep(data, [a, b], ["roofline"], [0], "networks", out, progress=False)


@pytest.mark.slow
def test_meta_and_single_device_methods_train_and_share_the_source(tmp_path):
    a, b, c = _device(tmp_path, "a"), _device(tmp_path, "b", 2.0), _device(tmp_path, "c", 0.5)
    data = device_sweep.load_devices([a, b, c])
    out = tmp_path / "out"
    recs = device_sweep.sweep(data, [a, b, c], ["meta-nnformer", "nnformer-scale", "nnformer-line"], [0],
                              "networks", out, settings={"steps": 3, "batch_size": 16}, held=["b", "c"],
                              progress=False)
    assert len(recs) == 6 and all(np.isfinite(r["mape"]) for r in recs)
    assert {r["source"] for r in recs if r["method"].startswith("nnformer")} == {"a"}
    assert [p.name for p in (out / "cache").iterdir() if p.is_dir()] == ["a-seed0"]  # trained once, shared
    meta = [r for r in recs if r["method"] == "meta-nnformer"]
    assert [sorted(r["trained_on"]) for r in meta] == [["a", "c"], ["a", "b"]]
    own = device_sweep.sweep(data, [a, b, c], ["nnformer-own"], [0], "networks", out,
                             settings={"steps": 3, "batch_size": 16}, held=["a"], progress=False)
    assert own[0]["source"] == "a" and np.isfinite(own[0]["mape"]) and "interval" in own[0]
    assert [p.name for p in (out / "cache").iterdir() if p.is_dir()] == ["a-seed0"]  # a's own network, reused
    lines = device_sweep.sweep(data, [a, b, c], ["nnformer-lines"], [0], "networks", out,
                               settings={"steps": 3, "batch_size": 16}, held=["b"], progress=False)[0]
    assert lines["sources"] == ["a", "c"] and np.isfinite(lines["mape"]) and "interval" in lines
    assert sorted(p.name for p in (out / "cache").iterdir() if p.is_dir()) == ["a-seed0", "c-seed0"]


def test_cli_refuses_a_single_device_in_one_line(tmp_path):
    a = _device(tmp_path, "a")
    r = subprocess.run([sys.executable, "-m", "nnformer", "reproduce", "devices", "--data", str(a), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "2 or more latency dataset directories" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
