"""A zoo of real models for latency datasets: timm image models, Hugging Face transformers, plain PyTorch.

The hand-written families of :mod:`nnformer.latency.families` are what NNLQ measured; users deploy models from
model libraries. Each family here samples configurations around one architecture of such a library (its named
variants, and depth, width, heads and input resolution or sequence length where the library's constructor takes
them) from tiny models (well under 0.1 ms) to deployable ones (ResNet-50 and ViT-S at 224 px, a BERT-base encoder at
128 tokens). Weights are random: latency does not depend on their values, and nothing is downloaded.

Building a timm or transformers family needs the optional extra (``pip install 'nnformer[zoo]'``: timm,
transformers; see docs/guides/latency-on-your-machine.md); predicting never does. The ``torch-*`` families need
PyTorch alone. A family's spec keeps everything its builder needs (library, variant, keyword arguments), so a
dataset's graphs can be rebuilt from its records; :func:`versions` says which library versions built them.

Families are registered into :data:`nnformer.latency.families.FAMILIES` when this module is imported (the profiler
and the CLI import it), with no cap on multiply-accumulates: the samplers bound sizes themselves.

Example:
    >>> from nnformer.latency import zoo
    >>> from nnformer.latency.families import sample
    >>> spec = sample("torch-mlp", seed=0, index=0)
    >>> spec.family, spec.params["library"]
    ('torch-mlp', 'torch')
"""

from __future__ import annotations

import importlib
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import FamilyError
from .families import ModelSpec, register_family

# --------------------------------------------------------------------------------------------------- sampling tools


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _res(rng: np.random.Generator, lo: int, hi: int, step: int = 32) -> int:
    """A resolution in [lo, hi], a multiple of ``step``, log-uniform (small models are cheap to time and many)."""
    v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return int(min(hi, max(lo, round(v / step) * step)))


def _log_int(rng: np.random.Generator, lo: int, hi: int, step: int = 1) -> int:
    v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return int(min(hi, max(lo, round(v / step) * step)))


# --------------------------------------------------------------------------------------------------- timm

# family -> (variants, resolution range, knobs(rng, variant) -> constructor kwargs or None, fixed resolutions)
# Knobs are the keyword arguments the variant's timm constructor takes (checked against timm 1.0); a family whose
# constructor fixes its shape (attention biases sized for 224 px, ...) lists the resolutions it accepts.

def _resnet_knobs(rng, variant):
    return {"layers": [int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 7)),
                       int(rng.integers(1, 4))]}


def _resnext_knobs(rng, variant):
    return {**_resnet_knobs(rng, variant), "cardinality": _pick(rng, [8, 16, 32]),
            "base_width": _pick(rng, [2, 4, 8])}


_CONVNEXT_DIMS = [(40, 80, 160, 320), (48, 96, 192, 384), (64, 128, 256, 512), (80, 160, 320, 640),
                  (96, 192, 384, 768)]


def _convnext_knobs(rng, variant):
    return {"depths": [int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 10)),
                       int(rng.integers(1, 4))], "dims": list(_pick(rng, _CONVNEXT_DIMS))}


_VIT_WIDTHS = [(128, 2), (192, 3), (256, 4), (384, 6), (512, 8), (768, 12)]


def _vit_knobs(rng, variant):
    embed, heads = _pick(rng, _VIT_WIDTHS)
    return {"depth": int(rng.integers(1, 13)), "embed_dim": embed, "num_heads": heads,
            "patch_size": _pick(rng, [16, 16, 32])}


def _deit_knobs(rng, variant):
    embed, heads = _pick(rng, _VIT_WIDTHS[:4])
    return {"depth": int(rng.integers(1, 13)), "embed_dim": embed, "num_heads": heads}


