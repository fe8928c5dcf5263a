import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from nnformer.metrics import acc_within, kendall_tau, mape, spearman_rho, top_k_precision


@pytest.mark.parametrize("seed", range(5))
def test_kendall_and_spearman_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, 300).astype(float)
    b = a + rng.integers(0, 4, 300)
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)
    assert spearman_rho(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert kendall_tau(a, -b) == pytest.approx(-kendall_tau(a, b))


def test_mape_and_acc_within():
    true = np.array([10.0, 20.0, 40.0, 50.0])
    pred = np.array([11.0, 18.0, 40.0, 60.0])
    assert mape(pred, true) == pytest.approx((10 + 10 + 0 + 20) / 4)
    assert acc_within(pred, true, 0.10) == pytest.approx(75.0)  # the 10% errors count as within 10%
    assert acc_within(pred, true, 0.05) == pytest.approx(25.0)


def test_top_k_precision():
    true = np.arange(10.0)
    pred = true.copy()
    pred[9], pred[0] = pred[0], pred[9]
    assert top_k_precision(true, true, 3) == 1.0
    assert top_k_precision(pred, true, 3) == pytest.approx(2 / 3)


@pytest.mark.parametrize("bad", [([1.0, np.nan], [1.0, 2.0]), ([1.0], [1.0]), ([1.0, 2.0], [1.0, 2.0, 3.0])])
def test_invalid_inputs(bad):
    with pytest.raises(ValueError):
        kendall_tau(*bad)


def _tau_b_by_pairs(x, y) -> float:
    """Kendall's tau-b counted pair by pair, independent of scipy: (C - D) / sqrt((n0 - n1)(n0 - n2))."""
    n = len(x)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue  # tied in both: in neither tie count's complement
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / np.sqrt((conc + disc + tx) * (conc + disc + ty))


def test_kendall_tau_is_tau_b_on_small_tied_data():
    x = np.array([1, 2, 2, 3, 4, 4, 4, 5.0])
    y = np.array([2, 1, 3, 3, 5, 4, 4, 6.0])
    assert kendall_tau(x, y) == pytest.approx(_tau_b_by_pairs(x, y), abs=1e-12)
    # by hand: 28 pairs; 1 tied in both (the two (4, 4)), 22 concordant, 1 discordant ((1, 2) vs (2, 1)), 3 tied
    # in x only ((2, 1)-(2, 3), (4, 5)-(4, 4) twice), 1 tied in y only ((2, 3)-(3, 3)): tau-b = 21 / sqrt(26 * 24)
    assert kendall_tau(x, y) == pytest.approx(21 / np.sqrt(26 * 24), abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 4, 12).astype(float), rng.integers(0, 4, 12).astype(float)
        if np.ptp(a) and np.ptp(b):
            assert kendall_tau(a, b) == pytest.approx(_tau_b_by_pairs(a, b), abs=1e-12)


def test_tnasp_split_is_the_index_order():
    from nnformer.protocols import tnasp_split

    s = tnasp_split(15625, 781, 1024)
    assert s.train.tolist() == list(range(781)) and s.val.tolist() == list(range(781, 1805))
    assert len(s.test) == 15625 and not set(s.train) & set(s.val)
    assert len(tnasp_split(100, 90, 1024).val) == 10  # the validation set shrinks to what is left
    for bad in (0, 100):
        with pytest.raises(ValueError, match="n_train"):
            tnasp_split(100, bad)


def test_random_split_is_seeded_disjoint_and_sized():
    from nnformer.protocols import random_split

    a, b, c = random_split(1000, 50, 200, seed=1), random_split(1000, 50, 200, seed=1), random_split(1000, 50, 200)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.train, c.train)
    assert len(a.train) == 50 and len(a.val) == 200 and not set(a.train) & set(a.val)
    assert a.train.tolist() != list(range(50)) and np.all(np.diff(a.train) > 0)
    assert len(random_split(100, 90, 1024).val) == 10


def test_report_carries_every_metric_per_group_and_interval():
    from nnformer.metrics import acc_within, kendall_tau, mape, report, spearman_rho

    rng = np.random.default_rng(0)
    t = rng.uniform(1, 10, 40)
    p = t * rng.uniform(0.8, 1.2, 40)
    fam = np.array(["a", "b"] * 20)
    m = report(p, t, groups=fam, bounds=(t * 0.9, t * 1.1 + (fam == "b"), 90))
    assert m["mape"] == mape(p, t) and m["acc10"] == acc_within(p, t, 0.1) and m["acc5"] == acc_within(p, t, 0.05)
    assert m["tau_test"] == kendall_tau(p, t) and m["spearman_test"] == spearman_rho(p, t) and m["n_test"] == 40
    assert list(m["per_family_mape"]) == ["a", "b"]
    assert m["per_family_mape"]["b"] == mape(p[fam == "b"], t[fam == "b"]) != m["per_family_mape"]["a"]
    assert m["interval"]["coverage"] == 100.0 and m["interval"]["median_width_ratio"] > 1.2
    ranked = report(p, t, ranking_only=True)
    assert np.isnan(ranked["mape"]) and ranked["tau_test"] == m["tau_test"]


def test_flops_linear_recovers_a_power_law_and_extrapolates():
    from nnformer.baselines import FlopsLinear

    rng = np.random.default_rng(1)
    flops, params = rng.uniform(1e6, 1e9, 50), rng.uniform(1e4, 1e7, 50)
    ms = 3e-6 * flops ** 0.8 * params ** 0.1
    x = np.log(np.column_stack([flops, params]))
    f = FlopsLinear().fit(x[:40], ms[:40])
    assert np.allclose(f.coef_[:2], [0.8, 0.1]) and np.allclose(f.predict(x[40:]), ms[40:])
    assert FlopsLinear().fit(x[:, 0], ms).predict(x[:, 0]).shape == (50,)  # one cost: a 1-D array will do


def test_roofline_recovers_a_device_from_sixteen_networks():
    """Networks whose latencies are a known roofline sum (compute-bound and memory-bound operators mixed): the fit
    on 16 of them recovers the constants and predicts networks it did not see, within 1%."""
    from nnformer.baselines import Roofline

    rng = np.random.default_rng(0)
    nets = [(10 ** rng.uniform(3, 8, n), 10 ** rng.uniform(3, 7, n)) for n in rng.integers(5, 200, 40)]
    truth = (2e7, 3e6, 4e-3)  # FLOPs per ms, bytes per ms, ms per operator
    ms = Roofline._ms(nets, truth)
    r = Roofline().fit(nets[:16], ms[:16])
    assert np.allclose(r.predict(nets[16:]), ms[16:], rtol=0.01)
    assert np.allclose(r.constants_, truth, rtol=0.05)


def test_node_costs_read_the_graph_features():
    pytest.importorskip("onnx")
    import torch

    from nnformer.latency.onnx_graph import node_costs, torch_to_graph

    g, static = torch_to_graph(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()), (1, 3, 16, 16))
    flops, mem = node_costs(g)
    assert len(flops) == g.num_nodes and flops.sum() == pytest.approx(static["flops"], rel=1e-3)
    # each operator counts what it reads and writes: a tensor between two operators is counted by both
    assert static["memory_access"] <= mem.sum() <= 2 * static["memory_access"]
