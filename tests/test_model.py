import numpy as np
import pytest
import torch

from nnformer.batching import EncodedGraphs
from nnformer.graph import ArchGraph
from nnformer.model import ASMA, BGIFFN, Dropout, NNFormer, NNFormerConfig, attention_bias, param_groups, token_masks
from nnformer.spaces.nb201 import arch_to_graph

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_3x3~2|",
]
SMALL = dict(n_layers=2, dim=32, dropout=0.0)


def test_released_configuration_has_published_parameter_count():
    assert sum(p.numel() for p in NNFormer(NNFormerConfig()).parameters()) == 4_934_081


def test_bgiffn_matches_its_formula():
    torch.manual_seed(0)
    cfg = NNFormerConfig(dim=4, n_heads=4, mlp_ratio=2.0, dropout=0.0)
    ffn = BGIFFN(cfg).eval()
    x = torch.randn(1, 3, 4)
    adj = torch.tensor([[[0.0, 1, 1], [0, 0, 1], [0, 0, 0]]])
    W1, Wg, W2 = ffn.fc1.weight, ffn.gate.weight, ffn.fc2.weight
    out = ffn(x, adj)[0]
    x0 = x[0]
    g = x0 @ Wg.T
    g1, g2 = g[:, :4], g[:, 4:]
    expected = torch.zeros(3, 4)
    for i in range(3):
        # forward half sums g1 of successors j (adj[i, j] = 1); backward half sums g2 of predecessors
        fwd = sum((g1[j] for j in range(3) if adj[0, i, j]), torch.zeros(4))
        bwd = sum((g2[j] for j in range(3) if adj[0, j, i]), torch.zeros(4))
        h = x0[i] @ W1.T + torch.cat([fwd, bwd])
        expected[i] = torch.relu(h) @ W2.T
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["ffn", "forward", "backward"])
def test_ffn_ablations(mode):
    cfg = NNFormerConfig(dim=8, mlp_ratio=2.0, dropout=0.0, ffn_mode=mode)
    ffn = BGIFFN(cfg).eval()
    x = torch.randn(1, 3, 8)
    adj = torch.tensor([[[0.0, 1, 0], [0, 0, 1], [0, 0, 0]]])
    base = torch.relu(x @ ffn.fc1.weight.T)
    if mode == "ffn":
        assert ffn.gate is None
        assert torch.allclose(ffn(x, adj), base @ ffn.fc2.weight.T, atol=1e-6)
    else:
        a = adj if mode == "forward" else adj.transpose(1, 2)
        h = x @ ffn.fc1.weight.T + a @ (x @ ffn.gate.weight.T)
        assert torch.allclose(ffn(x, adj), torch.relu(h) @ ffn.fc2.weight.T, atol=1e-6)


@pytest.mark.parametrize("mask_mode", ["paper", "released", "global", "adjacency"])
@pytest.mark.parametrize("heads", [4, 8])
def test_padded_batch_equals_single_graphs(mask_mode, heads):
    torch.manual_seed(0)
    model = NNFormer(NNFormerConfig(**SMALL, n_heads=heads, mask_mode=mask_mode)).eval()
    graphs = [arch_to_graph(c) for c in CELLS]
    data = EncodedGraphs(graphs)
    with torch.no_grad():
        batched = model(data.batch(range(len(graphs))))  # sizes 8, 3, 2, 5 padded to 8
        single = torch.stack([model(data.batch([i]))[0] for i in range(len(graphs))])
    assert torch.isfinite(batched).all()
    assert torch.allclose(batched, single, atol=1e-5)


