"""Seeded generators of whole-network variants for latency datasets (NNLQ-style), in plain PyTorch.

Ten families, as in NNLQ (docs/method.md section 7): ResNet, VGG, MobileNetV2, MobileNetV3, MnasNet,
EfficientNet, AlexNet, SqueezeNet, GoogLeNet and NAS-Bench-201 networks. Each sampler draws depth, widths, kernel
sizes, expansion ratios and input resolution around the reference network (in the spirit of nn-Meter / NNLQ) and
returns a :class:`ModelSpec` whose ``params`` hold the *concrete* layer sizes, so :func:`build` needs nothing but the
spec (no torchvision: its weights, versions and adaptive pools would make the graphs depend on the install).

A spec is kept when the model has at most :data:`MAX_MACS` multiply-accumulates and :data:`MAX_PARAMS` parameters
(one batch-1 ONNX Runtime run on one CPU core stays within milliseconds to ~100 ms); otherwise the same generator
draws again, so :func:`sample` stays deterministic.

Example:
    >>> spec = sample("resnet", seed=0, index=3)
    >>> spec == sample("resnet", seed=0, index=3)
    True
    >>> build(spec)(torch.zeros(spec.input_shape)).shape
    torch.Size([1, 1000])
"""

from __future__ import annotations

import functools
import json
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import FamilyError
from ..spaces.nb201 import OPS as NB201_OPS
from ..spaces.nb201 import ops_to_arch_str, parse_arch_str

MAX_MACS = 1.5e9  # ResNet18 at 224 px is 1.8 G; 1.5 G keeps a 1-thread ORT run near 50-100 ms on a server core
MAX_PARAMS = 30e6  # caps the big fully connected heads (VGG16 has 138 M), so exports stay small on disk
_MAX_DRAWS = 50  # the worst family rejects ~40% of draws: 50 draws all failing is ~1e-20


@dataclass(frozen=True)
class ModelSpec:
    """One sampled network: its family, the hyper-parameters that define it, and its input shape (batch first).

    ``params`` must be JSON-serialisable (ints, floats, strings, lists, dicts): specs are stored in dataset files.
    """

    family: str
    params: dict
    input_shape: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "params", _plain(self.params))
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))

    @property
    def key(self) -> str:
        """A canonical JSON string of the spec (equal specs have equal keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def __hash__(self) -> int:
        return hash(self.key)

    def with_batch(self, batch: int) -> "ModelSpec":
        return ModelSpec(self.family, self.params, (int(batch), *self.input_shape[1:]))

    def to_dict(self) -> dict:
        return {"family": self.family, "params": self.params, "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return cls(d["family"], d["params"], tuple(d["input_shape"]))


def _plain(x):
    """numpy scalars/arrays -> Python numbers/lists, recursively (so json.dumps never fails on a spec)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    return x


