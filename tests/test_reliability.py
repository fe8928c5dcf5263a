"""Every CLI verb against bad output paths, altered inputs and kills at random points.

The fast variant (default) kills each long-running verb once; ``-m slow`` kills training and the sweep at several
seeded random points. After a kill: no file under a final name is half-written, a rerun of the same command gives
the results of an uninterrupted run, and no temporary file is left behind.
"""

import csv
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
TINY = ["--set", "n_layers=1", "--set", "dim=16", "--set", "eval_every=1"]


def cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "nnformer", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=dict(os.environ, PYTHONHASHSEED="0"))


def one_line_error(r, needle):
    assert r.returncode == 2, (r.returncode, r.stderr[-1000:])
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr[-1000:]
    assert needle in r.stderr, r.stderr


def stray(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob(".tmp-*"))


def kill_when(cmd, ready, delay, cwd=None, timeout=300):
    """Start ``nnformer cmd``, wait until ``ready()`` is true, then ``delay`` seconds, and SIGKILL it. Returns
    whether it was killed (False: it finished first)."""
    proc = subprocess.Popen([sys.executable, "-m", "nnformer", *map(str, cmd)], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONHASHSEED="0"))
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from nnformer import Predictor
    from nnformer.baselines import MLPConfig
    from nnformer.spaces.nb201 import arch_to_graph
    from nnformer.train import TrainConfig

    gs = [arch_to_graph(CELL), arch_to_graph("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")]
    p = Predictor(network=MLPConfig(hidden=8, n_layers=1), train=TrainConfig(epochs=1), progress=False)
    return p.fit(gs, [0.9, 0.1]).save(tmp_path_factory.mktemp("ck") / "p.pt")


# ------------------------------------------------------------------------------------------------ bad output paths

@pytest.fixture
def places(tmp_path):
    (tmp_path / "afile").write_text("keep me\n")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize("args, needle", [
    (["train", "--n-train", "10", "--out", "{tmp}/afile"], "exists and is not a directory"),
    (["train", "--n-train", "10", "--out", "/proc/nnformer-test"], "cannot write --out /proc/nnformer-test"),
    (["train", "--n-train", "10", "--out", "{tmp}/afile/sub"], "is a file, not a directory"),
    (["score", "--checkpoint", "{ck}", "--out", "/proc/nnformer-test/x.csv"], "cannot write --out"),
    (["score", "--checkpoint", "{ck}", "--out", "{tmp}/adir"], "is a directory; name a file"),
    (["score", "--checkpoint", "{ck}", "--out", "{tmp}/afile"], "exists and is not a scores CSV"),
    (["reproduce", "accuracy", "--out", "{tmp}/afile"], "exists and is not a directory"),
    (["evaluate", "--checkpoint", "{ck}", "--plot", "/proc/nnformer-test.png"], "cannot write --plot"),
    (["evaluate", "--checkpoint", "{ck}", "--plot", "{tmp}/adir"], "is a directory; name a file"),
    (["profile", "--per-family", "1", "--out", "{tmp}/afile"], "exists and is not a directory"),
    (["data", "download", "--data-dir", "/proc/nnformer-test"], "cannot write --data-dir"),
])
def test_bad_output_paths_are_refused_before_any_work(args, needle, places, checkpoint):
    # --data-dir names an empty folder: had any verb loaded data first, its error would be about the data
    args = [a.format(tmp=places, ck=checkpoint) for a in args]
    if args[0] not in ("data", "profile"):  # profile reads no benchmark data
        args += ["--data-dir", str(places / "adir")]
    r = cli(*args, cwd=places)
    one_line_error(r, needle)
    assert r.stdout == ""
    assert (places / "afile").read_text() == "keep me\n" and not any((places / "adir").iterdir())
    assert not Path("/proc/nnformer-test").exists() and stray(places) == []


# ---------------------------------------------------------------------------------------------- altered inputs

@pytest.mark.slow
def test_an_altered_data_file_is_caught_even_with_a_converted_table_cached(data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data_dir / "nasbench201", data / "nasbench201")
    cache = tmp_path / "cache"
    env = dict(os.environ, NNFORMER_CACHE=str(cache))
    subprocess.run([sys.executable, "-c", f"from nnformer.data.nb201 import load_nb201; load_nb201({str(data)!r})"],
                   check=True, env=env)
    assert list(cache.rglob("nb201_*.npz"))  # the converted table is cached
    f = data / "nasbench201" / "cifar10_avg.csv"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 1  # one flipped bit
    f.write_bytes(bytes(raw))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "nnformer", "train", "--n-train", "10", "--out", str(out),
                        "--data-dir", str(data), "--quiet"], capture_output=True, text=True, env=env)
    one_line_error(r, "cifar10_avg.csv has sha256")
    assert "altered or corrupt" in r.stderr and not out.exists()


