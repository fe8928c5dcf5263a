"""Every network a predictor can train, by name: NN-Former (:mod:`nnformer.model`) and the baselines
(:mod:`nnformer.baselines`). Each maps a :class:`~nnformer.batching.GraphBatch` to ``(B,)`` predictions and is built
from its config dataclass, which is what checkpoints record."""

from __future__ import annotations

from torch import nn

from .baselines import GCNConfig, GCNRegressor, MLPConfig, MLPRegressor
from .model import NNFormer, NNFormerConfig


def model_types() -> dict[str, tuple[type, type]]:
    """Registered networks: name -> (config dataclass, module)."""
    return {"nnformer": (NNFormerConfig, NNFormer), "gcn": (GCNConfig, GCNRegressor), "mlp": (MLPConfig, MLPRegressor)}


def model_type_of(cfg) -> str:
    for name, (c, _) in model_types().items():
        if type(cfg) is c:
            return name
    raise TypeError(f"no registered network for config type {type(cfg).__name__}")


def build_model(cfg) -> nn.Module:
    return model_types()[model_type_of(cfg)][1](cfg)