def _div(v: float, d: int = 8) -> int:
    """Round a channel count to a multiple of ``d`` (at least ``d``), at most 10% below ``v`` (the MobileNet rule)."""
    out = max(d, int(v + d / 2) // d * d)
    return out + d if out < 0.9 * v else out


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _spec(family: str, params: dict, res: int) -> ModelSpec:
    return ModelSpec(family, params, (1, 3, res, res))


# ---------------------------------------------------------------------------------------------------- building blocks

def conv_bn(cin: int, cout: int, k: int, s: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU,
            bn: bool = True) -> nn.Sequential:
    """Conv (same padding) + BatchNorm + activation; the exporter folds the BatchNorm into the Conv."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 conv -> act -> 1x1 conv -> gate, times the input (MobileNetV3 / EfficientNet)."""

    def __init__(self, c: int, squeeze: int, act: type[nn.Module], gate: type[nn.Module]):
        super().__init__()
        self.fc1, self.act = nn.Conv2d(c, squeeze, 1), act()
        self.fc2, self.gate = nn.Conv2d(squeeze, c, 1), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project, plus the input when shapes match."""

    def __init__(self, cin: int, cout: int, k: int, s: int, exp: int, act: type[nn.Module], se: int = 0,
                 se_act: type[nn.Module] = nn.ReLU, se_gate: type[nn.Module] = nn.Sigmoid):
        super().__init__()
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(conv_bn(cin, exp, 1, act=act))
        layers.append(conv_bn(exp, exp, k, s, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, se, se_act, se_gate))
        layers.append(conv_bn(exp, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = s == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class _Head(nn.Module):
    """Global average pool -> flatten -> [hidden Linear + act] -> Linear."""

    def __init__(self, cin: int, classes: int, hidden: int = 0, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.fc = (nn.Sequential(nn.Linear(cin, hidden), act(), nn.Linear(hidden, classes)) if hidden
                   else nn.Linear(cin, classes))

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------------------------------------------- ResNet

def sample_resnet(rng: np.random.Generator) -> ModelSpec:
    """ResNet-18 neighbourhood: basic or bottleneck blocks, 1-4 blocks per stage, stage widths and kernels."""
    bottleneck = rng.random() < 0.25
    base = _pick(rng, [32, 48, 64, 80])
    stages = [{"c": _div(base * 2 ** i * _pick(rng, [0.75, 1.0, 1.25])),
               "n": int(rng.integers(1, 4 if bottleneck else 5)), "k": _pick(rng, [3, 3, 5]), "s": 1 if i == 0 else 2}
              for i in range(4)]
    params = {"block": "bottleneck" if bottleneck else "basic", "expansion": _pick(rng, [2, 4]) if bottleneck else 1,
              "stem_c": base, "stem_k": _pick(rng, [3, 5, 7]), "stages": stages, "classes": 1000}
    return _spec("resnet", params, _pick(rng, [96, 128, 160, 192, 224]))


class _ResBlock(nn.Module):
    def __init__(self, cin: int, c: int, k: int, s: int, expansion: int, bottleneck: bool):
        super().__init__()
        cout = c * expansion
        if bottleneck:
            self.body = nn.Sequential(conv_bn(cin, c, 1), conv_bn(c, c, k, s), conv_bn(c, cout, 1, act=None))
        else:
            self.body = nn.Sequential(conv_bn(cin, c, k, s), conv_bn(c, cout, k, act=None))
        self.short = conv_bn(cin, cout, 1, s, act=None) if (s != 1 or cin != cout) else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


def build_resnet(p: dict) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, p["stem_c"], p["stem_k"], 2), nn.MaxPool2d(3, 2, 1)]
    cin = p["stem_c"]
    for st in p["stages"]:
        for j in range(st["n"]):
            layers.append(_ResBlock(cin, st["c"], st["k"], st["s"] if j == 0 else 1, p["expansion"],
                                    p["block"] == "bottleneck"))
            cin = st["c"] * p["expansion"]
    return nn.Sequential(*layers, _Head(cin, p["classes"]))


# ---------------------------------------------------------------------------------------------------- VGG

def sample_vgg(rng: np.random.Generator) -> ModelSpec:
    """VGG-16 neighbourhood: 5 stages of 1-4 convs, narrower channels, kernel per stage, smaller classifier."""
    w = _pick(rng, [0.25, 0.375, 0.5])
    stages = [{"c": _div(c * w), "n": int(rng.integers(1, 5 if i >= 2 else 3)), "k": _pick(rng, [3, 3, 5])}
              for i, c in enumerate([64, 128, 256, 512, 512])]
    params = {"stages": stages, "hidden": _pick(rng, [256, 512, 1024, 2048]), "batchnorm": bool(rng.random() < 0.5),
              "classes": 1000}
    return _spec("vgg", params, _pick(rng, [64, 96, 128, 160, 192, 224]))


class _VGG(nn.Module):
    def __init__(self, p: dict, res: int):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for st in p["stages"]:
            for _ in range(st["n"]):
                layers.append(conv_bn(cin, st["c"], st["k"], bn=p["batchnorm"]))
                cin = st["c"]
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        side = res // 32  # flatten the real map: torchvision's AdaptiveAvgPool2d(7) does not export at other sizes
        self.classifier = nn.Sequential(nn.Linear(cin * side * side, p["hidden"]), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(p["hidden"], p["hidden"]), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(p["hidden"], p["classes"]))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ---------------------------------------------------------------------------------------------------- MobileNetV2

_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def sample_mobilenetv2(rng: np.random.Generator) -> ModelSpec:
    """MobileNetV2 neighbourhood: width multiplier, blocks per stage +-1, expansion 3/4/6, kernel 3/5/7."""
    w = _pick(rng, [0.35, 0.5, 0.75, 1.0, 1.25])
    stages = [{"c": _div(c * w), "n": int(rng.integers(max(1, n - 1), n + 2)), "s": s,
               "e": 1 if i == 0 else _pick(rng, [3, 4, 6]), "k": 3 if i == 0 else _pick(rng, [3, 5, 7])}
              for i, (t, c, n, s) in enumerate(_MBV2)]
    params = {"width": w, "stem_c": _div(32 * w), "last_c": _div(1280 * max(1.0, w)), "stages": stages,
              "classes": 1000}
    return _spec("mobilenetv2", params, _pick(rng, [96, 128, 160, 192, 224]))


def build_mobilenetv2(p: dict) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, p["stem_c"], 3, 2, act=nn.ReLU6)]
    cin = p["stem_c"]
    for st in p["stages"]:
        for j in range(st["n"]):
            layers.append(MBConv(cin, st["c"], st["k"], st["s"] if j == 0 else 1, cin * st["e"], nn.ReLU6))
            cin = st["c"]
    layers.append(conv_bn(cin, p["last_c"], 1, act=nn.ReLU6))
    return nn.Sequential(*layers, _Head(p["last_c"], p["classes"]))


# ---------------------------------------------------------------------------------------------------- MobileNetV3

# MobileNetV3-small grouped by stage: (out channels, blocks, stride, squeeze-excite, hardswish, expansion ratios)
_MBV3 = [(16, 1, 2, True, False, (1,)), (24, 2, 2, False, False, (4.5, 3.67)), (40, 3, 2, True, True, (2.4, 6, 6)),
         (48, 2, 1, True, True, (3, 3)), (96, 3, 2, True, True, (6, 6, 6))]


def sample_mobilenetv3(rng: np.random.Generator) -> ModelSpec:
    """MobileNetV3-small neighbourhood: width, blocks per stage, kernel 3/5/7 and expansion per block."""
    w = _pick(rng, [0.5, 0.75, 1.0, 1.25])
    blocks = []
    for i, (c, n, s, se, hs, ratios) in enumerate(_MBV3):
        for j in range(int(rng.integers(1, n + 2)) if i else 1):
            e = 1.0 if i == 0 else float(_pick(rng, [2.0, 3.0, 4.0, 6.0])) if j else float(ratios[0])
            blocks.append({"c": _div(c * w), "k": _pick(rng, [3, 5, 7]), "s": s if j == 0 else 1, "e": e,
                           "se": se, "hs": hs})
    params = {"width": w, "stem_c": _div(16 * w), "last_c": _div(576 * w), "head": 1024, "blocks": blocks,
              "classes": 1000}
    return _spec("mobilenetv3", params, _pick(rng, [96, 128, 160, 192, 224]))


def build_mobilenetv3(p: dict) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, p["stem_c"], 3, 2, act=nn.Hardswish)]
    cin = p["stem_c"]
    for b in p["blocks"]:
        exp = _div(cin * b["e"])
        layers.append(MBConv(cin, b["c"], b["k"], b["s"], exp, nn.Hardswish if b["hs"] else nn.ReLU,
                             se=_div(exp / 4) if b["se"] else 0, se_gate=nn.Hardsigmoid))
        cin = b["c"]
    layers.append(conv_bn(cin, p["last_c"], 1, act=nn.Hardswish))
    return nn.Sequential(*layers, _Head(p["last_c"], p["classes"], p["head"], nn.Hardswish))


# ---------------------------------------------------------------------------------------------------- MnasNet

_MNAS = [(3, 3, 24, 3, 2), (5, 3, 40, 3, 2), (5, 6, 80, 3, 2), (3, 6, 96, 2, 1), (5, 6, 192, 4, 2), (3, 6, 320, 1, 1)]


def sample_mnasnet(rng: np.random.Generator) -> ModelSpec:
    """MnasNet-B1 neighbourhood (no SE, ReLU): width, blocks per stack, kernel 3/5 and expansion 3/6 per stack."""
    w = _pick(rng, [0.5, 0.75, 1.0, 1.3])
    stacks = [{"c": _div(c * w), "n": int(rng.integers(1, n + 2)), "s": s, "k": _pick(rng, [3, 5]),
               "e": _pick(rng, [3, 6])} for (k, e, c, n, s) in _MNAS]
    params = {"width": w, "stem_c": _div(32 * w), "sep_c": _div(16 * w), "stacks": stacks, "last_c": 1280,
              "classes": 1000}
    return _spec("mnasnet", params, _pick(rng, [96, 128, 160, 192, 224]))


def build_mnasnet(p: dict) -> nn.Module:
    s, c16 = p["stem_c"], p["sep_c"]
    layers: list[nn.Module] = [conv_bn(3, s, 3, 2), conv_bn(s, s, 3, groups=s), conv_bn(s, c16, 1, act=None)]
    cin = c16
    for st in p["stacks"]:
        for j in range(st["n"]):
            layers.append(MBConv(cin, st["c"], st["k"], st["s"] if j == 0 else 1, cin * st["e"], nn.ReLU))
            cin = st["c"]
    layers.append(conv_bn(cin, p["last_c"], 1))
    return nn.Sequential(*layers, _Head(p["last_c"], p["classes"]))


# ---------------------------------------------------------------------------------------------------- EfficientNet

_EFF = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1)]


def sample_efficientnet(rng: np.random.Generator) -> ModelSpec:
    """EfficientNet-B0 neighbourhood: width, blocks per stage (up to B0's, which keeps the ONNX graph under 256
    nodes: SiLU and SE make 15 nodes a block), kernel 3/5/7 and expansion 4/6 per stage."""
    w = _pick(rng, [0.5, 0.75, 1.0, 1.1])
    stages = [{"c": _div(c * w), "n": int(rng.integers(1, n + 1)), "s": s,
               "e": 1 if i == 0 else _pick(rng, [4, 6]), "k": _pick(rng, [3, 5, 7]) if i else k}
              for i, (e, k, s, c, n) in enumerate(_EFF)]
    params = {"width": w, "stem_c": _div(32 * w), "last_c": _div(1280 * w), "stages": stages, "se_ratio": 0.25,
              "classes": 1000}
    return _spec("efficientnet", params, _pick(rng, [96, 128, 160, 192, 224]))


def build_efficientnet(p: dict) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, p["stem_c"], 3, 2, act=nn.SiLU)]
    cin = p["stem_c"]
    for st in p["stages"]:
        for j in range(st["n"]):
            se = max(1, int(cin * p["se_ratio"]))
            layers.append(MBConv(cin, st["c"], st["k"], st["s"] if j == 0 else 1, cin * st["e"], nn.SiLU, se=se,
                                 se_act=nn.SiLU, se_gate=nn.Sigmoid))
            cin = st["c"]
    layers.append(conv_bn(cin, p["last_c"], 1, act=nn.SiLU))
    return nn.Sequential(*layers, _Head(p["last_c"], p["classes"]))


# ---------------------------------------------------------------------------------------------------- AlexNet

def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def sample_alexnet(rng: np.random.Generator) -> ModelSpec:
    """AlexNet neighbourhood: width, first and second kernel, the three 3x3 convs' widths, classifier width."""
    w = _pick(rng, [0.5, 0.75, 1.0, 1.25])
    params = {"convs": [_div(c * w) for c in (64, 192, 384, 256, 256)], "k1": _pick(rng, [7, 9, 11]),
              "k2": _pick(rng, [3, 5]), "hidden": _pick(rng, [512, 1024, 2048, 4096]), "classes": 1000}
    return _spec("alexnet", params, _pick(rng, [128, 160, 192, 224]))


class _AlexNet(nn.Module):
    def __init__(self, p: dict, res: int):
        super().__init__()
        c = p["convs"]
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], p["k1"], 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[0], c[1], p["k2"], padding=p["k2"] // 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(), nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        side = _out(_out(_out(_out(res, p["k1"], 4, 2), 3, 2, 0), 3, 2, 0), 3, 2, 0)
        h = p["hidden"]
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(c[4] * side * side, h), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(h, h), nn.ReLU(), nn.Linear(h, p["classes"]))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ---------------------------------------------------------------------------------------------------- SqueezeNet