def test_prediction_invariant_to_node_relabelling():
    torch.manual_seed(0)
    model = NNFormer(NNFormerConfig(**SMALL)).eval()
    g = arch_to_graph(CELLS[0])
    perm = np.random.default_rng(0).permutation(g.num_nodes)
    h = ArchGraph([g.ops[p] for p in perm], g.adj[np.ix_(perm, perm)], depth=g.depth)
    assert not np.array_equal(h.adj, g.adj)
    with torch.no_grad():
        a, b = model(EncodedGraphs([g]).batch([0])), model(EncodedGraphs([h]).batch([0]))
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("heads", [4, 8])
def test_asma_matches_a_head_by_head_reference(heads):
    """Head h uses ASMA mask h // (heads / 4), with its own slices of the q/k/v and output weights."""
    torch.manual_seed(0)
    cfg = NNFormerConfig(n_layers=1, dim=32, n_heads=heads, dropout=0.0)
    batch = EncodedGraphs([arch_to_graph(c) for c in CELLS]).batch(np.arange(len(CELLS)))
    att = ASMA(cfg).eval()
    x = torch.randn(len(CELLS), batch.ops.shape[1] + 2, cfg.dim)
    masks = token_masks(batch, "paper")
    hd, G = cfg.dim // heads, heads // 4
    Wq, Wk, Wv = att.qkv.weight.split(cfg.dim)
    heads_out = []
    for h in range(heads):
        sl = slice(h * hd, (h + 1) * hd)
        s = (x @ Wq[sl].T) @ (x @ Wk[sl].T).transpose(1, 2) / hd ** 0.5
        s = s.masked_fill(~masks[:, h // G], float("-inf"))
        heads_out.append(s.softmax(-1) @ (x @ Wv[sl].T))
    ref = torch.cat(heads_out, -1) @ att.proj.weight.T
    bias = attention_bias(batch, cfg, x.dtype)
    assert bias.shape == (len(CELLS), heads, x.shape[1], x.shape[1])
    torch.testing.assert_close(att(x, bias), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(att(x, bias, n_query=1), ref[:, :1], rtol=1e-5, atol=1e-6)
    # the mask matters: a head-agnostic (global) bias gives another answer
    assert not torch.allclose(att(x, torch.zeros_like(bias)), ref, atol=1e-4)


@pytest.mark.parametrize("rng", ["pcg64", "mt19937"])
def test_dropout_rate_scale_and_relu_fusion(rng):
    d = Dropout(0.1, rng).train()
    x = torch.randn(200_000, requires_grad=True)
    torch.manual_seed(3)
    y = d(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.1) < 0.003
    scale = 1 / (1 - 6554 / 65536)  # 0.1 rounded to 16-bit draws
    torch.testing.assert_close(y[kept], x[kept] * scale, rtol=0, atol=0)
    # ReLU + dropout in one mask: same values and gradients as the two steps, from the same draws
    g = torch.randn_like(x)
    torch.manual_seed(4)
    a = d(torch.relu(x))
    ga, = torch.autograd.grad(a, x, g)
    torch.manual_seed(4)
    b = d.after_relu(x)
    gb, = torch.autograd.grad(b, x, g)
    assert torch.equal(a, b) and torch.equal(ga, gb) and (b[x.detach() <= 0] == 0).all()
    # torch's seed fixes the draws; a new seed gives new ones
    torch.manual_seed(4)
    assert torch.equal(d.after_relu(x), b)
    assert not torch.equal(d.after_relu(x), b)
    d.eval()
    assert torch.equal(d(x), x) and torch.equal(d.after_relu(x), torch.relu(x))


def test_dropout_streams():
    """mt19937 is torch's stream as drawn before pcg64 became the default (the cached results' stream): two 16-bit
    draws per 32-bit call, keep where the draw >= round(p * 65536) - 32768. pcg64 draws another stream."""
    x = torch.randn(4, 1001)
    torch.manual_seed(7)
    bits = torch.randint(-(2 ** 31), 2 ** 31 - 1, ((x.numel() + 1) // 2,), dtype=torch.int32)
    keep = bits.view(torch.int16)[:x.numel()].view(x.shape) >= 6554 - 32768
    ref = torch.where(keep, x * (1 / (1 - 6554 / 65536)), 0.0)
    torch.manual_seed(7)
    out = Dropout(0.1, "mt19937").train()(x)
    assert torch.equal(out, ref)
    torch.manual_seed(7)
    other = Dropout(0.1, "pcg64").train()(x)
    assert not torch.equal((other != 0), (out != 0))
    with pytest.raises(ValueError, match="dropout_rng"):
        NNFormerConfig(dropout_rng="xorshift")


def test_masks_change_the_output():
    """The same weights under each mask mode give outputs apart by far more than float rounding (~1e-7 here).
    The initialisation's small weights would hide it (outputs then differ in the 7th digit), so the weights are
    drawn wider, as a trained network's are."""
    g = EncodedGraphs([arch_to_graph(CELLS[0])]).batch([0])
    outs = {}
    for mode in ("paper", "released", "global", "adjacency"):
        torch.manual_seed(0)
        model = NNFormer(NNFormerConfig(**SMALL, mask_mode=mode)).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3)
            outs[mode] = model(g).item()
    values = sorted(outs.values())
    assert min(b - a for a, b in zip(values, values[1:])) > 1e-4, outs


@pytest.mark.parametrize("kw", [dict(n_heads=6), dict(n_heads=0), dict(mask_mode="x"), dict(ffn_mode="y"),
                                dict(dim=30, n_heads=8)])
def test_invalid_configs(kw):
    with pytest.raises(ValueError):
        NNFormerConfig(**kw)


def test_head_offset_and_no_decay_groups():
    model = NNFormer(NNFormerConfig(**SMALL))
    decay, no_decay = param_groups(model, 0.01)
    assert all(p.ndim >= 2 for p in decay["params"])
    assert any(p is model.cls for p in no_decay["params"])
    assert all(p.ndim == 1 or p is model.cls for p in no_decay["params"])
    with torch.no_grad():
        model.head.weight.zero_()
        out = model(EncodedGraphs([arch_to_graph(CELLS[1])]).batch([0]))
    assert out.item() == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["gcn", "mlp"])
def test_baselines_train_with_the_shared_loop_and_round_trip(kind, tmp_path):
    from nnformer.baselines import GCNConfig, MLPConfig
    from nnformer.predictor import Predictor
    from nnformer.train import TrainConfig

    graphs = [arch_to_graph(c) for c in CELLS] * 4
    y = np.array([0.9, 0.7, 0.1, 0.8] * 4)
    cfg = GCNConfig(n_layers=2, dim=16) if kind == "gcn" else MLPConfig(hidden=32, n_layers=2)
    p = Predictor(network=cfg, train=TrainConfig(epochs=30, lr=5e-3, batch_size=8, eval_every=10), progress=False)
    p.fit(graphs, y)
    pred = p.predict(graphs)
    # learns the ordering of 4 distinct cells
    assert np.argsort(pred[:4]).tolist() == [2, 1, 3, 0]
    q = Predictor.load(p.save(tmp_path / "b.pt"))
    assert type(q.model_config_) is type(cfg)
    assert np.array_equal(q.predict(graphs), pred)


def test_gcn_is_padding_invariant():
    from nnformer.baselines import GCNConfig, GCNRegressor

    torch.manual_seed(0)
    m = GCNRegressor(GCNConfig(n_layers=2, dim=16, dropout=0.0)).eval()
    data = EncodedGraphs([arch_to_graph(c) for c in CELLS])
    with torch.no_grad():
        batched = m(data.batch(range(4)))
        single = torch.stack([m(data.batch([i]))[0] for i in range(4)])
    assert torch.allclose(batched, single, atol=1e-5)


@pytest.mark.parametrize("ffn_mode", ["bgiffn", "ffn", "forward"])
def test_cls_only_last_block_gives_the_same_prediction(ffn_mode):
    torch.manual_seed(0)
    model = NNFormer(NNFormerConfig(**SMALL, ffn_mode=ffn_mode)).eval()
    b = EncodedGraphs([arch_to_graph(c) for c in CELLS]).batch(range(4))
    with torch.no_grad():
        full = model.head(model.encode(b)[:, 0]).squeeze(-1) + 0.5
        assert torch.allclose(model(b), full, atol=1e-6)


def test_chunked_inference_equals_one_pass():
    torch.manual_seed(0)
    model = NNFormer(NNFormerConfig(**SMALL)).eval()
    b = EncodedGraphs([arch_to_graph(c) for c in CELLS + CELLS[:1]]).batch(range(5))
    whole = model(b).detach()  # grad enabled: one pass, no chunking
    model.infer_chunk_tokens = 20  # 10 tokens per graph: chunks of 2, 2 and 1 graphs
    with torch.no_grad():
        chunked = model(b)
    assert chunked.shape == (5,)
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_gradients_repeat_exactly_on_two_threads():
    """Same batch, same weights: bit-identical gradients every time on 2 CPU threads (the token lookup used to be
    indexing, whose backward sums in a different order from run to run there, so one seed gave two taus)."""
    from nnformer.spaces.nb201 import all_arch_strs

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batch = EncodedGraphs([arch_to_graph(s) for s in list(all_arch_strs())[::61][:256]]).batch(np.arange(256))
        torch.manual_seed(0)
        model = NNFormer(NNFormerConfig(n_layers=2, dim=32, dropout=0.0)).train()
        grads = []
        for _ in range(3):
            model.zero_grad()
            model(batch).square().sum().backward()
            grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert all(torch.equal(a, b) for g in grads[1:] for a, b in zip(grads[0], g))
    finally:
        torch.set_num_threads(threads)
