"""Atomic writes, the append-only run store, the one-writer lock and the output checks (nnformer.io)."""

import json
import os
import subprocess
import sys

import pytest

from nnformer.errors import DataError, NNFormerError
from nnformer.io import (JsonlAppender, atomic_open, atomic_write_json, atomic_write_text, check_output_dir,
                         check_output_file, exclusive_lock, read_jsonl, remove_stale_temporaries)


def test_an_atomic_write_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "a" / "out.json"
    atomic_write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_open(target) as f:
            f.write('{"x": 2')  # half of a record, then the writer fails
            raise Boom
    assert json.loads(target.read_text()) == {"x": 1}  # the old file stands
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # no temporary left


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    atomic_write_text(tmp_path / "t.md", "ok")
    (tmp_path / ".tmp-t.md.abc.md").write_text("half")
    (tmp_path / ".tmp-other.csv.x.csv").write_text("half")
    assert remove_stale_temporaries(tmp_path / "t.md") == 1
    assert remove_stale_temporaries(tmp_path, whole_directory=True) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.md"]


def test_the_store_resumes_after_a_torn_line_and_strict_reading_refuses_it(tmp_path):
    path = tmp_path / "runs.jsonl"
    with JsonlAppender(path) as out:
        out.write({"k": 1})
    with open(path, "a") as f:
        f.write('{"k": 2')  # a writer killed mid-line
    assert read_jsonl(path) == [{"k": 1}]
    with pytest.raises(DataError, match="line 2"):
        read_jsonl(path, strict=True)
    with JsonlAppender(path) as out:  # the torn line is cut before the next record
        out.write({"k": 3})
    assert read_jsonl(path, strict=True) == [{"k": 1}, {"k": 3}]


def test_one_writer_per_directory(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from nnformer.io import exclusive_lock\n"
        f"with exclusive_lock({str(tmp_path)!r}, 'sweep'):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataError, match="sweep"):
            with exclusive_lock(tmp_path, "sweep"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_lock(tmp_path, "sweep"):  # free again once its holder is gone
        pass
    assert os.listdir(tmp_path) == []  # the lock leaves no file


def test_output_paths_are_checked_before_any_work(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NNFormerError, match="not a directory"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(NNFormerError, match="is a directory"):
        check_output_file(tmp_path)
    assert check_output_dir(tmp_path / "new" / "dir") and not (tmp_path / "new").exists()  # nothing made


@pytest.mark.parametrize("field,mutate", [
    ("train_op_mix", lambda c: c["train_op_mix"]["mixes"].__setitem__(0, {"onnx:Conv": {}})),
    ("train_op_mix", lambda c: c["train_op_mix"].__setitem__("step", None)),
    ("train_op_mix", lambda c: c["train_op_mix"].__setitem__("within", "x")),
    ("graph_features_norm", lambda c: c["graph_features_norm"]["std"].__setitem__(0, 1e-300)),
    ("graph_features_norm", lambda c: c["graph_features_norm"].__setitem__("mean", [])),
    ("amp", lambda c: c["train_config"].__setitem__("amp", None)),
])
def test_a_resigned_config_with_a_malformed_record_is_refused_on_load(field, mutate, tmp_path):
    """Records that prediction reads later (found by tests/test_fuzz.py) are checked when the predictor loads."""
    from nnformer import predictor
    from nnformer.errors import CheckpointError
    from nnformer.latency.dataset import load_training_set
    from nnformer.predictor import Predictor

    from pathlib import Path

    _, g, ms, _ = load_training_set(Path(__file__).resolve().parents[1] / "datasets" / "here-ort-t1-b1")
    small = sorted(range(len(g)), key=lambda i: g[i].num_nodes)[:6]
    p = Predictor("networks", settings={"steps": 1, "evals": 1, "batch_size": 3, "n_layers": 1, "dim": 16},
                  task="latency", progress=False).fit([g[i] for i in small], ms[small])
    d = p.save(tmp_path / "p")
    cfg = json.loads((d / "config.json").read_text())
    assert "train_op_mix" in cfg and "graph_features_norm" in cfg
    mutate(cfg)
    cfg[predictor.CONFIG_DIGEST] = predictor.config_digest(cfg)  # re-signed: the digest holds, the record does not
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=field):
        Predictor.load(d)