def sample_squeezenet(rng: np.random.Generator) -> ModelSpec:
    """SqueezeNet 1.0/1.1 neighbourhood: stem, fire modules per stage, squeeze ratio, expand widths, 3x3 share."""
    v11 = rng.random() < 0.5
    w = _pick(rng, [0.5, 0.75, 1.0, 1.25])
    sq = _pick(rng, [0.125, 0.25])
    stages = []
    for e in (128, 256, 384, 512):
        e = _div(e * w)
        stages.append({"n": int(rng.integers(1, 4)), "squeeze": _div(e * sq), "e1": _div(e / 2), "e3": _div(e / 2),
                       "k": _pick(rng, [3, 3, 5])})
    params = {"stem_c": 64 if v11 else 96, "stem_k": 3 if v11 else 7, "stages": stages, "classes": 1000}
    return _spec("squeezenet", params, _pick(rng, [96, 128, 160, 192, 224]))


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int, k: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, e1, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, e3, k, padding=k // 2), nn.ReLU())

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


def build_squeezenet(p: dict) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, p["stem_c"], p["stem_k"], 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True)]
    cin = p["stem_c"]
    for i, st in enumerate(p["stages"]):
        if i in (1, 2):
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        for _ in range(st["n"]):
            layers.append(_Fire(cin, st["squeeze"], st["e1"], st["e3"], st["k"]))
            cin = st["e1"] + st["e3"]
    layers += [nn.Dropout(), nn.Conv2d(cin, p["classes"], 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------------- GoogLeNet

# torchvision's inception widths: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), by stage 3 / 4 / 5
_INCEPTION = [[(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)],
              [(192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
               (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)],
              [(256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]]


def sample_googlenet(rng: np.random.Generator) -> ModelSpec:
    """GoogLeNet neighbourhood: width, inception modules per stage, kernel of the 'large' branch (3 or 5)."""
    w = _pick(rng, [0.5, 0.75, 1.0])
    stages = []
    for mods in _INCEPTION:
        n = int(rng.integers(1, len(mods) + 1))
        pick = sorted(rng.choice(len(mods), n, replace=False).tolist())
        stages.append([[_div(c * w) for c in mods[j]] + [_pick(rng, [3, 5])] for j in pick])
    params = {"stem": [_div(64 * w), _div(64 * w), _div(192 * w)], "stages": stages, "classes": 1000}
    return _spec("googlenet", params, _pick(rng, [96, 128, 160, 192, 224]))


class _Inception(nn.Module):
    def __init__(self, cin: int, c1: int, r3: int, c3: int, r5: int, c5: int, cp: int, k: int):
        super().__init__()
        self.b1 = conv_bn(cin, c1, 1)
        self.b2 = nn.Sequential(conv_bn(cin, r3, 1), conv_bn(r3, c3, 3))
        self.b3 = nn.Sequential(conv_bn(cin, r5, 1), conv_bn(r5, c5, k))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, cp, 1))
        self.cout = c1 + c3 + c5 + cp

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def build_googlenet(p: dict) -> nn.Module:
    s = p["stem"]
    layers: list[nn.Module] = [conv_bn(3, s[0], 7, 2), nn.MaxPool2d(3, 2, ceil_mode=True), conv_bn(s[0], s[1], 1),
                               conv_bn(s[1], s[2], 3), nn.MaxPool2d(3, 2, ceil_mode=True)]
    cin = s[2]
    for i, mods in enumerate(p["stages"]):
        if i:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        for m in mods:
            block = _Inception(cin, *m)
            layers.append(block)
            cin = block.cout
    return nn.Sequential(*layers, nn.Dropout(0.2), _Head(cin, p["classes"]))


# ---------------------------------------------------------------------------------------------------- NAS-Bench-201

def sample_nb201(rng: np.random.Generator) -> ModelSpec:
    """A NAS-Bench-201 network: random cell, C in {8, 16, 24, 32}, N in 1..5 cells per stage, 32 or 64 px input.
    The benchmark's own setting is C=16, N=5, 32 px."""
    arch = ops_to_arch_str([_pick(rng, NB201_OPS) for _ in range(6)])
    params = {"arch": arch, "C": _pick(rng, [8, 16, 24, 32]), "N": int(rng.integers(1, 6)), "classes": 10}
    return _spec("nb201", params, _pick(rng, [32, 32, 64]))


class _ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, s: int = 1):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout))


