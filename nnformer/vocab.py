"""Op vocabularies: which op names a predictor knows, and the id each one gets in the token's one-hot.

A vocabulary is an immutable value, named after the search space or op set it serves. A predictor records the one
it was trained with in its checkpoint and encodes every graph with it, so op ids never depend on what the process
did before; an op outside the vocabulary is an :class:`~nnformer.errors.UnknownOpError` (one line), never a silent
out-of-range index at the embedding.

Ids are explicit. NAS-Bench-201's are those of the released NN-Former code (input 0 ... output 6); NAS-Bench-101's
interior ops follow at 7-9 with the same input and output; the ONNX op set keeps input 0 and output 6, puts its
operators at 10-31, within the released one-hot width of 32, and every other ONNX operator at 1 (``onnx:other``).

Example:
    >>> NB201.encode(["input", "nor_conv_3x3", "output"])
    [0, 2, 6]
    >>> vocab_for([["input", "maxpool3x3", "output"]]).name
    'nb101'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from .errors import CheckpointError, UnknownOpError

FORMAT = "nnformer-vocab-1"


@dataclass(frozen=True)
class OpVocab:
    """A named, immutable map from op name to one-hot id.

    Args:
        name: what it serves (``nb201``, ``nb101``, ``onnx``, or a name of your own).
        ids: op name -> id; ids are distinct, non-negative integers.
        other: the op (one of ``ids``, e.g. ``onnx:other``) that stands for every unlisted op of its family (the
            ops sharing its ``family:`` prefix); ``None``: every unlisted op is an error.
    """

    name: str
    ids: Mapping[str, int] = field(repr=False)
    other: str | None = None

    def __post_init__(self):
        ids = {str(k): int(v) for k, v in dict(self.ids).items()}
        if not ids:
            raise ValueError(f"op vocabulary {self.name!r} is empty")
        if len(set(ids.values())) != len(ids) or min(ids.values()) < 0:
            raise ValueError(f"op vocabulary {self.name!r}: ids must be distinct and non-negative")
        if self.other is not None and (self.other not in ids or ":" not in self.other):
            raise ValueError(f"op vocabulary {self.name!r}: other={self.other!r} must be one of its ops, 'family:name'")
        object.__setattr__(self, "ids", MappingProxyType(ids))

    def covers(self, op: str) -> bool:
        """Whether ``op`` has an id: listed, or of the family that ``other`` stands for."""
        return op in self.ids or (self.other is not None and op.startswith(self.other.split(":")[0] + ":"))

    def unseen(self, ops: Iterable[str]) -> list[str]:
        """The ops of ``ops`` that only ``other`` stands for (the network never learnt them apart), each once."""
        return list(dict.fromkeys(o for o in ops if o not in self.ids and self.covers(o)))

    @classmethod
    def of(cls, name: str, ops: Iterable[str], start: int = 0) -> "OpVocab":
        """Ids in order from ``start``."""
        return cls(name, {op: start + i for i, op in enumerate(ops)})

    @property
    def width(self) -> int:
        """The one-hot width this vocabulary needs (largest id + 1)."""
        return max(self.ids.values()) + 1

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(self.ids)

    def __contains__(self, op: object) -> bool:
        return op in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def unknown(self, ops: Iterable[str]) -> list[str]:
        """The names in ``ops`` that this vocabulary has no id for, each once, in order of appearance."""
        return list(dict.fromkeys(o for o in ops if not self.covers(o)))

    def encode(self, ops: Sequence[str]) -> list[int]:
        """Ids of ``ops`` (an unlisted op of ``other``'s family gets ``other``'s id); raises
        :class:`UnknownOpError` naming the first op without an id."""
        try:
            if self.other is None:
                return [self.ids[o] for o in ops]
            fallback = self.ids[self.other]
            return [self.ids[o] if o in self.ids else fallback if self.covers(o) else self.ids[o] for o in ops]
        except KeyError as e:
            raise UnknownOpError(f"unknown op {e.args[0]!r} for the {self.name!r} op vocabulary; known ops: "
                                 f"{_short(self.ids)}") from None

    def check_width(self, n_op_types: int) -> None:
        if self.width > n_op_types:
            raise ValueError(f"the {self.name!r} op vocabulary needs {self.width} op types, the network has "
                             f"{n_op_types} (n_op_types)")

    def to_dict(self) -> dict:
        return {"format": FORMAT, "name": self.name, "ids": dict(self.ids),
                **({"other": self.other} if self.other else {})}

    @classmethod
    def from_dict(cls, d, where: str = "checkpoint") -> "OpVocab":
        if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("ids"), dict):
            raise CheckpointError(f"{where}: no valid op vocabulary (expected format {FORMAT!r})")
        try:
            return cls(str(d.get("name", "")), d["ids"], d.get("other"))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: invalid op vocabulary: {e}") from None


def _short(ids, limit: int = 12) -> str:
    names = list(ids)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


NB201 = OpVocab("nb201", {"input": 0, "nor_conv_1x1": 1, "nor_conv_3x3": 2, "avg_pool_3x3": 3, "skip_connect": 4,
                          "none": 5, "output": 6})
NB101 = OpVocab("nb101", {"input": 0, "output": 6, "conv1x1-bn-relu": 7, "conv3x3-bn-relu": 8, "maxpool3x3": 9})
# the ONNX operators of the project's ten model families, as ``onnx:<OpType>`` (nnformer.latency.onnx_graph)
ONNX_PREFIX = "onnx:"
ONNX_OPS = ("Conv", "Relu", "Add", "Mul", "Sigmoid", "Clip", "HardSwish", "HardSigmoid", "MaxPool", "AveragePool",
            "GlobalAveragePool", "ReduceMean", "Concat", "Flatten", "Gemm", "MatMul", "Reshape",
            "BatchNormalization", "Softmax", "Transpose", "Pad", "Split")
# every other ONNX operator (LSTM, LayerNormalization, Resize, ...) is "onnx:other", id 1 (unused by NB201 here)
ONNX_OTHER = ONNX_PREFIX + "other"
ONNX = OpVocab("onnx", {"input": 0, ONNX_OTHER: 1, "output": 6,
                        **{ONNX_PREFIX + o: 10 + i for i, o in enumerate(ONNX_OPS)}}, other=ONNX_OTHER)

# HELP's FBNet blocks (nnformer.spaces.fbnet), in HELP's index order, at 10-18
FBNET = OpVocab("fbnet", {"input": 0, "output": 6, **{f"fbnet:{b}": 10 + i for i, b in enumerate(
    ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip"))}})

VOCABS: Mapping[str, OpVocab] = MappingProxyType({v.name: v for v in (NB201, NB101, ONNX, FBNET)})


def vocab_for(op_lists: Iterable[Sequence[str]]) -> OpVocab:
    """The first of :data:`VOCABS` (nb201, nb101, onnx) that holds every op of ``op_lists``."""
    seen = set()
    for ops in op_lists:
        seen.update(ops)
    for v in VOCABS.values():
        if not v.unknown(seen):
            return v
    best = min(VOCABS.values(), key=lambda v: len(v.unknown(seen)))
    raise UnknownOpError(f"no op vocabulary holds every op of these graphs: {_short(sorted(best.unknown(seen)))} "
                         f"are outside {best.name!r}, the closest; pass an OpVocab of your own (vocab=...)")
