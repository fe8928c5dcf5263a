"""benchmarks/recipe.py: the seed summary that recipe.md and the README quote; --set overrides."""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import pytest  # noqa: E402

from benchmarks import recipe  # noqa: E402


def _run(seed, n, tau_test, tau_val, steps=1500):
    return {"key": f"fast-N{n}-paper-seed{seed}-steps{steps}-nobucket", "recipe": "fast", "n": n, "seed": seed,
            "epochs": 10, "total_steps": steps, "tau_test": tau_test, "tau_val": tau_val, "train_s": 60.0 * (seed + 1),
            "model_config": {"n_layers": 4, "dim": 96, "mask_mode": "paper"},
            "train_config": {"lr": 2e-3, "batch_size": 128, "bucket": False}}


def test_seed_summary_averages_repeated_settings_only():
    runs = [_run(0, 781, 0.88, 0.92), _run(1, 781, 0.87, 0.91), _run(2, 781, 0.86, 0.90),
            _run(0, 781, 0.5, 0.5, steps=3000), _run(0, 156, 0.8, 0.8)]
    rows = [r for r in recipe.seed_summary(runs) if r.startswith("| 4x96")]
    assert len(rows) == 1  # the single-seed settings get no summary row
    assert "| 781 | 0, 1, 2 | 0.8700 +- 0.0100 | 0.9100 +- 0.0100 | 2.0 min |" in rows[0]
    assert recipe.seed_summary(runs[3:]) == []


def _args(*sets, **kw):
    base = dict(recipe="fast", n=781, mask_mode="paper", seed=0, steps=None, layers=None, dim=None, lr=None,
                batch_size=None, min_epochs=None, no_bucket=True, set=list(sets))
    return argparse.Namespace(**{**base, **kw})


def test_set_overrides_are_typed_keyed_and_labelled():
    a = _args("dropout=0", "mlp_ratio=2", "w_rank=1", "select=last")
    assert recipe.settings(a) == {"dropout": 0.0, "mlp_ratio": 2.0, "w_rank": 1.0, "select": "last"}
    assert isinstance(recipe.settings(a)["dropout"], float)
    key = recipe.run_key(a)
    assert key == "fast-N781-paper-seed0-nobucket-dropout0-mlpratio2-selectlast-wrank1"
    assert key != recipe.run_key(_args("dropout=0.05"))  # different settings never share a result file
    assert recipe.run_key(_args()) == "fast-N781-paper-seed0-nobucket"  # runs without --set keep their old keys
    run = {**_run(0, 781, 0.87, 0.90), "set": recipe.settings(a)}
    assert recipe.label(run).startswith("4x96, dropout 0, mlp_ratio 2, w_rank 1, select last, paper masks")


@pytest.mark.parametrize("item", ["dropout", "no_such_field=1", "dropout=abc"])
def test_set_rejects_bad_items(item):
    with pytest.raises(SystemExit, match="--set"):
        recipe.settings(_args(item))
