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
