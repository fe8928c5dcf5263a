import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nnformer.errors import CheckpointError
from nnformer.model import NNFormer, NNFormerConfig, param_groups
from nnformer.predictor import Predictor
from nnformer.spaces.nb201 import all_arch_strs, arch_to_graph
from nnformer.train import TrainConfig, ema_update, lr_factor, make_optimizer, nnformer_loss

GRAPHS = [arch_to_graph(s) for s in list(all_arch_strs())[::97]]  # 162 cells of every size
Y = np.array([g.num_nodes / 10 + 0.01 * g.ops.count("nor_conv_3x3") for g in GRAPHS])


def test_loss_terms():
    pred = torch.tensor([0.5, 0.7, 0.4, 0.6])  # pass 1 = [0.5, 0.7], pass 2 = [0.4, 0.6]
    y = torch.tensor([0.6, 0.6, 0.6, 0.6])
    perm = torch.tensor([1, 0, 3, 2])
    total, parts = nnformer_loss(pred, y, w_rank=0.2, w_cons=1.0, perm=perm)
    mse = ((0.1 ** 2) * 2 + 0.2 ** 2 + 0.0) / 4
    rank = (0.2 + 0.2 + 0.2 + 0.2) / 4  # |(p_i - p_perm(i)) - (y_i - y_perm(i))| = |p_i - p_perm(i)|
    cons = (0.1 + 0.1) / 2
    assert parts["mse"] == pytest.approx(mse)
    assert parts["rank"] == pytest.approx(rank)
    assert parts["cons"] == pytest.approx(cons)
    assert total.item() == pytest.approx(mse + 0.2 * rank + cons)
    total, parts = nnformer_loss(pred, y, w_rank=0.0, w_cons=0.0, perm=perm)
    assert total.item() == pytest.approx(mse) and parts["cons"] == 0


def test_rank_term_ignores_a_common_shift():
    y = torch.tensor([0.1, 0.5, 0.9])
    _, parts = nnformer_loss(y + 0.3, y, 0.2, 0.0, perm=torch.tensor([2, 0, 1]))
    assert parts["rank"] == pytest.approx(0.0, abs=1e-7)
    assert parts["mse"] == pytest.approx(0.09)


def test_lr_schedule_warmup_then_cosine():
    total = 1000
    f = [lr_factor(s, total, 0.1, 0.1) for s in range(total)]
    assert f[0] == pytest.approx(1 / 100) and f[99] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(f[:100], f[1:100]))
    assert all(a >= b for a, b in zip(f[100:], f[101:]))
    assert f[-1] == pytest.approx(0.1, abs=1e-4)
    mid = 100 + 450
    assert f[mid] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)), abs=1e-3)


def test_ema_update():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    ema_update(a, b, 0.99)
    assert torch.allclose(a.weight, 0.99 * before + 0.01 * b.weight)


def test_make_optimizer_steps_like_plain_adamw():
    """The fused/multi-tensor AdamW takes the same steps as the per-tensor reference (weight decay groups too)."""
    from nnformer.batching import EncodedGraphs

    torch.manual_seed(0)
    a = NNFormer(NNFormerConfig(n_layers=2, dim=16))
    b = NNFormer(NNFormerConfig(n_layers=2, dim=16))
    b.load_state_dict(a.state_dict())
    start = {k: v.clone() for k, v in a.state_dict().items()}
    fast, ref = make_optimizer(a, 1e-2, 0.01), torch.optim.AdamW(param_groups(b, 0.01), lr=1e-2, foreach=False)
    batch, y = EncodedGraphs(GRAPHS[:16]).batch(np.arange(16)), torch.as_tensor(Y[:16], dtype=torch.float32)
    for model, opt in ((a, fast), (b, ref)):
        model.eval()  # no dropout: both compute the same function
        for _ in range(3):
            opt.zero_grad()
            ((model(batch) - y) ** 2).mean().backward()
            opt.step()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6), name
    assert not torch.allclose(a.state_dict()["blocks.0.attn.qkv.weight"], start["blocks.0.attn.qkv.weight"])


def small_predictor(**train):
    cfg = dict(epochs=6, batch_size=32, lr=2e-3, eval_every=2, seed=1) | train
    return Predictor(network=NNFormerConfig(n_layers=1, dim=16), train=TrainConfig(**cfg), progress=False)


def test_same_seed_same_numbers_and_save_load_round_trip(tmp_path):
    p = small_predictor().fit(GRAPHS, Y, GRAPHS[:40], Y[:40])
    q = small_predictor().fit(GRAPHS, Y, GRAPHS[:40], Y[:40])
    pred = p.predict(GRAPHS)
    assert np.array_equal(pred, q.predict(GRAPHS))
    path = p.save(tmp_path / "p.pt")
    r = Predictor.load(path)
    assert np.array_equal(r.predict(GRAPHS), pred)
    assert r.model_config_ == p.model_config_ and r.history_ == p.history_
    assert len(p.history_) == 3 and all("val_tau" in h for h in p.history_)


def test_percent_labels_are_scaled():
    p = small_predictor(epochs=2).fit(GRAPHS, Y * 100)
    assert p.scale_ == 0.01
    assert 10 < np.median(p.predict(GRAPHS)) < 100


def test_nan_label_is_refused():
    from nnformer.errors import DataError

    y = Y.copy()
    y[3] = np.nan
    with pytest.raises(DataError, match="label 3"):
        small_predictor().fit(GRAPHS, y)