def _swin_knobs(rng, variant):
    embed = _pick(rng, [32, 48, 64, 96])
    return {"depths": [int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 7)),
                       int(rng.integers(1, 3))], "embed_dim": embed,
            "num_heads": [max(1, embed // 32) * m for m in (1, 2, 4, 8)]}


def _densenet_knobs(rng, variant):
    return {"growth_rate": _pick(rng, [12, 16, 24, 32]),
            "block_config": [int(rng.integers(1, 7)), int(rng.integers(2, 13)), int(rng.integers(2, 25)),
                             int(rng.integers(2, 17))]}


def _cait_knobs(rng, variant):
    return {"depth": int(rng.integers(2, 25))}


def _stock(rng, variant):
    return {}


_TIMM: dict[str, dict] = {
    "timm-resnet": dict(variants=["resnet10t", "resnet18", "resnet26", "resnet34", "resnet50", "resnet50d"],
                        res=(96, 288), knobs=_resnet_knobs),
    "timm-resnext": dict(variants=["resnext50_32x4d", "resnext50d_32x4d"], res=(96, 256), knobs=_resnext_knobs),
    "timm-regnet": dict(variants=["regnetx_002", "regnetx_004", "regnetx_006", "regnetx_008", "regnetx_016",
                                  "regnetx_032", "regnety_002", "regnety_004", "regnety_006", "regnety_008",
                                  "regnety_016"], res=(96, 256)),
    "timm-efficientnet": dict(variants=["efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
                                        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                                        "efficientnet_es", "efficientnet_em"], res=(128, 288)),
    "timm-mobilenetv2": dict(variants=["mobilenetv2_035", "mobilenetv2_050", "mobilenetv2_075", "mobilenetv2_100",
                                       "mobilenetv2_110d", "mobilenetv2_120d", "mobilenetv2_140"], res=(96, 256)),
    "timm-mobilenetv3": dict(variants=["mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100",
                                       "mobilenetv3_large_075", "mobilenetv3_large_100"], res=(96, 256)),
    "timm-mobilenetv4": dict(variants=["mobilenetv4_conv_small_050", "mobilenetv4_conv_small",
                                       "mobilenetv4_conv_medium", "mobilenetv4_hybrid_medium"], res=(96, 256)),
    "timm-convnext": dict(variants=["convnext_atto"], res=(64, 224), knobs=_convnext_knobs),
    "timm-vit": dict(variants=["vit_tiny_patch16_224"], res=(64, 224), knobs=_vit_knobs,
                     stock=("vit_small_patch16_224", 224)),
    "timm-deit": dict(variants=["deit_tiny_distilled_patch16_224"], res=(64, 224), step=16, knobs=_deit_knobs),
    "timm-swin": dict(variants=["swin_tiny_patch4_window7_224"], fixed=[(224, 7), (192, 6), (256, 8)],
                      knobs=_swin_knobs),
    "timm-mobilevit": dict(variants=["mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilevitv2_050",
                                     "mobilevitv2_075", "mobilevitv2_100"], res=(128, 256)),
    "timm-efficientformer": dict(variants=["efficientformer_l1", "efficientformerv2_s0", "efficientformerv2_s1",
                                           "efficientformerv2_s2"], fixed=[(224, None)]),
    "timm-ghostnet": dict(variants=["ghostnet_050", "ghostnet_100", "ghostnet_130"], res=(96, 256)),
    "timm-densenet": dict(variants=["densenet121"], res=(64, 224), knobs=_densenet_knobs),
    "timm-levit": dict(variants=["levit_128s", "levit_128", "levit_192", "levit_256"], fixed=[(224, None)]),
    "timm-repvgg": dict(variants=["repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0"], res=(96, 224)),
    "timm-poolformer": dict(variants=["poolformer_s12", "poolformerv2_s12"], res=(64, 224)),
    "timm-dla": dict(variants=["dla34", "dla46_c", "dla46x_c", "dla60x_c"], res=(64, 224)),
    "timm-hrnet": dict(variants=["hrnet_w18_small", "hrnet_w18_small_v2"], res=(64, 224)),
    "timm-inception": dict(variants=["inception_v3"], res=(96, 299), step=1),
    "timm-xception": dict(variants=["xception41", "legacy_xception"], res=(96, 299), step=1),
    "timm-pvt": dict(variants=["pvt_v2_b0", "pvt_v2_b1"], res=(128, 224)),
    "timm-edgenext": dict(variants=["edgenext_xx_small", "edgenext_x_small", "edgenext_small"], res=(128, 256)),
    "timm-fastvit": dict(variants=["fastvit_t8", "fastvit_t12", "fastvit_s12"], res=(96, 256)),
    "timm-repvit": dict(variants=["repvit_m0_9", "repvit_m1_0", "repvit_m1_1"], res=(96, 256)),
    "timm-mixer": dict(variants=["mixer_s32_224", "mixer_s16_224", "mixer_b32_224"], res=(64, 224)),
    "timm-resmlp": dict(variants=["resmlp_12_224", "resmlp_24_224"], res=(64, 224), step=16),
    "timm-lcnet": dict(variants=["lcnet_035", "lcnet_050", "lcnet_075", "lcnet_100", "lcnet_150"], res=(96, 256)),
    "timm-nasnet": dict(variants=["mnasnet_050", "mnasnet_100", "mnasnet_140", "fbnetc_100", "spnasnet_100",
                                  "semnasnet_100"], res=(96, 256)),
    "timm-cait": dict(variants=["cait_xxs24_224"], res=(64, 224), step=16, knobs=_cait_knobs),
    "timm-tinyvit": dict(variants=["tiny_vit_5m_224"], fixed=[(224, None)]),
}

# Families whose training-time branches fold into one convolution for deployment (timm's reparameterize_model).
_REPARAMETERIZE = {"timm-repvgg", "timm-fastvit", "timm-repvit", "timm-mobileone"}
STOCK_SHARE = 0.15  # share of draws that take a variant as published, at 224 px (the deployable sizes)


def _timm_sampler(family: str, cfg: dict) -> Callable[[np.random.Generator], ModelSpec]:
    def sample(rng: np.random.Generator) -> ModelSpec:
        variant = _pick(rng, cfg["variants"])
        stock = rng.uniform() < STOCK_SHARE
        kwargs = {} if stock else cfg.get("knobs", _stock)(rng, variant)
        if "fixed" in cfg:
            res, window = _pick(rng, cfg["fixed"])
            if window is not None:
                kwargs.update(window_size=window, img_size=res)
        elif stock:
            variant, res = cfg.get("stock", (variant, 224))
        else:
            res = _res(rng, *cfg["res"], step=cfg.get("step", 32))
        if family in _IMG_SIZE_FAMILIES:
            kwargs["img_size"] = res
        return ModelSpec(family, {"library": "timm", "variant": variant, "kwargs": kwargs}, (1, 3, res, res))

    sample.__doc__ = f"{family}: timm's {', '.join(cfg['variants'])}"
    return sample


# families whose constructor must be told the input resolution (position embeddings, token grids)
_IMG_SIZE_FAMILIES = {"timm-vit", "timm-deit", "timm-mixer", "timm-resmlp", "timm-cait"}


def _build_timm(p: dict, shape) -> nn.Module:
    timm = need("timm")
    model = timm.create_model(p["variant"], pretrained=False, **p["kwargs"])
    if p.get("reparameterize"):
        from timm.utils.model import reparameterize_model

        model = reparameterize_model(model.eval())
    return model


# --------------------------------------------------------------------------------------------------- transformers

_HF_WIDTHS = [(64, 2), (128, 2), (192, 3), (256, 4), (384, 6), (512, 8), (768, 12)]


class _TokensIn(nn.Module):
    """A transformers model called with token ids alone (no cache), returning its last hidden state."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        # an explicit all-ones mask: without one, transformers builds it with ops the exporter lacks (aten::diff)
        return self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                          use_cache=False).last_hidden_state

    @staticmethod
    def example_input(shape) -> torch.Tensor:
        return torch.zeros(tuple(shape), dtype=torch.long)


def _hf_sampler(family: str, stock: tuple) -> Callable[[np.random.Generator], ModelSpec]:
    def sample(rng: np.random.Generator) -> ModelSpec:
        if rng.uniform() < STOCK_SHARE:
            hidden, heads, layers, seq = stock
        else:
            hidden, heads = _pick(rng, _HF_WIDTHS)
            layers, seq = int(rng.integers(1, 13)), _log_int(rng, 8, 256, 8)
        cfg = {"hidden_size": hidden, "num_attention_heads": heads, "num_hidden_layers": layers,
               "intermediate_size": _pick(rng, [2, 4]) * hidden if family != "hf-llama" else int(8 * hidden / 3)
               // 32 * 32}
        if family == "hf-llama":
            cfg["num_key_value_heads"] = _pick(rng, [h for h in (1, 2, heads) if heads % h == 0])
        return ModelSpec(family, {"library": "transformers", "config": cfg}, (1, seq))

    sample.__doc__ = f"{family}: transformers' {family[3:]} at varied depth, width, heads and sequence length"
    return sample


def _build_hf(family: str) -> Callable[[dict, tuple], nn.Module]:
    def build(p: dict, shape) -> nn.Module:
        tf = need("transformers")
        c = dict(p["config"])
        if family == "hf-bert":
            config, cls = tf.BertConfig(vocab_size=30522, max_position_embeddings=512, **c), tf.BertModel
        elif family == "hf-gpt2":
            config = tf.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=c["hidden_size"],
                                   n_layer=c["num_hidden_layers"], n_head=c["num_attention_heads"],
                                   n_inner=c["intermediate_size"])
            cls = tf.GPT2Model
        elif family == "hf-llama":
            config, cls = tf.LlamaConfig(vocab_size=32000, max_position_embeddings=2048, **c), tf.LlamaModel
        else:
            raise FamilyError(f"no transformers builder for {family}")
        config._attn_implementation = "eager"  # a plain graph: the exporter's SDPA paths differ between versions
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return _TokensIn(cls(config))

    return build


# --------------------------------------------------------------------------------------------------- plain PyTorch

def _sample_mlp(rng):
    width = _log_int(rng, 32, 4096, 32)
    p = {"library": "torch", "depth": int(rng.integers(1, 9)), "width": width, "act": _pick(rng, ["relu", "gelu"]),
         "out": _pick(rng, [10, 100, 1000])}
    return ModelSpec("torch-mlp", p, (1, _log_int(rng, 16, 2048, 16)))


class _MLP(nn.Module):
    def __init__(self, p, shape):
        super().__init__()
        act = {"relu": nn.ReLU, "gelu": nn.GELU}[p["act"]]
        layers, cin = [], shape[-1]
        for _ in range(p["depth"]):
            layers += [nn.Linear(cin, p["width"]), act()]
            cin = p["width"]
        self.net = nn.Sequential(*layers, nn.Linear(cin, p["out"]))

    def forward(self, x):
        return self.net(x)


def _sample_rnn(family: str):
    def sample(rng):
        p = {"library": "torch", "layers": int(rng.integers(1, 4)), "hidden": _log_int(rng, 32, 1024, 32),
             "bidirectional": bool(rng.uniform() < 0.3), "out": _pick(rng, [2, 10, 100])}
        return ModelSpec(family, p, (1, _log_int(rng, 4, 256), _log_int(rng, 16, 512, 16)))

    return sample


class _RNNClassifier(nn.Module):
    """LSTM or GRU over a sequence (batch first), then a linear classifier on the last step."""

    def __init__(self, p, shape, cell):
        super().__init__()
        self.rnn = cell(shape[-1], p["hidden"], num_layers=p["layers"], batch_first=True,
                        bidirectional=p["bidirectional"])
        self.head = nn.Linear(p["hidden"] * (2 if p["bidirectional"] else 1), p["out"])

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _sample_unet(rng):
    depth = int(rng.integers(2, 6))
    p = {"library": "torch", "depth": depth, "base": _log_int(rng, 8, 64, 8), "out": _pick(rng, [1, 2, 21])}
    res = _res(rng, 64, 256, 2 ** depth)
    return ModelSpec("torch-unet", p, (1, _pick(rng, [1, 3]), res, res))


def _double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class _UNet(nn.Module):
    """U-Net: ``depth`` down steps (max pool, two 3x3 convs, channels doubling), transposed-conv up steps with skip
    concatenation, 1x1 output."""

    def __init__(self, p, shape):
        super().__init__()
        chans = [p["base"] * 2 ** i for i in range(p["depth"] + 1)]
        self.inc = _double_conv(shape[1], chans[0])
        self.down = nn.ModuleList(_double_conv(chans[i], chans[i + 1]) for i in range(p["depth"]))
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                for i in reversed(range(p["depth"])))
        self.dec = nn.ModuleList(_double_conv(2 * chans[i], chans[i]) for i in reversed(range(p["depth"])))
        self.outc = nn.Conv2d(chans[0], p["out"], 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for d in self.down:
            skips.append(d(nn.functional.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.outc(x)


def _sample_encoder(rng):
    d, heads = _pick(rng, _HF_WIDTHS)
    p = {"library": "torch", "layers": int(rng.integers(1, 13)), "d_model": d, "heads": heads,
         "ffn": _pick(rng, [2, 4]) * d, "norm_first": bool(rng.uniform() < 0.5)}
    return ModelSpec("torch-transformer", p, (1, _log_int(rng, 8, 256, 8), d))


def _build_encoder(p, shape):
    layer = nn.TransformerEncoderLayer(p["d_model"], p["heads"], p["ffn"], dropout=0.0, batch_first=True,
                                       norm_first=p["norm_first"])
    return nn.TransformerEncoder(layer, p["layers"], enable_nested_tensor=False)


def _sample_conv1d(rng):
    p = {"library": "torch", "layers": int(rng.integers(2, 11)), "channels": _log_int(rng, 16, 512, 16),
         "kernel": _pick(rng, [3, 5, 7]), "dilate": bool(rng.uniform() < 0.5), "out": _pick(rng, [10, 35, 527])}
    return ModelSpec("torch-conv1d", p, (1, _pick(rng, [1, 40, 80, 128]), _log_int(rng, 64, 16000, 16)))


class _Conv1dNet(nn.Module):
    """A 1-D convolutional classifier (keyword spotting / audio tagging style, optionally dilated as in a TCN)."""

    def __init__(self, p, shape):
        super().__init__()
        layers, cin = [], shape[1]
        for i in range(p["layers"]):
            dil = 2 ** i if p["dilate"] else 1
            stride = 1 if p["dilate"] else (2 if i % 2 == 0 else 1)
            layers += [nn.Conv1d(cin, p["channels"], p["kernel"], stride=stride, dilation=dil,
                                 padding=dil * (p["kernel"] // 2), bias=False), nn.BatchNorm1d(p["channels"]),
                       nn.ReLU()]
            cin = p["channels"]
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(cin, p["out"])

    def forward(self, x):
        return self.head(self.net(x).mean(dim=-1))


_TORCH: dict[str, tuple[Callable, Callable]] = {
    "torch-mlp": (_sample_mlp, lambda p, shape: _MLP(p, shape)),
    "torch-lstm": (_sample_rnn("torch-lstm"), lambda p, shape: _RNNClassifier(p, shape, nn.LSTM)),
    "torch-gru": (_sample_rnn("torch-gru"), lambda p, shape: _RNNClassifier(p, shape, nn.GRU)),
    "torch-unet": (_sample_unet, lambda p, shape: _UNet(p, shape)),
    "torch-transformer": (_sample_encoder, _build_encoder),
    "torch-conv1d": (_sample_conv1d, lambda p, shape: _Conv1dNet(p, shape)),
}

_HF: dict[str, tuple] = {  # family -> the stock size (hidden, heads, layers, sequence length)
    "hf-bert": (768, 12, 12, 128),
    "hf-gpt2": (768, 12, 12, 128),
    "hf-llama": (512, 8, 8, 128),
}


# --------------------------------------------------------------------------------------------------- registry

def need(name: str):
    """The module ``name`` (timm, transformers), or a one-line :class:`FamilyError` naming the extra to install."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise FamilyError(f"building zoo models needs the {name!r} package: pip install 'nnformer[zoo]'") from None


def _timm_builder(family: str):
    def build(p, shape):
        p = {**p, "reparameterize": family in _REPARAMETERIZE}
        return _build_timm(p, shape)

    return build


def _register() -> dict[str, str]:
    libraries = {}
    for family, cfg in _TIMM.items():
        register_family(family, _timm_sampler(family, cfg), _timm_builder(family), capped=False)
        libraries[family] = "timm"
    for family, stock in _HF.items():
        register_family(family, _hf_sampler(family, stock), _build_hf(family), capped=False)
        libraries[family] = "transformers"
    for family, (sampler, builder) in _TORCH.items():
        register_family(family, sampler, builder, capped=False)
        libraries[family] = "torch"
    return libraries


ZOO_FAMILIES: dict[str, str] = _register()
"""Every zoo family and the library that builds it (``timm``, ``transformers`` or ``torch``)."""


def example_input(model: nn.Module, shape) -> torch.Tensor:
    """The tensor to export ``model`` with: token ids for transformers models, float zeros otherwise."""
    make = getattr(model, "example_input", None)
    return make(shape) if callable(make) else torch.zeros(tuple(int(d) for d in shape))


def versions() -> dict[str, str]:
    """Versions of the libraries that build zoo models here (those installed)."""
    out = {"torch": torch.__version__}
    for name in ("timm", "transformers"):
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            pass
    return out
