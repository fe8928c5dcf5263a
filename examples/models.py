"""Example models for `nnformer predict --torch examples.models:NAME --input-shape ...` (run from the repository root).

    nnformer predict --torch examples.models:resnet18 --input-shape 1,3,224,224
    nnformer predict --torch examples.models:vit_block --input-shape 1,197,384
    nnformer predict --torch examples.models:convmixer --input-shape 1,3,224,224
    nnformer predict --torch examples.models:einsum_attention --input-shape 1,256,256
"""

import torch
from torch import nn


def resnet18() -> nn.Module:
    """ResNet-18 (basic blocks, 2 per stage, widths 64-512, 7x7 stem) from the project's plain-PyTorch builder."""
    from nnformer.latency.families import build_resnet

    stages = [{"c": c, "n": 2, "k": 3, "s": 1 if i == 0 else 2} for i, c in enumerate((64, 128, 256, 512))]
    return build_resnet({"block": "basic", "expansion": 1, "stem_c": 64, "stem_k": 7, "stages": stages,
                         "classes": 1000})


class ViTBlock(nn.Module):
    """One ViT-S encoder block (pre-norm, 384 wide, 6 heads, MLP 1536), written out so that it exports to plain
    ONNX operators (MatMul, Softmax, LayerNormalization, ...): ones `cpu-ort-b1` (ten CNN families) never trained on."""

    def __init__(self, dim: int = 384, heads: int = 6, hidden: int = 1536):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


def vit_block() -> nn.Module:
    return ViTBlock()


class _Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def convmixer(dim: int = 256, depth: int = 8, kernel: int = 9, patch: int = 7, classes: int = 1000) -> nn.Module:
    """ConvMixer-256/8 (Trockman & Kolter, 2022): a patch embedding, then per block a depthwise convolution with a
    residual and a pointwise one, GELU and BatchNorm throughout. A family that none of the project's latency
    datasets holds (neither the hand-written families nor the model zoo)."""

    def act(c):
        return [nn.GELU(), nn.BatchNorm2d(c)]

    blocks = [nn.Sequential(_Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel, groups=dim, padding=kernel // 2),
                                                    *act(dim))),
                            nn.Conv2d(dim, dim, 1), *act(dim)) for _ in range(depth)]
    return nn.Sequential(nn.Conv2d(3, dim, patch, stride=patch), *act(dim), *blocks, nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(dim, classes)).eval()


class EinsumAttention(nn.Module):
    """Self-attention written with ``torch.einsum`` (exported as ONNX Einsum, an operator the shipped predictor
    never trained on): 256 wide, 4 heads."""

    def __init__(self, dim: int = 256, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).unbind(2)
        att = torch.einsum("bqhd,bkhd->bhqk", q, k / (d // self.heads) ** 0.5).softmax(-1)
        return self.out(torch.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d))


def einsum_attention() -> nn.Module:
    return EinsumAttention().eval()