def test_tampered_or_foreign_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        Predictor.load(bad)
    torch.save({"x": 1}, tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Predictor.load(tmp_path / "cut.pt")
    torch.save({"x": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an nnformer checkpoint"):
        Predictor.load(tmp_path / "foreign.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model_config": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="never unpickled") as e:  # weights_only=True refuses to run code
        Predictor.load(tmp_path / "evil.pt")
    assert "\n" not in str(e.value) and len(str(e.value)) < 300  # one short line, not torch's advice


RUN = """
import sys, numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {repo!r})
from tests.test_train import GRAPHS, Y
from nnformer.batching import EncodedGraphs
from nnformer.model import NNFormerConfig
from nnformer.train import TrainConfig, fit
cfg = TrainConfig(epochs=40, batch_size=16, lr=2e-3, eval_every=1, seed=3)
res = fit(NNFormerConfig(n_layers=2, dim=32), cfg, EncodedGraphs(GRAPHS), Y, EncodedGraphs(GRAPHS[:30]), Y[:30],
          checkpoint=sys.argv[1], progress=False)
torch.save(res.model.state_dict(), sys.argv[2])
"""


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_final_weights(tmp_path):
    repo = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "run.py"
    script.write_text(RUN.format(repo=repo))
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run([sys.executable, str(script), str(tmp_path / "a.ck"), str(tmp_path / "a.pt")], check=True,
                   env=env)
    ck = tmp_path / "b.ck"
    proc = subprocess.Popen([sys.executable, str(script), str(ck), str(tmp_path / "b.pt")], env=env)
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "b.pt").exists()
    epoch_at_kill = torch.load(ck, weights_only=True)["train_state"]["epoch"]
    assert 1 <= epoch_at_kill < 40
    subprocess.run([sys.executable, str(script), str(ck), str(tmp_path / "b.pt")], check=True, env=env)
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(tmp_path):
    ck = tmp_path / "ck.pt"
    small_predictor(epochs=2).fit(GRAPHS, Y, checkpoint=ck)
    with pytest.raises(CheckpointError, match="other settings"):
        small_predictor(epochs=4, lr=1e-3).fit(GRAPHS, Y, checkpoint=ck)


def test_on_eval_sees_the_ema_model_and_its_time_is_not_training_time():
    from nnformer.batching import EncodedGraphs
    from nnformer.train import fit, predict_encoded

    data = EncodedGraphs(GRAPHS[:64])
    seen = []

    def on_eval(rec, model):
        seen.append((rec["epoch"], predict_encoded(model, data)))
        time.sleep(0.5)

    t = time.perf_counter()
    res = fit(NNFormerConfig(n_layers=1, dim=16), TrainConfig(epochs=4, batch_size=32, lr=2e-3, eval_every=2, seed=0),
              data, Y[:64], EncodedGraphs(GRAPHS[64:96]), Y[64:96], progress=False, on_eval=on_eval)
    wall = time.perf_counter() - t
    assert [e for e, _ in seen] == [2, 4] and all(np.isfinite(p).all() for _, p in seen)
    assert not np.allclose(seen[0][1], seen[1][1])  # the EMA weights moved between the two validations
    assert res.history[-1]["seconds"] < wall - 0.9  # both sleeps left out of the recorded training time


def test_what_on_eval_adds_to_a_record_is_in_the_checkpoint(tmp_path):
    from nnformer.batching import EncodedGraphs
    from nnformer.train import fit, load_checkpoint

    data = EncodedGraphs(GRAPHS[:64])

    def on_eval(rec, model):
        rec["extra"] = rec["epoch"] * 10

    ck = tmp_path / "ck.pt"
    fit(NNFormerConfig(n_layers=1, dim=16), TrainConfig(epochs=4, batch_size=32, lr=2e-3, eval_every=2, seed=0),
        data, Y[:64], EncodedGraphs(GRAPHS[64:96]), Y[64:96], progress=False, on_eval=on_eval, checkpoint=ck)
    history = load_checkpoint(ck)["train_state"]["history"]
    assert [r["extra"] for r in history] == [20, 40]  # the last record too: the checkpoint is written after on_eval


@pytest.mark.parametrize("kw, needle", [({"epochs": 0}, "epochs must be at least 1"), ({"lr": float("nan")}, "lr must"),
                                        ({"ema_decay": 1.0}, "ema_decay"), ({"select": "best"}, "select"),
                                        ({"batch_size": 0}, "batch_size"), ({"w_rank": -0.1}, "w_rank")])
def test_train_config_refuses_impossible_settings(kw, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig(**kw)


@pytest.mark.slow
def test_sigterm_stops_training_like_ctrl_c_and_keeps_the_checkpoint(tmp_path, data_dir):
    """SIGTERM (a scheduler's stop) ends `nnformer train` as Ctrl-C does: exit 130, the progress bar closed before
    one last line, the last checkpoint kept for the rerun, no predictor written."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nnformer", "train", "--n-train", "100", "--out", str(out), "--data-dir",
           str(data_dir), "--set", "epochs=400", "--set", "dim=16", "--set", "n_layers=1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130 and time.monotonic() - t0 < 15
    assert err.splitlines()[-1] == "nnformer: interrupted; rerun the same command to resume"
    assert (out / "checkpoint.pt").is_file() and not (out / "predictor.pt").exists()
