"""Mixed precision and GPU training.

The first tests run everywhere: CPU bf16 autocast stands in for CUDA's and finds the same dtype clashes (autocast
lowers a GEMM's output to bf16 but leaves in-place ops alone, so BGIFFN's ``baddbmm_`` met an fp32 A; ``--amp``
failed on its first batch until A took the GEMM's dtype). The others need a CUDA device and are skipped without one;
``benchmarks/gpu_check.sh`` runs them on a GPU machine.
"""

import numpy as np
import pytest
import torch

from nnformer.baselines import GCNConfig, MLPConfig
from nnformer.batching import EncodedGraphs
from nnformer.metrics import kendall_tau
from nnformer.model import FFN_MODES, NNFormerConfig
from nnformer.regressors import build_model
from nnformer.predictor import Predictor
from nnformer.train import TrainConfig, fit
from tests.test_train import GRAPHS, Y

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("cfg", [NNFormerConfig(n_layers=2, dim=32, ffn_mode=m) for m in FFN_MODES]
                         + [NNFormerConfig(n_layers=2, dim=32, mask_mode="released"), GCNConfig(), MLPConfig()],
                         ids=[*FFN_MODES, "released-masks", "gcn", "mlp"])
def test_every_network_trains_under_bf16_autocast(cfg):
    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = EncodedGraphs(GRAPHS[:48]).batch(np.arange(48))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(batch).float()
    pred.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert pred.shape == (48,) and torch.isfinite(pred).all()
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(batch).float()
    with torch.no_grad():
        full = model(batch)
    assert (low - full).abs().max() < 0.05  # bf16 keeps 8 bits of mantissa: close, not equal


def _toy_fit(device: str, amp: bool = False, epochs: int = 30, checkpoint=None, on_eval=None):
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=2e-3, w_cons=0.0, eval_every=5, seed=0, device=device,
                      amp=amp)
    return fit(NNFormerConfig(n_layers=2, dim=32), cfg, EncodedGraphs(GRAPHS), Y, checkpoint=checkpoint,
               progress=False, on_eval=on_eval)


@cuda
def test_cuda_forward_matches_cpu():
    torch.manual_seed(0)
    model = build_model(NNFormerConfig(n_layers=4, dim=64)).eval()
    batch = EncodedGraphs(GRAPHS).batch(np.arange(len(GRAPHS)))
    with torch.no_grad():
        cpu = model(batch)
        gpu = model.to("cuda")(batch.to("cuda")).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4), (cpu - gpu).abs().max()


@cuda
def test_cuda_dropout_rate_and_scale():
    from nnformer.model import Dropout

    d = Dropout(0.1).train()
    y = d(torch.ones(1_000_000, device="cuda"))
    kept = (y > 0).float().mean().item()
    assert abs(kept - 0.9) < 0.002
    assert torch.allclose(y[y > 0], torch.tensor(1 / (1 - round(0.1 * 65536) / 65536), device="cuda"))


@cuda
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-amp"])
def test_cuda_training_learns_and_the_predictor_loads_on_cpu(tmp_path, amp):
    train = TrainConfig(epochs=30, batch_size=32, lr=2e-3, w_cons=0.0, eval_every=5, seed=0, device="cuda", amp=amp)
    p = Predictor(network=NNFormerConfig(n_layers=2, dim=32), train=train, progress=False).fit(GRAPHS, Y)
    assert next(p.network_.parameters()).device.type == "cuda"
    on_gpu = p.predict(GRAPHS)
    assert kendall_tau(on_gpu, Y) > 0.7
    q = Predictor.load(p.save(tmp_path / "gpu.pt"))
    assert next(q.network_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(q.predict(GRAPHS), on_gpu, atol=1e-4)
    np.testing.assert_allclose(q.to("cuda").predict(GRAPHS), on_gpu, atol=1e-4)  # (score/evaluate --device cuda)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
@pytest.mark.slow
def test_resume_continues_the_same_run(tmp_path, device):
    """A run stopped after a checkpoint and resumed ends where the uninterrupted run ends (on a GPU, its dropout
    masks come from the GPU's generator, whose state the checkpoint keeps too)."""
    whole = _toy_fit(device, epochs=20).model.state_dict()

    class Stop(Exception):
        pass

    def stop_at_15(rec, model):
        if rec["epoch"] == 15:  # the checkpoint of epoch 10 is on disk, epoch 15's is not yet
            raise Stop

    ck = tmp_path / "ck.pt"
    with pytest.raises(Stop):
        _toy_fit(device, epochs=20, checkpoint=ck, on_eval=stop_at_15)
    assert torch.load(ck, weights_only=True)["train_state"]["epoch"] == 10
    resumed = _toy_fit(device, epochs=20, checkpoint=ck).model.state_dict()
    if device == "cpu":  # bit for bit
        assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    else:  # a GPU's atomics may reorder sums; other dropout masks would move the weights by far more than this
        assert all(torch.allclose(whole[k], resumed[k], atol=1e-3) for k in whole)
