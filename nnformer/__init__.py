"""nnformer: predict how good and how fast a neural architecture is, without training or deploying it.

The core is NN-Former (CVPR 2025), a graph transformer over an architecture's DAG with sibling-aware attention (ASMA)
and a bidirectional graph-isomorphism feed-forward layer (BGIFFN).
"""

from .errors import (ArchStringError, CheckpointError, CycleError, DataError, GraphError, GraphSizeError,
                     NNFormerError, NonBinaryError, NotSquareError, UnknownOpError)
from .graph import ArchGraph, asma_masks
from .model import NNFormer, NNFormerConfig
from .predictor import Predictor
from .train import TrainConfig

__version__ = "0.1.0"

__all__ = [
    "ArchGraph", "asma_masks", "NNFormer", "NNFormerConfig", "Predictor", "TrainConfig",
    "NNFormerError", "GraphError", "NotSquareError", "NonBinaryError", "CycleError", "GraphSizeError",
    "UnknownOpError", "ArchStringError", "DataError", "CheckpointError",
]
