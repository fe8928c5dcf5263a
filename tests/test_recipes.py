"""Recipes are typed, frozen values with one resolve(); Predictor is the single entrance that uses them."""

import dataclasses

import numpy as np
import pytest
import torch

from nnformer import Predictor
from nnformer.batching import EncodedGraphs
from nnformer.model import NNFormerConfig
from nnformer.recipes import DEFAULT_RECIPE, RECIPES, Recipe, RecipeError, Tier, get_recipe
from nnformer.spaces.nb201 import all_arch_strs, arch_to_graph
from nnformer.train import TrainConfig, load_checkpoint

GRAPHS = [arch_to_graph(s) for s in list(all_arch_strs())[::97]][:156]  # cells of every size
Y = np.linspace(0.3, 0.9, len(GRAPHS))


def test_recipes_are_frozen_and_tiers_never_write_into_them():
    r = RECIPES["scaled"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.steps = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.model.dim = 1
    with pytest.raises(TypeError):
        RECIPES["mine"] = r
    at_781 = r.resolve(781)
    assert at_781.model.mlp_ratio == 2.0 and at_781.steps == 3000 and at_781.tiers == ()
    assert r.model.mlp_ratio == 4.0 and r.steps == 1500 and len(r.tiers) == 2


def test_tiers_apply_from_their_threshold_on():
    s = RECIPES["scaled"]
    assert s.resolve(399) == dataclasses.replace(RECIPES["efficient"], name="scaled")  # efficient below N=400
    assert s.resolve(400).model.mlp_ratio == 2.0 and s.resolve(400).steps == 1875 and s.resolve(699).steps == 1875
    assert s.resolve(700).steps == 3000
    assert RECIPES["efficient"].resolve(5000) == RECIPES["efficient"].resolve(10)  # no tiers: the same at every N


def test_epochs_spend_the_step_budget_as_the_recipe_batches():
    data = EncodedGraphs(GRAPHS)
    eff, fast, rel = RECIPES["efficient"], RECIPES["fast"], RECIPES["released"]
    # mixed sizes: 156 graphs = 2 batches of <= 128 an epoch
    assert eff.epochs(len(data.batches(128, bucket=False))) == -(-1500 // 2)
    # size buckets: one batch per distinct node count at least
    n_buckets = len(data.batches(128, bucket=True))
    assert n_buckets > 2 and fast.epochs(n_buckets) == max(60, -(-3000 // n_buckets))
    assert rel.epochs(7) == 3000
    _, tc = eff.configs(2)
    assert tc.epochs == 750 and tc.eval_every == 750 // 12


def test_settings_are_typed_checked_and_win_over_tiers():
    s = RECIPES["scaled"].with_settings({"mlp_ratio": "3", "steps": "6000", "seed": "2", "amp": "true"})
    r = s.resolve(781)
    assert r.model.mlp_ratio == 3.0 and r.steps == 6000 and r.train.seed == 2 and r.train.amp is True
    assert r.min_epochs == 0
    fixed = RECIPES["scaled"].with_settings({"epochs": 5}).resolve(781)
    assert fixed.configs(7)[1].epochs == 5 and fixed.model.mlp_ratio == 2.0  # epochs fixed, other tiers still apply
    every = RECIPES["scaled"].with_settings({"eval_every": 3, "epochs": 9}).resolve(10).configs(1)[1]
    assert every.eval_every == 3
    for bad, needle in [({"nope": 1}, "unknown setting 'nope'"), ({"lr": "abc"}, "lr=.abc.: not a valid finite number"),
                        ({"lr": -1}, "lr must be positive"), ({"n_heads": 6}, "multiple of 4"),
                        ({"steps": 0}, "no steps and no epochs"), ({"mask_mode": "x"}, "mask_mode must be one of"),
                        ({"epochs": 2.5}, "not a valid int")]:
        with pytest.raises(RecipeError, match=needle):
            RECIPES["scaled"].with_settings(bad)
    with pytest.raises(RecipeError, match="unknown recipe 'quick'"):
        get_recipe("quick")


def test_a_baseline_model_drops_the_tiers_network_settings_only():
    from nnformer.baselines import GCNConfig

    r = RECIPES["scaled"].with_model(GCNConfig()).resolve(781)
    assert r.model == GCNConfig() and r.steps == 3000 and r.train.lr == 2e-3


def test_predictor_without_arguments_is_the_default_recipe():
    p = Predictor()
    assert p.recipe == DEFAULT_RECIPE == "scaled"
    assert p.recipe_at(781) == RECIPES["scaled"].resolve(781)
    with pytest.raises(TypeError, match="network=... and train=..."):
        Predictor(NNFormerConfig())
    with pytest.raises(RecipeError, match="unknown setting"):
        Predictor(settings={"layers": 2})


def test_network_is_the_config_argument_and_model_its_deprecated_name():
    import warnings

    from nnformer.baselines import MLPConfig

    cfg = MLPConfig(hidden=8, n_layers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        p = Predictor(network=cfg, train=TrainConfig(epochs=1), progress=False)
        assert p.network == cfg and p.recipe_at(50).model == cfg
    with pytest.warns(DeprecationWarning, match="model= is renamed network="):
        old = Predictor(model=cfg, train=TrainConfig(epochs=1), progress=False)
    assert old.network == cfg and old.recipe_at(50) == p.recipe_at(50)
    with pytest.warns(DeprecationWarning, match="renamed Predictor.network"):
        assert old.model == cfg
    with pytest.raises(TypeError, match="network= only"):
        Predictor(network=cfg, model=cfg)
    assert not hasattr(p, "network_")
    p.fit(GRAPHS[:20], Y[:20])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(p.network_, torch.nn.Module) and p.predict(GRAPHS[:3]).shape == (3,)
    with pytest.warns(DeprecationWarning, match="model_ is renamed Predictor.network_"):
        assert p.model_ is p.network_
    with pytest.raises(AttributeError):
        p.model_ = p.network_  # read-only


def test_shipped_predictors_load_into_network_and_save_the_same_keys(tmp_path):
    import json

    from nnformer import shipped

    for entry in shipped.entries():  # the shipped files are unchanged: they still match the registry's sha256
        p = shipped.load(entry.spec)
        assert isinstance(p.network_, torch.nn.Module)
        with pytest.warns(DeprecationWarning):
            assert p.model_ is p.network_
        # saved again, the on-disk keys are those of before ("model": the weights; "model_config", "recipe.model")
        assert {"model", "model_config"} <= set(load_checkpoint(p.save(tmp_path / f"{entry.name}.pt")))
        saved = json.loads((p.save(tmp_path / entry.name) / "config.json").read_text())
        assert json.loads((entry.path() / "config.json").read_text()).keys() == saved.keys()


def test_the_checkpoint_records_the_resolved_recipe_and_vocabulary(tmp_path):
    p = Predictor(settings={"n_layers": 1, "dim": 16, "steps": 4, "seed": 1}, progress=False)
    p.fit(GRAPHS[:100], Y[:100], GRAPHS[100:], Y[100:])
    ck = load_checkpoint(p.save(tmp_path / "p.pt"))
    assert ck["recipe"]["name"] == "scaled" and ck["recipe"]["steps"] == 4 and ck["recipe"]["model"]["dim"] == 16
    assert ck["train_config"]["epochs"] == 4 and ck["vocab"]["name"] == "nb201"
    assert ck["target"] == {"kind": "scale", "factor": 1.0, "mean": 0.0, "std": 1.0}
    assert Predictor.load(tmp_path / "p.pt").vocab_ == p.vocab_
    # the training checkpoint holds the same predictor, plus the state to resume
    p.fit(GRAPHS[:100], Y[:100], checkpoint=tmp_path / "ck.pt")
    train_ck = load_checkpoint(tmp_path / "ck.pt")
    assert "train_state" in train_ck and train_ck["format"] == ck["format"]
    q = Predictor.load(tmp_path / "ck.pt")
    assert np.array_equal(q.predict(GRAPHS), p.predict(GRAPHS))


def test_fit_leaves_torchs_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Predictor(settings={"n_layers": 1, "dim": 16, "epochs": 2}, progress=False).fit(GRAPHS[:20], Y[:20])
    assert torch.equal(torch.rand(3), expected)


def test_explicit_configs_train_as_given():
    p = Predictor(network=NNFormerConfig(n_layers=1, dim=16), train=TrainConfig(epochs=3, eval_every=1, lr=1e-3),
                  progress=False)
    p.fit(GRAPHS[:30], Y[:30], GRAPHS[30:60], Y[30:60])
    assert p.train_config_.epochs == 3 and p.train_config_.eval_every == 1 and len(p.history_) == 3
    assert p.model_config_ == NNFormerConfig(n_layers=1, dim=16)


def test_a_recipe_of_your_own():
    mine = Recipe("mine", NNFormerConfig(n_layers=1, dim=16), TrainConfig(lr=1e-3, bucket=False), steps=6,
                  tiers=(Tier(20, {"dim": 32}),))
    p = Predictor(mine, progress=False).fit(GRAPHS[:30], Y[:30])
    assert p.model_config_.dim == 32 and p.train_config_.epochs == 6  # 30 graphs, one batch an epoch
    assert p.recipe_.name == "mine"


def test_a_checkpoint_of_an_older_format_is_refused_in_one_line(tmp_path):
    from nnformer.errors import CheckpointError

    old = tmp_path / "old.pt"
    torch.save({"format": "nnformer-predictor-1", "model_config": {}, "model": {}}, old)
    with pytest.raises(CheckpointError, match="format 'nnformer-predictor-1', this nnformer reads "
                                              "'nnformer-predictor-2': train it again"):
        Predictor.load(old)