@pytest.mark.parametrize("content, needle", [
    (b"", "not a PyTorch checkpoint"),
    (b"PK\x03\x04" + b"\x00" * 50, "truncated or corrupt"),
    (None, "truncated or corrupt"),  # a real checkpoint cut in half
])
def test_unreadable_checkpoints_are_one_line_for_every_verb(content, needle, tmp_path, checkpoint):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content if content is not None else checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    for args in (["predict", "--checkpoint", bad, CELL], ["evaluate", "--checkpoint", bad],
                 ["score", "--checkpoint", bad, "--out", tmp_path / "s.csv"]):
        one_line_error(cli(*args, "--data-dir", tmp_path) if args[0] != "predict" else cli(*args), needle)
    assert not (tmp_path / "s.csv").exists()


def test_a_checkpoint_of_another_op_vocabulary_refuses_other_ops(tmp_path, checkpoint):
    r = cli("predict", "--checkpoint", checkpoint, "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    one_line_error(r, "unknown NAS-Bench-201 op 'conv_5x5'")


@pytest.mark.slow
def test_a_stale_temporary_checkpoint_is_removed_by_the_rerun(data_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".tmp-checkpoint.pt.abc123.pt").write_bytes(b"x" * 1000)  # what a kill during a checkpoint write leaves
    r = cli("train", "--n-train", "20", "--n-val", "20", "--set", "epochs=2", *TINY, "--out", out, "--data-dir",
            data_dir, "--quiet")
    assert r.returncode == 0, r.stderr
    assert stray(out) == [] and (out / "metrics.json").is_file()


def test_a_failed_download_leaves_no_folder(tmp_path, monkeypatch):
    import urllib.request

    from nnformer.data.registry import download
    from nnformer.errors import DataError

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="could not download"):
        download(["nasbench201/cifar10_avg.csv"], empty, progress=False)
    assert list(empty.iterdir()) == []


# ---------------------------------------------------------------------------------------------- kills and reruns

