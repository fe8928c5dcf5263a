import json
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from nnformer.errors import FamilyError, NNFormerError
from nnformer.latency.families import FAMILIES, HAND_WRITTEN, MAX_MACS, MAX_PARAMS, ModelSpec, build, cost, register_family, sample
from nnformer.spaces.nb201 import parse_arch_str

CLASSES = {"nb201": 10}


pytestmark = pytest.mark.usefixtures("one_thread")


# what sets a family apart, in the layers its builder makes: NNLQ's ten families are not ten names for one network
SIGNATURE = {"resnet": "Identity", "vgg": "Dropout", "mobilenetv2": "ReLU6", "mobilenetv3": "Hardswish",
             "mnasnet": "BatchNorm2d", "efficientnet": "SiLU", "alexnet": "Dropout", "squeezenet": "AdaptiveAvgPool2d",
             "googlenet": "BatchNorm2d", "nb201": "_Zero"}


def test_ten_families_build_ten_different_networks():
    from collections import Counter

    layers = {}
    for family in HAND_WRITTEN:
        model = build(sample(family, seed=0, index=0))
        layers[family] = Counter(type(m).__name__ for m in model.modules() if not list(m.children()))
        assert layers[family][SIGNATURE[family]] > 0, family
    assert len(HAND_WRITTEN) == 10 and set(SIGNATURE) == set(HAND_WRITTEN)
    assert len({frozenset(c.items()) for c in layers.values()}) == 10  # no two families make the same layers
    assert layers["mobilenetv3"]["Hardsigmoid"] > 0 and layers["efficientnet"]["Sigmoid"] > 0  # squeeze-excite
    assert "BatchNorm2d" not in layers["vgg"] and "Linear" not in layers["squeezenet"]  # as the originals


@pytest.mark.parametrize("family", sorted(HAND_WRITTEN))
def test_family_builds_and_runs_at_its_input_size(family):
    spec = sample(family, seed=0, index=0)
    assert spec.family == family and spec.input_shape[:2] == (1, 3)
    macs, params = cost(spec)
    assert 0 < macs <= MAX_MACS and 0 < params <= MAX_PARAMS
    model = build(spec)
    assert not model.training  # eval mode: BatchNorm folds into Conv at export
    assert sum(p.numel() for p in model.parameters()) == params
    with torch.no_grad():
        y = model(torch.randn(spec.input_shape))
    assert y.shape == (1, CLASSES.get(family, 1000))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("family", sorted(HAND_WRITTEN))
def test_sampling_is_deterministic_and_seed_dependent(family):
    a = sample(family, seed=0, index=0)
    assert sample(family, seed=0, index=0) == a and sample(family, seed=0, index=0).key == a.key
    assert sample(family, seed=1, index=0) != a
    assert sample(family, seed=0, index=1) != a
    # specs are JSON data: stored in dataset files and rebuilt from them
    again = ModelSpec.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again == a and hash(again) == hash(a)


@pytest.mark.parametrize("family", sorted(HAND_WRITTEN))
def test_samplers_vary_the_network(family):
    """Across draws, the hyper-parameters and (for every family) the input resolution change."""
    rng = np.random.default_rng(zlib.crc32(family.encode()))
    specs = [FAMILIES[family](rng) for _ in range(12)]
    assert len({s.key for s in specs}) >= 10
    assert len({s.input_shape for s in specs}) >= 2


def test_stream_does_not_depend_on_other_indices():
    # index 5 is the same whether or not indices 0..4 were drawn (a resumed run samples the same networks)
    late = sample("vgg", seed=3, index=5)
    for i in range(5):
        sample("vgg", seed=3, index=i)
    assert sample("vgg", seed=3, index=5) == late


def test_nb201_network_follows_its_cell():
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    spec = ModelSpec("nb201", {"arch": arch, "C": 8, "N": 2, "classes": 10}, (1, 3, 32, 32))
    model = build(spec)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    n_conv_edges = sum(o.startswith("nor_conv") for o in parse_arch_str(arch))
    # stem + 3 stages x N cells x conv edges + 2 reduction blocks x (two 3x3 convs + a 1x1 shortcut)
    assert len(convs) == 1 + 3 * 2 * n_conv_edges + 2 * 3
    assert {c.out_channels for c in convs} == {8, 16, 32}  # C, 2C, 4C
    with torch.no_grad():
        assert model(torch.randn(spec.input_shape)).shape == (1, 10)


def test_all_none_nb201_cell_still_runs():
    spec = ModelSpec("nb201", {"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "C": 8, "N": 1,
                               "classes": 10}, (1, 3, 32, 32))
    with torch.no_grad():
        assert build(spec)(torch.randn(spec.input_shape)).shape == (1, 10)


def test_budget_is_enforced():
    spec = sample("vgg", seed=0, index=0, max_macs=150e6)
    assert cost(spec)[0] <= 150e6
    with pytest.raises(FamilyError, match="within"):
        sample("alexnet", seed=0, index=0, max_macs=1)


def test_unknown_family_and_bad_spec_are_one_line_errors():
    with pytest.raises(FamilyError, match="unknown model family 'lenet'"):
        sample("lenet")
    with pytest.raises(FamilyError, match="unknown model family"):
        build(ModelSpec("lenet", {}, (1, 3, 8, 8)))
    with pytest.raises(FamilyError, match="bad field") as e:
        build(ModelSpec("resnet", {"block": "basic"}, (1, 3, 64, 64)))
    assert isinstance(e.value, NNFormerError) and "\n" not in str(e.value)


def test_register_family(monkeypatch):
    monkeypatch.setitem(FAMILIES, "tiny", None)  # restored (removed) after the test
    from nnformer.latency import families

    monkeypatch.setitem(families.BUILDERS, "tiny", None)
    register_family("tiny", lambda rng: ModelSpec("tiny", {"c": int(rng.integers(2, 9))}, (1, 3, 8, 8)),
                    lambda p, shape: nn.Conv2d(3, p["c"], 3))
    spec = sample("tiny", seed=0, index=0)
    assert build(spec)(torch.zeros(spec.input_shape)).shape[1] == spec.params["c"]