class _Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)  # as the official NAS-Bench-201 code: the 'none' edge still costs a multiply


def _nb201_op(name: str, c: int) -> nn.Module:
    if name == "nor_conv_1x1":
        return _ReLUConvBN(c, c, 1)
    if name == "nor_conv_3x3":
        return _ReLUConvBN(c, c, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity()
    return _Zero()


class _NB201Cell(nn.Module):
    """The 4-node cell: node j is the sum of op(i -> j) over i < j (edges in arch-string order)."""

    def __init__(self, arch: str, c: int):
        super().__init__()
        self.edges = nn.ModuleList(_nb201_op(o, c) for o in parse_arch_str(arch))

    def forward(self, x):
        nodes, e = [x], 0
        for j in range(1, 4):
            acc = None
            for i in range(j):
                y = self.edges[e](nodes[i])
                acc, e = (y if acc is None else acc + y), e + 1
            nodes.append(acc)
        return nodes[-1]


class _NB201Reduction(nn.Module):
    """The residual reduction block between stages (3x3 stride 2, 3x3, with a pooled 1x1 shortcut)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.a, self.b = _ReLUConvBN(cin, cout, 3, 2), _ReLUConvBN(cout, cout, 3)
        self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.b(self.a(x)) + self.short(x)


def build_nb201(p: dict) -> nn.Module:
    c, n = p["C"], p["N"]
    layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)]
    for stage in range(3):
        if stage:
            layers.append(_NB201Reduction(c, 2 * c))
            c *= 2
        layers += [_NB201Cell(p["arch"], c) for _ in range(n)]
    layers += [nn.BatchNorm2d(c), nn.ReLU()]
    return nn.Sequential(*layers, _Head(c, p["classes"]))


# ---------------------------------------------------------------------------------------------------- registry

FAMILIES: dict[str, Callable[[np.random.Generator], ModelSpec]] = {
    "resnet": sample_resnet,
    "vgg": sample_vgg,
    "mobilenetv2": sample_mobilenetv2,
    "mobilenetv3": sample_mobilenetv3,
    "mnasnet": sample_mnasnet,
    "efficientnet": sample_efficientnet,
    "alexnet": sample_alexnet,
    "squeezenet": sample_squeezenet,
    "googlenet": sample_googlenet,
    "nb201": sample_nb201,
}

HAND_WRITTEN: tuple[str, ...] = tuple(FAMILIES)
"""The ten families written here (NNLQ's); :mod:`nnformer.latency.zoo` registers more into :data:`FAMILIES`."""

# builder(params, input_shape) -> module; the shape matters only where a flatten meets a fixed-size Linear
BUILDERS: dict[str, Callable[[dict, tuple[int, ...]], nn.Module]] = {
    "resnet": lambda p, shape: build_resnet(p),
    "vgg": lambda p, shape: _VGG(p, shape[-1]),
    "mobilenetv2": lambda p, shape: build_mobilenetv2(p),
    "mobilenetv3": lambda p, shape: build_mobilenetv3(p),
    "mnasnet": lambda p, shape: build_mnasnet(p),
    "efficientnet": lambda p, shape: build_efficientnet(p),
    "alexnet": lambda p, shape: _AlexNet(p, shape[-1]),
    "squeezenet": lambda p, shape: build_squeezenet(p),
    "googlenet": lambda p, shape: build_googlenet(p),
    "nb201": lambda p, shape: build_nb201(p),
}


# families whose samplers bound model sizes themselves: :func:`sample` takes their first draw (their builders may
# need libraries that the shape-only cost pass cannot run on the meta device)
UNCAPPED: set[str] = set()


def register_family(name: str, sampler: Callable[[np.random.Generator], ModelSpec],
                    builder: Callable[[dict, tuple[int, ...]], nn.Module], *, capped: bool = True) -> None:
    """Add (or replace) a family: ``sampler(rng) -> ModelSpec`` and ``builder(params, input_shape) -> Module``.

    ``capped=False``: the sampler bounds sizes itself, and :func:`sample` does not check MACs and parameters."""
    FAMILIES[name] = sampler
    BUILDERS[name] = builder
    (UNCAPPED.discard if capped else UNCAPPED.add)(name)


def _check_family(family: str) -> None:
    if family not in FAMILIES or family not in BUILDERS:
        raise FamilyError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")


def build(spec: ModelSpec) -> nn.Module:
    """The network of a spec, in eval mode, with freshly initialised weights (latency does not depend on them)."""
    _check_family(spec.family)
    try:
        return BUILDERS[spec.family](spec.params, spec.input_shape).eval()
    except (KeyError, TypeError, IndexError) as e:
        raise FamilyError(f"{spec.family} spec is missing or has a bad field ({type(e).__name__}: {e})") from None


# shape-preserving layers: their meta-device kernels are slow Python decompositions (ms per call), so the cost
# pass replaces them by Identity; they hold no MACs of Conv/Linear and their parameters are counted before
_SHAPE_ONLY = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.Dropout)


def _strip(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, _SHAPE_ONLY):
            setattr(module, name, nn.Identity())
        else:
            _strip(child)


@functools.lru_cache(maxsize=4096)
def _cost(spec: ModelSpec) -> tuple[int, int]:
    with torch.device("meta"):
        model = build(spec)
    n_params = sum(p.numel() for p in model.parameters())
    _strip(model)
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Conv2d):
            macs += out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            macs += mod.in_features * mod.out_features

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.empty((1, *spec.input_shape[1:]), device="meta"))
    return int(macs), int(n_params)


