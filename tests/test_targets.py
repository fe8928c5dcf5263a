"""Labels to training targets and back (nnformer.targets): the one road every label takes."""

import numpy as np
import pytest

from nnformer.errors import CheckpointError, DataError
from nnformer.targets import FRACTION_MAX, Target, as_percent


def test_accuracy_in_percent_is_scaled_to_fractions_and_back():
    y = np.array([91.2, 85.0, 40.5])
    t = Target.for_labels("accuracy", y)
    assert t.factor == 0.01 and np.allclose(t.forward(y), y / 100) and np.allclose(t.inverse(t.forward(y)), y)
    assert Target.for_labels("accuracy", y / 100).factor == 1.0  # fractions stay fractions


def test_latency_is_a_standardised_log_and_must_be_positive():
    y = np.array([1.0, 10.0, 100.0])
    t = Target.for_labels("latency", y)
    z = t.forward(y)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12 and np.allclose(t.inverse(z), y)
    with pytest.raises(DataError, match="latencies must be positive"):
        Target.for_labels("latency", np.array([1.0, 0.0]))
    assert Target.from_dict(t.to_dict()) == t
    with pytest.raises(CheckpointError):
        Target.from_dict({"kind": "log", "std": -1.0})


def test_as_percent_puts_fractions_and_percentages_on_one_scale():
    val, test = as_percent(np.array([0.91, 0.85]), np.array([0.9, 0.8]))
    assert np.allclose(val, [91, 85]) and np.allclose(test, [90, 80])
    (pct,) = as_percent(np.array([91.0, 1.2]))  # one value above FRACTION_MAX: all are percentages already
    assert np.allclose(pct, [91.0, 1.2])
    # the same threshold decides both ways: a fraction label trains unscaled, its percent form is scaled back
    frac = np.array([FRACTION_MAX, 0.5])
    assert Target.for_labels("accuracy", frac).factor == 1.0
    assert Target.for_labels("accuracy", as_percent(frac)[0]).factor == 0.01


def test_scores_are_learnt_as_they_are():
    """Labels already standardised (HELP's few-shot z-scores) pass unchanged, whatever their range."""
    y = np.array([-2.5, 0.0, 3.1])
    t = Target.for_labels("score", y)
    assert np.array_equal(t.forward(y), y) and np.array_equal(t.inverse(y), y)
    assert Target.for_labels("accuracy", y).factor == 0.01  # what "accuracy" would have done to them