def _train_args(out, data_dir, epochs=40):
    return ["train", "--n-train", "60", "--n-val", "40", "--set", f"epochs={epochs}", *TINY, "--out", out,
            "--data-dir", data_dir, "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted_train(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    r = cli(*_train_args(out, data_dir))
    assert r.returncode == 0, r.stderr
    return out


def _complete_or_absent(out: Path) -> None:
    """Every file under its final name is whole: it loads."""
    from nnformer import Predictor

    if (out / "metrics.json").exists():
        json.loads((out / "metrics.json").read_text())
    if (out / "predictions.npy").exists():
        assert np.load(out / "predictions.npy").shape == (15625,)
    for name in ("predictor.pt", "checkpoint.pt"):
        if (out / name).exists():
            Predictor.load(out / name)


def _kill_and_resume_training(data_dir, out, whole, delay):
    ck = out / "checkpoint.pt"
    killed = kill_when(_train_args(out, data_dir), ck.exists, delay)
    _complete_or_absent(out)
    finished = (out / "metrics.json").exists()  # killed after its last write: the rerun has nothing to resume
    elapsed = 0.0
    if ck.exists():
        import torch

        elapsed = torch.load(ck, weights_only=True)["train_state"]["elapsed"]
    r = cli(*_train_args(out, data_dir))
    assert r.returncode == 0, r.stderr
    assert (out / "predictions.npy").read_bytes() == (whole / "predictions.npy").read_bytes()
    m, w = json.loads((out / "metrics.json").read_text()), json.loads((whole / "metrics.json").read_text())
    assert m["tau_test"] == w["tau_test"] and m["best_epoch"] == w["best_epoch"]
    if killed and elapsed and not finished:
        assert m["restarts"] == 1 and m["train_seconds"] >= elapsed  # the time before the kill is counted
    assert stray(out) == []
    return killed


@pytest.mark.slow
def test_training_killed_resumes_to_the_same_predictions(data_dir, tmp_path, uninterrupted_train):
    assert _kill_and_resume_training(data_dir, tmp_path / "run", uninterrupted_train, 0.3), \
        "the run finished before it could be killed"
    # a rerun of the finished run keeps its record as it is
    before = (tmp_path / "run" / "metrics.json").read_bytes()
    r = cli(*_train_args(tmp_path / "run", data_dir))
    assert r.returncode == 0 and "nothing to do" in r.stderr
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_training_killed_at_random_points(data_dir, tmp_path, uninterrupted_train, seed):
    delay = random.Random(seed).uniform(0.0, 4.0)
    _kill_and_resume_training(data_dir, tmp_path / "run", uninterrupted_train, delay)


@pytest.mark.slow
def test_scoring_killed_leaves_no_partial_csv(data_dir, tmp_path, checkpoint):
    whole = tmp_path / "whole.csv"
    args = ["score", "--checkpoint", checkpoint, "--chunk", "500", "--data-dir", data_dir, "--quiet", "--out"]
    assert cli(*args, whole).returncode == 0
    out = tmp_path / "scores.csv"
    temps = lambda: list(tmp_path.glob(".tmp-scores.csv.*"))  # noqa: E731
    kill_when(args + [out], lambda: bool(temps()), 0.2)
    assert not out.exists() or out.read_bytes() == whole.read_bytes()  # never half a CSV under the final name
    assert cli(*args, out).returncode == 0
    assert out.read_bytes() == whole.read_bytes() and stray(tmp_path) == []
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 15625


def _sweep_args(out, data_dir):
    return ["reproduce", "accuracy", "--space", "nb201", "--methods", "mlp,flops", "--ns", "40,80", "--seeds", "2",
            "--set", "epochs=30", "--out", out, "--data-dir", data_dir, "--quiet", "--threads", "1"]


def _tau_columns(table: Path) -> list[tuple]:
    with open(table) as f:
        return [(r["method"], r["n_train"], r["k"], r["tau_test_mean"], r["tau_test_std"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted_sweep(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert cli(*_sweep_args(out, data_dir)).returncode == 0
    return next(out.rglob("table.csv"))


def _kill_and_resume_sweep(data_dir, out, whole, delay):
    store = out / "nb201-cifar10" / "scaled-epochs30" / "runs.jsonl"
    killed = kill_when(_sweep_args(out, data_dir), store.exists, delay)
    from nnformer.io import read_jsonl

    read_jsonl(store)  # whole lines, at most a torn last one
    assert cli(*_sweep_args(out, data_dir)).returncode == 0
    assert _tau_columns(store.parent / "table.csv") == _tau_columns(whole)
    assert len(store.read_text().splitlines()) == 6 and stray(out) == []  # mlp: 2 N x 2 seeds; flops: 2 N
    return killed


@pytest.mark.slow
def test_sweep_killed_resumes_to_the_same_table(data_dir, tmp_path, uninterrupted_sweep):
    assert _kill_and_resume_sweep(data_dir, tmp_path, uninterrupted_sweep, 0.5), "the sweep finished first"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_sweep_killed_at_random_points(data_dir, tmp_path, uninterrupted_sweep, seed):
    _kill_and_resume_sweep(data_dir, tmp_path, uninterrupted_sweep, random.Random(seed).uniform(0.0, 3.0))


def _graph_ids(out: Path) -> dict:
    from nnformer.latency.profiler import read_graphs

    return {k: hashlib.sha256(json.dumps(v["graph"] if "graph" in v else v, sort_keys=True).encode()).hexdigest()
            for k, v in read_graphs(out).items()}


@pytest.mark.slow
def test_profiling_killed_resumes_without_losing_or_doubling_a_model(tmp_path):
    args = ["profile", "--families", "nb201", "--per-family", "4", "--rounds", "2", "--runs", "3", "--warmup", "1",
            "--quiet", "--out"]
    whole = tmp_path / "whole"
    assert cli(*args, whole).returncode == 0
    out = tmp_path / "ds"
    kill_when(args + [out], lambda: (out / "latency.jsonl").exists(), 0.1)
    r = cli(*args, out)
    assert r.returncode == 0, r.stderr
    from nnformer.io import read_jsonl

    ids = [r["id"] for r in read_jsonl(out / "latency.jsonl")]
    assert sorted(ids) == sorted(r["id"] for r in read_jsonl(whole / "latency.jsonl")) and len(set(ids)) == len(ids)
    assert _graph_ids(out) == _graph_ids(whole)  # the same seeded models, whatever the kill interrupted
    assert stray(out) == []