def cost(spec: ModelSpec) -> tuple[int, int]:
    """``(MACs, parameters)`` of the Conv2d/Linear layers at batch 1, from a shape-only pass on the meta device
    (no weights are allocated; results are cached per spec)."""
    return _cost(spec.with_batch(1))


def sample(family: str, seed: int = 0, index: int = 0, *, max_macs: float = MAX_MACS,
           max_params: float = MAX_PARAMS) -> ModelSpec:
    """The ``index``-th model of ``family`` for ``seed``: the same arguments always give the same spec.

    The generator is seeded from ``(seed, index, crc32(family))``, so specs do not depend on which other models or
    families were drawn before (a resumed or partial run samples exactly the same networks).
    """
    _check_family(family)
    rng = np.random.default_rng([int(seed), int(index), zlib.crc32(family.encode())])
    for _ in range(_MAX_DRAWS):
        spec = FAMILIES[family](rng)
        if spec.family != family:
            raise FamilyError(f"sampler of {family!r} returned a {spec.family!r} spec")
        if family in UNCAPPED:
            return spec
        macs, n_params = cost(spec)
        if macs <= max_macs and n_params <= max_params:
            return spec
    raise FamilyError(f"no {family} model within {max_macs:.3g} MACs and {max_params:.3g} parameters "
                      f"after {_MAX_DRAWS} draws")
