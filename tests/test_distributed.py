"""DistributedDataParallel on CPU: torchrun with 2 gloo processes trains to the same weights on every rank and to
about the same tau as one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = """
import json, sys, numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {repo!r})
import torch.distributed as dist
from tests.test_train import GRAPHS, Y
from nnformer.batching import EncodedGraphs
from nnformer.metrics import kendall_tau
from nnformer.model import NNFormerConfig
from nnformer.train import TrainConfig, fit, predict_encoded
world = int(__import__("os").environ.get("WORLD_SIZE", 1))
if world > 1:
    dist.init_process_group("gloo")
rank = dist.get_rank() if world > 1 else 0
cfg = TrainConfig(epochs=30, batch_size=32, lr=2e-3, w_cons=0.0, eval_every=10, seed=0)
res = fit(NNFormerConfig(n_layers=2, dim=32), cfg, EncodedGraphs(GRAPHS), Y, progress=False)
torch.save(res.model.state_dict(), sys.argv[1] + f".rank{{rank}}.pt")
tau = kendall_tau(predict_encoded(res.model, EncodedGraphs(GRAPHS)), Y)
open(sys.argv[1] + f".rank{{rank}}.json", "w").write(json.dumps({{"tau": tau, "world": world}}))
if world > 1:
    dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    repo = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT.format(repo=repo))
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    subprocess.run([sys.executable, str(script), str(tmp_path / "single")], check=True, env=env, timeout=300)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                        str(script), str(tmp_path / "ddp")], env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    w0 = torch.load(tmp_path / "ddp.rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "ddp.rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "ranks diverged"
    single = json.loads((tmp_path / "single.rank0.json").read_text())["tau"]
    ddp = json.loads((tmp_path / "ddp.rank0.json").read_text())
    assert ddp["world"] == 2
    assert single > 0.7
    assert abs(ddp["tau"] - single) < 0.05, (ddp["tau"], single)
