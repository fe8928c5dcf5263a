"""Exceptions raised for bad user input.

Every error a user can cause derives from :class:`NNFormerError`, so the CLI can turn it into a one-line message
and exit code 2 instead of a traceback.
"""

from __future__ import annotations


class NNFormerError(Exception):
    """Base class of every user-facing error of nnformer."""


class GraphError(NNFormerError, ValueError):
    """An architecture graph is malformed (the subclass says how)."""


class NotSquareError(GraphError):
    """The adjacency matrix is not a square 2-D matrix matching the op list."""


class NonBinaryError(GraphError):
    """The adjacency matrix holds a value other than 0 or 1."""


class CycleError(GraphError):
    """The graph has a directed cycle (or a self-loop), so it is not a DAG."""


class GraphSizeError(GraphError):
    """The graph has fewer than 2 nodes or more than the size limit."""


class UnknownOpError(GraphError):
    """An op name is not in the op vocabulary."""


class ArchStringError(NNFormerError, ValueError):
    """A search-space architecture string (e.g. a NAS-Bench-201 cell) cannot be parsed."""


class DataError(NNFormerError):
    """A data file is missing, altered (sha256 mismatch), corrupt, or holds an invalid label."""


class FeatureWidthError(DataError, ValueError):
    """Graphs used together carry node (or graph-level) features of different widths: they cannot be batched."""


class CheckpointError(NNFormerError):
    """A checkpoint cannot be read or does not describe a model nnformer can rebuild."""


class SpecError(NNFormerError, ValueError):
    """A NAS-Bench-101 cell spec (adjacency matrix + op list) is outside the search space; the message says why."""


class OnnxError(NNFormerError):
    """An ONNX model cannot be exported, read, converted or run (broken file, unsupported op, dynamic shape)."""


class FamilyError(NNFormerError, ValueError):
    """A model family is unknown, or its sampler cannot produce a model within the size budget."""


def one_line(e: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (or its type's name), at most ``limit`` characters: what
    a one-line error quotes of a library's many-line message."""
    text = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return (text[0].strip() if text else type(e).__name__)[:limit]
